using System.Data;
using System.Runtime.CompilerServices;
using JasperFx.Events;
using Marten;
using Marten.Exceptions;
using Marten.Services;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// Our thin layer over Marten's event store: appends at an expected version (each event with its authentication code),
/// the reads our decisions and audits need, and one transaction for several writes (<see cref="WriteScope"/>,
/// <see cref="TransactAsync{T}"/>). Marten stores, versions, numbers and reads the events. One log per database of the
/// store: its sessions are those of the database's Marten tenant.
/// </summary>
public sealed class EventLog(IDocumentStore store, LedgerDatabase database, EventTypes types, EventAuthenticator? authenticator = null)
{
    private const int MaxRetriesForAnyVersion = 10;

    /// <summary>Marten's events table.</summary>
    public const string Table = $"{MartenStore.Schema}.mt_events";

    /// <summary>The columns <see cref="StoredEvent.Read"/> reads, of <see cref="Table"/> under the alias <c>e</c>.</summary>
    public const string StoredColumns =
        "e.seq_id, e.stream_id, e.version, e.id, e.type, e.data::text, e.correlation_id, e.causation_id, e.user_name, e.timestamp, e.headers ->> 'mac', e.mt_dotnet_type";

    /// <summary>How many columns <see cref="StoredColumns"/> has: a query's own columns after them start at this ordinal.</summary>
    public const int StoredColumnCount = 12;

    public EventTypes Types { get; } = types;

    /// <summary>Where this log is read and written: its database, or, for <see cref="OnStandby"/>, a standby of it.</summary>
    public NpgsqlDataSource DataSource { get; private init; } = database.DataSource;

    /// <summary>Whether this log is read on a standby (<see cref="OnStandby"/>): Marten's sessions then run on the standby's
    /// connections, not on the tenant's own data source.</summary>
    private bool IsOnStandby => !ReferenceEquals(DataSource, database.DataSource);

    /// <summary>The database (Marten's tenant) this log is kept in.</summary>
    public string DatabaseId { get; } = database.Id;

    public IDocumentStore Store { get; } = store;

    /// <summary>Computes each appended event's authentication code; without one, events are stored without a code.</summary>
    public EventAuthenticator? Authenticator { get; } = authenticator;

    /// <summary>This log as a streaming standby of its database has replayed it, read through <paramref name="standby"/> (a
    /// data source on the standby): every read, Marten's included, reflects the standby's replay, and the standby refuses
    /// writes. Itself when <paramref name="standby"/> is its own data source.</summary>
    public EventLog OnStandby(NpgsqlDataSource standby) =>
        ReferenceEquals(standby, DataSource) ? this : new(Store, database, Types, Authenticator) { DataSource = standby };

    /// <summary>A Marten query session of this log's tenant, on its own data source or, on a standby, in a read-only
    /// transaction on a connection of the standby's (Marten's sessions otherwise open the tenant's own data source, and it
    /// takes a given connection only with its transaction).</summary>
    private async ValueTask<ReadSession> QuerySessionAsync(CancellationToken ct)
    {
        if (!IsOnStandby)
        {
            return new ReadSession(Store.QuerySession(DatabaseId), null);
        }

        var connection = await DataSource.OpenConnectionAsync(ct);
        var transaction = await connection.BeginTransactionAsync(ct);
        return new ReadSession(Store.QuerySession(In(SessionOptions.ForTransaction(transaction))), transaction);
    }

    /// <summary>A query session, and the standby transaction it reads in (Marten neither ends nor closes what it was
    /// given: disposing it rolls the transaction back and returns the connection).</summary>
    private readonly record struct ReadSession(IQuerySession Session, NpgsqlTransaction? Transaction) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Session.DisposeAsync();
            if (Transaction is not null)
            {
                var connection = Transaction.Connection!;
                await Transaction.DisposeAsync();
                await connection.DisposeAsync();
            }
        }
    }

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

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await TransactAsync(tx => AppendAsync(tx, streamId, expected, events, metadata, ct), ct);
            }
            catch (ConcurrencyException) when (expected.IsAny && attempt < MaxRetriesForAnyVersion)
            {
                // another append came between reading the head and appending after it
            }
        }
    }

    /// <summary>Appends within the caller's transaction, so that appends to several streams (and the caller's own
    /// writes) commit together or not at all. A version conflict aborts the transaction.</summary>
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
        // An authentication code covers the version, so it must be known before the append.
        var version = expected.IsAny ? await StreamVersionAsync(transaction, streamId, ct) : expected.Value;
        await using var session = Store.LightweightSession(In(SessionOptions.ForTransaction(transaction)));
        session.CorrelationId = metadata.CorrelationId;
        session.CausationId = metadata.CausationId;
        session.LastModifiedBy = metadata.Actor;
        // Marten's expected version is the stream's version after the append.
        var action = session.Events.Append(streamId, version + events.Count, events);
        var ids = new Guid[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            var e = action.Events[i];
            e.Id = ids[i] = Guid.CreateVersion7();
            if (Authenticator is { } authenticator)
            {
                var code = authenticator.Compute(
                    streamId, version + i + 1, e.Id, Types.NameOf(events[i].GetType()), Types.SerializeToString(events[i]), metadata);
                e.SetHeader(MartenStore.CodeHeader, Convert.ToBase64String(code));
            }
        }

        try
        {
            await session.SaveChangesAsync(ct);
        }
        catch (Exception e) when (IsVersionConflict(e))
        {
            throw new ConcurrencyException(streamId, expected, await StreamVersionAsync(streamId, ct));
        }

        return new AppendResult(version + events.Count, ids);
    }

    private SessionOptions In(SessionOptions options)
    {
        options.TenantId = DatabaseId;
        return options;
    }

    /// <summary>Marten's word for a stream that moved: the expected version did not hold, or two appends raced to the same
    /// new stream or version and the database's unique keys refused the second.</summary>
    private static bool IsVersionConflict(Exception e) => e switch
    {
        EventStreamUnexpectedMaxEventIdException or JasperFx.Events.ExistingStreamIdCollisionException
            or Marten.Exceptions.ExistingStreamIdCollisionException => true,
        PostgresException { SqlState: PostgresErrorCodes.UniqueViolation } unique =>
            unique.TableName is "mt_streams" or "mt_events",
        _ => e.InnerException is { } inner && IsVersionConflict(inner),
    };

    /// <summary>Runs <paramref name="work"/> in one transaction and commits it (in a <see cref="WriteScope"/>: under a
    /// savepoint of the scope's transaction, committed with the scope). An exception rolls everything back.</summary>
    public async Task<T> TransactAsync<T>(Func<NpgsqlTransaction, Task<T>> work, CancellationToken ct = default)
    {
        if (WriteScope.Current(this) is { } scope)
        {
            return await scope.SavepointAsync(work, ct);
        }

        await using var connection = await DataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var result = await work(tx);
        WriteOutcome.CommitSending();
        await tx.CommitAsync(ct);
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

        await using var connection = await DataSource.OpenConnectionAsync(ct);
        batch.Connection = connection;
        WriteOutcome.CommitSending(); // the batch commits by itself
        await batch.ExecuteNonQueryAsync(ct);
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

    /// <summary>The events of several streams in one query (Marten's raw event query over their keys), each stream's in
    /// version order (missing streams are absent from the result): what a decision that reads more than one aggregate
    /// needs. One statement rather than one per stream: PostgreSQL keeps custom plans for a stream read, planning it anew
    /// on every call, and one plan per stream cost more than the reads themselves.</summary>
    public async Task<IReadOnlyDictionary<string, List<RecordedEvent>>> ReadStreamsAsync(
        IReadOnlyCollection<string> streamIds, CancellationToken ct = default)
    {
        var streams = new Dictionary<string, List<RecordedEvent>>(StringComparer.Ordinal);
        if (streamIds.Count == 0)
        {
            return streams;
        }

        var keys = streamIds.Distinct(StringComparer.Ordinal).ToArray();
        await using var read = await QuerySessionAsync(ct);
        var session = read.Session;
        var query = session.Events.QueryAllRawEvents()
            .Where(e => keys.Contains(e.StreamKey))
            .OrderBy(e => e.StreamKey).ThenBy(e => e.Version);
        await foreach (var e in Readable(query, ct))
        {
            if (!streams.TryGetValue(e.StreamId, out var events))
            {
                streams[e.StreamId] = events = [];
            }

            events.Add(e);
        }

        return streams;
    }

    /// <summary>Starts appending a new stream in bulk, in one transaction; see <see cref="BulkAppend"/>.</summary>
    public Task<BulkAppend> BeginBulkAppendAsync(string streamId, EventMetadata? metadata = null, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamId);
        return BulkAppend.BeginAsync(this, WriteScope.Current(this), streamId, metadata ?? EventMetadata.None, ct);
    }

    /// <summary>The stream's current version: 0 when it does not exist.</summary>
    public async Task<long> StreamVersionAsync(string streamId, CancellationToken ct = default)
    {
        await using var read = await QuerySessionAsync(ct);
        var session = read.Session;
        return (await session.Events.FetchStreamStateAsync(streamId, ct))?.Version ?? 0;
    }

    private async Task<long> StreamVersionAsync(NpgsqlTransaction transaction, string streamId, CancellationToken ct)
    {
        await using var session = Store.QuerySession(In(SessionOptions.ForTransaction(transaction)));
        return (await session.Events.FetchStreamStateAsync(streamId, ct))?.Version ?? 0;
    }

    /// <summary>The events of one stream from <paramref name="fromVersion"/> to <paramref name="toVersion"/> (default:
    /// its end), in version order.</summary>
    public async IAsyncEnumerable<RecordedEvent> ReadStreamAsync(
        string streamId, long fromVersion = 1, long toVersion = long.MaxValue, [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var read = await QuerySessionAsync(ct);
        var session = read.Session;
        IReadOnlyList<IEvent> events;
        try
        {
            events = await session.Events.FetchStreamAsync(
                streamId, version: toVersion == long.MaxValue ? 0 : toVersion, fromVersion: fromVersion, token: ct);
        }
        catch (Marten.Exceptions.EventDeserializationFailureException e)
        {
            throw await UnreadableAsync(e);
        }

        foreach (var e in events)
        {
            yield return RecordedEvent.From(e);
        }
    }

    /// <summary>Every event after <paramref name="afterPosition"/> up to the high-water mark (below which the order is
    /// final), in global order, streamed from the server. <paramref name="limit"/> null reads to the mark.</summary>
    public async IAsyncEnumerable<RecordedEvent> ReadAllAsync(
        long afterPosition, int? limit = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var head = await ReadHeadAsync(ct);
        await using var read = await QuerySessionAsync(ct);
        var session = read.Session;
        var query = session.Events.QueryAllRawEvents()
            .Where(e => e.Sequence > afterPosition && e.Sequence <= head)
            .OrderBy(e => e.Sequence);
        await foreach (var e in Readable(limit is { } l ? query.Take(l) : query, ct))
        {
            yield return e;
        }
    }

    /// <summary>The events of <paramref name="types"/> at positions 1..<paramref name="toPosition"/>, in global order,
    /// streamed (events of other types are passed over on the server): what a replay "as of" a position needs.</summary>
    public async IAsyncEnumerable<RecordedEvent> ReadUpToAsync(
        long toPosition, IReadOnlyCollection<Type> types, [EnumeratorCancellation] CancellationToken ct = default)
    {
        var aliases = types.SelectMany(Types.AliasesOf).ToArray();
        await using var read = await QuerySessionAsync(ct);
        var session = read.Session;
        var query = session.Events.QueryAllRawEvents()
            .Where(e => e.Sequence <= toPosition && aliases.Contains(e.EventTypeName))
            .OrderBy(e => e.Sequence);
        await foreach (var e in Readable(query, ct))
        {
            yield return e;
        }
    }

    /// <summary>Marten could not read the event at a sequence: our error, naming its position and stream.</summary>
    private async Task<EventStoreException> UnreadableAsync(Marten.Exceptions.EventDeserializationFailureException e)
    {
        await using var command = DataSource.CreateCommand($"SELECT stream_id FROM {Table} WHERE seq_id = $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = e.Sequence });
        var stream = await command.ExecuteScalarAsync() as string;
        var reason = (e.InnerException as UnreadableEventException)?.Reason ?? e.InnerException?.Message ?? e.Message;
        return new EventStoreException($"Event at position {e.Sequence} (stream '{stream}') cannot be read: {reason}.", e.Sequence, e);
    }

    private async IAsyncEnumerable<RecordedEvent> Readable(IQueryable<IEvent> query, [EnumeratorCancellation] CancellationToken ct)
    {
        await using var events = query.ToAsyncEnumerable(ct).GetAsyncEnumerator(ct);
        while (true)
        {
            try
            {
                if (!await events.MoveNextAsync())
                {
                    yield break;
                }
            }
            catch (Marten.Exceptions.EventDeserializationFailureException e)
            {
                throw await UnreadableAsync(e);
            }

            yield return RecordedEvent.From(events.Current);
        }
    }

    /// <summary>The first <paramref name="limit"/> (null: all) events after <paramref name="afterPosition"/> up to
    /// <paramref name="throughPosition"/>, as stored (payloads not deserialized), in global order, streamed.</summary>
    public async IAsyncEnumerable<StoredEvent> ReadStoredAsync(
        long afterPosition, long throughPosition = long.MaxValue, int? limit = null, IReadOnlyList<string>? streamPrefixes = null,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var connection = await DataSource.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand($"""
            SELECT {StoredColumns} FROM {Table} e
            WHERE e.seq_id > $1 AND e.seq_id <= $2 AND ($4::text[] IS NULL OR e.stream_id LIKE ANY($4))
            ORDER BY e.seq_id LIMIT $3
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = afterPosition });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = throughPosition });
        command.Parameters.Add(new NpgsqlParameter { Value = limit is { } l ? l : DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter
        {
            Value = streamPrefixes is null ? DBNull.Value : streamPrefixes.Select(Like).ToArray(),
            NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text,
        });
        await using var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            yield return StoredEvent.Read(reader);
        }
    }

    private static string Like(string prefix) =>
        prefix.Replace(@"\", @"\\", StringComparison.Ordinal).Replace("%", @"\%", StringComparison.Ordinal).Replace("_", @"\_", StringComparison.Ordinal) + "%";

    /// <summary>The events of one stream at versions <paramref name="fromVersion"/> to <paramref name="toVersion"/>, as
    /// stored, in version order.</summary>
    public async Task<List<StoredEvent>> ReadStoredStreamAsync(string streamId, long fromVersion, long toVersion, CancellationToken ct = default)
    {
        await using var command = DataSource.CreateCommand(
            $"SELECT {StoredColumns} FROM {Table} e WHERE e.stream_id = $1 AND e.version BETWEEN $2 AND $3 ORDER BY e.version");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = fromVersion });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = toVersion });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var events = new List<StoredEvent>();
        while (await reader.ReadAsync(ct))
        {
            events.Add(StoredEvent.Read(reader));
        }

        return events;
    }

    /// <summary>The head of the global log: Marten's high-water mark, up to which every event is committed (or its
    /// number was never used), so that no event can still appear at or below it.</summary>
    public async Task<long> ReadHeadAsync(CancellationToken ct = default)
    {
        await using var command = DataSource.CreateCommand(HeadSql);
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Selects the head (<see cref="ReadHeadAsync"/>), for queries of its own.</summary>
    public const string HeadSql =
        $"SELECT coalesce((SELECT last_seq_id FROM {MartenStore.Schema}.mt_event_progression WHERE name = 'HighWaterMark'), 0)";

    /// <summary>The highest position of a committed event: what a reader must wait for to see everything appended so
    /// far (the high-water mark reaches it once every transaction before has ended).</summary>
    public async Task<long> ReadLastCommittedAsync(CancellationToken ct = default)
    {
        await using var command = DataSource.CreateCommand($"SELECT coalesce(max(seq_id), 0) FROM {Table}");
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }
}
