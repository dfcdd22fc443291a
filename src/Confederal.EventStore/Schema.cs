using Npgsql;

namespace Confederal.EventStore;

/// <summary>One schema change, applied once, in order of <see cref="Id"/>.</summary>
public sealed record Migration(string Id, string Sql);

/// <summary>
/// Creates and migrates the schema: every migration runs once, in its own transaction, recorded in
/// es.schema_migrations. Concurrent starts serialize on an advisory lock, so running it again is harmless.
/// </summary>
public static class Schema
{
    private const long MigrationLock = 0x436f6e6665646572; // "Confeder"

    /// <summary>The event store's own tables.</summary>
    public static readonly IReadOnlyList<Migration> EventStore =
    [
        new("es-0001-events", """
            CREATE TABLE es.events (
                seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                position       bigint,
                tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id(),
                stream_id      text NOT NULL,
                version        bigint NOT NULL,
                event_id       uuid NOT NULL,
                type           text NOT NULL,
                type_version   int NOT NULL,
                data           jsonb NOT NULL,
                correlation_id text,
                causation_id   text,
                actor          text,
                recorded_at    timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT events_stream_version UNIQUE (stream_id, version)
            );
            -- Partial: an append inserts nothing here; the sequencer's numbering does.
            CREATE UNIQUE INDEX events_position ON es.events (position) WHERE position IS NOT NULL;
            -- Events the sequencer has not numbered yet: a small, hot partial index.
            CREATE INDEX events_unsequenced ON es.events (tx_id, seq) WHERE position IS NULL;

            CREATE TABLE es.projection_checkpoints (
                name       text PRIMARY KEY,
                position   bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            """),
        // Each event's authentication code (see EventAuthenticator): null for events written without a key.
        new("es-0002-event-codes", "ALTER TABLE es.events ADD COLUMN mac bytea"),
    ];

    public static async Task MigrateAsync(NpgsqlDataSource dataSource, IEnumerable<Migration> migrations, CancellationToken ct = default)
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
                """;
            await bootstrap.ExecuteNonQueryAsync(ct);
        }

        try
        {
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
        }
        finally
        {
            await using var unlock = new NpgsqlCommand($"SELECT pg_advisory_unlock({MigrationLock})", connection);
            await unlock.ExecuteNonQueryAsync(CancellationToken.None);
        }
    }
}
