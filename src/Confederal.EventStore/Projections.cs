using System.Collections.Concurrent;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>Runs inside the append's transaction, after the events are inserted: for uniqueness rules and
/// strongly consistent reads. Throwing rolls the whole append back.</summary>
public interface IInlineProjection
{
    Task ApplyAsync(NpgsqlConnection connection, string streamId, IReadOnlyList<RecordedEvent> events, CancellationToken ct);
}

/// <summary>A read model kept by the <see cref="ProjectionDaemon"/>, eventually consistent with the log.</summary>
public interface IProjection
{
    /// <summary>Stable name: the key of the stored checkpoint.</summary>
    string Name { get; }

    /// <summary>Empties the read model before a rebuild. Runs in the daemon's transaction.</summary>
    Task ResetAsync(NpgsqlConnection connection, CancellationToken ct);

    /// <summary>Applies a page of events in global order. Runs in the daemon's transaction, which stores the
    /// checkpoint too: a page is applied entirely and exactly once, or not at all.</summary>
    Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct);

    /// <summary>Events per page, when this projection wants another size than the daemon's
    /// <see cref="ProjectionDaemon.BatchSize"/> (larger pages amortize a projection's fixed cost per page).</summary>
    int? PageSize => null;

    /// <summary>The event types this projection reads (null: all). The daemon then reads only those, and moves the
    /// checkpoint past the others without reading their payloads.</summary>
    IReadOnlyCollection<Type>? EventsRead => null;
}

/// <summary>
/// Keeps async projections up to date: a stored checkpoint per projection, woken by the in-process sequencer and by
/// LISTEN/NOTIFY from other processes, resuming from the checkpoint after a restart, rebuildable from position 0.
/// </summary>
public sealed class ProjectionDaemon
{
    private readonly EventLog _store;
    private readonly IReadOnlyList<IProjection> _projections;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, long> _checkpoints = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Channel<bool>> _wake;
    private TaskCompletionSource _progress = NewProgress();

    public ProjectionDaemon(EventLog store, IEnumerable<IProjection> projections, ILogger<ProjectionDaemon>? logger = null)
    {
        _store = store;
        _projections = projections.ToList();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _wake = _projections.ToDictionary(
            p => p.Name,
            _ => Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite }),
            StringComparer.Ordinal);
        store.Sequencer.Sequenced += _ => WakeAll();
    }

    /// <summary>Events per page (and per transaction). Small pages keep the daemon's memory flat: a page's events die
    /// young instead of being promoted by the garbage collector.</summary>
    public int BatchSize { get; init; } = 2_000;

    /// <summary>How often a projection looks for new events when no notification came.</summary>
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a woken projection waits for more events before it reads a page: under load, fewer and
    /// fuller pages (each page is a transaction and several statements); idle, a few milliseconds more latency.</summary>
    public TimeSpan Coalesce { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Runs every projection until cancelled.</summary>
    public Task RunAsync(CancellationToken ct) =>
        Task.WhenAll(_projections.Select(p => RunProjectionAsync(p, ct)).Append(ListenAsync(ct)));

    /// <summary>Applies pages until the projection has caught up with the head; returns its checkpoint.</summary>
    public async Task<long> CatchUpAsync(string name, CancellationToken ct = default)
    {
        await DrainAsync(Find(name), ct);
        return _checkpoints.GetValueOrDefault(name);
    }

    /// <summary>Empties the read model, sets its checkpoint to 0 and replays the whole log into it. Interrupted, it
    /// resumes from the last committed page the next time the projection runs.</summary>
    public async Task<long> RebuildAsync(string name, CancellationToken ct = default)
    {
        var projection = Find(name);
        await using (var connection = await _store.DataSource.OpenConnectionAsync(ct))
        await using (var tx = await connection.BeginTransactionAsync(ct))
        {
            await LockCheckpointAsync(connection, projection.Name, ct);
            await projection.ResetAsync(connection, ct);
            await SaveCheckpointAsync(connection, projection.Name, 0, ct);
            await tx.CommitAsync(ct);
        }

        Progressed(projection.Name, 0);
        return await CatchUpAsync(name, ct);
    }

    /// <summary>The stored checkpoint of a projection (0 before its first page).</summary>
    public async Task<long> ReadCheckpointAsync(string name, CancellationToken ct = default)
    {
        await using var command = _store.DataSource.CreateCommand("SELECT position FROM es.projection_checkpoints WHERE name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        return await command.ExecuteScalarAsync(ct) is long position ? position : 0;
    }

    /// <summary>Completes when this process has applied <paramref name="position"/> to the projection.</summary>
    public async Task WaitForAsync(string name, long position, CancellationToken ct = default)
    {
        Find(name);
        while (true)
        {
            var progress = _progress.Task;
            if (_checkpoints.GetValueOrDefault(name) >= position)
            {
                return;
            }

            await progress.WaitAsync(ct);
        }
    }

    private async Task RunProjectionAsync(IProjection projection, CancellationToken ct)
    {
        var wake = _wake[projection.Name].Reader;
        var backoff = new Backoff(_logger, $"Projection {projection.Name}");
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await DrainAsync(projection, ct);
                backoff.Succeeded();
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                idle.CancelAfter(IdlePoll);
                await wake.WaitToReadAsync(idle.Token);
                await Task.Delay(Coalesce, ct);
                wake.TryRead(out _);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // idle poll elapsed
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                // It resumes from its checkpoint: the failed page was rolled back whole.
                await backoff.FailedAsync(e, ct);
            }
        }
    }

    // A page short of its size reached the head: no second, empty page (a transaction of its own) to find that out;
    // events numbered meanwhile wake the projection again. (Reading the next page while one is applied was tried:
    // on two cores it competed with the page's writes and was slower.)
    private async Task DrainAsync(IProjection projection, CancellationToken ct)
    {
        var size = projection.PageSize ?? BatchSize;
        while (await ApplyPageAsync(projection, size, ct) == size)
        {
        }
    }

    /// <summary>One page in one transaction: lock the checkpoint row (one runner at a time, across processes),
    /// read the events after it, apply them, move the checkpoint.</summary>
    private async Task<int> ApplyPageAsync(IProjection projection, int size, CancellationToken ct)
    {
        await using var connection = await _store.DataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        // A page and its checkpoint commit together, so a crash that loses the last pages loses their checkpoint
        // too, and they are applied again: read models need not wait for the WAL flush.
        await using (var asynchronous = new NpgsqlCommand("SET LOCAL synchronous_commit = off", connection))
        {
            await asynchronous.ExecuteNonQueryAsync(ct);
        }

        var stored = await LockCheckpointAsync(connection, projection.Name, ct);
        List<RecordedEvent> events;
        long checkpoint;
        if (projection.EventsRead is { } handles)
        {
            (events, var head) = await _store.ReadTypesAsync(
                connection, stored, size, [.. handles.Select(t => _store.Types.NameOf(t).Name)], ct);
            checkpoint = events.Count == size ? events[^1].Position : Math.Max(head, stored);
        }
        else
        {
            events = new List<RecordedEvent>(Math.Min(size, 1024));
            await foreach (var e in _store.ReadAllAsync(connection, stored, size, ct))
            {
                events.Add(e);
            }

            checkpoint = events.Count > 0 ? events[^1].Position : stored;
        }

        if (events.Count > 0)
        {
            await projection.ApplyAsync(connection, events, ct);
        }

        if (checkpoint > stored)
        {
            await SaveCheckpointAsync(connection, projection.Name, checkpoint, ct);
        }

        await tx.CommitAsync(ct);
        Progressed(projection.Name, checkpoint);
        return events.Count;
    }

    private static async Task<long> LockCheckpointAsync(NpgsqlConnection connection, string name, CancellationToken ct)
    {
        while (true)
        {
            await using (var select = new NpgsqlCommand(
                             "SELECT position FROM es.projection_checkpoints WHERE name = $1 FOR UPDATE", connection))
            {
                select.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
                if (await select.ExecuteScalarAsync(ct) is long position)
                {
                    return position;
                }
            }

            await using var insert = new NpgsqlCommand(
                "INSERT INTO es.projection_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", connection);
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
            await insert.ExecuteNonQueryAsync(ct);
        }
    }

    private static async Task SaveCheckpointAsync(NpgsqlConnection connection, string name, long position, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            "UPDATE es.projection_checkpoints SET position = $2, updated_at = now() WHERE name = $1", connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = position });
        await command.ExecuteNonQueryAsync(ct);
    }

    private async Task ListenAsync(CancellationToken ct)
    {
        var backoff = new Backoff(_logger, "Listening for new events");
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var connection = await _store.DataSource.OpenConnectionAsync(ct);
                connection.Notification += (_, _) => WakeAll();
                await using (var listen = new NpgsqlCommand($"LISTEN {Sequencer.Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(ct);
                }

                backoff.Succeeded();
                WakeAll(); // events may have been numbered while we were not listening
                while (!ct.IsCancellationRequested)
                {
                    await connection.WaitAsync(ct);
                }
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                await backoff.FailedAsync(e, ct);
            }
        }
    }

    private void WakeAll()
    {
        foreach (var channel in _wake.Values)
        {
            channel.Writer.TryWrite(true);
        }
    }

    private void Progressed(string name, long checkpoint)
    {
        _checkpoints[name] = checkpoint;
        Interlocked.Exchange(ref _progress, NewProgress()).TrySetResult();
    }

    private IProjection Find(string name) =>
        _projections.FirstOrDefault(p => p.Name == name)
        ?? throw new ArgumentException($"No projection named '{name}'.", nameof(name));

    private static TaskCompletionSource NewProgress() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
