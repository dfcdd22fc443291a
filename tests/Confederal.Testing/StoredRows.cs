using Confederal.EventStore;
using Npgsql;

namespace Confederal.Testing;

/// <summary>Rows written into Marten's tables with SQL, as another writer would: events of an older version of our
/// code, stored exactly as it wrote them.</summary>
public static class StoredRows
{
    /// <summary>Inserts an event with SQL into Marten's tables, as a writer of an older version of our code stored it
    /// (with the authentication code it computed, when the log has an authenticator); returns its position.</summary>
    public static async Task<long> InsertAsync(NpgsqlDataSource db, EventLog log, string stream, EventName type, string json)
    {
        var version = await log.StreamVersionAsync(stream) + 1;
        var id = Guid.NewGuid();
        var code = log.Authenticator?.Compute(stream, version, id, type.Name, type.Version, CanonicalJson.Serialize(json), EventMetadata.None);
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            INSERT INTO {MartenStore.Schema}.mt_streams (id, version) VALUES ($1, $2)
            ON CONFLICT (id) DO UPDATE SET version = excluded.version
            """) { Parameters = { new() { Value = stream }, new() { Value = version } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand($"""
            INSERT INTO {EventLog.Table} (seq_id, id, stream_id, version, data, type, timestamp, headers)
            VALUES (nextval('{MartenStore.Schema}.mt_events_sequence'), $1, $2, $3, $4::jsonb, $5, now(),
                    CASE WHEN $6::text IS NULL THEN NULL ELSE jsonb_build_object('{MartenStore.CodeHeader}', $6::text) END)
            RETURNING seq_id
            """)
        {
            Parameters =
            {
                new() { Value = id },
                new() { Value = stream },
                new() { Value = version },
                new() { Value = json },
                new() { Value = type.Alias },
                new() { Value = code is null ? DBNull.Value : Convert.ToBase64String(code), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
            },
        });
        await using var reader = await batch.ExecuteReaderAsync();
        await reader.ReadAsync();
        return reader.GetInt64(0);
    }
}
