using JasperFx.Events;
using JasperFx.Events.Daemon;
using JasperFx.Events.Projections;
using Marten;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>A read model in tables of our own, kept by Marten's async daemon: each page of events is applied in the
/// daemon's transaction, the one that moves the projection's progress, so a page is applied exactly once or not at all.</summary>
public interface IProjection
{
    /// <summary>Stable name: Marten's projection name, the key of its progress.</summary>
    string Name { get; }

    /// <summary>The tables Marten empties before a rebuild.</summary>
    IReadOnlyList<string> Tables { get; }

    /// <summary>Applies a page of events in global order, on the daemon's connection and inside its transaction.</summary>
    Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct);

    /// <summary>Events per page (Marten's batch size), when this projection wants another size than
    /// <see cref="MartenStore.PageSize"/> (larger pages amortize a projection's fixed cost per page).</summary>
    int? PageSize => null;

    /// <summary>The event types this projection reads (null: all). Marten's daemon then loads only those and moves the
    /// projection's progress past the others.</summary>
    IReadOnlyCollection<Type>? EventsRead => null;
}

/// <summary>Runs one of our projections as a Marten projection: the page's events, as we read them, are applied when
/// Marten's batch is about to commit, on its connection and transaction (Marten's transaction participant).</summary>
internal sealed class DaemonProjection(IProjection projection) : Marten.Events.Projections.IProjection
{
    public Task ApplyAsync(IDocumentOperations operations, IReadOnlyList<IEvent> events, CancellationToken cancellation)
    {
        if (operations is not ITransactionParticipantRegistrar registrar)
        {
            throw new InvalidOperationException($"Projection {projection.Name} runs only in Marten's async daemon.");
        }

        registrar.AddTransactionParticipant(new Page(projection, [.. events.Select(RecordedEvent.From)]));
        return Task.CompletedTask;
    }

    private sealed class Page(IProjection projection, IReadOnlyList<RecordedEvent> events) : ITransactionParticipant
    {
        public async Task BeforeCommitAsync(NpgsqlConnection connection, NpgsqlTransaction transaction, CancellationToken token)
        {
            // A page and its progress commit together, so a crash that loses the last pages loses their progress too,
            // and they are applied again: read models need not wait for the WAL flush.
            await using (var asynchronous = new NpgsqlCommand("SET LOCAL synchronous_commit = off", connection, transaction))
            {
                await asynchronous.ExecuteNonQueryAsync(token);
            }

            await projection.ApplyAsync(connection, events, token);
        }
    }
}

/// <summary>
/// Our face of Marten's async daemon on one database of the store: runs every projection (and moves the high-water mark, below which the global
/// order is final), rebuilds one with Marten's rebuild, and tells how far each has come.
/// </summary>
public sealed class ProjectionDaemon(IDocumentStore store, LedgerDatabase database, IEnumerable<IProjection> projections)
{

    private readonly IReadOnlyList<string> _names = [.. projections.Select(p => p.Name)];

    /// <summary>How often <see cref="WaitForAsync"/> looks at the stored progress.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>How often <see cref="RunAsync"/> restarts a projection Marten's daemon paused after a failed page.</summary>
    public TimeSpan Supervision { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Runs every projection until cancelled, for a process without a host (a host runs Marten's own hosted
    /// daemon, see <see cref="ConfederalStoreServices.AddConfederalStore"/>). Marten pauses a projection whose page
    /// failed (the page and its progress rolled back); it is started again from its progress a second later, and again
    /// while it keeps failing: a page is retried, never passed over.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        using var daemon = await store.BuildProjectionDaemonAsync(database.Id);
        await daemon.StartAllAsync();
        try
        {
            while (!ct.IsCancellationRequested)
            {
                await Task.Delay(Supervision, ct);
                foreach (var paused in daemon.CurrentAgents().Where(a => a.Status == JasperFx.AgentStatus.Paused).ToList())
                {
                    var shard = paused.Name.Identity;
                    daemon.EjectPausedShard(shard);
                    await daemon.StartAgentAsync(shard, ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
        finally
        {
            await daemon.StopAllAsync();
        }
    }

    /// <summary>Moves the high-water mark and brings every projection up to it, then stops; returns the mark.</summary>
    public async Task<long> CatchUpAsync(CancellationToken ct = default)
    {
        using var daemon = await store.BuildProjectionDaemonAsync(database.Id);
        await daemon.CatchUpAsync(ct);
        return await ReadHighWaterMarkAsync(ct);
    }

    /// <summary>Empties the projection's tables and replays the whole log into them (Marten's rebuild); returns the
    /// position it reached.</summary>
    public async Task<long> RebuildAsync(string name, CancellationToken ct = default)
    {
        Find(name);
        using var daemon = await store.BuildProjectionDaemonAsync(database.Id);
        await daemon.RebuildProjectionAsync(name, ct);
        return await ReadCheckpointAsync(name, ct);
    }

    /// <summary>The stored progress of a projection (0 before its first page).</summary>
    public async Task<long> ReadCheckpointAsync(string name, CancellationToken ct = default)
    {
        Find(name);
        return await ReadProgressAsync($"{name}:All", ct);
    }

    /// <summary>The high-water mark: every event at or below it is committed or will never be, so the order below it
    /// is final. Marten's daemon moves it.</summary>
    public Task<long> ReadHighWaterMarkAsync(CancellationToken ct = default) => ReadProgressAsync("HighWaterMark", ct);

    /// <summary>Completes when the projection's stored progress has reached <paramref name="position"/>.</summary>
    public async Task WaitForAsync(string name, long position, CancellationToken ct = default)
    {
        while (await ReadCheckpointAsync(name, ct) < position)
        {
            await Task.Delay(Poll, ct);
        }
    }

    /// <summary>Completes when the high-water mark has reached <paramref name="position"/>.</summary>
    public async Task WaitForHighWaterMarkAsync(long position, CancellationToken ct = default)
    {
        while (await ReadHighWaterMarkAsync(ct) < position)
        {
            await Task.Delay(Poll, ct);
        }
    }

    private async Task<long> ReadProgressAsync(string name, CancellationToken ct)
    {
        await using var command = database.DataSource.CreateCommand(
            $"SELECT last_seq_id FROM {MartenStore.Schema}.mt_event_progression WHERE name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        return await command.ExecuteScalarAsync(ct) is long position ? position : 0;
    }

    private void Find(string name)
    {
        if (!_names.Contains(name, StringComparer.Ordinal))
        {
            throw new ArgumentException($"No projection named '{name}'.", nameof(name));
        }
    }
}
