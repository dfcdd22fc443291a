using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;

namespace Confederal.Benchmarks;

/// <summary>
/// The auditor's offline replay (<see cref="AuditReplay"/>, as `confederal audit replay --file` runs it) over an export
/// file of the fiscal history: the history is written by bulk appends, then exported as the feed serves it (pseudonymized,
/// each event on its line; hashes and seals are not needed to replay), then read back. It prints the rate of reading the
/// file alone and of reading and replaying it, with the peak working set and managed heap of the replay.
/// </summary>
public static class ReplayBenchmark
{
    public static async Task RunAsync(EmbeddedPostgres cluster, int events, int rounds)
    {
        Console.WriteLine($"Writing a fiscal history of {events:N0} events and its export file (not timed)...");
        await using var database = await BenchDatabase.CreateAsync(cluster, "replay", []);
        using var store = new OpenStore(database.DataSource, Events.Types(), []);
        var log = store.Log;
        await FiscalHistory.AppendAsync(log, events);
        var head = await database.CatchUpHighWaterMarkAsync();
        var count = await database.CountAsync(0, head);
        var path = Path.Combine(Path.GetTempPath(), $"confederal-replay-{Guid.NewGuid():N}.ndjson");
        try
        {
            var pseudonyms = new Pseudonyms(RandomNumberGenerator.GetBytes(32));
            var placeholder = new string('0', 64);
            await using (var writer = new StreamWriter(path, append: false, new UTF8Encoding(false), 1 << 16) { NewLine = "\n" })
            {
                await writer.WriteLineAsync(AuditExportFile.HeaderLine("bench"));
                await foreach (var stored in log.ReadStoredAsync(0, head))
                {
                    await writer.WriteLineAsync(AuditExportFile.Line(AuditEvent.From(stored, pseudonyms) with { Hash = placeholder }));
                }
            }

            Console.WriteLine($"  {count:N0} events, {new FileInfo(path).Length / 1024.0 / 1024.0:N0} MiB");
            Console.WriteLine($"{"audit replay --file",-34} {"read only ev/s",16} {"replay ev/s",12} {"peak MiB",9} {"heap MiB",9}");
            var reads = new List<double>();
            var replays = new List<double>();
            var peaks = new List<(double WorkingSet, double Heap)>();
            for (var round = 0; round < rounds; round++)
            {
                var started = Stopwatch.GetTimestamp();
                var read = 0L;
                await foreach (var entry in AuditExportFile.ReadAsync(path))
                {
                    read += entry.Event is null ? 0 : 1;
                }

                reads.Add(read / Stopwatch.GetElapsedTime(started).TotalSeconds);

                await using var memory = new Stats.MemoryPeak();
                started = Stopwatch.GetTimestamp();
                var result = await new AuditReplay(Events.Types()).RunAsync(AuditExportFile.ReadAsync(path));
                replays.Add(result.Events / Stopwatch.GetElapsedTime(started).TotalSeconds);
                await memory.DisposeAsync();
                peaks.Add((memory.WorkingSetMiB, memory.HeapMiB));
                if (result.Events != count || read != count)
                {
                    throw new InvalidOperationException($"Replayed {result.Events:N0} and read {read:N0} events of {count:N0}.");
                }
            }

            Console.WriteLine($"{$"fiscal history, {events / 1000:N0}k events",-34} {Stats.Median(reads),16:N0} {Stats.Median(replays),12:N0} " +
                              $"{peaks.Max(p => p.WorkingSet),9:N0} {peaks.Max(p => p.Heap),9:N0}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
