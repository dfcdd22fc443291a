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
        DataSource = builder.Build();
    }

    public string ConnectionString { get; }

    public NpgsqlDataSource DataSource { get; }

    public static async Task<BenchDatabase> CreateAsync(EmbeddedPostgres cluster, string name, IEnumerable<Migration> migrations)
    {
        await DropAsync(cluster, name);
        await cluster.CreateDatabaseAsync(name);
        var database = new BenchDatabase(cluster, name);
        await Schema.MigrateAsync(database.DataSource, migrations);
        return database;
    }

    /// <summary>The highest numbered position.</summary>
    public async Task<long> HeadAsync()
    {
        await using var command = DataSource.CreateCommand("SELECT coalesce(max(position), 0) FROM es.events");
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
