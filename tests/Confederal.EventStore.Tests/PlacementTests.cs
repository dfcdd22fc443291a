using System.Collections.Concurrent;
using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

/// <summary>One store over several databases (Marten's database per tenant), and a database's streaming replica.</summary>
public sealed class PlacementTests
{
    [Fact]
    public async Task Each_database_of_a_store_keeps_a_log_of_its_own_with_its_own_order_progress_and_read_models()
    {
        await using var directory = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(TestStore.Migrations));
        await using var canton = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(TestStore.Migrations));
        var projection = new BalancesProjection();
        using var store = new OpenStore(
            [new LedgerDatabase(LedgerDatabase.DirectoryId, directory), new LedgerDatabase("geneve", canton)], TestStore.NewTypes(), [projection]);
        var (first, second) = (store.Shards.Directory, store.Shards["geneve"]);

        // The same stream id in both: two streams, one in each log.
        await first.Log.AppendAsync("account-a", ExpectedVersion.NoStream, [new Deposited("a", 10), new Deposited("a", 5)]);
        await second.Log.AppendAsync("account-a", ExpectedVersion.NoStream, [new Deposited("a", 100)]);
        await second.Log.AppendAsync("account-b", ExpectedVersion.NoStream, [new Withdrawn("b", 7)]);

        Assert.Equal([1, 2], await first.Log.ReadStreamAsync("account-a").Select(e => e.Position).ToListAsync());
        Assert.Equal([1], await second.Log.ReadStreamAsync("account-a").Select(e => e.Position).ToListAsync());
        Assert.Equal(2, await first.Log.StreamVersionAsync("account-a"));
        Assert.Equal(0, await first.Log.StreamVersionAsync("account-b"));

        Assert.Equal(2, await first.Daemon.CatchUpAsync());
        Assert.Equal(2, await second.Daemon.CatchUpAsync());
        Assert.Equal(2, await first.Daemon.ReadCheckpointAsync("balances"));
        Assert.Equal(2, await second.Daemon.ReadCheckpointAsync("balances"));
        Assert.Equal(["a=15"], await BalancesAsync(directory));
        Assert.Equal(["a=100", "b=-7"], await BalancesAsync(canton));

        // Each log is read in its own order, and Marten's streams are each database's.
        Assert.Equal(["account-a:1", "account-b:1"], await second.Log.ReadAllAsync(0).Select(e => $"{e.StreamId}:{e.Version}").ToListAsync());
        await using var rows = canton.CreateCommand($"SELECT string_agg(DISTINCT tenant_id, ',') FROM {MartenStore.Schema}.mt_streams");
        Assert.Equal("geneve", await rows.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_bulk_append_in_a_canton_database_is_a_stream_of_that_database()
    {
        await using var directory = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(TestStore.Migrations));
        await using var canton = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(TestStore.Migrations));
        using var store = new OpenStore(
            [new LedgerDatabase(LedgerDatabase.DirectoryId, directory), new LedgerDatabase("ticino", canton)], TestStore.NewTypes(), []);
        var log = store.Shards["ticino"].Log;
        await using (var bulk = await log.BeginBulkAppendAsync("import"))
        {
            await bulk.WriteAsync(new Deposited("x", 1));
            await bulk.CommitAsync();
        }

        // Marten appends after it in that tenant (its Quick append refuses a stream of another tenant).
        await log.AppendAsync("import", ExpectedVersion.Exactly(1), [new Deposited("x", 2)]);
        Assert.Equal([1, 2], await log.ReadStreamAsync("import").Select(e => e.Version).ToListAsync());
        Assert.Equal(0, await store.Shards.Directory.Log.StreamVersionAsync("import"));
    }

    [Fact]
    public async Task A_stopped_server_fails_only_the_writes_of_its_own_database_and_loses_nothing_it_acknowledged()
    {
        await using var directoryServer = await TestPostgres.StartServerAsync();
        await using var shardA = await TestPostgres.StartServerAsync();
        await using var shardB = await TestPostgres.StartServerAsync();
        var projection = new BalancesProjection();
        var databases = new List<LedgerDatabase>();
        foreach (var (id, server) in new[] { (LedgerDatabase.DirectoryId, directoryServer), ("canton-a", shardA), ("canton-b", shardB) })
        {
            databases.Add(new LedgerDatabase(id, NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(server, "ledger", TestStore.Migrations))));
        }

        try
        {
            using var store = new OpenStore(databases, TestStore.NewTypes(), [projection]);
            var acknowledged = databases.ToDictionary(d => d.Id, _ => new ConcurrentQueue<long>());
            var failed = databases.ToDictionary(d => d.Id, _ => 0);
            using var stop = new CancellationTokenSource();
            var writers = store.Shards.Select(shard => Task.Run(async () =>
            {
                for (var i = 1L; !stop.IsCancellationRequested; i++)
                {
                    try
                    {
                        await shard.Log.AppendAsync($"entry-{i}", ExpectedVersion.NoStream, [new Deposited("x", i)]);
                        acknowledged[shard.Id].Enqueue(i);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        failed[shard.Id]++;
                        await Task.Delay(20);
                    }
                }
            })).ToList();

            await Task.Delay(500);
            await shardA.StopAsync();
            var during = databases.ToDictionary(d => d.Id, d => acknowledged[d.Id].Count);
            await Task.Delay(1_000);
            // While canton-a's server is down, the other databases write, and their daemons project, as before.
            Assert.True(acknowledged[LedgerDatabase.DirectoryId].Count > during[LedgerDatabase.DirectoryId] + 20);
            Assert.True(acknowledged["canton-b"].Count > during["canton-b"] + 20);
            Assert.True(await store.Shards["canton-b"].Daemon.CatchUpAsync() > 0);
            Assert.True(failed["canton-a"] > 0);
            Assert.Equal(0, failed[LedgerDatabase.DirectoryId] + failed["canton-b"]);

            await shardA.StartAgainAsync();
            var back = acknowledged["canton-a"].Count;
            while (acknowledged["canton-a"].Count < back + 20)
            {
                await Task.Delay(20);
            }

            await stop.CancelAsync();
            await Task.WhenAll(writers);
            foreach (var shard in store.Shards)
            {
                var stored = new HashSet<string>(await shard.Log.ReadStoredAsync(0).Select(e => e.StreamId).ToListAsync(), StringComparer.Ordinal);
                Assert.Equal([], acknowledged[shard.Id].Select(i => $"entry-{i}").Except(stored));
            }
        }
        finally
        {
            foreach (var database in databases)
            {
                await database.DataSource.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_promoted_synchronous_standby_has_every_append_its_primary_acknowledged_before_it_was_killed()
    {
        await using var primary = await TestPostgres.StartServerAsync();
        await primary.CreateDatabaseAsync("ledger");
        await using var replica = await TestPostgres.StartReplicaAsync(primary, "standby");
        await primary.RequireSynchronousStandbyAsync("standby");
        var acknowledged = new ConcurrentBag<string>();
        await using (var onPrimary = NpgsqlDataSource.Create(primary.ConnectionString("ledger")))
        {
            await Schema.MigrateAsync(onPrimary, []);
            using var store = new OpenStore(onPrimary, TestStore.NewTypes(), []);
            var writers = Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
            {
                for (var i = 1; ; i++)
                {
                    try
                    {
                        await store.Log.AppendAsync($"writer-{w}", ExpectedVersion.Exactly(i - 1), [new Deposited($"w{w}", i)]);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        return;
                    }

                    acknowledged.Add($"writer-{w}:{i}");
                }
            })).ToList();
            while (acknowledged.Count < 400)
            {
                await Task.Delay(10);
            }

            // The standby stops receiving (its WAL receiver frozen), as over a slow or broken link, and the primary
            // crashes; what the link still held is lost with the receiver. An asynchronous standby would lose what the
            // primary acknowledged meanwhile; a synchronous one holds every commit back until it has it.
            var receiver = await ScalarAsync<int>(replica.ConnectionString("postgres"), "SELECT pid FROM pg_stat_wal_receiver");
            Assert.Equal(0, Signal(receiver, Stop));
            await Task.Delay(500);
            await primary.StopAsync(immediate: true); // a crash: nothing is flushed or handed over
            await Task.WhenAll(writers);
            Assert.Equal(0, Signal(receiver, Kill));
        }

        await replica.PromoteAsync();
        await using var onReplica = NpgsqlDataSource.Create(replica.ConnectionString("ledger"));
        var kept = new HashSet<string>(StringComparer.Ordinal);
        await using (var command = onReplica.CreateCommand($"SELECT stream_id || ':' || version FROM {EventLog.Table}"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                kept.Add(reader.GetString(0));
            }
        }

        Assert.True(acknowledged.Count >= 400);
        Assert.Equal([], acknowledged.Except(kept).Order(StringComparer.Ordinal));

        // The promoted copy is a primary: the ledger goes on where it stopped.
        using var promoted = new OpenStore(onReplica, TestStore.NewTypes(), []);
        var version = await promoted.Log.StreamVersionAsync("writer-0");
        await promoted.Log.AppendAsync("writer-0", ExpectedVersion.Exactly(version), [new Deposited("w0", 0)]);
    }

    private const int Stop = 19; // SIGSTOP on Linux

    private const int Kill = 9; // SIGKILL

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);

    private static async Task<T> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var db = NpgsqlDataSource.Create(connectionString);
        await using var command = db.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<List<string>> BalancesAsync(NpgsqlDataSource db)
    {
        await using var command = db.CreateCommand("SELECT account || '=' || balance FROM balances ORDER BY account");
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }
}
