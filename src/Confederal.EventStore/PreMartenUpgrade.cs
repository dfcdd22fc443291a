using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// Moves the log of a database written by the store before Marten (<c>es.events</c>, numbered by our sequencer) into
/// Marten's tables, once, in one transaction: every event at its position (Marten's sequence number), with its stream
/// version, id, payload as stored, type under its alias <c>{name}.v{type_version}</c>, recorded-at, correlation id,
/// causation id, actor (Marten's user name) and authentication code (header <c>mac</c>). Events the sequencer had not
/// numbered yet come after the head, in the order it would have given them. Then the read models are emptied, so that
/// Marten's daemon rebuilds them from position 1, and the old table is kept as <c>es.events_before_marten</c>.
/// </summary>
/// <remarks>
/// Written in SQL rather than through Marten's bulk import: Marten's import serializes CLR events, so an event stored
/// under an older version would be rewritten in the current one, and its authentication code and audit hash, which
/// cover the bytes as stored, would no longer hold. Positions are kept, so the audit's hashes and seals (keyed by
/// position) stay valid. The upgrade test reads the result back with Marten's own reads.
/// </remarks>
public static class PreMartenUpgrade
{
    /// <summary>Runs the move if the database holds the old log; returns the number of events moved (0: nothing to do).</summary>
    public static async Task<long> RunAsync(NpgsqlConnection connection, IReadOnlyList<string> readModelTables, CancellationToken ct = default)
    {
        await using (var exists = new NpgsqlCommand("SELECT to_regclass('es.events') IS NOT NULL", connection))
        {
            if (!(bool)(await exists.ExecuteScalarAsync(ct))!)
            {
                return 0;
            }
        }

        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var move = new NpgsqlCommand($"""
            CREATE TEMPORARY TABLE numbered ON COMMIT DROP AS
            SELECT coalesce(position, (SELECT coalesce(max(position), 0) FROM es.events)
                                      + row_number() OVER (PARTITION BY position IS NULL ORDER BY tx_id, seq)) AS position,
                   stream_id, version, event_id, type, type_version, data, correlation_id, causation_id, actor, recorded_at, mac
            FROM es.events;

            INSERT INTO {MartenStore.Schema}.mt_streams (id, version, timestamp, created)
            SELECT stream_id, max(version), max(recorded_at), min(recorded_at) FROM numbered GROUP BY stream_id;

            INSERT INTO {EventLog.Table}
                (seq_id, id, stream_id, version, data, type, timestamp, correlation_id, causation_id, user_name, headers)
            SELECT position, event_id, stream_id, version, data, type || '.v' || type_version, recorded_at,
                   correlation_id, causation_id, actor,
                   CASE WHEN mac IS NULL THEN NULL
                        ELSE jsonb_build_object('{MartenStore.CodeHeader}', translate(encode(mac, 'base64'), E'\n', '')) END
            FROM numbered ORDER BY position;
            """, connection, tx))
        {
            await move.ExecuteNonQueryAsync(ct);
        }

        long moved;
        await using (var count = new NpgsqlCommand("SELECT count(*) FROM es.events", connection, tx))
        {
            moved = (long)(await count.ExecuteScalarAsync(ct))!;
        }

        await using (var finish = new NpgsqlCommand($"""
            SELECT setval('{MartenStore.Schema}.mt_events_sequence', greatest((SELECT max(seq_id) FROM {EventLog.Table}), 1));
            ALTER TABLE es.events RENAME TO events_before_marten;
            DROP TABLE IF EXISTS es.projection_checkpoints;
            {string.Concat(readModelTables.Select(t => $"TRUNCATE {t};\n"))}
            """, connection, tx))
        {
            await finish.ExecuteNonQueryAsync(ct);
        }

        await tx.CommitAsync(ct);
        return moved;
    }
}
