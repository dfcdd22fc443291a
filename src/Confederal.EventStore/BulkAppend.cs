using Npgsql;
using NpgsqlTypes;

namespace Confederal.EventStore;

/// <summary>
/// Appends a large number of events to one new stream inside one transaction: all of them are recorded by
/// <see cref="CommitAsync"/>, or none (disposing without committing rolls back). Events are sent to the server as they
/// are written, <see cref="ChunkSize"/> at a time, so memory holds one chunk at most.
/// </summary>
/// <remarks>
/// This is the one place that writes Marten's tables itself, with a binary COPY of the rows Marten's Quick append would
/// write (its stream row first, then the events numbered from Marten's sequence, then the stream's version). Marten's own
/// fastest path, its Quick append function, inserts row by row (an import ran at 0.19× a raw COPY), and its COPY import
/// (<c>BulkInsertEventStreamAsync</c>) commits on a connection of its own, so an import could not commit with the
/// record of its answer. The tests read what this writes through Marten's reads and append after it through Marten.
/// </remarks>
public sealed class BulkAppend : IAsyncDisposable
{
    /// <summary>Events per COPY: each chunk also takes its positions from Marten's sequence in one round trip.</summary>
    public const int ChunkSize = 5_000;

    private const string Columns =
        "seq_id, id, stream_id, version, data, type, timestamp, mt_dotnet_type, correlation_id, causation_id, user_name, headers, tenant_id";

    private readonly EventLog _log;
    private readonly NpgsqlTransaction _transaction;
    private readonly WriteScope.Savepoint? _savepoint;
    private readonly string _streamId;
    private readonly EventMetadata _metadata;
    private readonly List<object> _chunk = new(ChunkSize);
    private long _appended;
    private DateTimeOffset _recordedAt;
    private bool _done;
    private bool _committed;

    private BulkAppend(EventLog log, NpgsqlTransaction transaction, WriteScope.Savepoint? savepoint, string streamId, EventMetadata metadata)
    {
        _log = log;
        _transaction = transaction;
        _savepoint = savepoint;
        _streamId = streamId;
        _metadata = metadata;
    }

    /// <summary>Events written so far; also the version of the last one.</summary>
    public long Count => _appended + _chunk.Count;

    /// <summary>Begins in a transaction of its own, or under a savepoint of the ambient <paramref name="scope"/>, which
    /// then commits it with the rest of its writes.</summary>
    internal static async Task<BulkAppend> BeginAsync(EventLog log, WriteScope? scope, string streamId, EventMetadata metadata, CancellationToken ct)
    {
        if (scope is not null)
        {
            var savepoint = await scope.SaveAsync(ct);
            return new BulkAppend(log, savepoint.Transaction, savepoint, streamId, metadata);
        }

        var connection = await log.DataSource.OpenConnectionAsync(ct);
        try
        {
            return new BulkAppend(log, await connection.BeginTransactionAsync(ct), null, streamId, metadata);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <exception cref="ConcurrencyException">The stream already existed.</exception>
    public async ValueTask WriteAsync(object @event, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        _chunk.Add(@event);
        if (_chunk.Count == ChunkSize)
        {
            await FlushAsync(ct);
        }
    }

    /// <summary>Records every written event atomically (in a scope: when the scope commits).</summary>
    /// <exception cref="ConcurrencyException">The stream already existed.</exception>
    public async Task<long> CommitAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        if (Count == 0)
        {
            throw new InvalidOperationException("A bulk append needs at least one event.");
        }

        await FlushAsync(ct);
        await using (var version = new NpgsqlCommand(
            $"UPDATE {MartenStore.Schema}.mt_streams SET version = $2, timestamp = $3 WHERE id = $1", _transaction.Connection, _transaction))
        {
            version.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _streamId });
            version.Parameters.Add(new NpgsqlParameter<long> { TypedValue = _appended });
            version.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = _recordedAt });
            await version.ExecuteNonQueryAsync(ct);
        }

        _done = true;
        if (_savepoint is null)
        {
            WriteOutcome.CommitSending();
            await _transaction.CommitAsync(ct);
        }
        else
        {
            await _transaction.ReleaseAsync(_savepoint.Name, ct);
        }

        _committed = true;
        return _appended;
    }

    public async ValueTask DisposeAsync()
    {
        _done = true;
        if (_savepoint is not null)
        {
            if (!_committed)
            {
                await _savepoint.RollbackAsync();
            }

            return;
        }

        var connection = _transaction.Connection;
        await _transaction.DisposeAsync();
        if (connection is not null)
        {
            await connection.DisposeAsync();
        }
    }

    private async Task FlushAsync(CancellationToken ct)
    {
        if (_chunk.Count == 0)
        {
            return;
        }

        var connection = _transaction.Connection!;
        if (_appended == 0)
        {
            await StartStreamAsync(connection, ct);
        }

        var positions = await TakePositionsAsync(connection, _chunk.Count, ct);
        await using (var copy = await connection.BeginBinaryImportAsync($"COPY {EventLog.Table} ({Columns}) FROM STDIN (FORMAT BINARY)", ct))
        {
            for (var i = 0; i < _chunk.Count; i++)
            {
                var @event = _chunk[i];
                var type = @event.GetType();
                var name = _log.Types.NameOf(type);
                var json = _log.Types.SerializeToString(@event);
                var version = _appended + i + 1;
                var id = Guid.CreateVersion7();
                await copy.StartRowAsync(ct);
                await copy.WriteAsync(positions[i], NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(id, NpgsqlDbType.Uuid, ct);
                await copy.WriteAsync(_streamId, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(version, NpgsqlDbType.Bigint, ct);
                await copy.WriteAsync(json, NpgsqlDbType.Jsonb, ct);
                await copy.WriteAsync(name.Alias, NpgsqlDbType.Varchar, ct);
                await copy.WriteAsync(_recordedAt, NpgsqlDbType.TimestampTz, ct);
                await copy.WriteAsync(_log.Types.RegisteredClrNameOf(type), NpgsqlDbType.Varchar, ct);
                await WriteNullableAsync(copy, _metadata.CorrelationId, ct);
                await WriteNullableAsync(copy, _metadata.CausationId, ct);
                await WriteNullableAsync(copy, _metadata.Actor, ct);
                if (_log.Authenticator is { } authenticator)
                {
                    var code = Convert.ToBase64String(authenticator.Compute(_streamId, version, id, name, json, _metadata));
                    await copy.WriteAsync($$"""{"{{MartenStore.CodeHeader}}": "{{code}}"}""", NpgsqlDbType.Jsonb, ct);
                }
                else
                {
                    await copy.WriteNullAsync(ct);
                }

                await copy.WriteAsync(_log.DatabaseId, NpgsqlDbType.Varchar, ct);
            }

            await copy.CompleteAsync(ct);
        }

        _appended += _chunk.Count;
        _chunk.Clear();
    }

    /// <summary>The stream's row, as Marten starts a stream: a stream that exists already (or that another import is
    /// starting) makes the import a conflict.</summary>
    private async Task StartStreamAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var start = new NpgsqlCommand(
            $"INSERT INTO {MartenStore.Schema}.mt_streams (id, version, timestamp, created, tenant_id) VALUES ($1, 0, now(), now(), $2) RETURNING now()",
            connection, _transaction);
        start.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _streamId });
        start.Parameters.Add(new NpgsqlParameter<string> { TypedValue = _log.DatabaseId });
        try
        {
            await using var reader = await start.ExecuteReaderAsync(ct);
            await reader.ReadAsync(ct);
            _recordedAt = reader.GetFieldValue<DateTimeOffset>(0);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ConcurrencyException(_streamId, ExpectedVersion.NoStream, await _log.StreamVersionAsync(_streamId, CancellationToken.None));
        }
    }

    /// <summary>The chunk's positions, in order, from Marten's sequence (numbers taken by an import that rolls back are
    /// holes, as Marten's own appends leave them).</summary>
    private async Task<long[]> TakePositionsAsync(NpgsqlConnection connection, int count, CancellationToken ct)
    {
        await using var take = new NpgsqlCommand(
            $"SELECT array_agg(nextval('{MartenStore.Schema}.mt_events_sequence')) FROM generate_series(1, $1)", connection, _transaction);
        take.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        var positions = (long[])(await take.ExecuteScalarAsync(ct))!;
        Array.Sort(positions);
        return positions;
    }

    private static Task WriteNullableAsync(NpgsqlBinaryImporter copy, string? value, CancellationToken ct) =>
        value is null ? copy.WriteNullAsync(ct) : copy.WriteAsync(value, NpgsqlDbType.Varchar, ct);
}
