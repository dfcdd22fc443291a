using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Confederal.Api.Infrastructure;
using Confederal.Client;
using Confederal.Client.Generated.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Kiota.Abstractions;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>
/// The municipal client over real HTTP (the API on Kestrel): a write whose answer was lost, a 429 and a 503 whose outcome
/// is unknown are each sent again with the same Idempotency-Key and recorded once; tokens come from a real token endpoint
/// by the client-credentials grant; the bulk import streams and the audit feed pages.
/// </summary>
public sealed class ClientTests
{
    private static int Year => DateTime.UtcNow.Year;

    [Fact]
    public async Task A_write_whose_answer_was_lost_with_its_connection_is_sent_again_and_recorded_once()
    {
        await using var api = await KestrelAsync();
        await new Fiscal(api).CantonAsync("cl-drop");
        await using var proxy = await DroppingProxy.StartAsync(Address(api));
        using var client = Client(proxy.Address, api, Roles.Municipality, "cl-drop");
        var events = await api.CountEventsAsync();

        proxy.DropNextAnswer();
        var assessment = await client.Api.Api.V1.Cantons["cl-drop"].TaxAssessments.PostAsync(
            new AssessTaxBody { PersonId = "cl-drop-1", FiscalYear = Year, AmountMinor = 120_000 });

        Assert.Equal(1, proxy.Dropped); // the first answer never reached the client: it sent the write again
        Assert.Equal(120_000, assessment!.AmountMinor);
        Assert.Equal(events + 1, await api.CountEventsAsync());
        Assert.Equal(2, api.Logs.Lines.Count(l => l.Contains("POST /api/v1/cantons/{cantonId}/tax-assessments answered 201", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_429_is_waited_out_as_its_Retry_After_says()
    {
        await using var api = await KestrelAsync(("RateLimiting:Client:PermitsPerSecond", "1"), ("RateLimiting:Client:Burst", "1"));
        using var client = Client(Address(api), api, Roles.Auditor);

        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(await client.Api.Api.V1.Audit.Seals.GetAsync());
        }

        Assert.Contains(api.Logs.Lines, l => l.Contains("answered 429", StringComparison.Ordinal));
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.5), $"{watch.Elapsed}: the client did not wait for the bucket to refill.");
    }

    [Fact]
    public async Task A_503_whose_outcome_is_unknown_is_sent_again_with_the_same_key_and_recorded_once()
    {
        await using var api = await KestrelAsync();
        await new Fiscal(api).CantonAsync("cl-unknown");
        using var client = Client(Address(api), api, Roles.Municipality, "cl-unknown");
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();
        var events = await api.CountEventsAsync();

        // A commit that waits: a deferred trigger takes a lock the test holds, so the write's COMMIT is sent and then hangs.
        await using var holder = await db.OpenConnectionAsync();
        await Execute(holder, """
            CREATE FUNCTION cl_wait_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER cl_wait_at_commit AFTER INSERT ON marten.mt_events DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION cl_wait_at_commit();
            """);
        await using var held = await holder.BeginTransactionAsync();
        await Execute(holder, "SELECT pg_advisory_xact_lock(4242)");

        var write = client.Api.Api.V1.Cantons["cl-unknown"].TaxAssessments.PostAsync(
            new AssessTaxBody { PersonId = "cl-unknown-1", FiscalYear = Year, AmountMinor = 50_000 });
        await using var watcher = await db.OpenConnectionAsync();
        int? pid = null;
        for (var wait = Stopwatch.StartNew(); pid is null && wait.Elapsed < TimeSpan.FromSeconds(30) && !write.IsCompleted; await Task.Delay(20))
        {
            await using var find = new NpgsqlCommand(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query = 'COMMIT'", watcher);
            pid = await find.ExecuteScalarAsync() as int?;
        }

        Assert.True(pid is not null, "The write never waited in its COMMIT.");
        await Execute(watcher, $"SELECT pg_terminate_backend({pid})"); // the commit's answer is lost with its session
        await held.RollbackAsync(); // the next attempt commits at once

        var assessment = await write;

        Assert.Equal(50_000, assessment!.AmountMinor);
        Assert.Contains(api.Logs.Lines, l => l.Contains("tax-assessments answered 503", StringComparison.Ordinal));
        Assert.Equal(events + 1, await api.CountEventsAsync());
    }

    [Fact]
    public async Task Tokens_come_from_the_issuer_by_the_client_credentials_grant_and_are_kept_until_they_near_expiry()
    {
        await using var api = await KestrelAsync();
        await new Fiscal(api).CantonAsync("cl-token");
        await using var issuer = await TokenEndpoint.StartAsync(api, "cl-token", "cl-token-office", "s3cret");
        using var tokens = new ClientCredentials(issuer.Address, "cl-token-office", "s3cret");
        using var client = ConfederalClient.Create(new ConfederalClientOptions { BaseAddress = Address(api), Token = tokens.TokenAsync });

        for (var i = 0; i < 3; i++)
        {
            await client.Api.Api.V1.Cantons["cl-token"].TaxAssessments.PostAsync(
                new AssessTaxBody { PersonId = $"cl-token-{i}", FiscalYear = Year, AmountMinor = 1_000 });
        }

        Assert.Equal(1, issuer.Issued);
        using var wrong = new ClientCredentials(issuer.Address, "cl-token-office", "guess");
        var refused = await Assert.ThrowsAsync<HttpRequestException>(async () => await wrong.TokenAsync(CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    [Fact]
    public async Task The_bulk_import_streams_a_file_or_a_sequence_and_a_refusal_is_a_problem()
    {
        await using var api = await KestrelAsync();
        await new Fiscal(api).CantonAsync("cl-bulk");
        using var client = Client(Address(api), api, Roles.Municipality, "cl-bulk");
        var file = Path.Combine(Path.GetTempPath(), $"cl-bulk-{Guid.NewGuid():N}.csv");
        await File.WriteAllLinesAsync(file, ["personId,fiscalYear,amountMinor", .. Enumerable.Range(0, 500).Select(i => $"cl-bulk-f{i},{Year},{100 + i}")]);
        try
        {
            Assert.Equal(500, (await client.ImportAssessmentsAsync("cl-bulk", file))!.Assessments);
        }
        finally
        {
            File.Delete(file);
        }

        Assert.Equal(2_000, (await client.ImportAssessmentsAsync("cl-bulk", Assessments(2_000)))!.Assessments);
        var problem = await Assert.ThrowsAsync<ProblemDetails>(() => client.ImportAssessmentsAsync("cl-elsewhere", Assessments(1)));
        Assert.Equal(403, problem.ResponseStatusCode); // another canton's
        Assert.False(string.IsNullOrEmpty(problem.Title));

        static async IAsyncEnumerable<AssessTaxBody> Assessments(int count)
        {
            for (var i = 0; i < count; i++)
            {
                await Task.Yield();
                yield return new AssessTaxBody { PersonId = $"cl-bulk-s{i}", FiscalYear = Year, AmountMinor = 1_000 + i };
            }
        }
    }

    [Fact]
    public async Task An_import_whose_answer_was_lost_is_sent_again_whole_from_the_file_or_the_sequence_and_recorded_once()
    {
        await using var api = await KestrelAsync();
        await new Fiscal(api).CantonAsync("cl-lost");
        await using var proxy = await DroppingProxy.StartAsync(Address(api));
        using var client = Client(proxy.Address, api, Roles.Municipality, "cl-lost");
        var file = Path.Combine(Path.GetTempPath(), $"cl-lost-{Guid.NewGuid():N}.ndjson");
        await File.WriteAllLinesAsync(file, Enumerable.Range(0, 300).Select(i => $$"""{"personId":"cl-lost-f{{i}}","fiscalYear":{{Year}},"amountMinor":{{500 + i}}}"""));
        var events = await api.CountEventsAsync();
        try
        {
            proxy.DropNextAnswer();
            Assert.Equal(300, (await client.ImportAssessmentsAsync("cl-lost", file))!.Assessments);
        }
        finally
        {
            File.Delete(file);
        }

        proxy.DropNextAnswer();
        Assert.Equal(400, (await client.ImportAssessmentsAsync("cl-lost", Assessments()))!.Assessments);

        // Each body was sent again from its start: a partial one would not match the key's recorded request.
        Assert.Equal(2, proxy.Dropped);
        Assert.Equal(events + 700, await api.CountEventsAsync());
        Assert.Equal(4, api.Logs.Lines.Count(l => l.Contains("tax-assessments/batch answered 201", StringComparison.Ordinal)));

        static async IAsyncEnumerable<AssessTaxBody> Assessments()
        {
            for (var i = 0; i < 400; i++)
            {
                await Task.Yield();
                yield return new AssessTaxBody { PersonId = $"cl-lost-s{i}", FiscalYear = Year, AmountMinor = 900 + i };
            }
        }
    }

    [Fact]
    public async Task On_a_handler_of_its_own_a_write_keeps_its_key_across_retries_and_an_import_takes_a_calls_configuration()
    {
        await using var api = await ApiFactory.StartAsync();
        await new Fiscal(api).CantonAsync("cl-own");
        var keys = new List<string>();
        using var client = InMemory(api, Roles.Municipality, "cl-own", () => new UnavailableOnce(api.Server.CreateHandler(), keys));
        var events = await api.CountEventsAsync();

        var assessment = await client.Api.Api.V1.Cantons["cl-own"].TaxAssessments.PostAsync(
            new AssessTaxBody { PersonId = "cl-own-1", FiscalYear = Year, AmountMinor = 7_000 });

        Assert.Equal(7_000, assessment!.AmountMinor);
        Assert.Equal(2, keys.Count); // answered 503 by the handler, then carried to the API with the same key
        Assert.Single(keys.Distinct());
        Assert.Equal(events + 1, await api.CountEventsAsync());

        // A caller's own key (and headers) on an import, as on a generated call: sent again, given the recorded answer back.
        var first = await client.ImportAssessmentsAsync("cl-own", Assessments(), ConfederalClient.WithKey<DefaultQueryParameters>("cl-own-import"));
        var imported = await api.CountEventsAsync();
        var again = await client.ImportAssessmentsAsync("cl-own", Assessments(), ConfederalClient.WithKey<DefaultQueryParameters>("cl-own-import"));
        Assert.Equal(3, first.Assessments);
        Assert.Equal(first.Assessments, again.Assessments);
        Assert.Equal(imported, await api.CountEventsAsync());
        Assert.Equal(["cl-own-import", "cl-own-import"], keys[^2..]);

        static IAsyncEnumerable<AssessTaxBody> Assessments() => Enumerable.Range(2, 3)
            .Select(i => new AssessTaxBody { PersonId = $"cl-own-{i}", FiscalYear = Year, AmountMinor = 1_000 * i })
            .ToAsyncEnumerable();
    }

    [Fact]
    public async Task A_refusal_is_a_problem_even_where_the_document_lists_none_and_names_the_request_it_answers()
    {
        await using var api = await ApiFactory.StartAsync();
        await new Fiscal(api).CantonAsync("cl-named");
        using var client = InMemory(api, Roles.Municipality, "cl-named", api.Server.CreateHandler);

        // The document lists no 403 for this operation: read as a problem all the same.
        var generated = await Assert.ThrowsAsync<ProblemDetails>(() => client.Api.Api.V1.Cantons["cl-elsewhere"].TaxAssessments.PostAsync(
            new AssessTaxBody { PersonId = "cl-named-1", FiscalYear = Year, AmountMinor = 1 }));
        var served = await Assert.ThrowsAsync<ProblemDetails>(() => client.GetJsonAsync(
            client.Api.Api.V1.Audit.Events.ToGetRequestInformation(c => c.QueryParameters.Limit = 1), CancellationToken.None));

        Assert.Equal(403, generated.ResponseStatusCode);
        Assert.False(string.IsNullOrEmpty(generated.Title));
        Assert.Equal("POST /api/v1/cantons/cl-elsewhere/tax-assessments", RefusedRequest.Of(generated)?.ToString());
        Assert.Equal(403, served.ResponseStatusCode);
        Assert.Equal("GET /api/v1/audit/events?limit=1", RefusedRequest.Of(served)?.ToString());
    }

    [Fact]
    public async Task The_audit_feed_pages_to_its_last_seal_and_as_served()
    {
        await using var api = await KestrelAsync();
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("cl-feed");
        using var client = Client(Address(api), api, Roles.Municipality, "cl-feed");
        for (var i = 0; i < 20; i++)
        {
            await client.Api.Api.V1.Cantons["cl-feed"].TaxAssessments.PostAsync(new AssessTaxBody { PersonId = $"cl-feed-{i}", FiscalYear = Year, AmountMinor = 10 });
        }

        var sealedThrough = await api.SealedAsync();
        using var auditor = Client(Address(api), api, Roles.Auditor);

        var typed = await auditor.AuditEventsAsync(pageSize: 7).ToListAsync();
        var served = await auditor.AuditEventsAsJsonAsync(pageSize: 7).ToListAsync();

        Assert.True(typed.Count > 20, $"{typed.Count} events: every page of 7 expected.");
        Assert.Equal(sealedThrough, typed[^1].Position);
        Assert.Equal(typed.Select(e => e.Position), served.Select(e => (long?)e.GetProperty("position").GetInt64()));
        Assert.Equal(typed.Select(e => e.Position).Distinct().Count(), typed.Count);
        Assert.Equal(typed.Select(e => e.Position).Order(), typed.Select(e => e.Position));
        Assert.Equal(20, typed.Count(e => e.Type == "tax-assessed"));
    }

    internal static async Task<ApiFactory> KestrelAsync(params (string Key, string? Value)[] settings)
    {
        var api = await ApiFactory.StartAsync(settings);
        api.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        api.StartServer();
        return api;
    }

    internal static Uri Address(ApiFactory api) =>
        new(api.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

    private static ConfederalClient Client(Uri address, ApiFactory api, string role, string? canton = null)
    {
        var token = DevTokens.Issue(api.SigningKey, role, canton is null ? role : $"{canton}-office", canton);
        return ConfederalClient.Create(new ConfederalClientOptions
        {
            BaseAddress = address,
            Token = _ => ValueTask.FromResult(token),
            FirstRetryDelay = TimeSpan.FromMilliseconds(50),
        });
    }

    /// <summary>A client whose requests <paramref name="handler"/> carries (here, to the API in memory).</summary>
    private static ConfederalClient InMemory(ApiFactory api, string role, string canton, Func<HttpMessageHandler> handler)
    {
        var token = DevTokens.Issue(api.SigningKey, role, $"{canton}-office", canton);
        return ConfederalClient.Create(new ConfederalClientOptions
        {
            BaseAddress = api.Server.BaseAddress,
            Token = _ => ValueTask.FromResult(token),
            FirstRetryDelay = TimeSpan.FromMilliseconds(10),
            PrimaryHandler = handler,
        });
    }

    /// <summary>Answers the first request 503, as an API that could not take it, then carries each to the API; notes
    /// the Idempotency-Key of every request.</summary>
    private sealed class UnavailableOnce(HttpMessageHandler api, List<string> keys) : DelegatingHandler(api)
    {
        private int _answered;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            keys.Add(request.Headers.TryGetValues("Idempotency-Key", out var key) ? key.Single() : "");
            return Interlocked.Exchange(ref _answered, 1) == 0
                ? Task.FromResult(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable))
                : base.SendAsync(request, cancellationToken);
        }
    }

    private static async Task Execute(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A TCP proxy to the API that, when told, closes the client's connection as the next answer arrives, so
    /// that a request the API carried out gets no answer.</summary>
    private sealed class DroppingProxy : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly Uri _upstream;
        private readonly CancellationTokenSource _stop = new();
        private int _drop;
        private int _dropped;
        private Task _accepting = Task.CompletedTask;

        private DroppingProxy(Uri upstream) => _upstream = upstream;

        public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

        public int Dropped => Volatile.Read(ref _dropped);

        public static Task<DroppingProxy> StartAsync(Uri upstream)
        {
            var proxy = new DroppingProxy(upstream);
            proxy._listener.Start();
            proxy._accepting = proxy.AcceptAsync();
            return Task.FromResult(proxy);
        }

        public void DropNextAnswer() => Volatile.Write(ref _drop, 1);

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = RelayAsync(client);
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task RelayAsync(TcpClient client)
        {
            using (client)
            using (var server = new TcpClient())
            {
                try
                {
                    await server.ConnectAsync(_upstream.Host, _upstream.Port, _stop.Token);
                    var up = client.GetStream().CopyToAsync(server.GetStream(), _stop.Token);
                    var buffer = new byte[16 * 1024];
                    var down = server.GetStream();
                    int read;
                    while ((read = await down.ReadAsync(buffer, _stop.Token)) > 0)
                    {
                        if (Interlocked.Exchange(ref _drop, 0) == 1)
                        {
                            Interlocked.Increment(ref _dropped);
                            client.Client.LingerState = new LingerOption(true, 0); // a reset, as a dying middlebox sends
                            return;
                        }

                        await client.GetStream().WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                    }

                    await up;
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
                {
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accepting;
            _stop.Dispose();
        }
    }
}

/// <summary>An OAuth 2.0 token endpoint on loopback: the client-credentials grant for one municipality's system, whose
/// tokens the API accepts (signed with its development key).</summary>
internal sealed class TokenEndpoint : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _issued;

    private TokenEndpoint(WebApplication app) => _app = app;

    public Uri Address => new(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single() + "/connect/token");

    public int Issued => Volatile.Read(ref _issued);

    public static async Task<TokenEndpoint> StartAsync(ApiFactory api, string canton, string clientId, string secret)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var endpoint = new TokenEndpoint(app);
        app.MapPost("/connect/token", async (HttpContext http) =>
        {
            var form = await http.Request.ReadFormAsync();
            if (form["grant_type"] != "client_credentials" || form["client_id"] != clientId || form["client_secret"] != secret)
            {
                return Results.Json(new { error = "invalid_client" }, statusCode: StatusCodes.Status401Unauthorized);
            }

            Interlocked.Increment(ref endpoint._issued);
            var token = DevTokens.Issue(api.SigningKey, Roles.Municipality, clientId, canton, TimeSpan.FromHours(1));
            return Results.Json(new Dictionary<string, object> { ["access_token"] = token, ["token_type"] = "Bearer", ["expires_in"] = 3600 });
        });
        await app.StartAsync();
        return endpoint;
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
