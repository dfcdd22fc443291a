using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

public sealed class AuditFeedTests(ApiFactory api) : IClassFixture<ApiFactory>, IAsyncLifetime
{
    // Person ids that no pseudonym, hash or id could contain by chance.
    private static readonly string[] People = ["person-alice-q7", "person-bob-q7", "person-carol-q7"];

    private readonly Audit _audit = new(api);

    public async Task InitializeAsync()
    {
        if (await api.CountEventsAsync() > 0)
        {
            return;
        }

        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        await fiscal.CantonAsync("vd", "EUR");
        await fiscal.OrganizationAsync("linux");
        await fiscal.OrganizationAsync("oceans");
        await fiscal.PolicyAsync("ge", 2026, 70);
        await fiscal.PolicyAsync("vd", 2026, 50);
        await fiscal.AssessAsync("ge", People[0], 2026, 1_000_000);
        await fiscal.AssessAsync("vd", People[1], 2026, 500_000);
        await fiscal.AssessAsync("ge", People[0], 2026, 1_100_000);
        await Fiscal.Ok(fiscal.DesignateAsync("ge", 2026, People[0], false, ("linux", 6000), ("oceans", 4000)));
        await Fiscal.Ok(fiscal.DesignateAsync("ge", 2026, People[0], true, ("linux", 10000)));
        await Fiscal.Ok(fiscal.DesignateAsync("vd", 2026, People[1], false, ("oceans", 10000)));
        await fiscal.ResidentAsync(People[2], "ge", new DateOnly(2020, 1, 1));
        await fiscal.ResidentAsync(People[2], "vd", new DateOnly(2024, 6, 1));
        await api.SealedAsync();
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task The_feed_never_shows_a_person_id_but_a_stable_pseudonym_in_its_place()
    {
        var (trail, _) = await _audit.FeedAsync();
        var events = trail.Where(e => e.Event is not null).Select(e => e.Event!).ToList();
        var text = JsonSerializer.Serialize(events);
        Assert.All(People, person => Assert.DoesNotContain(person, text, StringComparison.OrdinalIgnoreCase));

        var pseudonyms = api.Services.GetRequiredService<Pseudonyms>();
        var alice = pseudonyms.Of(People[0]);
        // Events recorded since handles name people by them: pseudonyms already, stable per person in a canton's year.
        var persons = api.Services.GetRequiredService<Features.Persons.PersonKeys>();
        var taxpayer = await Assessed.HandleAsync(api.Services, People[0], "ge", 2026);
        var aliceEvents = events.Where(e => e.Data.TryGetProperty("taxpayer", out var t) && t.GetString() == taxpayer).ToList();
        Assert.Equal(4, aliceEvents.Count); // two assessments, two designations: still one person to an auditor
        Assert.Contains(aliceEvents, e => e.StreamId == $"designations-ge-{taxpayer}" && e.Actor == "person");
        var resident = (await persons.FindAsync(People[2], CancellationToken.None))!.Resident;
        Assert.Contains(events, e => e.StreamId == $"residence-{resident}");
        Assert.Equal(3, People.Select(pseudonyms.Of).Distinct().Count());
        Assert.Matches("^p-[a-z2-7]{26}$", alice);
    }

    [Fact]
    public async Task The_platform_secrets_never_leave_the_server()
    {
        var keys = api.Services.GetRequiredService<AuditKeys>();
        var secrets = new[]
        {
            Convert.ToBase64String(keys.EventKey), Convert.ToHexString(keys.EventKey), Convert.ToHexStringLower(keys.EventKey),
            Convert.ToBase64String(keys.PseudonymKey), Convert.ToHexString(keys.PseudonymKey), Convert.ToHexStringLower(keys.PseudonymKey),
            Convert.ToBase64String(keys.SealKey.ExportPkcs8PrivateKey()), keys.SealKey.ExportPkcs8PrivateKeyPem().Split('\n')[1],
        };
        var bodies = new List<string>();
        foreach (var path in new[] { "/api/v1/audit/events?limit=1000", "/api/v1/audit/seals?limit=1000", "/openapi/v1.json", "/api/v1/audit/events?limit=0" })
        {
            bodies.Add(await (await _audit.Auditor.GetAsync(path)).Content.ReadAsStringAsync());
        }

        Assert.Contains(bodies, b => b.Contains(keys.PublicKey, StringComparison.Ordinal)); // the public half is served
        Assert.All(secrets, secret => Assert.All(bodies, body => Assert.DoesNotContain(secret, body, StringComparison.Ordinal)));
        Assert.All(secrets, secret => Assert.All(api.Logs.Lines, line => Assert.DoesNotContain(secret, line, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Pages_follow_the_global_order_without_skipping_and_filters_keep_every_match()
    {
        var all = (await _audit.Auditor.GetFromJsonAsync<AuditEventsPage>("/api/v1/audit/events?limit=1000"))!;
        Assert.Equal(Enumerable.Range(1, all.Events.Count).Select(i => (long)i), all.Events.Select(e => e.Position));
        Assert.Equal(all.SealedThrough, all.Next);

        var (paged, _) = await _audit.FeedAsync(); // 7 at a time
        Assert.Equal(all.Events.Select(e => e.Hash), paged.Where(e => e.Event is not null).Select(e => e.Event!.Hash));

        foreach (var (query, keep) in new (string, Func<AuditEvent, bool>)[]
                 {
                     ("&canton=vd", e => e.Data.TryGetProperty("cantonId", out var c) && c.GetString() == "vd"),
                     ("&type=tax-assessed", e => e.Type == "tax-assessed"),
                     ("&canton=ge&type=designation-chosen", e => e.Type == "designation-chosen" && e.Data.GetProperty("cantonId").GetString() == "ge"),
                 })
        {
            var matches = new List<long>();
            long after = 0;
            for (var pages = 0; ; pages++)
            {
                var page = (await _audit.Auditor.GetFromJsonAsync<AuditEventsPage>($"/api/v1/audit/events?after={after}&limit=2{query}"))!;
                Assert.All(page.Events, e => Assert.True(keep(e), $"{query}: {e.Type} at {e.Position}"));
                matches.AddRange(page.Events.Select(e => e.Position));
                if (page.Next == page.SealedThrough)
                {
                    break;
                }

                after = page.Next;
            }

            var expected = all.Events.Where(keep).Select(e => e.Position).ToList();
            Assert.NotEmpty(expected);
            Assert.Equal(expected, matches);
        }
    }

    [Theory]
    [InlineData("?after=-1")]
    [InlineData("?after=abc")]
    [InlineData("?after=999999")]
    [InlineData("?limit=0")]
    [InlineData("?limit=1001")]
    [InlineData("?limit=ten")]
    [InlineData("?type=tax-evaded")]
    [InlineData("?type=")]
    [InlineData("?canton=GE!")]
    [InlineData("?after=9223372036854775808")]
    public async Task Malformed_feed_requests_are_problems(string query)
    {
        var response = await _audit.Auditor.GetAsync($"/api/v1/audit/events{query}");
        await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, code: null);
    }

    [Theory]
    [InlineData("?after=-1")]
    [InlineData("?limit=0")]
    [InlineData("?limit=5000")]
    [InlineData("?after=x")]
    public async Task Malformed_seal_requests_are_problems(string query) =>
        await api.AssertRefusedAsync(await api.CreateClient().GetAsync($"/api/v1/audit/seals{query}"), HttpStatusCode.BadRequest, code: null);

    [Fact]
    public async Task Only_auditors_read_the_feed_while_seals_are_public()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().GetAsync("/api/v1/audit/events")).StatusCode);
        foreach (var client in new[]
                 {
                     api.ClientAs(Roles.Person, subject: People[0]), api.ClientAs(Roles.Municipality, subject: "ge-admin", canton: "ge"),
                     api.ClientAs(Roles.Organization, subject: "linux"), api.Admin(),
                 })
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await client.GetAsync("/api/v1/audit/events")).StatusCode);
        }

        var seals = (await api.CreateClient().GetFromJsonAsync<SealsPage>("/api/v1/audit/seals"))!;
        Assert.Equal("ES256", seals.Algorithm);
        Assert.NotEmpty(seals.Seals);
        Assert.All(seals.Seals, s => Assert.True(s.IsSignedBy(Seal.PublicKey(seals.PublicKey))));
    }
}
