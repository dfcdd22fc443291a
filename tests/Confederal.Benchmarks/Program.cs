using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confederal.Benchmarks;
using Confederal.EventStore;
using Npgsql;

// dotnet run -c Release --project tests/Confederal.Benchmarks -- [--seconds 3] [--rounds 5] [--events 1000000] [--only append|rebuild]
var only = args.SkipWhile(a => a != "--only").Skip(1).FirstOrDefault();
var seconds = Arg("--seconds", 3);
var rounds = Arg("--rounds", 5);
var rebuildEvents = Arg("--events", 1_000_000);

var directory = Path.Combine(Path.GetTempPath(), $"confederal-bench-{Guid.NewGuid():N}");
// A durable server with PostgreSQL's default settings: fsync and synchronous_commit on.
await using var cluster = await EmbeddedPostgres.StartAsync(directory, deleteOnDispose: true);
await cluster.CreateDatabaseAsync("bench");
var builder = new NpgsqlDataSourceBuilder(cluster.ConnectionString("bench"));
builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
builder.ConnectionStringBuilder.MaxPoolSize = 64;
await using var dataSource = builder.Build();
await Schema.MigrateAsync(dataSource, [.. Schema.EventStore, .. Workload.Migrations]);

var types = new EventTypes().Register<TaxAssessed>("tax-assessed");
var log = new EventLog(dataSource, types);

Console.WriteLine($"Confederal event store benchmark: PostgreSQL {await Workload.ServerVersionAsync(dataSource)}, " +
                  $"{Environment.ProcessorCount} cores, {rounds} rounds of {seconds} s each, medians; ratio = ours / raw.");
Console.WriteLine();
if (only is null or "append")
{
Console.WriteLine($"{"append",-34} {"raw INSERT ev/s",16} {"ours ev/s",12} {"ratio",7} {"ours p50 ms",12} {"ours p99 ms",12}");
foreach (var (writers, perCommit) in new[] { (1, 1), (1, 10), (8, 1), (8, 10) })
{
    var raw = new List<double>();
    var ours = new List<Workload.Run>();
    for (var round = 0; round < rounds; round++)
    {
        // Alternate who goes first so that neither always meets the fuller table.
        if (round % 2 == 0)
        {
            raw.Add((await Workload.RawInsertAsync(dataSource, writers, perCommit, seconds)).EventsPerSecond);
            ours.Add(await Workload.AppendAsync(log, writers, perCommit, seconds));
        }
        else
        {
            ours.Add(await Workload.AppendAsync(log, writers, perCommit, seconds));
            raw.Add((await Workload.RawInsertAsync(dataSource, writers, perCommit, seconds)).EventsPerSecond);
        }
    }

    var rawMedian = Median(raw);
    var oursMedian = Median(ours.Select(r => r.EventsPerSecond));
    Console.WriteLine($"{$"{writers} writer(s) x {perCommit} event(s)/commit",-34} {rawMedian,16:N0} {oursMedian,12:N0} {oursMedian / rawMedian,6:0.00}x " +
                      $"{Median(ours.Select(r => r.P50Ms)),12:0.00} {Median(ours.Select(r => r.P99Ms)),12:0.00}");
}

}

if (only is "append")
{
    return 0;
}

Console.WriteLine();
Console.WriteLine($"Loading {rebuildEvents:N0} events for the rebuild (bulk SQL, not timed)...");
await Workload.LoadForRebuildAsync(dataSource, rebuildEvents);
Console.WriteLine($"{"rebuild",-34} {"raw read ev/s",16} {"ours ev/s",12} {"ratio",7} {"peak MiB",12}");
var rawRebuild = new List<double>();
var oursRebuild = new List<double>();
var peaks = new List<double>();
for (var round = 0; round < Math.Max(1, rounds / 2); round++)
{
    rawRebuild.Add(await Workload.RawReadAsync(dataSource, types.SerializerOptions));
    var (rate, peakMiB) = await Workload.RebuildAsync(log, rebuildEvents);
    oursRebuild.Add(rate);
    peaks.Add(peakMiB);
}

Console.WriteLine($"{$"multi-stream projection, {rebuildEvents / 1000:N0}k events",-34} {Median(rawRebuild),16:N0} {Median(oursRebuild),12:N0} " +
                  $"{Median(oursRebuild) / Median(rawRebuild),6:0.00}x {peaks.Max(),12:N0}");
Console.WriteLine();
Console.WriteLine("peak MiB: the largest working set of this whole process (benchmark driver included) sampled during the rebuilds.");
return 0;

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToList();
    return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
}
