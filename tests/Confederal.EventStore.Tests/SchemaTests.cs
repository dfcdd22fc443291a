using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed class SchemaTests
{
    [Fact]
    public async Task Migrating_again_and_concurrently_applies_each_migration_once()
    {
        await using var dataSource = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync([]));
        List<Migration> migrations =
        [
            .. Schema.EventStore,
            new("app-0001", "CREATE TABLE things (id int PRIMARY KEY)"),
            new("app-0002", "ALTER TABLE things ADD COLUMN name text"),
        ];

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Schema.MigrateAsync(dataSource, migrations)));
        await Schema.MigrateAsync(dataSource, migrations);

        await using var command = dataSource.CreateCommand("SELECT string_agg(id, ',' ORDER BY id) FROM es.schema_migrations");
        Assert.Equal("app-0001,app-0002,es-0001-events,es-0002-event-codes", await command.ExecuteScalarAsync());
    }
}
