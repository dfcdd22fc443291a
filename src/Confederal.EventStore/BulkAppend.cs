using Npgsql;
using NpgsqlTypes;

namespace Confederal.EventStore;

/// <summary>
/// Appends a large number of events to one new stream with binary COPY, inside one transaction: all of them are
/// recorded by <see cref="CommitAsync"/>, or none (disposing without committing cancels the COPY and rolls back).
/// Events are streamed to the server as they are written; nothing is held in memory.
/// </summary>
public sealed class BulkAppend : IAsyncDisposable
{
    private const string CopySql =
        "COPY es.events (stream_id, version, event_id, type, type_version, data, correlation_id, causation_id, actor, mac) FROM STDIN (FORMAT BINARY)";

    private readonly EventLog _log;
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private readonly WriteScope.Savepoint? _savepoint;
    private readonly NpgsqlBinaryImporter _importer;
    private readonly string _streamId;
    private readonly EventMetadata _metadata;
    private bool _done;
    private bool _committed;

    private BulkAppend(EventLog log, NpgsqlTransaction transaction, WriteScope.Savepoint? savepoint, NpgsqlBinaryImporter importer,
        string streamId, EventMetadata metadata)
    {
        _log = log;
        _connection = transaction.Connection!;
        _transaction = transaction;
        _savepoint = savepoint;
        _importer = importer;
        _streamId = streamId;
        _metadata = metadata;
    }

    /// <summary>Events written so far; also the version of the last one.</summary>
    public long Count { get; private set; }

    /// <summary>Begins the COPY in a transaction of its own, or under a savepoint of the ambient <paramref name="scope"/>,
    /// which then commits it with the rest of its writes.</summary>
    internal static async Task<BulkAppend> BeginAsync(EventLog log, WriteScope? scope, string streamId, EventMetadata metadata, CancellationToken ct)
    {
        if (scope is not null)
        {
            var savepoint = await scope.SaveAsync(ct);
            try
            {
                var importer = await savepoint.Transaction.Connection!.BeginBinaryImportAsync(CopySql, ct);
                return new BulkAppend(log, savepoint.Transaction, savepoint, importer, streamId, metadata);
            }
            catch
            {
                await savepoint.RollbackAsync();
                throw;
            }
        }

        var connection = await log.DataSource.OpenConnectionAsync(ct);
        try
        {
            var transaction = await connection.BeginTransactionAsync(ct);
            var importer = await connection.BeginBinaryImportAsync(CopySql, ct);
            return new BulkAppend(log, transaction, null, importer, streamId, metadata);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async ValueTask WriteAsync(object @event, CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_done, this);
        var name = _log.Types.NameOf(@event.GetType());
        Count++;
        await _importer.StartRowAsync(ct);
        await _importer.WriteAsync(_streamId, NpgsqlDbType.Text, ct);
        await _importer.WriteAsync(Count, NpgsqlDbType.Bigint, ct);
        var id = Guid.CreateVersion7();
        var json = _log.Types.SerializeToString(@event);
        await _importer.WriteAsync(id, NpgsqlDbType.Uuid, ct);
        await _importer.WriteAsync(name.Name, NpgsqlDbType.Text, ct);
        await _importer.WriteAsync(name.Version, NpgsqlDbType.Integer, ct);
        await _importer.WriteAsync(json, NpgsqlDbType.Jsonb, ct);
        await WriteNullableAsync(_metadata.CorrelationId, ct);
        await WriteNullableAsync(_metadata.CausationId, ct);
        await WriteNullableAsync(_metadata.Actor, ct);
        if (_log.Authenticator is { } authenticator)
        {
            await _importer.WriteAsync(authenticator.Compute(_streamId, Count, id, name, json, _metadata), NpgsqlDbType.Bytea, ct);
        }
        else
        {
            await _importer.WriteNullAsync(ct);
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

        _done = true;
        try
        {
            await _importer.CompleteAsync(ct);
            await _importer.DisposeAsync();
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
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ConcurrencyException(_streamId, ExpectedVersion.NoStream, Count);
        }
        finally
        {
            if (_savepoint is null)
            {
                _log.Sequencer.Notify();
            }
        }

        return Count;
    }

    public async ValueTask DisposeAsync()
    {
        _done = true;
        await _importer.DisposeAsync(); // cancels the COPY unless it completed
        if (_savepoint is not null)
        {
            if (!_committed)
            {
                await _savepoint.RollbackAsync();
            }

            return;
        }

        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private ValueTask WriteNullableAsync(string? value, CancellationToken ct) =>
        value is null ? new ValueTask(_importer.WriteNullAsync(ct)) : new ValueTask(_importer.WriteAsync(value, NpgsqlDbType.Text, ct));
}
