using Npgsql;
using NpgsqlTypes;

namespace Confederal.EventStore;

/// <summary>
/// Keeps copies of one log's streams in another database's log: every event of a stream that <c>selects</c> picks, and
/// every later event of a stream once it has a copy, verbatim (its id, stream, version, type, payload, metadata, time and
/// authentication code; only its position is the target's, and two headers say where it was recorded:
/// <see cref="RecordedEvent.Source"/>). A stream is copied from its first event, so its copy has
/// every version and its hash chain in the target is the source's. Events are taken in the source's order and only up
/// to its high-water mark, so none that commits late is passed over. How far the source has been read is stored in the
/// target, in the transaction of the copies it covers: each event is copied exactly once, whatever fails in between,
/// and copiers in several processes take turns on a row lock.
/// </summary>
public sealed class StreamCopy(EventLog source, EventLog target, Func<StoredEvent, bool> selects)
{
    /// <summary>Source events read per round.</summary>
    public const int PageSize = 5_000;

    /// <summary>How long <see cref="RunAsync"/> waits when a round found nothing new, or failed.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>When set, only streams whose id starts with one of these are read, the rest passed over on the source's
    /// server: a copy of a few streams of a large log does not read the log.</summary>
    public IReadOnlyList<string>? StreamPrefixes { get; init; }

    /// <summary>The key of this copy's progress row in the target: the source's database.</summary>
    public string Key => source.DatabaseId;

    /// <summary>Copies until the source's high-water mark, as it was when the round began; returns the source position
    /// read to.</summary>
    public async Task<long> CopyAsync(CancellationToken ct = default)
    {
        while (true)
        {
            var (position, more) = await CopyPageAsync(ct);
            if (!more)
            {
                return position;
            }
        }
    }

    /// <summary>Copies as events arrive until cancelled, a round every <see cref="Poll"/>; a round that fails (either
    /// database unreachable) is tried again from the stored progress, as <paramref name="backoff"/> says.</summary>
    public async Task RunAsync(Backoff backoff, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await CopyAsync(ct);
                backoff.Succeeded();
                await Task.Delay(Poll, ct);
            }
            catch (Exception) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                try
                {
                    await backoff.FailedAsync(e, ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>The source position the copy has read to (0 before its first round).</summary>
    public async Task<long> ReadProgressAsync(CancellationToken ct = default)
    {
        await using var command = target.DataSource.CreateCommand("SELECT position FROM es.stream_copies WHERE source = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Key });
        return await command.ExecuteScalarAsync(ct) is long position ? position : 0;
    }

    private async Task<(long Position, bool More)> CopyPageAsync(CancellationToken ct)
    {
        await using var connection = await target.DataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var after = await LockProgressAsync(connection, tx, ct);
        var head = await source.ReadHeadAsync(ct);
        var page = await source.ReadStoredAsync(after, head, PageSize, StreamPrefixes, ct).ToListAsync(ct);
        var more = page.Count == PageSize;
        var through = more ? page[^1].Position : head; // a short page read everything up to the head
        if (through <= after)
        {
            return (after, false);
        }

        var copied = await CopiedVersionsAsync(connection, tx, [.. page.Select(e => e.StreamId).Distinct(StringComparer.Ordinal)], ct);
        var rows = new List<StoredEvent>();
        foreach (var e in page)
        {
            var has = copied.TryGetValue(e.StreamId, out var version);
            if (!has && !selects(e))
            {
                continue;
            }

            if (version < e.Version - 1)
            {
                // A stream picked at a later event: its earlier versions first.
                rows.AddRange(await source.ReadStoredStreamAsync(e.StreamId, version + 1, e.Version - 1, ct));
            }

            if (version < e.Version)
            {
                rows.Add(e);
                copied[e.StreamId] = e.Version;
            }
        }

        if (rows.Count > 0)
        {
            await InsertAsync(connection, tx, rows, ct);
        }

        await using (var progress = new NpgsqlCommand("UPDATE es.stream_copies SET position = $2 WHERE source = $1", connection, tx))
        {
            progress.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Key });
            progress.Parameters.Add(new NpgsqlParameter<long> { TypedValue = through });
            await progress.ExecuteNonQueryAsync(ct);
        }

        WriteOutcome.CommitSending();
        await tx.CommitAsync(ct);
        return (through, more);
    }

    private async Task<long> LockProgressAsync(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken ct)
    {
        // The row's update locks it until the round commits: another copier waits, then reads where this one stopped.
        await using var command = new NpgsqlCommand("""
            INSERT INTO es.stream_copies AS c (source, position) VALUES ($1, 0)
            ON CONFLICT (source) DO UPDATE SET position = c.position RETURNING position
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Key });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    private static async Task<Dictionary<string, long>> CopiedVersionsAsync(
        NpgsqlConnection connection, NpgsqlTransaction tx, string[] streams, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT id, version FROM {MartenStore.Schema}.mt_streams WHERE id = ANY($1)", connection, tx);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = streams });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var versions = new Dictionary<string, long>(StringComparer.Ordinal);
        while (await reader.ReadAsync(ct))
        {
            versions[reader.GetString(0)] = reader.GetInt64(1);
        }

        return versions;
    }

    private async Task InsertAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<StoredEvent> rows, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, tx);
        var insert = new NpgsqlBatchCommand($"""
            INSERT INTO {EventLog.Table}
                (seq_id, id, stream_id, version, data, type, timestamp, mt_dotnet_type, correlation_id, causation_id, user_name, headers, tenant_id)
            SELECT nextval('{MartenStore.Schema}.mt_events_sequence'), r.id, r.stream_id, r.version, r.data::jsonb, r.type, r.at,
                   r.clr, r.correlation, r.causation, r.actor,
                   jsonb_strip_nulls(jsonb_build_object('{MartenStore.CodeHeader}', r.code,
                       '{MartenStore.SourceLedgerHeader}', $13::text, '{MartenStore.SourcePositionHeader}', r.source_position)), $12
            FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $14::bigint[])
                WITH ORDINALITY AS r(id, stream_id, version, data, type, at, clr, correlation, causation, actor, code, source_position, n)
            ORDER BY r.n
            """);
        Add(insert, rows.Select(r => r.EventId).ToArray(), NpgsqlDbType.Uuid);
        Add(insert, rows.Select(r => r.StreamId).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => r.Version).ToArray(), NpgsqlDbType.Bigint);
        Add(insert, rows.Select(r => r.Json).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => new EventName(r.Type, r.TypeVersion).Alias).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => r.RecordedAt).ToArray(), NpgsqlDbType.TimestampTz);
        Add(insert, rows.Select(r => r.ClrName).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => r.Metadata.CorrelationId).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => r.Metadata.CausationId).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => r.Metadata.Actor).ToArray(), NpgsqlDbType.Text);
        Add(insert, rows.Select(r => r.Code is null ? null : Convert.ToBase64String(r.Code)).ToArray(), NpgsqlDbType.Text);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = target.DatabaseId });
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = source.DatabaseId });
        Add(insert, rows.Select(r => r.Position).ToArray(), NpgsqlDbType.Bigint);

        var heads = rows.GroupBy(r => r.StreamId, StringComparer.Ordinal).Select(g => g.MaxBy(r => r.Version)!).ToList();
        var streams = new NpgsqlBatchCommand($"""
            INSERT INTO {MartenStore.Schema}.mt_streams (id, version, timestamp, created, tenant_id)
            SELECT s.id, s.version, s.at, s.at, $4 FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS s(id, version, at)
            ON CONFLICT (id) DO UPDATE SET version = excluded.version, timestamp = excluded.timestamp
            """);
        Add(streams, heads.Select(r => r.StreamId).ToArray(), NpgsqlDbType.Text);
        Add(streams, heads.Select(r => r.Version).ToArray(), NpgsqlDbType.Bigint);
        Add(streams, heads.Select(r => r.RecordedAt).ToArray(), NpgsqlDbType.TimestampTz);
        streams.Parameters.Add(new NpgsqlParameter<string> { TypedValue = target.DatabaseId });
        batch.BatchCommands.Add(streams); // first: the events' foreign key names their stream
        batch.BatchCommands.Add(insert);
        await batch.ExecuteNonQueryAsync(ct);
    }

    private static void Add(NpgsqlBatchCommand command, Array values, NpgsqlDbType type) =>
        command.Parameters.Add(new NpgsqlParameter { Value = values, NpgsqlDbType = NpgsqlDbType.Array | type });
}
