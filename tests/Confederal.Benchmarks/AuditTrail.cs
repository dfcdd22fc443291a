using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.Logging.Abstractions;

namespace Confederal.Benchmarks;

/// <summary>
/// The audit trail over a fiscal history of the API's events, written with authentication codes as the API writes them:
/// sealing it (the notary), exporting it from the database to an NDJSON file, and verifying the file, each beside a raw
/// sequential read of the same events (from PostgreSQL, and the file's lines parsed as JSON).
/// </summary>
public sealed class AuditBenchmark : IAsyncDisposable
{
    private readonly BenchDatabase _database;
    private readonly OpenStore _store;
    private readonly AuditKeys _keys;
    private readonly Pseudonyms _pseudonyms;
    private readonly string _directory = Directory.CreateTempSubdirectory("confederal-audit-bench-").FullName;
    private long _head;
    private long _count;

    private AuditBenchmark(BenchDatabase database)
    {
        _database = database;
        _keys = AuditKeys.LoadOrCreate(_directory);
        _pseudonyms = new Pseudonyms(_keys.PseudonymKey);
        _store = new OpenStore(database.DataSource, Events.Types(), [], new EventAuthenticator(_keys.EventKey));
    }

    private EventLog Log => _store.Log;

    public string ExportPath => Path.Combine(_directory, "export.ndjson");

    public static async Task<AuditBenchmark> PrepareAsync(EmbeddedPostgres cluster, int events)
    {
        Console.WriteLine($"Writing a fiscal history of {events:N0} events of the API's types, with authentication codes (bulk appends, not timed)...");
        var benchmark = new AuditBenchmark(await BenchDatabase.CreateAsync(cluster, "audit", Database.Migrations));
        await FiscalHistory.AppendAsync(benchmark.Log, events);
        benchmark._head = await benchmark._database.CatchUpHighWaterMarkAsync();
        benchmark._count = await benchmark._database.CountAsync(0, benchmark._head);
        await benchmark._database.ExecuteAsync($"VACUUM ANALYZE {EventLog.Table}");
        return benchmark;
    }

    public async Task RunAsync(int rounds)
    {
        Console.WriteLine($"{"audit trail",-34} {"raw ev/s",16} {"ours ev/s",12} {"ratio",7} {"peak MiB",9} {"heap MiB",9}");
        var seal = new List<double>();
        var export = new List<double>();
        var verify = new List<double>();
        var rawDatabase = new List<double>();
        var rawFile = new List<double>();
        var peaks = new Dictionary<string, List<(double WorkingSet, double Heap)>> { ["seal"] = [], ["export"] = [], ["verify"] = [] };
        for (var round = 0; round < rounds; round++)
        {
            await _database.ExecuteAsync("TRUNCATE audit_hashes, audit_seals");
            await _database.CheckpointAsync();
            rawDatabase.Add(await RawDatabaseReadAsync());
            seal.Add(await MeasureAsync(peaks["seal"], async () =>
            {
                using var notary = new Notary(Log, _keys, _pseudonyms, TimeProvider.System, NullLogger<Notary>.Instance);
                await notary.SealAsync();
            }));
            export.Add(await MeasureAsync(peaks["export"], ExportFromDatabaseAsync));
            rawFile.Add(await RawFileReadAsync());
            verify.Add(await MeasureAsync(peaks["verify"], async () =>
            {
                var report = await new AuditVerifier(Seal.PublicKey(_keys.PublicKey)).VerifyAsync(AuditExportFile.ReadAsync(ExportPath));
                if (!report.Passed || report.Events != _count)
                {
                    throw new InvalidOperationException($"The benchmark's export did not verify: {report}");
                }
            }));
        }

        Print("seal (notary, from PostgreSQL)", rawDatabase, seal, peaks["seal"]);
        Print("export (database → NDJSON)", rawDatabase, export, peaks["export"]);
        Print("verify (NDJSON file)", rawFile, verify, peaks["verify"]);
        Console.WriteLine($"raw: a sequential read of the same {_count:N0} events, SELECT data … ORDER BY seq_id streamed (seal, export), " +
                          "or the export's lines read and parsed as JSON (verify). Export file: " +
                          $"{new FileInfo(ExportPath).Length / 1024.0 / 1024.0:N0} MiB.");
        Console.WriteLine();
    }

    private static void Print(string what, List<double> raw, List<double> ours, List<(double WorkingSet, double Heap)> peaks) =>
        Console.WriteLine($"{what,-34} {Stats.Median(raw),16:N0} {Stats.Median(ours),12:N0} {Stats.Median(ours) / Stats.Median(raw),6:0.00}x " +
                          $"{peaks.Max(p => p.WorkingSet),9:N0} {peaks.Max(p => p.Heap),9:N0}");

    private async Task<double> MeasureAsync(List<(double, double)> peaks, Func<Task> run)
    {
        await using var memory = new Stats.MemoryPeak();
        var started = Stopwatch.GetTimestamp();
        await run();
        var rate = _count / Stopwatch.GetElapsedTime(started).TotalSeconds;
        await memory.DisposeAsync();
        peaks.Add((memory.WorkingSetMiB, memory.HeapMiB));
        return rate;
    }

    private async Task<double> RawDatabaseReadAsync()
    {
        var started = Stopwatch.GetTimestamp();
        long bytes = 0;
        await using var command = _database.DataSource.CreateCommand($"SELECT data::text FROM {EventLog.Table} WHERE seq_id <= $1 ORDER BY seq_id");
        command.Parameters.Add(new Npgsql.NpgsqlParameter<long> { TypedValue = _head });
        await using var reader = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess);
        while (await reader.ReadAsync())
        {
            bytes += reader.GetString(0).Length;
        }

        return bytes > 0 ? _count / Stopwatch.GetElapsedTime(started).TotalSeconds : 0;
    }

    private async Task<double> RawFileReadAsync()
    {
        var started = Stopwatch.GetTimestamp();
        using var reader = new StreamReader(ExportPath, Encoding.UTF8, false, new FileStreamOptions { BufferSize = 1 << 16 });
        var lines = 0L;
        while (await reader.ReadLineAsync() is { } line)
        {
            using var document = JsonDocument.Parse(line);
            lines += document.RootElement.ValueKind == JsonValueKind.Object ? 1 : 0;
        }

        return _count / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    private async Task ExportFromDatabaseAsync()
    {
        await using var writer = new StreamWriter(ExportPath, append: false, new UTF8Encoding(false), bufferSize: 1 << 16);
        await writer.WriteLineAsync(AuditExportFile.HeaderLine(_keys.PublicKey));
        await foreach (var entry in DatabaseTrail.ReadAsync(_database.DataSource, Log.Authenticator!, Log.Types, _pseudonyms))
        {
            await writer.WriteLineAsync(entry.Seal is { } seal ? AuditExportFile.Line(seal) : AuditExportFile.Line(entry.Event!));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _store.Dispose();
        await _database.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
