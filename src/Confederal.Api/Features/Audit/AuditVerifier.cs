using System.Security.Cryptography;

namespace Confederal.Api.Features.Audit;

/// <summary>The first thing found wrong, at a global position.</summary>
public sealed record AuditFailure(long Position, string Reason);

/// <summary>What a verification covered, and its first failure (null when everything holds).</summary>
public sealed record VerifyReport(long Events, long Seals, long SealedThrough, long Unsealed, AuditFailure? Failure)
{
    public bool Passed => Failure is null;
}

/// <summary>
/// Checks an audit trail from position 1, without trusting anything it says about itself: positions strictly increasing
/// (Marten leaves unused the numbers of transactions that rolled back, so a position may be missing: the chain decides,
/// not the numbering), each event's authentication code (when the reader could check it), each stream's versions 1, 2,
/// 3, …, each event's hash recomputed from its content and its stream predecessor's recomputed hash, and each seal:
/// numbered in sequence, covering the positions since the last one, its Merkle root recomputed over exactly the events
/// in them, chained to the previous seal's digest and signed by the platform's key. So a sealed event that was removed
/// breaks its seal's root (and its stream's chain at the stream's next event); read from the database, its recorded hash
/// names its position. Seals known from an earlier export must all be there, unchanged: a log cut short or rewritten
/// together with its seals still fails. Memory: one hash per stream, and a Merkle path.
/// </summary>
public sealed class AuditVerifier(ECDsa publicKey, IReadOnlyList<Seal>? knownSeals = null)
{
    private readonly Dictionary<string, (long Version, byte[] Hash)> _streams = new(StringComparer.Ordinal);
    private readonly Dictionary<long, Seal> _known = (knownSeals ?? []).ToDictionary(s => s.Number);
    private MerkleRoot _range = new();
    private long _next = 1;
    private long _events;
    private long _unsealed;
    private long _firstUnsealed;
    private Seal? _lastSeal;

    public async Task<VerifyReport> VerifyAsync(IAsyncEnumerable<AuditEntry> trail, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        await foreach (var entry in trail.WithCancellation(ct))
        {
            if (Check(entry) is { } failure)
            {
                return Report(failure);
            }

            if (entry.Event is not null && (_events & 0x3FF) == 0)
            {
                progress?.Report(_events);
            }
        }

        progress?.Report(_events);
        var lost = _known.Values.Where(s => s.Number > (_lastSeal?.Number ?? 0)).MinBy(s => s.Number);
        return Report(lost is null ? null
            : _next <= lost.ToPosition
                ? new AuditFailure(_next, $"the log ends at position {_next - 1}, but seal {lost.Number}, known from an earlier export, covers positions {lost.FromPosition}..{lost.ToPosition}: the log was cut")
                : new AuditFailure(lost.FromPosition, $"seal {lost.Number} (positions {lost.FromPosition}..{lost.ToPosition}), known from an earlier export, is missing: the log was rewritten"));
    }

    private VerifyReport Report(AuditFailure? failure) =>
        new(_events, _lastSeal?.Number ?? 0, _lastSeal?.ToPosition ?? 0, _unsealed, failure);

    private AuditFailure? Check(AuditEntry entry) => entry.Seal is { } seal ? CheckSeal(seal) : CheckEvent(entry);

    private AuditFailure? CheckEvent(AuditEntry entry)
    {
        if (entry.Position < _next)
        {
            return new AuditFailure(entry.Position, $"position {entry.Position} appears again after {_next - 1}");
        }

        if (entry.Event is not { } e)
        {
            return new AuditFailure(entry.Position, "the event is missing (its hash was recorded when it was sealed)");
        }

        if (entry.Forgery is { } forgery)
        {
            return new AuditFailure(e.Position, forgery);
        }

        var known = _streams.TryGetValue(e.StreamId, out var head);
        if (e.Version != (known ? head.Version : 0) + 1)
        {
            return new AuditFailure(e.Position, known
                ? $"stream '{e.StreamId}' goes from version {head.Version} to {e.Version}"
                : $"stream '{e.StreamId}' starts at version {e.Version}");
        }

        var hash = e.ComputeHash(known ? head.Hash : AuditEvent.NoPredecessor);
        if (e.Hash.Length > 0)
        {
            if (!CryptographicOperations.FixedTimeEquals(hash, Hex(e.Hash)))
            {
                return new AuditFailure(e.Position, "the event does not match its recorded hash: its content, position or stream predecessor changed");
            }

            _range.Add(hash);
        }
        else if (_unsealed++ == 0)
        {
            _firstUnsealed = e.Position;
        }

        _streams[e.StreamId] = (e.Version, hash);
        _events++;
        _next = e.Position + 1;
        return null;
    }

    private AuditFailure? CheckSeal(Seal seal)
    {
        var number = (_lastSeal?.Number ?? 0) + 1;
        var from = (_lastSeal?.ToPosition ?? 0) + 1;
        var where = $"seal {seal.Number} (positions {seal.FromPosition}..{seal.ToPosition})";
        if (seal.Number != number)
        {
            return new AuditFailure(from, $"{where} follows seal {number - 1}: seal {number} is missing");
        }

        if (_unsealed > 0)
        {
            return new AuditFailure(_firstUnsealed, $"the event's recorded hash is missing, yet {where} covers it");
        }

        if (seal.FromPosition != from || seal.ToPosition < _next - 1)
        {
            return new AuditFailure(from, $"{where} does not cover the positions {from}..{_next - 1} after the previous seal");
        }

        if (seal.Previous != (_lastSeal?.DigestHex() ?? Seal.First))
        {
            return new AuditFailure(from, $"{where} does not chain to the seal before it");
        }

        if (!CryptographicOperations.FixedTimeEquals(_range.Root(), Hex(seal.Root)))
        {
            // Positions after the last event may be numbers no transaction used; with the root wrong, events are missing
            // there: the first one is the first position that no longer holds.
            return seal.ToPosition >= _next
                ? new AuditFailure(_next, $"the event is missing: {where} covers it and its Merkle root no longer matches")
                : new AuditFailure(from, $"{where}: the Merkle root of the events' hashes does not match");
        }

        if (!seal.IsSignedBy(publicKey))
        {
            return new AuditFailure(from, $"{where}: the signature is not the platform's");
        }

        if (_known.TryGetValue(seal.Number, out var earlier) && earlier.DigestHex() != seal.DigestHex())
        {
            return new AuditFailure(from, $"{where} differs from the same seal in an earlier export: the log was rewritten");
        }

        _lastSeal = seal;
        _range = new MerkleRoot();
        _next = seal.ToPosition + 1;
        return null;
    }

    private static byte[] Hex(string hex)
    {
        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return [];
        }
    }
}
