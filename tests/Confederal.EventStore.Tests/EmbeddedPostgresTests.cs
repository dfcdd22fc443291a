using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed class EmbeddedPostgresTests
{
    [Fact]
    public async Task A_cluster_keeps_its_data_across_a_stop_and_a_start_and_a_second_start_attaches_to_the_running_one()
    {
        var directory = Path.Combine(Path.GetTempPath(), $"confederal-embedded-test-{Guid.NewGuid():N}");
        try
        {
            var first = await EmbeddedPostgres.StartAsync(directory);
            await first.CreateDatabaseAsync("kept");
            await ExecuteAsync(first, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)");

            var attached = await EmbeddedPostgres.StartAsync(directory);
            Assert.Equal(first.Port, attached.Port);
            await first.DisposeAsync(); // a clean stop

            await using var restarted = await EmbeddedPostgres.StartAsync(directory);
            Assert.Equal(42, await ExecuteAsync(restarted, "SELECT v FROM t"));
        }
        finally
        {
            if (File.Exists(Path.Combine(directory, "postgres", "PG_VERSION")))
            {
                await (await EmbeddedPostgres.StartAsync(directory, deleteOnDispose: true)).DisposeAsync();
            }
        }
    }

    private static async Task<object?> ExecuteAsync(EmbeddedPostgres cluster, string sql)
    {
        await using var connection = new NpgsqlConnection(cluster.ConnectionString("kept"));
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }
}
