using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Audit;

/// <summary>An event the platform refuses to seal: missing, altered or forged.</summary>
public sealed class AuditIntegrityException(long position, string reason)
    : Exception($"Position {position}: {reason}")
{
    public long Position { get; } = position;
    public string Reason { get; } = reason;
}

/// <summary>
/// Seals the global log as it grows, like a Certificate Transparency log: each round takes the events after the last
/// seal up to Marten's high-water mark (below which no event can still appear), at most <see cref="MaxSealSize"/>
/// positions, checks each one's authentication code, hashes it chained to its stream predecessor, and records the hashes
/// and a signed seal over them (Merkle root, chained to the previous seal) in one transaction. An event without a valid
/// code, or whose stream predecessor is missing, is never sealed: sealing stops there, loudly.
/// </summary>
/// <remarks>
/// Marten's positions have holes: a transaction that took sequence numbers and rolled back leaves them unused. So the
/// chain decides, not the numbers: a seal covers a range of positions and the Merkle root of the hashes of exactly the
/// events in it, in order, so removing a sealed event breaks its seal, and an event removed before it was sealed breaks
/// its stream's chain at the next event of that stream (its version is missing).
/// </remarks>
public sealed class Notary(EventLog events, AuditKeys keys, Pseudonyms pseudonyms, TimeProvider clock, ILogger<Notary> logger) : IDisposable
{
    public const int MaxSealSize = 20_000;
    private const long NotaryLock = 0x436f6e664e6f7400; // "ConfNot"
    // At most a few MiB (a stream id and its head hash take about 250 bytes). Most streams never see a second event (a
    // filing, a ballot's pages), so a larger cache mostly holds dead heads: 200,000 of them grew a busy API by 7 MiB a
    // minute for ten minutes. A miss costs one batched lookup per seal round.
    private const int MaxCachedStreams = 20_000;

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0007-audit", """
            CREATE TABLE audit_hashes (
                position bigint PRIMARY KEY,
                hash     bytea NOT NULL
            );
            CREATE TABLE audit_seals (
                number        bigint PRIMARY KEY,
                from_position bigint NOT NULL,
                to_position   bigint NOT NULL UNIQUE,
                root          bytea NOT NULL,
                previous      bytea NOT NULL,
                sealed_at     timestamptz NOT NULL,
                signature     bytea NOT NULL
            );
            """),
    ];

    private readonly SemaphoreSlim _round = new(1, 1);

    // The last hashed event of recently seen streams, so that a chain link rarely needs the database.
    private readonly Dictionary<string, (long Version, byte[] Hash)> _heads = new(StringComparer.Ordinal);
    private long _reportedPosition;

    /// <summary>How long the notary waits between rounds, so that one seal covers many appends.</summary>
    public TimeSpan Coalesce { get; init; } = TimeSpan.FromMilliseconds(200);

    public void Dispose() => _round.Dispose();

    /// <summary>Seals every event up to the high-water mark; returns the last sealed position.</summary>
    /// <exception cref="AuditIntegrityException">An event is missing, altered or forged.</exception>
    public async Task<long> SealAsync(CancellationToken ct = default)
    {
        await _round.WaitAsync(ct);
        try
        {
            while (true)
            {
                var (sealedThrough, more) = await SealBatchAsync(ct);
                if (!more)
                {
                    return sealedThrough;
                }
            }
        }
        finally
        {
            _round.Release();
        }
    }

    /// <summary>Runs until cancelled: seals events shortly after the high-water mark passes them.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var backoff = new Backoff(logger, "Sealing");
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await SealAsync(ct);
                backoff.Succeeded();
                await Task.Delay(Coalesce, ct);
            }
            catch (AuditIntegrityException e) when (!ct.IsCancellationRequested)
            {
                if (Interlocked.Exchange(ref _reportedPosition, e.Position) != e.Position)
                {
                    logger.LogCritical("The log cannot be sealed past position {Position}: {Reason}", e.Position, e.Reason);
                }

                await Task.Delay(TimeSpan.FromSeconds(5), ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                await backoff.FailedAsync(e, ct);
            }
        }
    }

    private async Task<(long SealedThrough, bool More)> SealBatchAsync(CancellationToken ct)
    {
        await using var connection = await events.DataSource.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await using (var lockCommand = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({NotaryLock})", connection, tx))
        {
            await lockCommand.ExecuteNonQueryAsync(ct);
        }

        var last = await ReadLastSealAsync(connection, tx, ct);
        var lastThrough = last?.ToPosition ?? 0;
        long head;
        await using (var headCommand = new NpgsqlCommand(EventLog.HeadSql, connection, tx))
        {
            head = (long)(await headCommand.ExecuteScalarAsync(ct))!;
        }

        if (head <= lastThrough)
        {
            return (lastThrough, false);
        }

        var batch = new List<AuditEvent>();
        await foreach (var stored in events.ReadStoredAsync(lastThrough, head, MaxSealSize, ct: ct))
        {
            batch.Add(AuditEvent.From(stored, pseudonyms, events.Authenticator, events.Types, out var forgery));
            if (forgery is not null)
            {
                throw new AuditIntegrityException(stored.Position, forgery);
            }
        }

        if (batch.Count == 0)
        {
            return (lastThrough, false); // only unused numbers: the next seal covers them with the events after them
        }

        var through = batch.Count == MaxSealSize ? batch[^1].Position : head;
        await LoadPredecessorsAsync(connection, tx, batch, ct);
        var positions = new long[batch.Count];
        var hashes = new byte[batch.Count][];
        var root = new MerkleRoot();
        for (var i = 0; i < batch.Count; i++)
        {
            var e = batch[i];
            var previous = e.Version == 1 ? AuditEvent.NoPredecessor
                : _heads.TryGetValue(e.StreamId, out var h) && h.Version == e.Version - 1 ? h.Hash
                : throw new AuditIntegrityException(e.Position, $"the stream's event at version {e.Version - 1} is missing");
            var hash = e.ComputeHash(previous);
            _heads[e.StreamId] = (e.Version, hash);
            positions[i] = e.Position;
            hashes[i] = hash;
            root.Add(hash);
        }

        var now = clock.GetUtcNow();
        var seal = new Seal(
            (last?.Number ?? 0) + 1,
            lastThrough + 1,
            through,
            Convert.ToHexStringLower(root.Root()),
            last?.DigestHex() ?? Seal.First,
            now.AddTicks(-(now.Ticks % 10)), // the database keeps microseconds
            "").SignWith(keys.SealKey);
        await using (var write = new NpgsqlBatch(connection, tx))
        {
            write.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO audit_hashes (position, hash) SELECT * FROM unnest($1::bigint[], $2::bytea[])")
            {
                Parameters = { new NpgsqlParameter<long[]> { TypedValue = positions }, new NpgsqlParameter<byte[][]> { TypedValue = hashes } },
            });
            write.BatchCommands.Add(new NpgsqlBatchCommand("""
                INSERT INTO audit_seals (number, from_position, to_position, root, previous, sealed_at, signature)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                """)
            {
                Parameters =
                {
                    new NpgsqlParameter<long> { TypedValue = seal.Number },
                    new NpgsqlParameter<long> { TypedValue = seal.FromPosition },
                    new NpgsqlParameter<long> { TypedValue = seal.ToPosition },
                    new NpgsqlParameter<byte[]> { TypedValue = Convert.FromHexString(seal.Root) },
                    new NpgsqlParameter<byte[]> { TypedValue = Convert.FromHexString(seal.Previous) },
                    new NpgsqlParameter<DateTimeOffset> { TypedValue = seal.SealedAt },
                    new NpgsqlParameter<byte[]> { TypedValue = Convert.FromHexString(seal.Signature) },
                },
            });
            await write.ExecuteNonQueryAsync(ct);
        }

        await tx.CommitAsync(ct);
        if (_heads.Count > MaxCachedStreams)
        {
            _heads.Clear();
            _heads.TrimExcess();
        }

        return (through, through < head);
    }

    // The hash each stream's first event in the batch follows, unless cached: found through that event's own row, since
    // the audit stream id carries a pseudonym where the stored one carries a person id.
    private async Task LoadPredecessorsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, List<AuditEvent> batch, CancellationToken ct)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var streams = new List<string>();
        var versions = new List<long>();
        var positions = new List<long>();
        foreach (var e in batch)
        {
            if (seen.Add(e.StreamId) && e.Version > 1 && !(_heads.TryGetValue(e.StreamId, out var h) && h.Version == e.Version - 1))
            {
                streams.Add(e.StreamId);
                versions.Add(e.Version - 1);
                positions.Add(e.Position);
            }
        }

        if (streams.Count == 0)
        {
            return;
        }

        await using var command = new NpgsqlCommand($"""
            SELECT q.n, h.hash
            FROM unnest($1::bigint[]) WITH ORDINALITY AS q(position, n)
            JOIN {EventLog.Table} self ON self.seq_id = q.position
            JOIN {EventLog.Table} e ON e.stream_id = self.stream_id AND e.version = self.version - 1
            JOIN audit_hashes h ON h.position = e.seq_id
            """, connection, tx);
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. positions] });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var i = (int)reader.GetInt64(0) - 1;
            _heads[streams[i]] = (versions[i], reader.GetFieldValue<byte[]>(1));
        }
    }

    /// <summary>The last seal recorded, or null before the first.</summary>
    public static async Task<Seal?> ReadLastSealAsync(NpgsqlConnection connection, NpgsqlTransaction? tx, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {SealColumns} FROM audit_seals ORDER BY number DESC LIMIT 1", connection, tx);
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? ReadSeal(reader) : null;
    }

    public const string SealColumns = "number, from_position, to_position, root, previous, sealed_at, signature";

    public static Seal ReadSeal(NpgsqlDataReader reader) => new(
        reader.GetInt64(0),
        reader.GetInt64(1),
        reader.GetInt64(2),
        Convert.ToHexStringLower(reader.GetFieldValue<byte[]>(3)),
        Convert.ToHexStringLower(reader.GetFieldValue<byte[]>(4)),
        reader.GetFieldValue<DateTimeOffset>(5),
        Convert.ToHexStringLower(reader.GetFieldValue<byte[]>(6)));
}

/// <summary>A notary per database of the store: each log keeps its own hash chain and seals.</summary>
public sealed class Notaries : IDisposable
{
    private readonly Dictionary<string, Notary> _byDatabase;

    public Notaries(Shards shards, AuditKeys keys, Pseudonyms pseudonyms, TimeProvider clock, ILoggerFactory loggers)
    {
        _byDatabase = shards.ToDictionary(s => s.Id, s => new Notary(s.Log, keys, pseudonyms, clock, loggers.CreateLogger<Notary>()), StringComparer.Ordinal);
        Directory = _byDatabase[shards.Directory.Id];
    }

    public Notary Directory { get; }

    /// <summary>The notary of one database of the store.</summary>
    public Notary this[string databaseId] => _byDatabase[databaseId];

    public IEnumerable<Notary> All => _byDatabase.Values;

    public void Dispose()
    {
        foreach (var notary in _byDatabase.Values)
        {
            notary.Dispose();
        }
    }
}
