using System.Text;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Client;

namespace Confederal.Cli.Audit;

/// <summary>What an export run wrote: events and seals appended, after which position it resumed, where the file ends.</summary>
public sealed record ExportResult(long Events, long Seals, long ResumedAfter, long LastPosition, long SealedThrough);

/// <summary>
/// Copies the audit feed and its seals into an export file (<see cref="AuditExportFile"/>), resumably: a run reads where
/// the file ends (an unfinished last line, left by an interrupted run, is dropped) and continues after its last event,
/// so no event is written twice; each seal is written right after the last event it covers, and the file is flushed
/// after each page of the feed. Before appending it checks that the server is the one the file came from: the same
/// signing key, a log at least as long, and the file's last seal unchanged on the server. Events and seals are written
/// as the API served them, byte for byte (never through a model): their hashes and signatures are checked against them.
/// </summary>
public static class FeedExporter
{
    public const int PageSize = ConfederalClient.MaxAuditPage;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Exports the log that keeps <paramref name="ledger"/>'s ledger (null: the directory's) into
    /// <paramref name="path"/>, or continues the export there.</summary>
    public static async Task<ExportResult> ExportAsync(
        ConfederalClient client, string path, Action<long, long>? progress = null, string? ledger = null, CancellationToken ct = default)
    {
        var tail = await AuditExportFile.ReadTailAsync(path, ct);
        var (publicKey, _) = await SealsAsync(client, 0, 1, ledger, ct);
        if (tail.Header is { } header && header.PublicKey != publicKey)
        {
            throw new CliException(
                $"{path} was exported from a log signed by another key than the one the server serves: refusing to append. " +
                "Export into a new file.", ExitCodes.Failed);
        }

        var head = await client.Api.Api.V1.Audit.Events.GetAsync(c =>
        {
            c.QueryParameters.Limit = 1;
            c.QueryParameters.Ledger = ledger;
        }, ct);
        var sealedThrough = head?.SealedThrough ?? 0;
        if (tail.LastPosition > sealedThrough)
        {
            throw new CliException(
                $"{path} holds events up to position {tail.LastPosition}, but the server has sealed only through {sealedThrough}: " +
                "the log was cut, or the file comes from another server.", ExitCodes.Failed);
        }

        if (tail.LastSeal is { } lastSeal)
        {
            var (_, same) = await SealsAsync(client, lastSeal.Number - 1, 1, ledger, ct);
            if (same.Count == 0 || same[0].Seal.Number != lastSeal.Number || same[0].Seal.DigestHex() != lastSeal.DigestHex()
                || same[0].Seal.Signature != lastSeal.Signature)
            {
                throw new CliException(
                    $"Seal {lastSeal.Number} (positions {lastSeal.FromPosition}..{lastSeal.ToPosition}) in {path} is not the server's seal " +
                    $"{lastSeal.Number}: the log was rewritten since the export, or the file was edited.", ExitCodes.Failed);
            }
        }

        await using var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16);
        await using var writer = new StreamWriter(file, Utf8, 1 << 16) { NewLine = "\n" };
        if (tail.Header is null)
        {
            await writer.WriteLineAsync(AuditExportFile.HeaderLine(publicKey));
        }

        var seals = new SealQueue(client, tail.LastSeal, ledger);
        var last = tail.LastPosition;
        long events = 0, sealsWritten = 0;

        // An interrupted run may have written the last events of a seal but not the seal.
        sealsWritten += await seals.WriteThroughAsync(writer, last, ct);
        await writer.FlushAsync(ct);
        progress?.Invoke(last, sealedThrough);
        await foreach (var e in client.AuditEventsAsJsonAsync(last, ledger: ledger, pageSize: PageSize, ct: ct))
        {
            var position = e.GetProperty("position").GetInt64();
            if (position <= last)
            {
                throw new CliException($"The feed served position {position} after {last}: refusing to write an event twice or out of order.",
                    ExitCodes.Failed);
            }

            await writer.WriteLineAsync(Line("event", e.GetRawText()));
            last = position;
            events++;
            sealsWritten += await seals.WriteThroughAsync(writer, last, ct);
            if (events % PageSize == 0) // the end of a page of the feed: the next is fetched now
            {
                await writer.FlushAsync(ct);
                seals.Refresh();
                sealedThrough = Math.Max(sealedThrough, last);
                progress?.Invoke(last, sealedThrough);
            }
        }

        await writer.FlushAsync(ct);
        sealedThrough = Math.Max(sealedThrough, last);
        progress?.Invoke(last, sealedThrough);
        return new ExportResult(events, sealsWritten, tail.LastPosition, last, sealedThrough);
    }

    /// <summary>An export line: the API's JSON as served, under its kind.</summary>
    private static string Line(string kind, string served) => $"{{\"{kind}\":{served}}}";

    /// <summary>The seal key and the seals after seal <paramref name="after"/>, as served.</summary>
    private static async Task<(string PublicKey, List<ServedSeal> Seals)> SealsAsync(
        ConfederalClient client, long after, int limit, string? ledger, CancellationToken ct)
    {
        using var page = await client.GetJsonAsync(client.Api.Api.V1.Audit.Seals.ToGetRequestInformation(c =>
        {
            c.QueryParameters.After = after;
            c.QueryParameters.Limit = limit;
            c.QueryParameters.Ledger = ledger;
        }), ct);
        var seals = page.RootElement.GetProperty("seals").EnumerateArray()
            .Select(s => new ServedSeal(s.Deserialize<Seal>(AuditExportFile.Json)!, s.GetRawText()));
        return (page.RootElement.GetProperty("publicKey").GetString()!, [.. seals]);
    }

    /// <summary>A seal: read as the export file reads it, and its JSON as served, for the file.</summary>
    private sealed record ServedSeal(Seal Seal, string Json);

    /// <summary>The seals after those written, fetched a page at a time when an event written is not covered yet.</summary>
    private sealed class SealQueue(ConfederalClient client, Seal? written, string? ledger)
    {
        private readonly Queue<ServedSeal> _pending = new();
        private long _after = written?.Number ?? 0;
        private long _through = written?.ToPosition ?? 0;
        private bool _dry;

        /// <summary>Asks the server again even if it had no seal to give (a new page of the feed was served since).</summary>
        public void Refresh() => _dry = false;

        /// <summary>Writes every seal that covers nothing after <paramref name="position"/>; returns how many.</summary>
        public async Task<long> WriteThroughAsync(StreamWriter writer, long position, CancellationToken ct)
        {
            var written = 0L;
            while (position > _through)
            {
                if (_pending.Count == 0 && !_dry)
                {
                    var (_, page) = await SealsAsync(client, _after, GetSeals.MaxLimit, ledger, ct);
                    foreach (var seal in page)
                    {
                        _pending.Enqueue(seal);
                        _after = seal.Seal.Number;
                    }

                    _dry = page.Count == 0;
                }

                if (_pending.Count == 0 || _pending.Peek().Seal.ToPosition > position)
                {
                    break;
                }

                var next = _pending.Dequeue();
                await writer.WriteLineAsync(Line("seal", next.Json));
                _through = next.Seal.ToPosition;
                written++;
            }

            return written;
        }
    }
}
