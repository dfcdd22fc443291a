using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

/// <summary>Each client (the authenticated caller, or the remote address of an anonymous one) has its own token bucket;
/// budgets folded as of a position have a stricter one of their own and a few slots shared by all. A refusal is a 429
/// problem with Retry-After, and records nothing.</summary>
public sealed class RateLimitTests
{
    private static (string, string?)[] Limits(double perSecond, int burst) =>
    [
        ("RateLimiting:Client:PermitsPerSecond", perSecond.ToString(CultureInfo.InvariantCulture)),
        ("RateLimiting:Client:Burst", burst.ToString(CultureInfo.InvariantCulture)),
    ];

    /// <summary>The refusal: 429, a problem, and Retry-After in whole seconds; returns them.</summary>
    private static async Task<int> AssertRefusedAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.TooManyRequests, $"{(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(429, problem.RootElement.GetProperty("status").GetInt32());
        var retryAfter = Assert.Single(response.Headers.GetValues("Retry-After"));
        var seconds = int.Parse(retryAfter, CultureInfo.InvariantCulture);
        Assert.InRange(seconds, 1, 60);
        return seconds;
    }

    [Fact]
    public async Task A_client_over_its_limit_is_refused_with_Retry_After_and_served_again_after_waiting()
    {
        await using var api = await ApiFactory.StartAsync(Limits(perSecond: 0.5, burst: 3));
        var municipality = api.ClientAs(Roles.Municipality, subject: "ge-admin", canton: "ge");

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await municipality.GetAsync("/api/v1/cantons")).StatusCode);
        }

        var seconds = await AssertRefusedAsync(await municipality.GetAsync("/api/v1/cantons"));
        Assert.InRange(seconds, 2, 3); // one permit every two seconds, refilled on a 100 ms tick

        await Task.Delay(TimeSpan.FromSeconds(seconds));
        Assert.Equal(HttpStatusCode.OK, (await municipality.GetAsync("/api/v1/cantons")).StatusCode);
    }

    [Fact]
    public async Task A_client_over_its_limit_does_not_affect_other_clients()
    {
        await using var api = await ApiFactory.StartAsync(Limits(perSecond: 0.1, burst: 2));
        var ge = api.ClientAs(Roles.Municipality, subject: "ge-admin", canton: "ge");
        await ge.GetAsync("/api/v1/cantons");
        await ge.GetAsync("/api/v1/cantons");
        await AssertRefusedAsync(await ge.GetAsync("/api/v1/cantons"));

        // Another subject of the same canton is the same client: the limit is the canton's administration's.
        await AssertRefusedAsync(await api.ClientAs(Roles.Municipality, subject: "ge-other-system", canton: "ge").GetAsync("/api/v1/cantons"));
        foreach (var other in new[]
                 {
                     api.ClientAs(Roles.Municipality, subject: "vd-admin", canton: "vd"),
                     api.ClientAs(Roles.Person, subject: "alice"),
                     api.ClientAs(Roles.Person, subject: "bob"),
                     api.ClientAs(Roles.Auditor, subject: "auditor-1"),
                     api.Admin(),
                     api.CreateClient(),
                 })
        {
            Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/api/v1/cantons")).StatusCode);
        }
    }

    [Fact]
    public async Task A_refused_write_records_nothing()
    {
        await using var api = await ApiFactory.StartAsync(Limits(perSecond: 0.1, burst: 2));
        var admin = api.Admin();
        await Fiscal.Ok(admin.PutAsJsonAsync("/api/v1/cantons/ge", new { name = "Genève", currency = "CHF" }));
        await admin.GetAsync("/api/v1/cantons");
        var events = await api.CountEventsAsync();

        await AssertRefusedAsync(await admin.PutAsJsonAsync("/api/v1/cantons/vd", new { name = "Vaud", currency = "CHF" }));

        Assert.Equal(events, await api.CountEventsAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await api.CreateClient().GetAsync("/api/v1/cantons/vd")).StatusCode);
    }

    [Fact]
    public async Task Health_checks_are_never_limited()
    {
        await using var api = await ApiFactory.StartAsync(Limits(perSecond: 0.1, burst: 1));
        var anonymous = api.CreateClient();
        await anonymous.GetAsync("/api/v1/cantons");
        await AssertRefusedAsync(await anonymous.GetAsync("/api/v1/cantons"));

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/live")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/ready")).StatusCode);
        }
    }

    [Fact]
    public async Task Anonymous_clients_are_told_apart_by_their_address()
    {
        await using var api = await ApiFactory.StartAsync(Limits(perSecond: 0.1, burst: 2));
        api.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        api.StartServer();
        var address = new Uri(api.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        using var first = From(IPAddress.Parse("127.0.0.2"), address);
        using var second = From(IPAddress.Parse("127.0.0.3"), address);

        await first.GetAsync("/api/v1/cantons");
        await first.GetAsync("/api/v1/cantons");
        await AssertRefusedAsync(await first.GetAsync("/api/v1/cantons"));

        Assert.Equal(HttpStatusCode.OK, (await second.GetAsync("/api/v1/cantons")).StatusCode);
        await AssertRefusedAsync(await first.GetAsync("/api/v1/cantons"));
    }

    [Fact]
    public async Task Budgets_as_of_a_position_have_a_stricter_limit_of_their_own()
    {
        await using var api = await ApiFactory.StartAsync(
            ("RateLimiting:AsOf:PermitsPerSecond", "0.05"), ("RateLimiting:AsOf:Burst", "2"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        await fiscal.PolicyAsync("ge", 2026, 70);
        await fiscal.AssessAsync("ge", "alice", 2026, 100_000);
        await api.ProjectedAsync("budgets");
        var anonymous = api.CreateClient();

        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=2")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=3")).StatusCode);
        var seconds = await AssertRefusedAsync(await anonymous.GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=3"));

        Assert.InRange(seconds, 20, 21); // one fold every 20 s
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/v1/cantons/ge/budgets/2026")).StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await api.ClientAs(Roles.Auditor, subject: "auditor-1").GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=3")).StatusCode);
    }

    [Fact]
    public async Task A_fold_beyond_the_shared_slots_is_refused_while_the_others_run()
    {
        await using var api = await ApiFactory.StartAsync(("RateLimiting:AsOfConcurrency", "2"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        await fiscal.AssessAsync("ge", "alice", 2026, 100_000);
        await api.ProjectedAsync("budgets");

        // Two folds wait behind a lock on the log; a third client's is refused at once, a live budget is still served.
        var asOf = $"/api/v1/cantons/ge/budgets/2026?asOf={api.Clock.GetUtcNow().UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffffff}Z";
        var running = new List<Task<HttpResponseMessage>>();
        await using (var hold = await EventLogLock.TakeAsync(api))
        {
            running.Add(api.ClientAs(Roles.Person, subject: "alice").GetAsync(asOf));
            running.Add(api.ClientAs(Roles.Person, subject: "bob").GetAsync(asOf));
            await hold.WaitForBlockedAsync(2, "%AND timestamp <= $1%");

            var refused = await api.ClientAs(Roles.Person, subject: "carol").GetAsync(asOf);

            Assert.Equal(5, await AssertRefusedAsync(refused));
            Assert.Contains("folding", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        foreach (var fold in await Task.WhenAll(running))
        {
            Assert.Equal(HttpStatusCode.OK, fold.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await api.ClientAs(Roles.Person, subject: "carol").GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=2")).StatusCode);
    }

    [Fact]
    public async Task The_configured_defaults_let_a_municipality_burst_a_thousand_requests_and_then_limit_it()
    {
        await using var api = await ApiFactory.StartAsync(
            ("RateLimiting:Client:PermitsPerSecond", null), ("RateLimiting:Client:Burst", null),
            ("RateLimiting:AsOf:PermitsPerSecond", null), ("RateLimiting:AsOf:Burst", null), ("RateLimiting:AsOfConcurrency", null));
        var defaults = new RateLimitSettings();
        var municipality = api.ClientAs(Roles.Municipality, subject: "ge-admin", canton: "ge");

        async Task<HttpStatusCode[]> BurstAsync(int requests) => await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < requests / 8; i++)
            {
                statuses.Add((await municipality.GetAsync("/api/v1/cantons")).StatusCode);
            }

            return statuses;
        })).ContinueWith(t => t.Result.SelectMany(s => s).ToArray(), TaskScheduler.Default);

        var burst = await BurstAsync(defaults.Client.Burst);
        Assert.All(burst, status => Assert.Equal(HttpStatusCode.OK, status));

        var refused = 0;
        for (var round = 0; round < 20 && refused == 0; round++)
        {
            refused = (await BurstAsync(400)).Count(s => s == HttpStatusCode.TooManyRequests);
        }

        Assert.True(refused > 0, "a client that keeps sending faster than the default rate is refused");
        Assert.Equal(HttpStatusCode.OK, (await api.ClientAs(Roles.Municipality, subject: "vd-admin", canton: "vd").GetAsync("/api/v1/cantons")).StatusCode);

        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ur");
        await api.ProjectedAsync("budgets");
        var anonymous = api.CreateClient();
        for (var i = 0; i < defaults.AsOf.Burst; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/v1/cantons/ur/budgets/2026?asOf=1")).StatusCode);
        }

        await AssertRefusedAsync(await anonymous.GetAsync("/api/v1/cantons/ur/budgets/2026?asOf=1"));
    }

    /// <summary>A client whose connections come from <paramref name="local"/>, one of the loopback addresses.</summary>
    private static HttpClient From(IPAddress local, Uri server) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, ct) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(local, 0));
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    {
        BaseAddress = server,
    };
}
