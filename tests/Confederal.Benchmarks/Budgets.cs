using System.Diagnostics;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Benchmarks;

/// <summary>
/// The budgets projection (the API's <see cref="BudgetProjection"/> in a <see cref="ProjectionDaemon"/>) over a fiscal
/// history of the API's events: Marten's rebuild from position 0 and a catch-up after a further chunk, each beside raw
/// PostgreSQL computing comparable totals in one statement over marten.mt_events; and GET budget over HTTP beside the
/// same SELECTs by raw clients; a budget as of a position, folded from the log.
/// </summary>
public sealed class BudgetBenchmark : IAsyncDisposable
{
    private static readonly Migration RawTables = new("raw-0003-budgets", """
        CREATE TABLE raw_budgets (
            canton_id     text NOT NULL,
            year          int NOT NULL,
            revenue_minor bigint NOT NULL,
            taxpayers     bigint NOT NULL,
            PRIMARY KEY (canton_id, year));
        CREATE TABLE raw_tallies (
            canton_id       text NOT NULL,
            year            int NOT NULL,
            organization_id text NOT NULL,
            chosen_minor    bigint NOT NULL,
            taxpayers       bigint NOT NULL,
            PRIMARY KEY (canton_id, year, organization_id));
        """);

    // The latest assessment per person and year (a correction replaces), the latest designation per person and year,
    // the rate of each year: revenue and taxpayers per canton and year, and what each organization is chosen for.
    private static readonly string RawAggregateSql = $"""
        WITH taxes AS (
            SELECT DISTINCT ON (data->>'cantonId', data->>'taxpayer', (data->>'fiscalYear')::int)
                   data->>'cantonId' AS canton_id, data->>'taxpayer' AS taxpayer, (data->>'fiscalYear')::int AS year,
                   (data->>'amountMinor')::bigint AS tax
            FROM {EventLog.Table} WHERE seq_id > $1 AND seq_id <= $2 AND type IN ({Aliases(typeof(Confederal.Domain.Fiscal.TaxAssessed))})
            ORDER BY 1, 2, 3, seq_id DESC),
        chosen AS (
            SELECT DISTINCT ON (data->>'cantonId', data->>'taxpayer', (data->>'fiscalYear')::int)
                   data->>'cantonId' AS canton_id, data->>'taxpayer' AS taxpayer, (data->>'fiscalYear')::int AS year,
                   data->'choices' AS choices
            FROM {EventLog.Table} WHERE seq_id > $1 AND seq_id <= $2 AND type IN ({Aliases(typeof(Confederal.Domain.Fiscal.DesignationChosen))})
            ORDER BY 1, 2, 3, seq_id DESC),
        rates AS (
            SELECT DISTINCT ON (data->>'cantonId', (data->>'fiscalYear')::int)
                   data->>'cantonId' AS canton_id, (data->>'fiscalYear')::int AS year, (data->>'designationRateBp')::bigint AS rate_bp
            FROM {EventLog.Table} WHERE seq_id <= $2 AND type IN ({Aliases(typeof(Confederal.Domain.Fiscal.FiscalPolicySet))})
            ORDER BY 1, 2, seq_id DESC),
        budgets AS (
            INSERT INTO raw_budgets SELECT canton_id, year, sum(tax), count(*) FROM taxes GROUP BY 1, 2
            ON CONFLICT (canton_id, year) DO UPDATE SET
                revenue_minor = raw_budgets.revenue_minor + excluded.revenue_minor, taxpayers = raw_budgets.taxpayers + excluded.taxpayers
            RETURNING 1)
        INSERT INTO raw_tallies
        SELECT c.canton_id, c.year, e->>'organizationId', sum(t.tax * r.rate_bp / 10000 * (e->>'shareBp')::bigint / 10000), count(*)
        FROM chosen c JOIN taxes t USING (canton_id, taxpayer, year) JOIN rates r USING (canton_id, year)
        CROSS JOIN jsonb_array_elements(c.choices) AS e
        GROUP BY 1, 2, 3
        ON CONFLICT (canton_id, year, organization_id) DO UPDATE SET
            chosen_minor = raw_tallies.chosen_minor + excluded.chosen_minor, taxpayers = raw_tallies.taxpayers + excluded.taxpayers
        """;

    // GetBudget's three SELECTs, as its handler sends them: the projection's progress in Marten's table, then the read model.
    private static readonly string CheckpointSql = $"SELECT last_seq_id FROM {MartenStore.Schema}.mt_event_progression WHERE name = $1";

    private const string BudgetSql = """
        SELECT c.currency, b.revenue_minor, b.taxpayers, b.rate_bp, b.pool_minor, b.unallocated_minor, b.redistributed_minor,
               b.retained_minor, b.designated_minor, b.net_minor
        FROM fiscal_cantons c LEFT JOIN budgets b ON b.canton_id = c.canton_id AND b.year = $2
        WHERE c.canton_id = $1
        """;

    private const string ReceiptsSql = """
        SELECT organization_id, amount_minor, redistributed_minor, taxpayers FROM organization_receipts
        WHERE canton_id = $1 AND year = $2 ORDER BY organization_id COLLATE "C"
        """;

    private readonly EmbeddedPostgres _cluster;
    private readonly BenchDatabase _database;
    private readonly OpenStore _store;
    private readonly int _events;
    private long _head;
    private long _count;
    private bool _projected;

    private BudgetBenchmark(EmbeddedPostgres cluster, BenchDatabase database, int events)
    {
        _cluster = cluster;
        _database = database;
        _events = events;
        _store = new OpenStore(database.DataSource, Events.Types(), [new BudgetProjection()]);
    }

    private EventLog Log => _store.Log;

    private ProjectionDaemon Daemon => _store.Daemon;

    private long Body => _events - FiscalHistory.SetupEvents;

    private int Chunk => Math.Max(10, _events / 5);

    public static async Task<BudgetBenchmark> PrepareAsync(EmbeddedPostgres cluster, int events)
    {
        Console.WriteLine($"Writing a fiscal history of {events:N0} events of the API's types (bulk appends, not timed)...");
        var database = await BenchDatabase.CreateAsync(cluster, "budget", [.. Database.Migrations, RawTables]);
        var benchmark = new BudgetBenchmark(cluster, database, events);
        var started = Stopwatch.GetTimestamp();
        await FiscalHistory.AppendAsync(benchmark.Log, events);
        var written = Stopwatch.GetElapsedTime(started).TotalSeconds;
        benchmark._head = await database.CatchUpHighWaterMarkAsync();
        benchmark._count = await database.CountAsync(0, benchmark._head);
        Console.WriteLine($"  written in {written:0.0} s, high-water mark past them {Stopwatch.GetElapsedTime(started).TotalSeconds - written:0.0} s later " +
                          $"(head {benchmark._head:N0}, {benchmark._count:N0} events)");
        await database.ExecuteAsync($"VACUUM ANALYZE {EventLog.Table}");
        return benchmark;
    }

    public async Task RunAsync(int rounds)
    {
        await WarmUpAsync();
        Console.WriteLine($"{"budget projection",-34} {"raw SQL ev/s",16} {"ours ev/s",12} {"ratio",7} {"peak MiB",9} {"heap MiB",9} {"CPU µs/ev",10}");
        var rawRebuild = new List<double>();
        var oursRebuild = new List<double>();
        var rawCatchUp = new List<double>();
        var oursCatchUp = new List<double>();
        var peaks = new List<(double WorkingSet, double Heap)>();
        var rebuildCpu = new List<(double App, double Server)>();
        var catchUpCpu = new List<(double App, double Server)>();
        for (var round = 0; round < rounds; round++)
        {
            await _database.CheckpointAsync();
            rawRebuild.Add(await RawAggregateAsync(after: 0, _count));

            await _database.CheckpointAsync();
            var cpu = Stats.CpuSeconds();
            await using (var memory = new Stats.MemoryPeak())
            {
                var started = Stopwatch.GetTimestamp();
                Expect(await Daemon.RebuildAsync(BudgetProjection.ProjectionName), _head);
                oursRebuild.Add(_count / Stopwatch.GetElapsedTime(started).TotalSeconds);
                await memory.DisposeAsync();
                peaks.Add((memory.WorkingSetMiB, memory.HeapMiB));
            }

            rebuildCpu.Add(PerEvent(cpu, _count));

            // A further chunk of assessments (corrections among them) and designations on top of the projected log.
            await FiscalHistory.AppendBodyAsync(Log, Body, Chunk);
            var head = await Log.ReadLastCommittedAsync();
            var more = await _database.CountAsync(_head, head);
            await _database.ExecuteAsync($"VACUUM ANALYZE {EventLog.Table}");
            await _database.CheckpointAsync();
            cpu = Stats.CpuSeconds();
            var catchUpStarted = Stopwatch.GetTimestamp();
            await Daemon.CatchUpAsync();
            oursCatchUp.Add(more / Stopwatch.GetElapsedTime(catchUpStarted).TotalSeconds);
            catchUpCpu.Add(PerEvent(cpu, more));
            Expect(await Daemon.ReadCheckpointAsync(BudgetProjection.ProjectionName), head);
            await _database.CheckpointAsync();
            rawCatchUp.Add(await RawAggregateAsync(after: _head, more, truncate: false));

            if (round < rounds - 1)
            {
                // Back to the same log for the next round: the chunk's streams go, and their events with them.
                await _database.ExecuteAsync(
                    $"DELETE FROM {MartenStore.Schema}.mt_streams WHERE id IN (SELECT stream_id FROM {EventLog.Table} WHERE seq_id > {_head})");
                await _database.ExecuteAsync($"VACUUM ANALYZE {EventLog.Table}");
            }
            else
            {
                (_head, _count) = (head, _count + more);
            }
        }

        _projected = true;
        Console.WriteLine($"{$"rebuild from 0, {_events / 1000:N0}k events",-34} {Stats.Median(rawRebuild),16:N0} {Stats.Median(oursRebuild),12:N0} " +
                          $"{Stats.Median(oursRebuild) / Stats.Median(rawRebuild),6:0.00}x {peaks.Max(p => p.WorkingSet),9:N0} {peaks.Max(p => p.Heap),9:N0} " +
                          $"{Cpu(rebuildCpu),10}");
        Console.WriteLine($"{$"catch-up, {Chunk / 1000:N0}k more events",-34} {Stats.Median(rawCatchUp),16:N0} {Stats.Median(oursCatchUp),12:N0} " +
                          $"{Stats.Median(oursCatchUp) / Stats.Median(rawCatchUp),6:0.00}x {"",9} {"",9} {Cpu(catchUpCpu),10}");
    }

    /// <summary>GET a canton's 2026 budget over HTTP with concurrent anonymous clients, beside raw clients sending the
    /// handler's SELECTs.</summary>
    public async Task GetBudgetAsync(int clients, int seconds, int rounds, int warmup)
    {
        if (!_projected)
        {
            Console.WriteLine("Projecting the budgets (not timed)...");
            await Daemon.RebuildAsync(BudgetProjection.ProjectionName);
            _projected = true;
        }

        await using var host = ApiHost.Start(_database.ConnectionString);
        Console.WriteLine("Letting the API's other projections catch up with the log (not timed)...");
        await host.SettleAsync();
        var http = Enumerable.Range(0, clients).Select(_ => host.Client()).ToArray();
        var paths = FiscalHistory.Cantons.Select(c => new Uri($"/api/v1/cantons/{c}/budgets/2026", UriKind.Relative)).ToArray();
        await Task.WhenAll(http.Select(async h => (await h.GetAsync(paths[0])).Dispose()));
        Console.WriteLine($"Warming up for {warmup} s (not timed)...");
        await OursGetAsync(http, paths, warmup);
        await RawGetAsync(_database.DataSource, FiscalHistory.Cantons, clients, Math.Max(1, warmup / 4));

        Console.WriteLine($"{$"get-budget, {clients} clients",-34} {"raw SELECT/s",16} {"ours req/s",12} {"ratio",7} {"ours p50 ms",12} " +
                          $"{"ours p99 ms",12} {"raw p99 ms",11} {"CPU µs/op raw",14} {"ours",10}");
        var (raw, ours) = await Stats.AlternateAsync(
            rounds, () => RawGetAsync(_database.DataSource, FiscalHistory.Cantons, clients, seconds), () => OursGetAsync(http, paths, seconds));

        foreach (var client in http)
        {
            client.Dispose();
        }

        Stats.PrintLatencyRow("GET budget (median)", raw, ours);
    }

    /// <summary>GET budget ?asOf=: one canton's 2026 budget folded from the log (<see cref="BudgetAsOf"/>, without HTTP)
    /// as of the middle of the log and its head, with the peak working set and managed heap; raw: the rebuild's SQL
    /// aggregate over the same events.</summary>
    public async Task AsOfAsync(int rounds)
    {
        await BudgetAsOf.ReadAsync(Log, TimeProvider.System, FiscalHistory.Cantons[0], 2026, new AsOf(_head / 10, null), CancellationToken.None);
        Console.WriteLine($"{"budget as of a position",-34} {"raw SQL ev/s",16} {"ours ev/s",12} {"ratio",7} {"ours ms",9} {"peak MiB",9} {"heap MiB",9}");
        foreach (var position in new[] { _head / 2, _head })
        {
            var raw = new List<double>();
            var ours = new List<double>();
            var peaks = new List<(double WorkingSet, double Heap)>();
            for (var round = 0; round < rounds; round++)
            {
                await _database.CheckpointAsync();
                raw.Add(await RawAggregateAsync(after: 0, await _database.CountAsync(0, position), upTo: position));
                await using var memory = new Stats.MemoryPeak();
                var started = Stopwatch.GetTimestamp();
                var budget = await BudgetAsOf.ReadAsync(
                    Log, TimeProvider.System, FiscalHistory.Cantons[round % FiscalHistory.Cantons.Length], 2026, new AsOf(position, null), CancellationToken.None);
                ours.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                await memory.DisposeAsync();
                peaks.Add((memory.WorkingSetMiB, memory.HeapMiB));
                if (budget.Position != position)
                {
                    throw new InvalidOperationException($"The budget was folded as of {budget.Position}, not {position}.");
                }
            }

            var rate = await _database.CountAsync(0, position) / (Stats.Median(ours) / 1000);
            Console.WriteLine($"{$"as of {position / 1000:N0}k of {_head / 1000:N0}k events",-34} {Stats.Median(raw),16:N0} {rate,12:N0} " +
                              $"{rate / Stats.Median(raw),6:0.00}x {Stats.Median(ours),9:N0} {peaks.Max(p => p.WorkingSet),9:N0} {peaks.Max(p => p.Heap),9:N0}");
        }
    }

    public ValueTask DisposeAsync()
    {
        _store.Dispose();
        return _database.DisposeAsync();
    }

    /// <summary>The clients GET the budgets at <paramref name="paths"/> in turn, for <paramref name="seconds"/>.</summary>
    internal static Task<Workload.Run> OursGetAsync(HttpClient[] http, Uri[] paths, int seconds) =>
        Workload.MeasureAsync(http.Length, seconds, async (client, i) =>
        {
            using var response = await http[client].GetAsync(paths[(client + i) % paths.Length]);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"GET budget: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            return 1;
        });

    /// <summary>Raw clients send GetBudget's SELECTs for <paramref name="cantons"/> in turn, for <paramref name="seconds"/>.</summary>
    internal static Task<Workload.Run> RawGetAsync(NpgsqlDataSource dataSource, IReadOnlyList<string> cantons, int clients, int seconds) =>
        Workload.MeasureAsync(clients, seconds, async (client, i) =>
        {
            var canton = cantons[(int)((client + i) % cantons.Count)];
            await using var batch = dataSource.CreateBatch();
            batch.BatchCommands.Add(Sql.Command(CheckpointSql, $"{BudgetProjection.ProjectionName}:All"));
            batch.BatchCommands.Add(Sql.Command(BudgetSql, canton, 2026));
            batch.BatchCommands.Add(Sql.Command(ReceiptsSql, canton, 2026));
            await using var reader = await batch.ExecuteReaderAsync();
            do
            {
                while (await reader.ReadAsync())
                {
                    for (var f = 0; f < reader.FieldCount; f++)
                    {
                        reader.GetValue(f);
                    }
                }
            }
            while (await reader.NextResultAsync());

            return 1;
        });

    private async Task<double> RawAggregateAsync(long after, long events, bool truncate = true, long upTo = long.MaxValue)
    {
        await using var connection = await _database.DataSource.OpenConnectionAsync();
        var started = Stopwatch.GetTimestamp();
        if (truncate)
        {
            await using var empty = new NpgsqlCommand("TRUNCATE raw_budgets, raw_tallies", connection);
            await empty.ExecuteNonQueryAsync();
        }

        await using var command = new NpgsqlCommand(RawAggregateSql, connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = upTo });
        await command.ExecuteNonQueryAsync();
        return events / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    /// <summary>The same work on a small history first, in a database of its own, so that the timed rounds do not
    /// pay for the JIT.</summary>
    private async Task WarmUpAsync()
    {
        var events = Math.Min(_events, 100_000);
        Console.WriteLine($"Warming up on {events:N0} events (not timed)...");
        await using var database = await BenchDatabase.CreateAsync(_cluster, "budget_warmup", Database.Migrations);
        using var store = new OpenStore(database.DataSource, Events.Types(), [new BudgetProjection()]);
        await FiscalHistory.AppendAsync(store.Log, events);
        await database.CatchUpHighWaterMarkAsync();
        await store.Daemon.RebuildAsync(BudgetProjection.ProjectionName);
        await FiscalHistory.AppendBodyAsync(store.Log, events - FiscalHistory.SetupEvents, events / 5);
        await store.Daemon.CatchUpAsync();
    }

    private static (double App, double Server) PerEvent((double App, double Server) before, long events)
    {
        var after = Stats.CpuSeconds();
        return ((after.App - before.App) / events * 1e6, (after.Server - before.Server) / events * 1e6);
    }

    private static string Cpu(List<(double App, double Server)> runs) =>
        $"{Stats.Median(runs.Select(r => r.App)):N0}+{Stats.Median(runs.Select(r => r.Server)):N0}";

    /// <summary>A projection's progress must have passed the last event; it may stand beyond it, on numbers no event took.</summary>
    private static void Expect(long checkpoint, long last)
    {
        if (checkpoint < last)
        {
            throw new InvalidOperationException($"The projection stopped at {checkpoint}, before the last event at {last}.");
        }
    }

    private static string Aliases(Type type) => string.Join(", ", Events.Types().AliasesOf(type).Select(a => $"'{a}'"));
}
