using System.Text;
using Confederal.Api.Features.Audit;

namespace Confederal.Cli.Audit;

/// <summary>What an export run wrote: events and seals appended, after which position it resumed, where the file ends.</summary>
public sealed record ExportResult(long Events, long Seals, long ResumedAfter, long LastPosition, long SealedThrough);

/// <summary>
/// Copies the audit feed and its seals into an export file (<see cref="AuditExportFile"/>), resumably: a run reads where
/// the file ends (an unfinished last line, left by an interrupted run, is dropped) and continues after its last event,
/// so no event is written twice; each seal is written right after the last event it covers, and the file is flushed
/// after each page of the feed. Before appending it checks that the server is the one the file came from: the same
/// signing key, a log at least as long, and the file's last seal unchanged on the server.
/// </summary>
public static class FeedExporter
{
    public const int PageSize = GetAuditEvents.MaxLimit;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>Exports the log that keeps <paramref name="ledger"/>'s ledger (null: the directory's) into
    /// <paramref name="path"/>, or continues the export there.</summary>
    public static async Task<ExportResult> ExportAsync(
        HttpClient client, string path, Action<long, long>? progress = null, string? ledger = null, CancellationToken ct = default)
    {
        var of = ledger is null ? "" : $"&ledger={Uri.EscapeDataString(ledger)}";
        var tail = await AuditExportFile.ReadTailAsync(path, ct);
        var served = (await ApiRequests.GetAsync<SealsPage>(client, $"/api/v1/audit/seals?limit=1{of}", ct))!;
        if (tail.Header is { } header && header.PublicKey != served.PublicKey)
        {
            throw new CliException(
                $"{path} was exported from a log signed by another key than the one the server serves: refusing to append. " +
                "Export into a new file.", ExitCodes.Failed);
        }

        var head = (await ApiRequests.GetAsync<AuditEventsPage>(client, $"/api/v1/audit/events?limit=1{of}", ct))!;
        if (tail.LastPosition > head.SealedThrough)
        {
            throw new CliException(
                $"{path} holds events up to position {tail.LastPosition}, but the server has sealed only through {head.SealedThrough}: " +
                "the log was cut, or the file comes from another server.", ExitCodes.Failed);
        }

        if (tail.LastSeal is { } lastSeal)
        {
            var same = (await ApiRequests.GetAsync<SealsPage>(client, $"/api/v1/audit/seals?after={lastSeal.Number - 1}&limit=1{of}", ct))!.Seals;
            if (same.Count == 0 || same[0].Number != lastSeal.Number || same[0].DigestHex() != lastSeal.DigestHex() || same[0].Signature != lastSeal.Signature)
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
            await writer.WriteLineAsync(AuditExportFile.HeaderLine(served.PublicKey));
        }

        var seals = new SealQueue(client, tail.LastSeal, of);
        var last = tail.LastPosition;
        long events = 0, sealsWritten = 0, sealedThrough = head.SealedThrough;

        // An interrupted run may have written the last events of a seal but not the seal.
        sealsWritten += await seals.WriteThroughAsync(writer, last, ct);
        await writer.FlushAsync(ct);
        progress?.Invoke(last, sealedThrough);
        while (true)
        {
            var page = (await ApiRequests.GetAsync<AuditEventsPage>(client, $"/api/v1/audit/events?after={last}&limit={PageSize}{of}", ct))!;
            sealedThrough = page.SealedThrough;
            seals.Refresh();
            foreach (var e in page.Events)
            {
                if (e.Position <= last)
                {
                    throw new CliException($"The feed served position {e.Position} after {last}: refusing to write an event twice or out of order.",
                        ExitCodes.Failed);
                }

                await writer.WriteLineAsync(AuditExportFile.Line(e));
                last = e.Position;
                events++;
                sealsWritten += await seals.WriteThroughAsync(writer, last, ct);
            }

            await writer.FlushAsync(ct);
            progress?.Invoke(last, sealedThrough);
            if (page.Events.Count < PageSize)
            {
                break;
            }
        }

        return new ExportResult(events, sealsWritten, tail.LastPosition, last, sealedThrough);
    }

    /// <summary>The seals after those written, fetched a page at a time when an event written is not covered yet.</summary>
    private sealed class SealQueue(HttpClient client, Seal? written, string of)
    {
        private readonly Queue<Seal> _pending = new();
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
                    var page = (await ApiRequests.GetAsync<SealsPage>(client, $"/api/v1/audit/seals?after={_after}&limit={GetSeals.MaxLimit}{of}", ct))!;
                    foreach (var seal in page.Seals)
                    {
                        _pending.Enqueue(seal);
                        _after = seal.Number;
                    }

                    _dry = page.Seals.Count == 0;
                }

                if (_pending.Count == 0 || _pending.Peek().ToPosition > position)
                {
                    break;
                }

                var next = _pending.Dequeue();
                await writer.WriteLineAsync(AuditExportFile.Line(next));
                _through = next.ToPosition;
                written++;
            }

            return written;
        }
    }
}
