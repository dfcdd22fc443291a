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
    private readonly NpgsqlBinaryImporter _importer;
    private readonly string _streamId;
    private readonly EventMetadata _metadata;
    private bool _done;

    private BulkAppend(EventLog log, NpgsqlConnection connection, NpgsqlTransaction transaction, NpgsqlBinaryImporter importer,
        string streamId, EventMetadata metadata)
    {
        _log = log;
        _connection = connection;
        _transaction = transaction;
        _importer = importer;
        _streamId = streamId;
        _metadata = metadata;
    }

    /// <summary>Events written so far; also the version of the last one.</summary>
    public long Count { get; private set; }

    internal static async Task<BulkAppend> BeginAsync(EventLog log, NpgsqlDataSource dataSource, string streamId, EventMetadata metadata, CancellationToken ct)
    {
        var connection = await dataSource.OpenConnectionAsync(ct);
        try
        {
            var transaction = await connection.BeginTransactionAsync(ct);
            var importer = await connection.BeginBinaryImportAsync(CopySql, ct);
            return new BulkAppend(log, connection, transaction, importer, streamId, metadata);
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

    /// <summary>Records every written event atomically.</summary>
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
            await _transaction.CommitAsync(ct);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new ConcurrencyException(_streamId, ExpectedVersion.NoStream, Count);
        }
        finally
        {
            _log.Sequencer.Notify();
        }

        return Count;
    }

    public async ValueTask DisposeAsync()
    {
        _done = true;
        await _importer.DisposeAsync(); // cancels the COPY unless it completed
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private ValueTask WriteNullableAsync(string? value, CancellationToken ct) =>
        value is null ? new ValueTask(_importer.WriteNullAsync(ct)) : new ValueTask(_importer.WriteAsync(value, NpgsqlDbType.Text, ct));
}
