using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Unicode;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Npgsql;
using NpgsqlTypes;
using Assessed = Confederal.Domain.Fiscal.TaxAssessed;

namespace Confederal.Benchmarks;

/// <summary>
/// Bulk import of tax assessments end to end: one streamed NDJSON (or CSV) request to the real API over a socket, from
/// the request's first byte to its 201, beside a raw binary COPY of the same rows into a table like marten.mt_events. Each round
/// runs on a fresh database, so both sides write into empty tables with the same indexes.
/// </summary>
public static class ImportBenchmark
{
    private const string Canton = "ge";
    private const int FiscalYear = 2026;

    private static readonly Migration RawTable = Workload.RawEventsTable("raw-0001-import-events", "raw_import_events");

    private sealed record Run(double RowsPerSecond, double HighWaterAfterSeconds, double AppMicros, double ServerMicros);

    public static async Task RunAsync(EmbeddedPostgres cluster, int rows, int rounds)
    {
        Console.WriteLine($"Warming up with {rows / 5:N0} rows each way (not timed)...");
        await using (var database = await BenchDatabase.CreateAsync(cluster, "import_warmup", [.. Database.Migrations, RawTable]))
        {
            await using (var host = ApiHost.Start(database.ConnectionString))
            {
                await host.SetUpFiscalYearAsync([Canton], []);
                await host.SettleAsync();
                await OursAsync(host, database, rows / 5, csv: false);
                await OursAsync(host, database, rows / 5, csv: true);
            }

            await RawCopyAsync(database, rows / 5);
        }

        Console.WriteLine($"{$"import, {rows:N0} assessments",-34} {"raw COPY rows/s",16} {"ours rows/s",12} {"ratio",7} {"high-water +s",14} " +
                          $"{"CPU µs/row raw",15} {"ours",10}");
        var raw = new List<Run>();
        var ours = new List<Run>();
        var again = new List<Run>();
        for (var round = 0; round < rounds; round++)
        {
            // The API is stopped before raw COPY runs, so that its projections (busy with the imported rows for a while
            // after the 201) never run beside it.
            await using var database = await BenchDatabase.CreateAsync(cluster, $"import_{round}", [.. Database.Migrations, RawTable]);
            if (round % 2 == 0)
            {
                raw.Add(await RawCopyAsync(database, rows));
            }

            await using (var host = ApiHost.Start(database.ConnectionString))
            {
                await host.SetUpFiscalYearAsync([Canton], []);
                await host.SettleAsync();
                ours.Add(await OursAsync(host, database, rows, csv: false));

                // The same people once more (each line a correction), once the projections have read the first import:
                // a canton's yearly import names mostly people it has assessed before, whose keys exist.
                await host.SettleAsync();
                again.Add(await OursAsync(host, database, rows, csv: false));
            }

            if (round % 2 == 1)
            {
                raw.Add(await RawCopyAsync(database, rows));
            }
        }

        var rawMedian = Stats.Median(raw.Select(r => r.RowsPerSecond));
        var oursMedian = Stats.Median(ours.Select(r => r.RowsPerSecond));
        Console.WriteLine($"{"NDJSON over HTTP (median)",-34} {rawMedian,16:N0} {oursMedian,12:N0} {oursMedian / rawMedian,6:0.00}x " +
                          $"{Stats.Median(ours.Select(r => r.HighWaterAfterSeconds)),14:0.0} {Cpu(raw),15} {Cpu(ours),10}");
        var againMedian = Stats.Median(again.Select(r => r.RowsPerSecond));
        Console.WriteLine($"{"  the same people again (median)",-34} {"",16} {againMedian,12:N0} {againMedian / rawMedian,6:0.00}x " +
                          $"{Stats.Median(again.Select(r => r.HighWaterAfterSeconds)),14:0.0} {"",15} {Cpu(again),10}");

        await using (var database = await BenchDatabase.CreateAsync(cluster, "import_csv", Database.Migrations))
        await using (var host = ApiHost.Start(database.ConnectionString))
        {
            await host.SetUpFiscalYearAsync([Canton], []);
            await host.SettleAsync();
            var csv = await OursAsync(host, database, rows, csv: true);
            Console.WriteLine($"{"CSV over HTTP (1 run)",-34} {"",16} {csv.RowsPerSecond,12:N0} {csv.RowsPerSecond / rawMedian,6:0.00}x " +
                              $"{csv.HighWaterAfterSeconds,14:0.0} {"",15} {Cpu([csv]),10}");
        }

        Console.WriteLine("high-water +s: how long after the 201 Marten's high-water mark passed the last imported row (projections may then read it).");
    }

    private static string Cpu(IReadOnlyList<Run> runs) =>
        $"{Stats.Median(runs.Select(r => r.AppMicros)):0.0}+{Stats.Median(runs.Select(r => r.ServerMicros)):0.0}";

    private static long Amount(int i) => 10_000 + i * 7_919L % 10_000_000;

    // As long as the taxpayer handle the API records in place of the person id.
    private static string Handle(int i) => string.Create(CultureInfo.InvariantCulture, $"t~{i:D26}");

    private static async Task<Run> OursAsync(ApiHost host, BenchDatabase database, int rows, bool csv)
    {
        await database.CheckpointAsync();
        using var client = host.Client(host.Token(Roles.Municipality, subject: $"{Canton}-admin", canton: Canton));
        (await client.GetAsync(new Uri("/health/live", UriKind.Relative))).Dispose(); // the connection is open before timing
        var before = await database.LastCommittedAsync();

        var cpu = Stats.CpuSeconds();
        var started = Stopwatch.GetTimestamp();
        await ImportAsync(client, Canton, rows, csv);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var cpuAfter = Stats.CpuSeconds();
        var answered = Stopwatch.GetTimestamp();
        var last = await database.LastCommittedAsync();
        while (await database.HighWaterMarkAsync() < last)
        {
            await Task.Delay(10);
        }

        var highWater = Stopwatch.GetElapsedTime(answered).TotalSeconds;
        if (await database.CountAsync(before, last) != rows)
        {
            throw new InvalidOperationException($"The import's 201 came, but {rows:N0} rows are not all in the log.");
        }

        return new Run(rows / seconds, highWater,
            (cpuAfter.App - cpu.App) / rows * 1e6, (cpuAfter.Server - cpu.Server) / rows * 1e6);
    }

    /// <summary>POSTs <paramref name="rows"/> assessments of 2026 (persons p0000001…) to the canton's import as one
    /// streamed request (NDJSON or CSV), until its 201.</summary>
    internal static async Task ImportAsync(HttpClient client, string canton, int rows, bool csv)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/cantons/{canton}/tax-assessments/batch")
        {
            Content = new AssessmentsContent(rows, csv),
        };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode != HttpStatusCode.Created)
        {
            throw new InvalidOperationException($"The import answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>The same rows, columns and JSON payloads as the API records, by binary COPY in one transaction. The
    /// payloads are serialized beforehand (not timed): the line is what the server and the wire can take.</summary>
    private static async Task<Run> RawCopyAsync(BenchDatabase database, int rows)
    {
        await database.CheckpointAsync();
        var options = Events.Types().SerializerOptions;
        var payloads = new string[rows + 1];
        for (var i = 1; i <= rows; i++)
        {
            payloads[i] = JsonSerializer.Serialize(new Assessed(Canton, Handle(i), FiscalYear, Amount(i)), options);
        }

        var stream = Assessed.FilingStreamId(Canton, Guid.CreateVersion7());
        var correlation = Guid.NewGuid().ToString("N");
        var actor = $"municipality:{Canton}";
        var dotnetType = Workload.DotnetType(typeof(Assessed));
        var headers = Workload.CodeHeaders();
        await using var connection = await database.DataSource.OpenConnectionAsync();
        var cpu = Stats.CpuSeconds();
        var started = Stopwatch.GetTimestamp();
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var importer = await connection.BeginBinaryImportAsync(
                             "COPY raw_import_events (id, stream_id, version, type, data, mt_dotnet_type, correlation_id, causation_id, headers, user_name) " +
                             "FROM STDIN (FORMAT BINARY)"))
            {
                for (var i = 1; i <= rows; i++)
                {
                    await WriteRowAsync(importer, stream, i, payloads[i], dotnetType, correlation, headers, actor);
                }

                await importer.CompleteAsync();
            }

            await tx.CommitAsync();
        }

        var rate = rows / Stopwatch.GetElapsedTime(started).TotalSeconds;
        var cpuAfter = Stats.CpuSeconds();
        await using var truncate = new NpgsqlCommand("TRUNCATE raw_import_events", connection);
        await truncate.ExecuteNonQueryAsync();
        return new Run(rate, 0, (cpuAfter.App - cpu.App) / rows * 1e6, (cpuAfter.Server - cpu.Server) / rows * 1e6);
    }

    // A method of its own, as BulkAppend.WriteAsync is: called once a row, the JIT tiers it up as it does ours (a loop
    // in a method called once a round only gets on-stack-replacement code).
    private static async ValueTask WriteRowAsync(
        NpgsqlBinaryImporter importer, string stream, long version, string payload, string dotnetType, string correlation, string headers, string actor)
    {
        await importer.StartRowAsync();
        await importer.WriteAsync(Guid.CreateVersion7(), NpgsqlDbType.Uuid);
        await importer.WriteAsync(stream, NpgsqlDbType.Varchar);
        await importer.WriteAsync(version, NpgsqlDbType.Bigint);
        await importer.WriteAsync("tax-assessed.v2", NpgsqlDbType.Varchar);
        await importer.WriteAsync(payload, NpgsqlDbType.Jsonb);
        await importer.WriteAsync(dotnetType, NpgsqlDbType.Varchar);
        await importer.WriteAsync(correlation, NpgsqlDbType.Varchar);
        await importer.WriteNullAsync();
        await importer.WriteAsync(headers, NpgsqlDbType.Jsonb);
        await importer.WriteAsync(actor, NpgsqlDbType.Varchar);
    }

    /// <summary>A request body written as it is sent (chunked), never held whole in memory.</summary>
    private sealed class AssessmentsContent : HttpContent
    {
        private readonly int _rows;
        private readonly bool _csv;

        public AssessmentsContent(int rows, bool csv)
        {
            _rows = rows;
            _csv = csv;
            Headers.ContentType = new MediaTypeHeaderValue(csv ? "text/csv" : "application/x-ndjson");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var buffer = new byte[64 * 1024];
            var used = 0;
            if (_csv)
            {
                used += Write(buffer, "personId,fiscalYear,amountMinor\n"u8);
            }

            for (var i = 1; i <= _rows; i++)
            {
                if (buffer.Length - used < 256)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, used));
                    used = 0;
                }

                var destination = buffer.AsSpan(used);
                var written = 0;
                var ok = _csv
                    ? Utf8.TryWrite(destination, CultureInfo.InvariantCulture, $"p{i:D7},{FiscalYear},{Amount(i)}\n", out written)
                    : Utf8.TryWrite(destination, CultureInfo.InvariantCulture,
                        $"{{\"personId\":\"p{i:D7}\",\"fiscalYear\":{FiscalYear},\"amountMinor\":{Amount(i)}}}\n", out written);
                if (!ok)
                {
                    throw new InvalidOperationException("A line does not fit the buffer.");
                }

                used += written;
            }

            await stream.WriteAsync(buffer.AsMemory(0, used));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

        private static int Write(byte[] buffer, ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(buffer);
            return bytes.Length;
        }
    }
}
