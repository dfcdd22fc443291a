using System.Diagnostics;
using System.Net.Http.Json;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Benchmarks;

/// <summary>
/// A placed canton beside 1 and then 10 other placed cantons loaded with <c>events</c> assessments each: the target
/// canton's designation writes and budget reads in both phases (and their ratio B/A), then how long the target's
/// committed events take to be served by the directory (copied there and past its budgets checkpoint) under write
/// load, and that its served receipts equal what was designated. One API (in this process, as the other HTTP
/// benchmarks) over the directory and 11 canton databases, all on the benchmark's one embedded server.
/// </summary>
public static class PlacementBenchmark
{
    private const string Target = "target";
    private const int Year = 2026;
    private static readonly string[] Others = [.. Enumerable.Range(1, 10).Select(i => $"other-{i}")];
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(30);

    // Read in one statement, so in one snapshot: how far the directory's copy has read the canton's log, the directory's
    // last position, and the directory's budgets checkpoint.
    private static readonly string DirectorySampleSql = $"""
        SELECT (SELECT coalesce(max(position), 0) FROM es.stream_copies WHERE source = $1),
               (SELECT coalesce(max(seq_id), 0) FROM {EventLog.Table}),
               (SELECT coalesce(max(last_seq_id), 0) FROM {MartenStore.Schema}.mt_event_progression WHERE name = $2)
        """;

    private sealed record Phase(IReadOnlyList<Stats.Costed> RawPut, IReadOnlyList<Stats.Costed> OursPut,
        IReadOnlyList<Stats.Costed> RawGet, IReadOnlyList<Stats.Costed> OursGet);

    public static async Task RunAsync(EmbeddedPostgres cluster, int events, int clients, int seconds, int rounds, int warmup)
    {
        string[] cantons = [Target, .. Others];
        var databases = new Dictionary<string, BenchDatabase>(StringComparer.Ordinal);
        await using var directory = await BenchDatabase.CreateAsync(cluster, "placement_directory", Database.Migrations);
        try
        {
            foreach (var canton in cantons)
            {
                databases[canton] = await BenchDatabase.CreateAsync(
                    cluster, $"placement_{canton.Replace('-', '_')}", [.. Database.Migrations, DesignationsBenchmark.RawTable]);
            }

            await using var host = ApiHost.Start(directory.ConnectionString,
                cantons.ToDictionary(c => $"{Database.ShardsSection}:{c}", c => databases[c].ConnectionString, StringComparer.Ordinal));
            await RunAsync(host, directory, databases[Target], events, clients, seconds, rounds, warmup);
        }
        finally
        {
            foreach (var database in databases.Values)
            {
                await database.DisposeAsync();
            }
        }
    }

    private static async Task RunAsync(ApiHost host, BenchDatabase directory, BenchDatabase target, int events, int clients, int seconds, int rounds, int warmup)
    {
        Console.WriteLine($"Placement: '{Target}' and {Others.Length} other cantons, each on a database of its own (one server), the directory on another; " +
                          "setting up (not timed)...");
        await host.RegisterAsync([Target, .. Others], DesignationsBenchmark.Organizations);
        await SettleAsync(host); // a placed canton knows itself and the organizations once the directory's facts are copied to it
        await host.SetPoliciesAsync([Target, .. Others]);
        using var designators = await Designators.PrepareAsync(host, Target, clients);
        var readers = Enumerable.Range(0, clients).Select(_ => host.Client()).ToArray();
        Uri[] budget = [new($"/api/v1/cantons/{Target}/budgets/{Year}", UriKind.Relative)];
        try
        {
            await LoadAsync(host, Others[..1], events);
            Console.WriteLine($"Warming up for {warmup} s each, writes and reads (not timed)...");
            await designators.OursAsync(warmup);
            await SettleAsync(host);
            await BudgetBenchmark.OursGetAsync(readers, budget, warmup);

            var a = await MeasureAsync("A: 1 loaded", host, directory, target, designators, readers, budget, clients, seconds, rounds);
            await LoadAsync(host, Others[1..], events);
            var b = await MeasureAsync($"B: {Others.Length} loaded", host, directory, target, designators, readers, budget, clients, seconds, rounds);
            PrintRatios(a, b);

            await LagAsync(directory, target, designators, Math.Max(seconds, 10));
            await SettleAsync(host);
            await CheckReceiptsAsync(host, designators);
        }
        finally
        {
            foreach (var reader in readers)
            {
                reader.Dispose();
            }
        }
    }

    /// <summary>Bulk-imports <paramref name="events"/> assessments into each of <paramref name="cantons"/> through the
    /// API's import, then waits until their projections, the copies to the directory and its budgets have caught up.</summary>
    private static async Task LoadAsync(ApiHost host, IReadOnlyList<string> cantons, int events)
    {
        foreach (var canton in cantons)
        {
            using var municipality = host.Client(host.Token(Roles.Municipality, subject: $"{canton}-admin", canton: canton));
            var started = Stopwatch.GetTimestamp();
            await ImportBenchmark.ImportAsync(municipality, canton, events, csv: false);
            Console.WriteLine($"  {canton}: {events:N0} assessments imported in {Stopwatch.GetElapsedTime(started).TotalSeconds:0.0} s");
        }

        var caughtUp = Stopwatch.GetTimestamp();
        await SettleAsync(host, analyze: true);
        Console.WriteLine($"  caught up (canton projections, copies to the directory, the directory's budgets) " +
                          $"{Stopwatch.GetElapsedTime(caughtUp).TotalSeconds:0.0} s later");
    }

    private static async Task<Phase> MeasureAsync(string name, ApiHost host, BenchDatabase directory, BenchDatabase target,
        Designators designators, HttpClient[] readers, Uri[] budget, int clients, int seconds, int rounds)
    {
        Console.WriteLine($"{$"{name}, '{Target}', {clients} clients",-34} {"raw op/s",16} {"ours req/s",12} {"ratio",7} {"ours p50 ms",12} " +
                          $"{"ours p99 ms",12} {"raw p99 ms",11} {"CPU µs/op raw",14} {"ours",10}");
        var (rawPut, oursPut) = await Stats.AlternateAsync(rounds, () => designators.RawAsync(target.DataSource, seconds), async () =>
        {
            var run = await designators.OursAsync(seconds);
            await SettleAsync(host); // the backlog (projections, copy, the directory's budgets) is not left to the next run
            return run;
        });
        Stats.PrintLatencyRow("PUT designation (raw INSERT)", rawPut, oursPut);
        var (rawGet, oursGet) = await Stats.AlternateAsync(rounds,
            () => BudgetBenchmark.RawGetAsync(directory.DataSource, [Target], clients, seconds),
            () => BudgetBenchmark.OursGetAsync(readers, budget, seconds));
        Stats.PrintLatencyRow("GET budget (raw SELECTs)", rawGet, oursGet);
        return new Phase(rawPut, oursPut, rawGet, oursGet);
    }

    private static void PrintRatios(Phase a, Phase b)
    {
        Console.WriteLine($"{"B/A (10 loaded / 1 loaded)",-34} {"A req/s",10} {"B req/s",10} {"B/A",7} {"A p99 ms",9} {"B p99 ms",9} {"raw B/A",8}");
        Row("PUT designation", a.OursPut, b.OursPut, a.RawPut, b.RawPut);
        Row("GET budget", a.OursGet, b.OursGet, a.RawGet, b.RawGet);
        Console.WriteLine("B/A near 1.00 means the target canton's cost does not depend on the other cantons' load; raw B/A is the same for raw " +
                          "PostgreSQL (raw INSERTs into the target's database, the GET's SELECTs on the directory), how much the server itself moved.");

        static void Row(string label, IReadOnlyList<Stats.Costed> a, IReadOnlyList<Stats.Costed> b, IReadOnlyList<Stats.Costed> rawA, IReadOnlyList<Stats.Costed> rawB)
        {
            double Rate(IReadOnlyList<Stats.Costed> runs) => Stats.Median(runs.Select(r => r.Run.EventsPerSecond));
            double P99(IReadOnlyList<Stats.Costed> runs) => Stats.Median(runs.Select(r => r.Run.P99Ms));
            Console.WriteLine($"{label,-34} {Rate(a),10:N0} {Rate(b),10:N0} {Rate(b) / Rate(a),6:0.00}x {P99(a),9:0.00} {P99(b),9:0.00} " +
                              $"{Rate(rawB) / Rate(rawA),7:0.00}x");
        }
    }

    /// <summary>
    /// The delay between a position being committed in the target canton and the directory serving it, under
    /// <paramref name="seconds"/> of designations by every client. Every 100 ms: the target's log head (max seq_id) and,
    /// from the directory in one snapshot, its copy progress for the target, its last position and its budgets
    /// checkpoint. A head H is first seen at t0; once a sample shows the copy progress at or past H, the directory's last
    /// position in that same snapshot is an upper bound of where H's events were copied to (D); it is served at the
    /// first sample whose budgets checkpoint is at or past D, t1. The delay is t1 - t0: each end is known to one
    /// sampling period (so ±100 ms), and D being an upper bound can only lengthen it. The sampling goes on after the
    /// writes stop until every head seen is served.
    /// </summary>
    private static async Task LagAsync(BenchDatabase directory, BenchDatabase target, Designators designators, int seconds)
    {
        var pending = new Queue<(long Head, long SeenAt, long? CopiedTo)>();
        var delays = new List<double>();
        using var writing = new CancellationTokenSource();
        var writes = Task.Run(async () =>
        {
            try
            {
                return await designators.OursAsync(seconds);
            }
            finally
            {
                await writing.CancelAsync();
            }
        });

        var deadline = Stopwatch.GetTimestamp() + (long)(Patience.TotalSeconds * Stopwatch.Frequency);
        long seen = 0;
        var stopped = false;
        while (!stopped || pending.Count > 0)
        {
            stopped = writing.IsCancellationRequested; // so the sample after the last write is taken
            var now = Stopwatch.GetTimestamp();
            var head = await target.LastCommittedAsync();
            var (copied, last, checkpoint) = await DirectorySampleAsync(directory.DataSource);
            if (head > seen)
            {
                pending.Enqueue((head, now, null));
                seen = head;
            }

            var passed = new Queue<(long Head, long SeenAt, long? CopiedTo)>();
            while (pending.TryDequeue(out var p))
            {
                var copiedTo = p.CopiedTo ?? (copied >= p.Head ? last : null);
                if (copiedTo <= checkpoint)
                {
                    delays.Add(Stopwatch.GetElapsedTime(p.SeenAt, now).TotalMilliseconds);
                }
                else
                {
                    passed.Enqueue(p with { CopiedTo = copiedTo });
                }
            }

            pending = passed;
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"{pending.Count} positions of '{Target}' were not served by the directory within {Patience.TotalMinutes:0} min " +
                                           $"(copied to {copied:N0} of head {seen:N0}, directory budgets at {checkpoint:N0} of {last:N0}): the lag does not converge.");
            }

            var wait = TimeSpan.FromMilliseconds(100) - Stopwatch.GetElapsedTime(now);
            await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
        }

        var run = await writes;
        Console.WriteLine($"receipts lag, {run.EventsPerSecond:N0} designations/s for {seconds} s (B): {delays.Count} heads sampled, " +
                          $"median {Stats.Median(delays):N0} ms, max {delays.Max():N0} ms");
        Console.WriteLine("  from the first 100-ms sample showing the target's log head at P to the first showing the directory's copy progress " +
                          "at or past P and its budgets checkpoint past the directory position read with that progress (an upper bound of P's copy); ±100 ms.");
    }

    /// <summary>The organizations' served receipts from the target canton (the directory's projection) must equal what its
    /// people designated, to the minor unit.</summary>
    private static async Task CheckReceiptsAsync(ApiHost host, Designators designators)
    {
        var designated = await designators.DesignatedAsync();
        using var admin = host.Client(host.Token(Roles.Admin, subject: "bench-admin"));
        var wrong = new List<string>();
        foreach (var organization in DesignationsBenchmark.Organizations)
        {
            var receipts = await admin.GetFromJsonAsync<ReceiptsView>(new Uri($"/api/v1/organizations/{organization}/receipts/{Year}", UriKind.Relative));
            var served = receipts!.Receipts.Where(r => r.CantonId == Target).Sum(r => r.AmountMinor);
            var expected = designated.GetValueOrDefault(organization);
            Console.WriteLine($"  receipts of {organization} from '{Target}': served {served:N0}, designated {expected:N0} (minor units)" +
                              (served == expected ? "" : " MISMATCH"));
            if (served != expected)
            {
                wrong.Add(organization);
            }
        }

        if (wrong.Count > 0)
        {
            throw new InvalidOperationException($"The served receipts of {string.Join(", ", wrong)} are not what '{Target}' designated.");
        }
    }

    /// <summary>Waits until every placed canton has the directory's facts, its projections have applied its log, the
    /// directory has copied that log, and the directory's projections have applied it all (not timed).</summary>
    private static async Task SettleAsync(ApiHost host, bool analyze = false)
    {
        var placement = host.Services.GetRequiredService<Placement>();
        var projections = host.Services.GetServices<IProjection>().Select(p => p.Name).ToList();
        var facts = await placement.Directory.Log.ReadLastCommittedAsync();
        foreach (var shard in placement.All.Where(s => s.Id != LedgerDatabase.DirectoryId))
        {
            await UntilAsync(async () => await CopiedAsync(shard.DataSource, LedgerDatabase.DirectoryId) >= facts, $"the directory's facts in '{shard.Id}'");
            var last = await CatchUpAsync(shard, projections);
            await UntilAsync(async () => await CopiedAsync(placement.Directory.DataSource, shard.Id) >= last, $"the copy of '{shard.Id}' in the directory");
        }

        await CatchUpAsync(placement.Directory, projections);
        foreach (var shard in placement.All.Where(_ => analyze))
        {
            // As ApiHost.SettleAsync: tables filled within seconds are analyzed before they are measured.
            await using var command = shard.DataSource.CreateCommand("ANALYZE");
            command.CommandTimeout = 0;
            await command.ExecuteNonQueryAsync();
        }
    }

    private static async Task<long> CatchUpAsync(Shard shard, IReadOnlyList<string> projections)
    {
        var last = await shard.Log.ReadLastCommittedAsync();
        await shard.Daemon.WaitForHighWaterMarkAsync(last).WaitAsync(Patience);
        foreach (var projection in projections)
        {
            await shard.Daemon.WaitForAsync(projection, last).WaitAsync(Patience);
        }

        return last;
    }

    private static async Task UntilAsync(Func<Task<bool>> done, string what)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(Patience.TotalSeconds * Stopwatch.Frequency);
        while (!await done())
        {
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"{what} did not catch up within {Patience.TotalMinutes:0} min.");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>How far a database's copy of <paramref name="source"/>'s log has read it (es.stream_copies).</summary>
    private static async Task<long> CopiedAsync(NpgsqlDataSource target, string source)
    {
        await using var command = target.CreateCommand("SELECT coalesce(max(position), 0) FROM es.stream_copies WHERE source = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = source });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<(long Copied, long Last, long Checkpoint)> DirectorySampleAsync(NpgsqlDataSource directory)
    {
        await using var command = directory.CreateCommand(DirectorySampleSql);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Target });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"{BudgetProjection.ProjectionName}:All" });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
    }
}
