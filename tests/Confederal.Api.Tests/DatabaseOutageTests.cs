using Confederal.Api.Features.Persons;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Xunit.Abstractions;

namespace Confederal.Api.Tests;

/// <summary>
/// The database failing under the API: stopped and started again on a server of its own while municipalities keep
/// posting assessments (the issue's first fault; each logical write carries an Idempotency-Key and is retried with it
/// after a 503 until it is acknowledged, as a municipal system would), and one session cut off before and after its
/// write was sent.
/// </summary>
public sealed class DatabaseOutageTests(ApiFactory api, ITestOutputHelper output) : IClassFixture<ApiFactory>
{
    private const int Writers = 8;
    private const int Year = 2026;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_database_restart_under_load_answers_503_while_down_and_keeps_every_acknowledged_write_exactly_once(bool immediate)
    {
        // Named like TestPostgres's clusters, so that a run that dies leaves nothing behind for long.
        await using var cluster = await EmbeddedPostgres.StartAsync(
            Path.Combine(Path.GetTempPath(), $"confederal-tests-{Environment.ProcessId}-{Guid.NewGuid():N}"),
            // Durable commits as in production (an acknowledged write must survive an immediate stop); fsync buys
            // nothing when only the server process dies.
            new Dictionary<string, string> { ["fsync"] = "off", ["full_page_writes"] = "off" },
            deleteOnDispose: true);
        await cluster.CreateDatabaseAsync("confederal");
        await using var host = ApiFactory.On(cluster.ConnectionString("confederal"));
        var fiscal = new Fiscal(host);
        await fiscal.CantonAsync("ge");
        await fiscal.PolicyAsync("ge", Year, 100);

        var load = new Load();
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, Writers).Select(w => WriteAsync(fiscal.Municipality("ge"), w, load, stop.Token)).ToList();
        var health = host.CreateClient();

        await UntilAsync(() => load.Acknowledged.Count >= 5 * Writers, "the writers to get going");
        var clock = Stopwatch.StartNew();
        await cluster.StopAsync(immediate);
        var stopped = clock.Elapsed;
        var refusedBefore = load.Unavailable;
        await UntilAsync(async () => (await health.GetAsync("/health/ready")).StatusCode == HttpStatusCode.ServiceUnavailable,
            "/health/ready to report the database down");
        await UntilAsync(() => clock.Elapsed - stopped > TimeSpan.FromSeconds(3) && load.Unavailable - refusedBefore >= Writers,
            "every writer to be refused while the database is down");
        var acknowledgedWhileDown = load.Acknowledged.Count;
        await cluster.StartAgainAsync();
        var restarted = clock.Elapsed;
        await UntilAsync(async () => (await health.GetAsync("/health/ready")).StatusCode == HttpStatusCode.OK,
            "/health/ready to report the database back");
        var healthy = clock.Elapsed;
        load.Recovered();
        await UntilAsync(() => load.Acknowledged.Count >= acknowledgedWhileDown + 5 * Writers, "writes to succeed again");
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        var acknowledged = load.Acknowledged.ToList();
        await using var log = NpgsqlDataSource.Create(cluster.ConnectionString("confederal"));
        var found = await Assessed.ByTaxpayerAsync(log);
        var ofAcknowledged = await Assessed.OfAsync(host.Services.GetRequiredService<PersonKeys>(), host.Services.GetRequiredService<Features.Fiscal.FiscalYearKeys>(), log, acknowledged.Select(a => a.PersonId));
        output.WriteLine($"{(immediate ? "immediate" : "fast")} stop; down {restarted - stopped:g}, ready again {healthy - restarted:g} after the start");
        output.WriteLine($"requests sent {load.Sent}, logical writes {load.Writes}, acknowledged {acknowledged.Count}, " +
                         $"503s {load.Unavailable} ({load.OutcomeUnknown} of them outcome-unknown, {load.RefusedAfterRecovery} after ready), " +
                         $"retries {load.Retries} ({load.Replays} answered as replays), other answers {load.Unexpected.Count}, found afterwards {found.Values.Sum()} ({found.Count} people)");

        Assert.True(load.Unexpected.IsEmpty, "Answers other than 2xx or a 503 problem with Retry-After:\n" + string.Join("\n", load.Unexpected));
        Assert.Equal(0, load.RefusedAfterRecovery);
        Assert.Equal(load.Writes, acknowledged.Count);
        Assert.DoesNotContain(found, f => f.Value > 1);
        Assert.All(acknowledged, a => Assert.True(ofAcknowledged[a.PersonId] > 0, $"{a.PersonId} was acknowledged and is not recorded"));
        Assert.Equal(acknowledged.Count, found.Count);

        // The host and its background loops came through: nothing stopped it, the budgets projection reaches the head,
        // the notary seals it.
        Assert.False(host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested);
        await using var db = NpgsqlDataSource.Create(cluster.ConnectionString("confederal"));
        await host.ProjectedAsync("budgets");
        var budget = (await host.CreateClient().GetFromJsonAsync<Budget>($"/api/v1/cantons/ge/budgets/{Year}"))!;
        Assert.Equal(acknowledged.Sum(a => a.AmountMinor), budget.RevenueMinor);
        Assert.Equal(acknowledged.Count, budget.Taxpayers);
        await UntilAsync(async () => await ScalarAsync(db, "SELECT coalesce(max(to_position), 0) FROM audit_seals")
                                     >= await ScalarAsync(db, "SELECT max(seq_id) FROM marten.mt_events"),
            "the notary to seal the whole log");
    }

    [Fact]
    public async Task A_request_cut_off_before_it_wrote_is_a_503_that_says_nothing_was_recorded()
    {
        await new Fiscal(api).CantonAsync("cut-before");
        var before = await api.CountEventsAsync();

        // The table locked even against reads: the request waits at its first read of the canton, and its session is
        // ended there.
        var response = await CutOffAsync("ACCESS EXCLUSIVE", "%d.stream_id = $2)%", "cut-before");

        await api.AssertRefusedAsync(response, HttpStatusCode.ServiceUnavailable, "database-unavailable", before);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Contains("nothing was recorded", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_write_cut_off_before_its_commit_is_a_503_that_says_nothing_was_recorded()
    {
        await new Fiscal(api).CantonAsync("cut-after");
        var before = await api.CountEventsAsync();

        // Reads pass, Marten's append waits for the lock inside the write's transaction, and its session is ended before
        // the commit was sent.
        var response = await CutOffAsync("SHARE ROW EXCLUSIVE", "%mt_quick_append_events%", "cut-after");

        await api.AssertRefusedAsync(response, HttpStatusCode.ServiceUnavailable, "database-unavailable", before);
        Assert.NotNull(response.Headers.RetryAfter);
    }

    [Fact]
    public async Task A_keyed_write_cut_off_before_its_commit_says_nothing_was_recorded_and_its_retry_records_it_once()
    {
        await new Fiscal(api).CantonAsync("cut-keyed");
        var before = await api.CountEventsAsync();
        var key = Guid.NewGuid().ToString();

        // A keyed request writes in one transaction committed after its answer: the insert it waits in commits nothing.
        var response = await CutOffAsync("SHARE ROW EXCLUSIVE", "%mt_quick_append_events%", "cut-keyed", key);

        await api.AssertRefusedAsync(response, HttpStatusCode.ServiceUnavailable, "database-unavailable", before);
        var retried = await Assess("cut-keyed", key);
        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        var replayed = await Assess("cut-keyed", key);
        Assert.Equal(HttpStatusCode.Created, replayed.StatusCode);
        Assert.True(replayed.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(before + 1, await api.CountEventsAsync());
    }

    private Task<HttpResponseMessage> Assess(string canton, string? key)
    {
        var client = api.ClientAs(Confederal.Api.Infrastructure.Roles.Municipality, subject: $"{canton}-admin", canton: canton);
        var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/cantons/{canton}/tax-assessments")
        {
            Content = JsonContent.Create(new { personId = "p-cut", fiscalYear = Year, amountMinor = 100 }),
        };
        if (key is not null)
        {
            request.Headers.Add("Idempotency-Key", key);
        }

        return client.SendAsync(request);
    }

    /// <summary>Posts an assessment while Marten's events table is locked in <paramref name="lockMode"/>, and ends the request's
    /// session when it is seen waiting in a statement like <paramref name="statement"/>.</summary>
    private async Task<HttpResponseMessage> CutOffAsync(string lockMode, string statement, string canton, string? key = null)
    {
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();
        await using var locker = await db.OpenConnectionAsync();
        await using var tx = await locker.BeginTransactionAsync();
        await using (var lockTable = new NpgsqlCommand($"LOCK TABLE marten.mt_events IN {lockMode} MODE", locker, tx))
        {
            await lockTable.ExecuteNonQueryAsync();
        }

        var sent = Assess(canton, key);
        // Outside the locking transaction, whose view of pg_stat_activity would stay as it was at its first read.
        await using var watcher = await db.OpenConnectionAsync();
        await using var find = new NpgsqlCommand("""
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE $1
            """, watcher)
        {
            Parameters = { new NpgsqlParameter<string> { TypedValue = statement } },
        };
        object? pid = null;
        var seenWaiting = new List<string>();
        await using var waiting = new NpgsqlCommand(
            "SELECT left(query, 300) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", watcher);
        await UntilAsync(async () =>
        {
            await using (var reader = await waiting.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    seenWaiting.Add(reader.GetString(0));
                }
            }

            return (pid = await find.ExecuteScalarAsync()) is not null || sent.IsCompleted;
        }, "the request to wait for the lock");
        if (sent.IsCompleted)
        {
            Assert.Fail($"The request did not wait for the lock: {(int)(await sent).StatusCode}; waiting: {string.Join(" | ", seenWaiting.Distinct())}");
        }

        await using (var terminate = new NpgsqlCommand("SELECT pg_terminate_backend($1)", watcher))
        {
            terminate.Parameters.Add(new NpgsqlParameter<int> { TypedValue = (int)pid! });
            await terminate.ExecuteNonQueryAsync();
        }

        var response = await sent;
        await tx.RollbackAsync();
        return response;
    }

    private sealed record Write(string PersonId, long AmountMinor);

    private sealed class Load
    {
        private int _sent;
        private int _writes;
        private int _unavailable;
        private int _retries;
        private int _outcomeUnknown;
        private int _replayed;
        private int _refusedAfterRecovery;
        private volatile bool _recovered;

        public ConcurrentQueue<Write> Acknowledged { get; } = new();

        public ConcurrentQueue<string> Unexpected { get; } = new();

        public int Sent => _sent;

        public int Writes => _writes;

        public int Unavailable => _unavailable;

        public int Retries => _retries;

        public int OutcomeUnknown => _outcomeUnknown;

        /// <summary>Retries answered from the record of a first attempt that was committed after all.</summary>
        public int Replays => _replayed;

        public void Replayed() => Interlocked.Increment(ref _replayed);

        /// <summary>503s to requests sent after /health/ready reported the database back.</summary>
        public int RefusedAfterRecovery => _refusedAfterRecovery;

        public bool IsRecovered => _recovered;

        public void Recovered() => _recovered = true;

        public void Began() => Interlocked.Increment(ref _writes);

        public void Sending(int attempt)
        {
            Interlocked.Increment(ref _sent);
            if (attempt > 1)
            {
                Interlocked.Increment(ref _retries);
            }
        }

        public void Refused(string? code, bool sentAfterRecovery)
        {
            Interlocked.Increment(ref _unavailable);
            if (code == "outcome-unknown")
            {
                Interlocked.Increment(ref _outcomeUnknown);
            }

            if (sentAfterRecovery)
            {
                Interlocked.Increment(ref _refusedAfterRecovery);
            }
        }
    }

    /// <summary>One municipal system: distinct people one after another, each write retried with its key until
    /// acknowledged; on <paramref name="stop"/> it finishes the write in hand and ends.</summary>
    private static async Task WriteAsync(HttpClient client, int writer, Load load, CancellationToken stop)
    {
        var deadline = Stopwatch.StartNew();
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            var write = new Write($"w{writer}-{i:D5}", 100_000 * (writer + 1) + i);
            var key = Guid.NewGuid().ToString();
            load.Began();
            for (var attempt = 1; deadline.Elapsed < 4 * Patience; attempt++)
            {
                load.Sending(attempt);
                var afterRecovery = load.IsRecovered;
                using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/cantons/ge/tax-assessments")
                {
                    Content = JsonContent.Create(new { personId = write.PersonId, fiscalYear = Year, amountMinor = write.AmountMinor }),
                    Headers = { { "Idempotency-Key", key } },
                };
                using var response = await client.SendAsync(request, CancellationToken.None);
                if (response.IsSuccessStatusCode)
                {
                    load.Acknowledged.Enqueue(write);
                    if (response.Headers.Contains("Idempotent-Replayed"))
                    {
                        load.Replayed();
                    }

                    break;
                }

                if (response.StatusCode == HttpStatusCode.ServiceUnavailable
                    && response.Headers.RetryAfter is not null
                    && response.Content.Headers.ContentType?.MediaType == "application/problem+json")
                {
                    load.Refused(await Fiscal.CodeAsync(response), afterRecovery);
                }
                else
                {
                    load.Unexpected.Enqueue($"{write.PersonId} attempt {attempt}: {(int)response.StatusCode} " +
                                            $"Retry-After: {response.Headers.RetryAfter} {await response.Content.ReadAsStringAsync(CancellationToken.None)}");
                }

                // Sooner than Retry-After asks, to keep the outage busy with retries.
                await Task.Delay(100, CancellationToken.None);
            }
        }
    }

    private static async Task<long> ScalarAsync(NpgsqlDataSource db, string sql)
    {
        await using var command = db.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static Task UntilAsync(Func<bool> condition, string what) => UntilAsync(() => Task.FromResult(condition()), what);

    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            if (waited.Elapsed > Patience)
            {
                throw new TimeoutException($"Waited {Patience} for {what}.");
            }

            await Task.Delay(50);
        }
    }
}
