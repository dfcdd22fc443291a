using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

/// <summary>Schema.MigrateAsync on a database with nothing in it: Marten's schema first, then ours.</summary>
public sealed class SchemaTests
{
    private const string MartenTables = "mt_event_progression,mt_events,mt_events_sequence,mt_streams";

    [Fact]
    public async Task Migrating_creates_martens_event_store_before_our_migrations_run()
    {
        await using var dataSource = await EmptyDatabaseAsync();

        await Schema.MigrateAsync(dataSource, []);
        Assert.Equal(MartenTables, await MartenTablesAsync(dataSource));

        // A migration of ours may use Marten's tables.
        await Schema.MigrateAsync(dataSource, [new("app-0001", $"CREATE VIEW event_count AS SELECT count(*) AS n FROM {EventLog.Table}")]);
        Assert.Equal(0L, await ScalarAsync(dataSource, "SELECT n FROM event_count"));
    }

    [Fact]
    public async Task Migrating_again_and_concurrently_applies_each_of_our_migrations_once_in_order_of_their_ids()
    {
        await using var dataSource = await EmptyDatabaseAsync();
        // Listed out of order: the second needs the first, so only applying them in order of their ids works.
        List<Migration> migrations =
        [
            new("app-0002", "ALTER TABLE things ADD COLUMN name text"),
            new("app-0001", "CREATE TABLE things (id int PRIMARY KEY); INSERT INTO things VALUES (1)"),
        ];

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Schema.MigrateAsync(dataSource, migrations)));
        await Schema.MigrateAsync(dataSource, migrations);

        Assert.Equal("app-0001,app-0002", await ScalarAsync(dataSource, "SELECT string_agg(id, ',' ORDER BY applied_at, id) FROM es.schema_migrations"));
        Assert.Equal(1L, await ScalarAsync(dataSource, "SELECT count(*) FROM things"));
        Assert.Equal(MartenTables, await MartenTablesAsync(dataSource));
    }

    [Fact]
    public async Task On_a_freshly_migrated_database_the_head_and_every_progress_read_zero_before_any_daemon_ran()
    {
        await using var dataSource = await EmptyDatabaseAsync();
        await Schema.MigrateAsync(dataSource, TestStore.Migrations);
        using var store = new OpenStore(dataSource, TestStore.NewTypes(), [new BalancesProjection()]);

        Assert.Equal(0, await store.Log.ReadHeadAsync());
        Assert.Equal(0, await store.Log.ReadLastCommittedAsync());
        Assert.Equal(0, await store.Daemon.ReadHighWaterMarkAsync());
        Assert.Equal(0, await store.Daemon.ReadCheckpointAsync("balances"));
        Assert.Empty(await store.Log.ReadAllAsync(0).ToListAsync());
    }

    [Fact]
    public async Task Two_migrations_with_one_id_are_refused()
    {
        await using var dataSource = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync([]));
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            Schema.MigrateAsync(dataSource, [new("app-0001", "SELECT 1"), new("app-0001", "SELECT 2")]));
    }

    /// <summary>A database with nothing in it, not even Marten's schema.</summary>
    private static async Task<NpgsqlDataSource> EmptyDatabaseAsync()
    {
        var cluster = await TestPostgres.ClusterAsync();
        var name = $"empty_{Guid.NewGuid():N}";
        await cluster.CreateDatabaseAsync(name);
        return NpgsqlDataSource.Create(cluster.ConnectionString(name));
    }

    private static async Task<object?> MartenTablesAsync(NpgsqlDataSource dataSource) => await ScalarAsync(dataSource, $"""
        SELECT coalesce(string_agg(c.relname, ',' ORDER BY c.relname), 'none')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = '{MartenStore.Schema}' AND c.relname IN ('mt_events', 'mt_streams', 'mt_event_progression', 'mt_events_sequence')
        """);

    private static async Task<object?> ScalarAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return await command.ExecuteScalarAsync();
    }
}
