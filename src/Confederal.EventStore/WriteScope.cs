using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// One transaction that every write of an <see cref="EventLog"/> made on this async flow joins until the scope ends:
/// appends, <see cref="EventLog.TransactAsync{T}"/> work, bulk appends and <see cref="EventLog.ExecuteAsync"/> batches
/// then commit together with the caller's own rows in <see cref="CommitAsync"/>, or not at all (disposing without
/// committing rolls everything back). It is how a request's effects and the record of its answer become one fact.
/// Each write runs under a savepoint, so a failed one (a version conflict, a duplicate) is undone alone and leaves the
/// scope usable, as a lone write's failure leaves nothing behind. Writes in a scope run one at a time.
/// </summary>
public sealed class WriteScope : IAsyncDisposable
{
    private static readonly AsyncLocal<WriteScope?> Ambient = new();
    private readonly EventLog _log;
    private NpgsqlConnection? _connection;
    private NpgsqlTransaction? _transaction;
    private int _savepoints;
    private bool _ended;

    private WriteScope(EventLog log) => _log = log;

    /// <summary>Starts a scope for the writes that follow on the calling flow. Call it where those writes are awaited
    /// (not inside a helper that returns before them): the scope flows down to callees, never back up to callers.</summary>
    public static WriteScope Enter(EventLog log)
    {
        var scope = new WriteScope(log);
        Ambient.Value = scope;
        return scope;
    }

    /// <summary>Until the returned value is disposed, writes on the calling flow commit on their own, whether the open scope
    /// (if any) commits or not: for a consequence of what was recorded before the scope, which must not be lost with it.
    /// Call it where those writes are awaited, as <see cref="Enter"/>.</summary>
    public static IDisposable Outside()
    {
        var outer = Ambient.Value;
        Ambient.Value = null;
        return new Restore(outer);
    }

    private sealed class Restore(WriteScope? outer) : IDisposable
    {
        public void Dispose() => Ambient.Value = outer;
    }

    /// <summary>The scope a write on <paramref name="log"/> joins. A write on another database's log while a scope is
    /// open would commit alone, outside the one fact the scope makes: refused, as the bug it would be.</summary>
    internal static WriteScope? Current(EventLog log) => Ambient.Value switch
    {
        { _ended: false } scope when scope._log == log => scope,
        { _ended: false } scope => throw new InvalidOperationException(
            $"A write on database {log.DatabaseId} while a write scope is open on database {scope._log.DatabaseId}: a scope's writes are one database's."),
        _ => null,
    };

    /// <summary>The scope's transaction, begun on first use; for the caller's own reads and writes.</summary>
    public async Task<NpgsqlTransaction> TransactionAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_ended, this);
        if (_transaction is null)
        {
            _connection = await _log.DataSource.OpenConnectionAsync(ct);
            _transaction = await _connection.BeginTransactionAsync(ct);
        }

        return _transaction;
    }

    /// <summary>Commits every write made in the scope.</summary>
    public async Task CommitAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_ended, this);
        _ended = true;
        if (_transaction is not null)
        {
            WriteOutcome.CommitSending();
            await _transaction.CommitAsync(ct);
        }
    }

    /// <summary>Ends the scope; without <see cref="CommitAsync"/>, nothing written in it is recorded.</summary>
    public ValueTask DisposeAsync()
    {
        _ended = true;
        if (Ambient.Value == this)
        {
            Ambient.Value = null;
        }

        return CloseAsync();
    }

    /// <summary>Runs <paramref name="work"/> in the scope's transaction under a savepoint: undone alone if it throws.</summary>
    internal async Task<T> SavepointAsync<T>(Func<NpgsqlTransaction, Task<T>> work, CancellationToken ct)
    {
        var savepoint = await SaveAsync(ct);
        try
        {
            var result = await work(savepoint.Transaction);
            await savepoint.Transaction.ReleaseAsync(savepoint.Name, ct);
            return result;
        }
        catch
        {
            await savepoint.RollbackAsync();
            throw;
        }
    }

    /// <summary>A savepoint in the scope's transaction, for a write that spans several calls (a bulk append).</summary>
    internal async Task<Savepoint> SaveAsync(CancellationToken ct)
    {
        var transaction = await TransactionAsync(ct);
        var name = $"write_{++_savepoints}";
        await transaction.SaveAsync(name, ct);
        return new Savepoint(transaction, name);
    }

    private async ValueTask CloseAsync()
    {
        if (_transaction is not null)
        {
            await _transaction.DisposeAsync();
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }
    }

    internal sealed record Savepoint(NpgsqlTransaction Transaction, string Name)
    {
        /// <summary>Undoes what was written since the savepoint. A broken connection has nothing left to undo: the
        /// scope's transaction is lost with it, and its commit will fail.</summary>
        public async Task RollbackAsync()
        {
            try
            {
                if (Transaction.Connection is { State: System.Data.ConnectionState.Open })
                {
                    await Transaction.RollbackAsync(Name, CancellationToken.None);
                }
            }
            catch (Exception e) when (e is NpgsqlException or ObjectDisposedException)
            {
                // Npgsql disposes a transaction whose connection broke; asking for its connection then throws, and
                // that must not hide the failure being handled (a 503 would become a 500).
            }
        }
    }
}
