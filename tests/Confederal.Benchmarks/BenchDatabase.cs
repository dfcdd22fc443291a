using System.Diagnostics;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Benchmarks;

/// <summary>A database of the benchmark's cluster, migrated, dropped on dispose.</summary>
public sealed class BenchDatabase : IAsyncDisposable
{
    private readonly EmbeddedPostgres _cluster;
    private readonly string _name;

    private BenchDatabase(EmbeddedPostgres cluster, string name)
    {
        _cluster = cluster;
        _name = name;
        ConnectionString = cluster.ConnectionString(name);
        var builder = new NpgsqlDataSourceBuilder(ConnectionString);
        builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
        builder.ConnectionStringBuilder.MaxPoolSize = 64;
        builder.ConnectionStringBuilder.CommandTimeout = 0;
        builder.ConnectionStringBuilder.NoResetOnClose = true; // as the API's own data source
        DataSource = builder.Build();
    }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    public static async Task<BenchDatabase> CreateAsync(EmbeddedPostgres cluster, string name, IEnumerable<Migration> migrations)
    {
        await DropAsync(cluster, name);
        await cluster.CreateDatabaseAsync(name);
        var database = new BenchDatabase(cluster, name);
        await CreateMartenTablesAsync(database.DataSource);
        await Schema.MigrateAsync(database.DataSource, migrations);
        return database;
    }

    /// <summary>Marten's event tables, before any migration: the raw tables are made LIKE marten.mt_events.</summary>
    public static async Task CreateMartenTablesAsync(NpgsqlDataSource dataSource)
    {
        // Marten creates its event tables only for a store that maps an event type; which one does not matter.
        using var store = new OpenStore(dataSource, new EventTypes().Register<TaxAssessed>("tax-assessed"), []);
        await store.Marten.Storage.ApplyAllConfiguredChangesToDatabaseAsync(JasperFx.AutoCreate.CreateOrUpdate);
    }

    /// <summary>The highest position of a committed event.</summary>
    public async Task<long> LastCommittedAsync()
    {
        await using var command = DataSource.CreateCommand($"SELECT coalesce(max(seq_id), 0) FROM {EventLog.Table}");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Marten's high-water mark: every event at or below it is committed, and projections may read it.</summary>
    public async Task<long> HighWaterMarkAsync()
    {
        await using var command = DataSource.CreateCommand(EventLog.HeadSql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Brings Marten's high-water mark past every event committed so far (where a benchmark waited for the
    /// sequencer's numbering; not timed), with a daemon that runs no projection; returns the last committed position.</summary>
    public async Task<long> CatchUpHighWaterMarkAsync()
    {
        using var store = new OpenStore(DataSource, new EventTypes().Register<TaxAssessed>("tax-assessed"), []);
        var last = await store.Log.ReadLastCommittedAsync();
        var mark = await store.Daemon.CatchUpAsync();
        return mark >= last ? last : throw new InvalidOperationException($"Marten's high-water mark stopped at {mark}, before the last event at {last}.");
    }

    /// <summary>The number of events at positions after <paramref name="after"/> up to <paramref name="upTo"/>
    /// (positions have holes, so this is not their difference).</summary>
    public async Task<long> CountAsync(long after, long upTo)
    {
        await using var command = DataSource.CreateCommand($"SELECT count(*) FROM {EventLog.Table} WHERE seq_id > $1 AND seq_id <= $2");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = upTo });
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>Flushes dirty pages before a timed run, so that no run pays for the previous one's checkpoint.</summary>
    public Task CheckpointAsync() => ExecuteAsync("CHECKPOINT");

    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await DropAsync(_cluster, _name);
    }

    private static async Task DropAsync(EmbeddedPostgres cluster, string name)
    {
        await using var connection = new NpgsqlConnection(cluster.AdminConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }
}

public static class Stats
{
    /// <summary>The benchmark cluster's postmaster: its children are the server's backends.</summary>
    public static int PostmasterPid { get; set; }

    /// <summary>A run with the CPU it cost per operation, in µs: this process (API and load generator) and the server.</summary>
    public sealed record Costed(Workload.Run Run, double AppMicros, double ServerMicros);

    public static async Task<Costed> CostedAsync(Func<Task<Workload.Run>> run)
    {
        var before = CpuSeconds();
        var result = await run();
        var after = CpuSeconds();
        return new Costed(result, (after.App - before.App) / result.Operations * 1e6, (after.Server - before.Server) / result.Operations * 1e6);
    }

    /// <summary>Rounds of a raw run and ours, costed, each going first every other round so that neither always meets
    /// the fuller tables or the other's backlog.</summary>
    public static async Task<(List<Costed> Raw, List<Costed> Ours)> AlternateAsync(
        int rounds, Func<Task<Workload.Run>> raw, Func<Task<Workload.Run>> ours)
    {
        var (raws, ourRuns) = (new List<Costed>(), new List<Costed>());
        for (var round = 0; round < rounds; round++)
        {
            if (round % 2 == 0)
            {
                raws.Add(await CostedAsync(raw));
                ourRuns.Add(await CostedAsync(ours));
            }
            else
            {
                ourRuns.Add(await CostedAsync(ours));
                raws.Add(await CostedAsync(raw));
            }
        }

        return (raws, ourRuns);
    }

    /// <summary>The medians of raw and ours runs of concurrent clients: rates, ratio, latencies, CPU per operation.</summary>
    public static void PrintLatencyRow(string label, IReadOnlyList<Costed> raw, IReadOnlyList<Costed> ours)
    {
        var rawRate = Median(raw.Select(r => r.Run.EventsPerSecond));
        var oursRate = Median(ours.Select(r => r.Run.EventsPerSecond));
        var oursCpu = $"{Median(ours.Select(r => r.AppMicros)):N0}+{Median(ours.Select(r => r.ServerMicros)):N0}";
        var rawCpu = $"{Median(raw.Select(r => r.AppMicros)):N0}+{Median(raw.Select(r => r.ServerMicros)):N0}";
        Console.WriteLine($"{label,-34} {rawRate,16:N0} {oursRate,12:N0} {oursRate / rawRate,6:0.00}x " +
                          $"{Median(ours.Select(r => r.Run.P50Ms)),12:0.00} {Median(ours.Select(r => r.Run.P99Ms)),12:0.00} " +
                          $"{Median(raw.Select(r => r.Run.P99Ms)),11:0.00} {rawCpu,14} {oursCpu,10}");
    }

    /// <summary>CPU seconds used so far by this process and by the benchmark cluster: the postmaster, its live children,
    /// and (its cutime and cstime) the children it has reaped, so that a backend closing mid-run keeps its time.</summary>
    public static (double App, double Server) CpuSeconds()
    {
        using var self = Process.GetCurrentProcess();
        var app = self.TotalProcessorTime.TotalSeconds;
        const double ticks = 100.0; // USER_HZ
        double server = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (pid != PostmasterPid && Field(fields, 1) != PostmasterPid)
                {
                    continue;
                }

                server += (Field(fields, 11) + Field(fields, 12)) / ticks;
                if (pid == PostmasterPid)
                {
                    server += (Field(fields, 13) + Field(fields, 14)) / ticks;
                }
            }
            catch (IOException)
            {
                // the process ended meanwhile
            }
        }

        return (app, server);
    }

    private static long Field(string[] fields, int i) => long.Parse(fields[i], System.Globalization.CultureInfo.InvariantCulture);

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>Samples this process's working set and managed heap until disposed; the peaks in MiB.</summary>
    public sealed class MemoryPeak : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _sampler;
        private long _workingSet;
        private long _heap;

        public MemoryPeak()
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            _sampler = Task.Run(async () =>
            {
                using var process = Process.GetCurrentProcess();
                while (!_stop.IsCancellationRequested)
                {
                    process.Refresh();
                    _workingSet = Math.Max(_workingSet, process.WorkingSet64);
                    _heap = Math.Max(_heap, GC.GetTotalMemory(forceFullCollection: false));
                    await Task.Delay(10, CancellationToken.None);
                }
            });
        }

        public double WorkingSetMiB => _workingSet / 1024.0 / 1024.0;

        public double HeapMiB => _heap / 1024.0 / 1024.0;

        /// <summary>Stops sampling; the peaks stay readable. Idempotent.</summary>
        public async ValueTask DisposeAsync()
        {
            if (_stop.IsCancellationRequested)
            {
                return;
            }

            await _stop.CancelAsync();
            await _sampler;
        }
    }
}
