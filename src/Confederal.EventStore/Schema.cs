using Npgsql;

namespace Confederal.EventStore;

/// <summary>One schema change, applied once, in order of <see cref="Id"/>.</summary>
public sealed record Migration(string Id, string Sql);

/// <summary>
/// Creates and migrates the schema: Marten's (its events, streams, progress and functions, by Marten's own schema
/// migration), then ours, the read models' tables, each migration once, in its own transaction, recorded in
/// es.schema_migrations. Concurrent starts serialize on an advisory lock, so running it again is harmless.
/// </summary>
public static class Schema
{
    private const long MigrationLock = 0x436f6e6665646572; // "Confeder"

    /// <summary>Runs <paramref name="work"/> once per database, in one transaction recorded in es.schema_migrations as
    /// <paramref name="id"/>: for a step that moves data rather than schema (run after the migrations). Concurrent starts
    /// serialize on an advisory lock of the id.</summary>
    public static async Task RunOnceAsync(
        NpgsqlDataSource dataSource, string id, Func<NpgsqlConnection, NpgsqlTransaction, Task> work, CancellationToken ct = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var done = new NpgsqlCommand(
                         "SELECT count(*) FROM (SELECT pg_advisory_xact_lock(hashtext($1))) AS locked, es.schema_migrations WHERE id = $1", connection, tx))
        {
            done.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
            if ((long)(await done.ExecuteScalarAsync(ct))! > 0)
            {
                return;
            }
        }

        await work(connection, tx);
        await using (var record = new NpgsqlCommand("INSERT INTO es.schema_migrations (id) VALUES ($1)", connection, tx))
        {
            record.Parameters.Add(new NpgsqlParameter<string> { TypedValue = id });
            await record.ExecuteNonQueryAsync(ct);
        }

        await tx.CommitAsync(ct);
    }

    /// <summary>Migrates Marten's schema and ours; a database still holding the log of the store before Marten has it
    /// moved into Marten (<see cref="PreMartenUpgrade"/>) and <paramref name="readModelTables"/> emptied for the daemon to
    /// rebuild.</summary>
    public static async Task MigrateAsync(
        NpgsqlDataSource dataSource, IEnumerable<Migration> migrations, IReadOnlyList<string>? readModelTables = null, CancellationToken ct = default)
    {
        var ordered = migrations.OrderBy(m => m.Id, StringComparer.Ordinal).ToList();
        if (ordered.Select(m => m.Id).Distinct(StringComparer.Ordinal).Count() != ordered.Count)
        {
            throw new InvalidOperationException("Two migrations share an id.");
        }

        await using var connection = await dataSource.OpenConnectionAsync(ct);
        await using (var bootstrap = connection.CreateCommand())
        {
            bootstrap.CommandText = $"""
                SELECT pg_advisory_lock({MigrationLock});
                CREATE SCHEMA IF NOT EXISTS es;
                CREATE TABLE IF NOT EXISTS es.schema_migrations (
                    id text PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now());
                -- How far each StreamCopy into this database has read its source's log.
                CREATE TABLE IF NOT EXISTS es.stream_copies (
                    source   text PRIMARY KEY,
                    position bigint NOT NULL);
                """;
            await bootstrap.ExecuteNonQueryAsync(ct);
        }

        try
        {
            // Under the lock, so that processes starting together do not race on Marten's DDL. Marten's event schema depends only on how events are stored, not on which types or projections there are; but
            // Marten creates it only for a store that has at least one event type.
            using (var marten = new Marten.DocumentStore(MartenStore.Options(dataSource, new EventTypes().Register<SchemaOnly>("schema-only"), [], JasperFx.AutoCreate.CreateOrUpdate)))
            {
                await marten.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
            }

            var applied = new HashSet<string>(StringComparer.Ordinal);
            await using (var read = new NpgsqlCommand("SELECT id FROM es.schema_migrations", connection))
            await using (var reader = await read.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    applied.Add(reader.GetString(0));
                }
            }

            foreach (var migration in ordered.Where(m => !applied.Contains(m.Id)))
            {
                await using var tx = await connection.BeginTransactionAsync(ct);
                await using (var apply = new NpgsqlCommand(migration.Sql, connection, tx))
                {
                    await apply.ExecuteNonQueryAsync(ct);
                }

                await using (var record = new NpgsqlCommand("INSERT INTO es.schema_migrations (id) VALUES ($1)", connection, tx))
                {
                    record.Parameters.Add(new NpgsqlParameter { Value = migration.Id });
                    await record.ExecuteNonQueryAsync(ct);
                }

                await tx.CommitAsync(ct);
            }

            await PreMartenUpgrade.RunAsync(connection, readModelTables ?? [], ct);
        }
        finally
        {
            await using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({MigrationLock})", connection);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }
}

/// <summary>The event type of the store that only creates Marten's schema: never appended.</summary>
internal sealed record SchemaOnly;
