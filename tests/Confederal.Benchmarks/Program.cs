using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confederal.Benchmarks;
using Confederal.EventStore;
using Npgsql;

// dotnet run -c Release --project tests/Confederal.Benchmarks -- [--seconds 3] [--rounds 5] [--events 1000000] [--clients 32]
//     [--warmup 30] [--votes 100000] [--close-votes 1000000] [--minutes 10]
//     [--placement-events 1000000]
//     [--only append|rebuild|import|designations|budget|get-budget|as-of|votes|audit|replay|soak|placement[,…]]
// soak (the load and soak run) and placement (a placed canton beside 1 and 10 loaded ones) run only when named.
string[] benchmarks = ["append", "rebuild", "import", "designations", "budget", "get-budget", "as-of", "votes", "audit", "replay", "soak", "placement"];
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
// A durable server with PostgreSQL's default settings: fsync and synchronous_commit on. placement runs one API over 12
// databases of this server (each its own pools, daemon and copies), more connections than the embedded 200.
await using var cluster = await EmbeddedPostgres.StartAsync(
    directory, Runs("placement") ? new Dictionary<string, string> { ["max_connections"] = "500" } : null, deleteOnDispose: true);
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
// Plain Marten twice: in Rich mode, and with every default (Marten 9's default mode is not Rich).
using var martenRich = Workload.PlainMarten(dataSource, "plain_marten_rich", JasperFx.Events.EventAppendMode.Rich);
using var martenDefault = Workload.PlainMarten(dataSource, "plain_marten", appendMode: null);
foreach (var store in new[] { martenRich, martenDefault })
{
    await store.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
}

Console.WriteLine($"Confederal event store benchmark: PostgreSQL {await Workload.ServerVersionAsync(dataSource)}, " +
                  $"{Environment.ProcessorCount} cores, {rounds} rounds of {seconds} s each, medians; ratio = ours / raw.");
Console.WriteLine();
if (Runs("append"))
{
(string Name, Func<int, int, Task<Workload.Run>> Run)[] appenders =
[
    ("raw INSERT", (writers, perCommit) => Workload.RawInsertAsync(dataSource, writers, perCommit, seconds)),
    ("plain Marten, Rich", (writers, perCommit) => Workload.PlainMartenAppendAsync(martenRich, writers, perCommit, seconds)),
    ($"plain Marten, its default ({martenDefault.Options.Events.AppendMode})",
        (writers, perCommit) => Workload.PlainMartenAppendAsync(martenDefault, writers, perCommit, seconds)),
    ("ours (EventLog.AppendAsync on Marten)", (writers, perCommit) => Workload.AppendAsync(ours, writers, perCommit, seconds)),
];
var width = appenders.Max(a => a.Name.Length);
Console.WriteLine($"{"append".PadRight(width + 2)} {"ev/s",10} {"ratio",7} {"p50 ms",8} {"p99 ms",8}");
foreach (var (writers, perCommit) in new[] { (1, 1), (1, 10), (8, 1), (8, 10) })
{
    var runs = appenders.Select(_ => new List<Workload.Run>()).ToArray();
    for (var round = 0; round < rounds; round++)
    {
        // Rotate who goes first so that none always meets the fullest tables.
        for (var turn = 0; turn < appenders.Length; turn++)
        {
            var a = (round + turn) % appenders.Length;
            runs[a].Add(await appenders[a].Run(writers, perCommit));
        }
    }

    Console.WriteLine($"{writers} writer(s) x {perCommit} event(s)/commit");
    var rawMedian = Median(runs[0].Select(r => r.EventsPerSecond));
    for (var a = 0; a < appenders.Length; a++)
    {
        var rate = Median(runs[a].Select(r => r.EventsPerSecond));
        var ratio = a == 0 ? "" : $"{rate / rawMedian:0.00}x";
        Console.WriteLine($"  {appenders[a].Name.PadRight(width)} {rate,10:N0} {ratio,7} {Median(runs[a].Select(r => r.P50Ms)),8:0.00} {Median(runs[a].Select(r => r.P99Ms)),8:0.00}");
    }
}

Console.WriteLine();
Console.WriteLine($"plain Marten {typeof(Marten.DocumentStore).Assembly.GetName().Version!.ToString(3)} (string stream keys, otherwise its defaults, " +
                  "a schema of its own), as its documentation writes a command: a lightweight session, FetchForWriting (the aggregate " +
                  "folded live from its stream), AppendOne, SaveChangesAsync. ours: at the expected version, Quick appends, metadata " +
                  "columns and each event's authentication code. raw: one INSERT of our rows' columns per commit. Ratios are to raw.");
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

if (Runs("placement"))
{
    Console.WriteLine();
    await PlacementBenchmark.RunAsync(cluster, Arg("--placement-events", 1_000_000), clients, seconds, rounds, warmup);
}

return 0;

bool Runs(string benchmark) => only?.Contains(benchmark) ?? benchmark is not ("soak" or "placement");

int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

static double Median(IEnumerable<double> values) => Stats.Median(values);
