using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confederal.Benchmarks;
using Confederal.EventStore;
using Npgsql;

// dotnet run -c Release --project tests/Confederal.Benchmarks -- [--seconds 3] [--rounds 5] [--events 1000000] [--clients 32]
//     [--warmup 30] [--votes 100000] [--close-votes 1000000] [--minutes 10]
//     [--only append|rebuild|import|designations|budget|get-budget|as-of|votes|audit|replay|soak[,…]]
// soak (the load and soak run) runs only when named.
string[] benchmarks = ["append", "rebuild", "import", "designations", "budget", "get-budget", "as-of", "votes", "audit", "replay", "soak"];
var only = args.SkipWhile(a => a != "--only").Skip(1).FirstOrDefault()?.Split(',');
if (only is not null && only.Except(benchmarks).Any())
{
    Console.Error.WriteLine($"--only takes one or more of (comma-separated): {string.Join(", ", benchmarks)}.");
    return 2;
}

var seconds = Arg("--seconds", 3);
var rounds = Arg("--rounds", 5);
var rebuildEvents = Arg("--events", 1_000_000);
var clients = Arg("--clients", 32);
var warmup = Arg("--warmup", 30);

var directory = Path.Combine(Path.GetTempPath(), $"confederal-bench-{Guid.NewGuid():N}");
// A durable server with PostgreSQL's default settings: fsync and synchronous_commit on.
await using var cluster = await EmbeddedPostgres.StartAsync(directory, deleteOnDispose: true);
await cluster.CreateDatabaseAsync("bench");
Stats.PostmasterPid = int.Parse(File.ReadLines(Path.Combine(directory, "postgres", "postmaster.pid")).First(), CultureInfo.InvariantCulture);
var builder = new NpgsqlDataSourceBuilder(cluster.ConnectionString("bench"));
builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
builder.ConnectionStringBuilder.MaxPoolSize = 64;
await using var dataSource = builder.Build();
await BenchDatabase.CreateMartenTablesAsync(dataSource);
await Schema.MigrateAsync(dataSource, Workload.Migrations);

var types = new EventTypes().Register<TaxAssessed>("tax-assessed");
// As the API appends: every event carries its authentication code. No projection: the appends' catch-up (after each
// run) only moves the high-water mark.
using var ours = new OpenStore(dataSource, types, [], new EventAuthenticator(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));

Console.WriteLine($"Confederal event store benchmark: PostgreSQL {await Workload.ServerVersionAsync(dataSource)}, " +
                  $"{Environment.ProcessorCount} cores, {rounds} rounds of {seconds} s each, medians; ratio = ours / raw.");
Console.WriteLine();
if (Runs("append"))
{
Console.WriteLine($"{"append",-34} {"raw INSERT ev/s",16} {"ours ev/s",12} {"ratio",7} {"ours p50 ms",12} {"ours p99 ms",12}");
foreach (var (writers, perCommit) in new[] { (1, 1), (1, 10), (8, 1), (8, 10) })
{
    var raw = new List<double>();
    var runs = new List<Workload.Run>();
    for (var round = 0; round < rounds; round++)
    {
        // Alternate who goes first so that neither always meets the fuller table.
        if (round % 2 == 0)
        {
            raw.Add((await Workload.RawInsertAsync(dataSource, writers, perCommit, seconds)).EventsPerSecond);
            runs.Add(await Workload.AppendAsync(ours, writers, perCommit, seconds));
        }
        else
        {
            runs.Add(await Workload.AppendAsync(ours, writers, perCommit, seconds));
            raw.Add((await Workload.RawInsertAsync(dataSource, writers, perCommit, seconds)).EventsPerSecond);
        }
    }

    var rawMedian = Median(raw);
    var oursMedian = Median(runs.Select(r => r.EventsPerSecond));
    Console.WriteLine($"{$"{writers} writer(s) x {perCommit} event(s)/commit",-34} {rawMedian,16:N0} {oursMedian,12:N0} {oursMedian / rawMedian,6:0.00}x " +
                      $"{Median(runs.Select(r => r.P50Ms)),12:0.00} {Median(runs.Select(r => r.P99Ms)),12:0.00}");
}

}

if (Runs("rebuild"))
{
Console.WriteLine();
Console.WriteLine($"Loading {rebuildEvents:N0} events for the rebuild (bulk SQL, not timed)...");
await Workload.LoadForRebuildAsync(dataSource, rebuildEvents);
using var totals = new OpenStore(dataSource, types, [new Workload.TotalsProjection()]);
Console.WriteLine($"{"rebuild",-34} {"raw read ev/s",16} {"ours ev/s",12} {"ratio",7} {"peak MiB",12}");
var rawRebuild = new List<double>();
var oursRebuild = new List<double>();
var peaks = new List<double>();
for (var round = 0; round < Math.Max(1, rounds / 2); round++)
{
    rawRebuild.Add(await Workload.RawReadAsync(dataSource, types.SerializerOptions));
    var (rate, peakMiB) = await Workload.RebuildAsync(totals.Daemon, rebuildEvents);
    oursRebuild.Add(rate);
    peaks.Add(peakMiB);
}

Console.WriteLine($"{$"multi-stream projection, {rebuildEvents / 1000:N0}k events",-34} {Median(rawRebuild),16:N0} {Median(oursRebuild),12:N0} " +
                  $"{Median(oursRebuild) / Median(rawRebuild),6:0.00}x {peaks.Max(),12:N0}");
Console.WriteLine();
Console.WriteLine("peak MiB: the largest working set of this whole process (benchmark driver included) sampled during the rebuilds.");
}

// The fiscal core through the real API (Kestrel on 127.0.0.1, load generated by this same process on the same cores).
if (Runs("budget") || Runs("get-budget") || Runs("as-of"))
{
    Console.WriteLine();
    await using var budgets = await BudgetBenchmark.PrepareAsync(cluster, rebuildEvents);
    if (Runs("budget"))
    {
        await budgets.RunAsync(Math.Max(1, rounds / 2));
    }

    if (Runs("get-budget"))
    {
        Console.WriteLine();
        await budgets.GetBudgetAsync(clients, seconds, rounds, warmup);
    }

    if (Runs("as-of"))
    {
        Console.WriteLine();
        await budgets.AsOfAsync(Math.Max(1, rounds / 2));
    }
}

if (Runs("import"))
{
    Console.WriteLine();
    await ImportBenchmark.RunAsync(cluster, rebuildEvents, Math.Max(1, rounds / 2));
}

if (Runs("designations"))
{
    Console.WriteLine();
    await DesignationsBenchmark.RunAsync(cluster, clients, seconds, rounds, warmup);
}

if (Runs("votes"))
{
    Console.WriteLine();
    await VotesBenchmark.RunAsync(cluster, clients, Arg("--votes", 100_000), Math.Max(1, rounds / 2 + 1), Arg("--close-votes", 1_000_000));
}

if (Runs("audit"))
{
    Console.WriteLine();
    await using var audit = await AuditBenchmark.PrepareAsync(cluster, rebuildEvents);
    await audit.RunAsync(Math.Max(1, rounds / 2));
}

if (Runs("replay"))
{
    Console.WriteLine();
    await ReplayBenchmark.RunAsync(cluster, rebuildEvents, Math.Max(1, rounds / 2));
}

if (Runs("soak"))
{
    Console.WriteLine();
    await SoakBenchmark.RunAsync(cluster, Stats.PostmasterPid, clients, Arg("--minutes", 10), warmup, seconds, rounds);
}

return 0;

bool Runs(string benchmark) => only?.Contains(benchmark) ?? benchmark != "soak";

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static double Median(IEnumerable<double> values) => Stats.Median(values);
