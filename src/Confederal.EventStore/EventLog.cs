using System.Data;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace Confederal.EventStore;

/// <summary>
/// Appends events to streams and reads them back, by stream or in the global order.
/// Appends are one statement (one round trip, one transaction) unless inline projections must run with them.
/// </summary>
public sealed class EventLog
{
    private const string ConstraintStreamVersion = "events_stream_version";
    private const int MaxRetriesForAnyVersion = 10;

    // The stream's head is read and checked in the statement that inserts, so a stream behind the expected
    // version fails as surely as one ahead of it; two racing appends collide on (stream_id, version).
    private const string AppendSql = """
        WITH head AS (SELECT coalesce(max(version), 0) AS v FROM es.events WHERE stream_id = $1),
        inserted AS (
            INSERT INTO es.events (stream_id, version, event_id, type, type_version, data, correlation_id, causation_id, actor, mac)
            SELECT $1, head.v + e.n, e.id, e.type, e.type_version, e.data, $7, $8, $9, $10[e.n]
            FROM head, unnest($3::uuid[], $4::text[], $5::int[], $6::jsonb[]) WITH ORDINALITY AS e(id, type, type_version, data, n)
            WHERE $2 < 0 OR head.v = $2
            RETURNING version, recorded_at)
        SELECT (SELECT max(version) FROM inserted), (SELECT v FROM head), (SELECT max(recorded_at) FROM inserted)
        """;

    private const string SelectColumns =
        "position, stream_id, version, event_id, type, type_version, data, correlation_id, causation_id, actor, recorded_at";

    private readonly NpgsqlDataSource _dataSource;
    private readonly List<IInlineProjection> _inline;

    public EventLog(
        NpgsqlDataSource dataSource,
        EventTypes types,
        IEnumerable<IInlineProjection>? inlineProjections = null,
        ILoggerFactory? loggerFactory = null,
        EventAuthenticator? authenticator = null)
    {
        _dataSource = dataSource;
        Types = types;
        Authenticator = authenticator;
        _inline = inlineProjections?.ToList() ?? [];
        Sequencer = new Sequencer(dataSource, (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger<Sequencer>());
    }

    public EventTypes Types { get; }

    /// <summary>Numbers committed events in the global order; run it with <see cref="Sequencer.RunAsync"/>.</summary>
    public Sequencer Sequencer { get; }

    public NpgsqlDataSource DataSource => _dataSource;

    /// <summary>Computes each appended event's authentication code; without one, events are stored without a code.</summary>
    public EventAuthenticator? Authenticator { get; }

    /// <summary>Appends <paramref name="events"/> to <paramref name="streamId"/> atomically: all of them or none.</summary>
    /// <exception cref="ConcurrencyException">The stream is not at <paramref name="expected"/>.</exception>
    public async Task<AppendResult> AppendAsync(
        string streamId,
        ExpectedVersion expected,
        IReadOnlyList<object> events,
        EventMetadata? metadata = null,
        CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        if (events.Count == 0)
        {
            throw new ArgumentException("An append needs at least one event.", nameof(events));
        }

        metadata ??= EventMetadata.None;
        if (WriteScope.Current(this) is { } scope)
        {
            return await AppendInScopeAsync(scope, streamId, expected, events, metadata, ct);
        }

        try
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    // An authentication code covers the version, so it must be known before the insert.
                    var exact = expected.IsAny && Authenticator is not null
                        ? ExpectedVersion.Exactly(await StreamVersionAsync(streamId, ct))
                        : expected;
                    var rows = Serialize(streamId, exact, events, metadata);
                    await using var connection = await _dataSource.OpenConnectionAsync(ct);
                    await using var tx = _inline.Count > 0 ? await connection.BeginTransactionAsync(ct) : null;
                    if (tx is null)
                    {
                        WriteOutcome.CommitSending(); // the insert commits by itself
                    }

                    var version = await InsertAsync(connection, tx, streamId, exact, events, metadata, rows, ct);
                    if (tx is not null)
                    {
                        WriteOutcome.CommitSending();
                        await tx.CommitAsync(ct);
                    }

                    return new AppendResult(version, rows.Ids);
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation
                                                  && e.ConstraintName == ConstraintStreamVersion)
                {
                    if (!expected.IsAny || attempt == MaxRetriesForAnyVersion)
                    {
                        throw new ConcurrencyException(streamId, expected, await StreamVersionAsync(streamId, ct));
                    }
                }
            }
        }
        finally
        {
            Sequencer.Notify();
        }
    }

    private async Task<AppendResult> AppendInScopeAsync(
        WriteScope scope, string streamId, ExpectedVersion expected, IReadOnlyList<object> events, EventMetadata metadata, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await scope.SavepointAsync(tx => AppendAsync(tx, streamId, expected, events, metadata, ct), ct);
            }
            catch (ConcurrencyException) when (expected.IsAny && attempt < MaxRetriesForAnyVersion)
            {
            }
        }
    }

    /// <summary>Appends within the caller's transaction, so that appends to several streams (and the caller's own
    /// writes) commit together or not at all. Open the transaction with <see cref="TransactAsync{T}"/>, which tells
    /// the sequencer after the commit. A version conflict aborts the transaction.</summary>
    /// <exception cref="ConcurrencyException">The stream is not at <paramref name="expected"/>.</exception>
    public async Task<AppendResult> AppendAsync(
        NpgsqlTransaction transaction,
        string streamId,
        ExpectedVersion expected,
        IReadOnlyList<object> events,
        EventMetadata? metadata = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        if (events.Count == 0)
        {
            throw new ArgumentException("An append needs at least one event.", nameof(events));
        }

        metadata ??= EventMetadata.None;
        try
        {
            var exact = expected.IsAny && Authenticator is not null
                ? ExpectedVersion.Exactly(await StreamVersionAsync(transaction, streamId, ct))
                : expected;
            var rows = Serialize(streamId, exact, events, metadata);
            var version = await InsertAsync(transaction.Connection!, transaction, streamId, exact, events, metadata, rows, ct);
            return new AppendResult(version, rows.Ids);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == ConstraintStreamVersion)
        {
            throw new ConcurrencyException(streamId, expected, await StreamVersionAsync(streamId, ct));
        }
    }

    /// <summary>Runs <paramref name="work"/> in one transaction and commits it; appends made in it with
    /// <see cref="AppendAsync(NpgsqlTransaction, string, ExpectedVersion, IReadOnlyList{object}, EventMetadata?, CancellationToken)"/>
    /// are numbered after the commit. An exception rolls everything back.</summary>
    public async Task<T> TransactAsync<T>(Func<NpgsqlTransaction, Task<T>> work, CancellationToken ct = default)
    {
        if (WriteScope.Current(this) is { } scope)
        {
            return await scope.SavepointAsync(work, ct);
        }

        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var result = await work(tx);
        WriteOutcome.CommitSending();
        await tx.CommitAsync(ct);
        Sequencer.Notify();
        return result;
    }

    /// <summary>Runs the caller's own batch of writes (rows beside the log, such as a ballot box's) as one transaction,
    /// or within the ambient <see cref="WriteScope"/> when there is one. <paramref name="batch"/> must have no connection.</summary>
    public async Task ExecuteAsync(NpgsqlBatch batch, CancellationToken ct = default)
    {
        if (WriteScope.Current(this) is { } scope)
        {
            await scope.SavepointAsync(async tx =>
            {
                (batch.Connection, batch.Transaction) = (tx.Connection, tx);
                return await batch.ExecuteNonQueryAsync(ct);
            }, ct);
            return;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        batch.Connection = connection;
        WriteOutcome.CommitSending(); // the batch commits by itself
        await batch.ExecuteNonQueryAsync(ct);
    }

    private sealed record Rows(Guid[] Ids, string[] Names, int[] Versions, string[] Payloads, byte[]?[] Codes);

    private Rows Serialize(string streamId, ExpectedVersion expected, IReadOnlyList<object> events, EventMetadata metadata)
    {
        var rows = new Rows(new Guid[events.Count], new string[events.Count], new int[events.Count], new string[events.Count], new byte[events.Count][]);
        for (var i = 0; i < events.Count; i++)
        {
            var name = Types.NameOf(events[i].GetType());
            rows.Ids[i] = Guid.CreateVersion7();
            rows.Names[i] = name.Name;
            rows.Versions[i] = name.Version;
            rows.Payloads[i] = Types.SerializeToString(events[i]);
            rows.Codes[i] = Authenticator?.Compute(streamId, expected.Value + i + 1, rows.Ids[i], name, rows.Payloads[i], metadata);
        }

        return rows;
    }

    private async Task<long> InsertAsync(
        NpgsqlConnection connection, NpgsqlTransaction? tx, string streamId, ExpectedVersion expected, IReadOnlyList<object> events,
        EventMetadata metadata, Rows rows, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(AppendSql, connection, tx)
        {
            Parameters =
            {
                new NpgsqlParameter<string> { TypedValue = streamId },
                new NpgsqlParameter<long> { TypedValue = expected.Value },
                new NpgsqlParameter<Guid[]> { TypedValue = rows.Ids },
                new NpgsqlParameter<string[]> { TypedValue = rows.Names },
                new NpgsqlParameter<int[]> { TypedValue = rows.Versions },
                new NpgsqlParameter<string[]> { TypedValue = rows.Payloads, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Jsonb },
                new NpgsqlParameter { Value = (object?)metadata.CorrelationId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                new NpgsqlParameter { Value = (object?)metadata.CausationId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                new NpgsqlParameter { Value = (object?)metadata.Actor ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                new NpgsqlParameter { Value = rows.Codes, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bytea },
            },
        };

        long newVersion, head;
        DateTimeOffset recordedAt;
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            head = reader.GetInt64(1);
            if (reader.IsDBNull(0))
            {
                throw new ConcurrencyException(streamId, expected, head);
            }

            newVersion = reader.GetInt64(0);
            recordedAt = reader.GetFieldValue<DateTimeOffset>(2);
        }

        if (tx is not null && _inline.Count > 0)
        {
            var recorded = events
                .Select((e, i) => new RecordedEvent(0, streamId, head + i + 1, rows.Ids[i], rows.Names[i], e, metadata, recordedAt))
                .ToList();
            foreach (var projection in _inline)
            {
                await projection.ApplyAsync(connection, streamId, recorded, ct);
            }
        }

        return newVersion;
    }

    /// <summary>Folds a stream into its current state, for a decision: the state (null for an empty stream) and the
    /// version to expect when appending the decision's events.</summary>
    public async Task<(T? State, long Version)> AggregateStreamAsync<T>(
        string streamId, Func<T?, object, T?> apply, CancellationToken ct = default)
        where T : class
    {
        T? state = null;
        long version = 0;
        await foreach (var e in ReadStreamAsync(streamId, ct: ct))
        {
            state = apply(state, e.Data);
            version = e.Version;
        }

        return (state, version);
    }

    /// <summary>The command loop of one aggregate: fold its stream, decide on the state, append what was decided at
    /// the version it was decided on (a concurrent change is a <see cref="ConcurrencyException"/>). An empty decision
    /// (a retry, nothing to change) appends nothing.</summary>
    public async Task<Decision<T>> DecideAsync<T>(
        string streamId, Func<T?, object, T?> apply, Func<T?, IReadOnlyList<object>> decide, EventMetadata? metadata = null,
        CancellationToken ct = default)
        where T : class
    {
        var (state, version) = await AggregateStreamAsync(streamId, apply, ct);
        var decided = decide(state);
        if (decided.Count > 0)
        {
            version = (await AppendAsync(streamId, ExpectedVersion.Exactly(version), decided, metadata, ct)).StreamVersion;
            state = decided.Aggregate(state, apply);
        }

        return new Decision<T>(state, version, decided);
    }

    /// <summary>The events of several streams in one round trip, each stream's in version order (missing streams are
    /// absent from the result): what a decision that reads more than one aggregate needs.</summary>
    public async Task<IReadOnlyDictionary<string, List<RecordedEvent>>> ReadStreamsAsync(
        IReadOnlyCollection<string> streamIds, CancellationToken ct = default)
    {
        var streams = new Dictionary<string, List<RecordedEvent>>(StringComparer.Ordinal);
        await using var command = _dataSource.CreateCommand(
            $"SELECT {SelectColumns} FROM es.events WHERE stream_id = ANY($1) ORDER BY stream_id, version");
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. streamIds] });
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            var e = ReadEvent(reader);
            if (!streams.TryGetValue(e.StreamId, out var list))
            {
                streams[e.StreamId] = list = [];
            }

            list.Add(e);
        }

        return streams;
    }

    /// <summary>Starts appending a new stream in bulk (binary COPY, one transaction); see <see cref="BulkAppend"/>.</summary>
    public Task<BulkAppend> BeginBulkAppendAsync(string streamId, EventMetadata? metadata = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        if (_inline.Count > 0)
        {
            throw new InvalidOperationException("Bulk appends do not run inline projections; use async projections.");
        }

        return BulkAppend.BeginAsync(this, WriteScope.Current(this), streamId, metadata ?? EventMetadata.None, ct);
    }

    private static async Task<long> StreamVersionAsync(NpgsqlTransaction transaction, string streamId, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "SELECT coalesce(max(version), 0) FROM es.events WHERE stream_id = $1", transaction.Connection, transaction);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>The stream's current version: 0 when it does not exist.</summary>
    public async Task<long> StreamVersionAsync(string streamId, CancellationToken ct = default)
    {
        await using var command = _dataSource.CreateCommand("SELECT coalesce(max(version), 0) FROM es.events WHERE stream_id = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>The events of one stream from <paramref name="fromVersion"/> to <paramref name="toVersion"/> (default:
    /// its end), in version order, streamed; includes events the sequencer has not numbered yet (their position is 0).</summary>
    public async IAsyncEnumerable<RecordedEvent> ReadStreamAsync(
        string streamId, long fromVersion = 1, long toVersion = long.MaxValue, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var command = _dataSource.CreateCommand(
            $"SELECT {SelectColumns} FROM es.events WHERE stream_id = $1 AND version >= $2 AND version <= $3 ORDER BY version");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromVersion });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = toVersion });
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            yield return ReadEvent(reader);
        }
    }

    /// <summary>Every numbered event after <paramref name="afterPosition"/>, in global order, streamed from the server
    /// (the whole log is never held in memory). <paramref name="limit"/> null reads to the end.</summary>
    public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(
        long afterPosition, int? limit = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        await foreach (var e in ReadAllAsync(connection, afterPosition, limit, ct))
        {
            yield return e;
        }
    }

    internal async IAsyncEnumerable<RecordedEvent> ReadAllAsync(
        NpgsqlConnection connection, long afterPosition, int? limit, [EnumeratorCancellation] CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {SelectColumns} FROM es.events WHERE position > $1 ORDER BY position LIMIT $2", connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterPosition });
        command.Parameters.Add(new NpgsqlParameter { Value = limit is { } l ? l : DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            yield return ReadEvent(reader);
        }
    }

    /// <summary>Up to <paramref name="limit"/> events of the given types after <paramref name="afterPosition"/>, and the
    /// head of the log as of the same snapshot: a reader that got fewer than the limit has seen every event of its types
    /// up to that head, and can move past the events of other types without reading their payloads.</summary>
    internal async Task<(List<RecordedEvent> Events, long Head)> ReadTypesAsync(
        NpgsqlConnection connection, long afterPosition, int limit, string[] types, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand($"""
            WITH head AS (SELECT coalesce(max(position), 0) AS p FROM es.events WHERE position IS NOT NULL),
            page AS (
                SELECT {SelectColumns} FROM es.events
                WHERE position > $1 AND position <= (SELECT p FROM head) AND type = ANY($3)
                ORDER BY position LIMIT $2)
            SELECT page.*, (SELECT p FROM head) FROM (SELECT 1) AS always LEFT JOIN page ON true ORDER BY page.position
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterPosition });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = types });
        var events = new List<RecordedEvent>(Math.Min(limit, 1024));
        long head = 0;
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            if (!reader.IsDBNull(0))
            {
                events.Add(ReadEvent(reader));
            }

            head = reader.GetInt64(11);
        }

        return (events, head);
    }

    /// <summary>The numbered events after <paramref name="afterPosition"/> up to <paramref name="throughPosition"/>, as stored
    /// (payloads not deserialized), in global order, streamed.</summary>
    public async IAsyncEnumerable<StoredEvent> ReadStoredAsync(
        long afterPosition, long throughPosition = long.MaxValue, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand(
            $"SELECT {SelectColumns}, mac FROM es.events WHERE position > $1 AND position <= $2 ORDER BY position", connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterPosition });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = throughPosition });
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            yield return StoredEvent.Read(reader, withCode: true);
        }
    }

    /// <summary>The highest numbered position: the head of the global log.</summary>
    public async Task<long> ReadHeadAsync(CancellationToken ct = default)
    {
        await using var command = _dataSource.CreateCommand("SELECT coalesce(max(position), 0) FROM es.events");
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    private RecordedEvent ReadEvent(NpgsqlDataReader reader)
    {
        // Columns are read in order: the reader streams them (SequentialAccess).
        var position = reader.IsDBNull(0) ? 0 : reader.GetInt64(0);
        var streamId = reader.GetString(1);
        var version = reader.GetInt64(2);
        var eventId = reader.GetGuid(3);
        var type = reader.GetString(4);
        var typeVersion = reader.GetInt32(5);
        var json = reader.GetString(6);
        var metadata = new EventMetadata(
            reader.IsDBNull(7) ? null : reader.GetString(7),
            reader.IsDBNull(8) ? null : reader.GetString(8),
            reader.IsDBNull(9) ? null : reader.GetString(9));
        var recordedAt = reader.GetFieldValue<DateTimeOffset>(10);
        var data = Types.Deserialize(type, typeVersion, json, position, streamId);
        return new RecordedEvent(position, streamId, version, eventId, type, data, metadata, recordedAt);
    }
}
