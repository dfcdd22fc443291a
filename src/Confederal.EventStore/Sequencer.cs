using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// Gives committed events their global positions 1, 2, 3, … with no gap, in one total order.
/// </summary>
/// <remarks>
/// Writers insert events unnumbered, tagged with their transaction id (xid8). The sequencer numbers only events
/// whose transaction id is below the oldest transaction still running (<c>pg_snapshot_xmin</c>): every such
/// transaction has ended, so no event can later appear before an already numbered one, however concurrent
/// transactions interleave their commits. Aborted inserts are never visible, so they leave no gap.
/// Batches from any number of processes serialize on an advisory lock; each batch commits before the next begins,
/// so a reader sees a prefix 1..head of the log and never a hole.
/// <para>
/// Numbering commits asynchronously (synchronous_commit off): positions are a function of durable data, the
/// (transaction id, insertion order) of events whose transactions had all ended, so a batch lost in a crash is numbered
/// again to exactly the same positions. Anything durable built on a batch (a projection's checkpoint) flushes the WAL
/// past that batch's commit anyway. Appends themselves stay synchronous.
/// </para>
/// </remarks>
public sealed class Sequencer
{
    private const long SequencerLock = 0x436f6e6653657100; // "ConfSeq"
    private const int BatchSize = 20_000;
    internal const string Channel = "es_events";

    // One statement numbers a batch, notifies listeners (delivered at commit) and tells whether committed events are
    // left unnumbered (behind a transaction still running, or beyond the batch).
    private static readonly string NumberBatchSql = $"""
        WITH head AS (SELECT coalesce(max(position), 0) AS p FROM es.events),
        batch AS (
            SELECT seq, row_number() OVER (ORDER BY tx_id, seq) AS n
            FROM (SELECT seq, tx_id FROM es.events
                  WHERE position IS NULL AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
                  ORDER BY tx_id, seq
                  LIMIT $1) AS ready),
        numbered AS (
            UPDATE es.events e SET position = head.p + batch.n
            FROM head, batch
            WHERE e.seq = batch.seq
            RETURNING e.position),
        summary AS (SELECT count(*)::int AS n, max(position) AS last FROM numbered)
        SELECT summary.n,
               coalesce(summary.last, (SELECT p FROM head)),
               (SELECT count(*) FROM (SELECT 1 FROM es.events WHERE position IS NULL LIMIT summary.n + 1) AS unnumbered) > summary.n,
               CASE WHEN summary.n > 0 THEN pg_notify('{Channel}', summary.last::text) END
        FROM summary
        """;

    private readonly NpgsqlDataSource _dataSource;
    private readonly Channel<bool> _appended = System.Threading.Channels.Channel.CreateBounded<bool>(
        new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    private readonly ILogger _logger;

    internal Sequencer(NpgsqlDataSource dataSource, ILogger logger)
    {
        _dataSource = dataSource;
        _logger = logger;
    }

    /// <summary>Raised in this process after a batch is numbered and committed, with the new head.</summary>
    public event Action<long>? Sequenced;

    /// <summary>How long the loop waits for an in-process append before looking for other processes' events.</summary>
    public TimeSpan IdlePoll { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How long the loop lets appends gather after being woken, so that one numbering serves many appends
    /// under load instead of one each.</summary>
    public TimeSpan Coalesce { get; init; } = TimeSpan.FromMilliseconds(2);

    internal void Notify() => _appended.Writer.TryWrite(true);

    /// <summary>Numbers events until no committed event is left unnumbered; returns the head.</summary>
    public async Task<long> SequenceAsync(CancellationToken ct = default)
    {
        var wait = 1;
        while (true)
        {
            var (numbered, head, more) = await NumberBatchAsync(ct);
            if (!more)
            {
                return head;
            }

            if (numbered == 0)
            {
                // Committed events wait behind an older transaction that is still running.
                await Task.Delay(wait, ct);
                wait = Math.Min(wait * 2, 50);
            }
            else
            {
                wait = 1;
            }
        }
    }

    /// <summary>Runs until cancelled: numbers events as they are appended.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var backoff = new Backoff(_logger, "Numbering events");
        var adopted = false;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                if (!adopted)
                {
                    await AdoptRestoredEventsAsync(ct);
                    adopted = true;
                }

                await SequenceAsync(ct);
                backoff.Succeeded();
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                idle.CancelAfter(IdlePoll);
                await _appended.Reader.WaitToReadAsync(idle.Token);
                await Task.Delay(Coalesce, ct);
                _appended.Reader.TryRead(out _);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // idle poll elapsed: look for events appended by other processes
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                // The database is unreachable, say: events wait unnumbered, nothing is lost.
                await backoff.FailedAsync(e, ct);
            }
        }
    }

    /// <summary>
    /// After a backup is restored into another cluster, unnumbered events keep the old cluster's transaction ids,
    /// which may lie in this cluster's future and would wait forever. They are committed (a dump holds only committed
    /// rows), so they are marked as such.
    /// </summary>
    internal async Task AdoptRestoredEventsAsync(CancellationToken ct)
    {
        await using var command = _dataSource.CreateCommand("""
            UPDATE es.events SET tx_id = '0'::xid8
            WHERE position IS NULL AND tx_id >= pg_snapshot_xmax(pg_current_snapshot())
            """);
        await command.ExecuteNonQueryAsync(ct);
    }

    internal async Task<(int Numbered, long Head, bool More)> NumberBatchAsync(CancellationToken ct)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using var batch = new NpgsqlBatch(connection, tx)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SET LOCAL synchronous_commit = off"),
                new NpgsqlBatchCommand($"SELECT pg_advisory_xact_lock({SequencerLock})"),
                new NpgsqlBatchCommand(NumberBatchSql) { Parameters = { new NpgsqlParameter<int> { TypedValue = BatchSize } } },
            },
        };

        int numbered;
        long head;
        bool more;
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            await reader.NextResultAsync(ct); // past the lock's row
            await reader.ReadAsync(ct);
            numbered = reader.GetInt32(0);
            head = reader.GetInt64(1);
            more = reader.GetBoolean(2);
        }

        await tx.CommitAsync(ct);
        if (numbered > 0)
        {
            Sequenced?.Invoke(head);
        }

        return (numbered, head, more);
    }
}
