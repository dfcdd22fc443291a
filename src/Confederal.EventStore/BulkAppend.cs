using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// Appends a large number of events to one new stream inside one transaction: all of them are recorded by
/// <see cref="CommitAsync"/>, or none (disposing without committing rolls back). Events are sent to the server as they
/// are written, <see cref="ChunkSize"/> at a time through Marten's Quick append, so memory holds one chunk at most.
/// </summary>
public sealed class BulkAppend : IAsyncDisposable
{
    /// <summary>Events per Marten append: each is one round trip.</summary>
    public const int ChunkSize = 5_000;

    private readonly EventLog _log;
    private readonly NpgsqlTransaction _transaction;
    private readonly WriteScope.Savepoint? _savepoint;
    private readonly string _streamId;
    private readonly EventMetadata _metadata;
    private readonly List<object> _chunk = new(ChunkSize);
    private long _appended;
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

        // The first chunk starts the stream, which must not exist: a second import under the same stream id collides.
        await _log.AppendAsync(_transaction, _streamId, ExpectedVersion.Exactly(_appended), _chunk, _metadata, ct);
        _appended += _chunk.Count;
        _chunk.Clear();
    }
}
