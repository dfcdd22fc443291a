using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Npgsql;
using NpgsqlTypes;

namespace Confederal.Benchmarks;

/// <summary>
/// The load and soak run: the built API in a process of its own (<see cref="ApiProcess"/>) on a confederation seeded over
/// HTTP, driven for minutes by concurrent clients with a mix of the writes municipalities and people make and the reads
/// the public, organizations and portals make. It reports rates, latencies, errors and both processes' memory every 30 s,
/// then checks that every acknowledged write was recorded exactly once and that memory stayed flat.
/// </summary>
public static class SoakBenchmark
{
    private const int Year = 2026;
    private const int TaxpayersPerCanton = 2_000;
    private const int SeededResidentsPerCanton = 100;
    private const int SeededDesignationsPerCanton = 400;
    private const int CertifiedBallotVotes = 20;
    private const int ImportRows = 50;
    private const int ShownErrorBodies = 5;
    private static readonly TimeSpan ReportEvery = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan SampleEvery = TimeSpan.FromSeconds(2);

    private static readonly (string Id, string Name, string Currency, int RateBp, string Unallocated, int VotingAge)[] CantonSeeds =
    [
        ("ge", "Genève", "CHF", 70, "retain", 16),
        ("vd", "Vaud", "CHF", 50, "proportional", 16),
        ("zh", "Zürich", "CHF", 80, "retain", 18),
        ("ti", "Ticino", "CHF", 100, "proportional", 16),
        ("be", "Bern", "CHF", 60, "retain", 18),
        ("alsace", "Alsace", "EUR", 70, "proportional", 16),
    ];

    private static readonly (string Id, string Kind, bool AcceptsRedistribution)[] OrganizationSeeds =
    [
        ("linux-commons", "commons", true),
        ("ocean-care", "commons", true),
        ("open-street-map", "commons", true),
        ("romansh-culture", "cultural", true),
        ("lusophone-community", "origin", false),
        ("esperanto-network", "community", true),
        ("free-music-archive", "cultural", true),
        ("seed-savers", "commons", false),
    ];

    /// <summary>The mix, in the order of <see cref="Weights"/>: writes first, then reads.</summary>
    private enum Kind { Assess, Import, Designate, Register, Vote, Depart, Budget, Receipts, Census, Results, Organizations }

    private const Kind LastWrite = Kind.Depart;

    private static readonly int[] Weights = [14, 2, 14, 10, 8, 3, 16, 8, 8, 6, 6];

    private static readonly string[] Labels =
    [
        "POST tax-assessment", $"POST batch of {ImportRows}", "PUT designation", "POST resident", "POST vote", "POST departure",
        "GET budget", "GET receipts", "GET census", "GET ballot results", "GET organizations",
    ];

    private static readonly Kind[] Kinds = Enum.GetValues<Kind>();

    /// <summary>The API's configuration for the run, beyond the connection string and the data folder. The run measures
    /// the platform, not its rate limits: one municipality, or the anonymous readers all at 127.0.0.1, send hundreds of
    /// requests a second here.</summary>
    private static readonly Dictionary<string, string> ApiSettings = new(StringComparer.Ordinal)
    {
        ["RateLimiting__Client__PermitsPerSecond"] = "1000000",
        ["RateLimiting__Client__Burst"] = "1000000",
    };

    private static readonly Migration RawTable = Workload.RawEventsTable("raw-0004-soak-events", "raw_soak_events");

    /// <summary>Seeds, measures raw PostgreSQL's INSERTs with as many clients, then runs the mix for
    /// <paramref name="warmup"/> seconds (not counted) and <paramref name="minutes"/> minutes.</summary>
    public static async Task RunAsync(EmbeddedPostgres cluster, int postmaster, int clients, int minutes, int warmup, int seconds, int rounds)
    {
        await using var database = await BenchDatabase.CreateAsync(cluster, "soak", [.. Database.Migrations, RawTable]);
        Console.WriteLine($"Raw PostgreSQL: {clients} clients each INSERTing one event-sized row per statement, {rounds} rounds of {seconds} s...");
        var raw = await RawBaselineAsync(database, clients, seconds, rounds);

        Console.WriteLine("Starting the API as a process of its own (dotnet Confederal.Api.dll, Kestrel on 127.0.0.1)...");
        await using var api = await ApiProcess.StartAsync(database.ConnectionString, ApiSettings);
        Console.WriteLine($"  API pid {api.Pid} at {api.Address}, RSS {api.ResidentMiB():N0} MiB; PostgreSQL postmaster pid {postmaster}");

        var started = Stopwatch.GetTimestamp();
        var world = await World.SeedAsync(api, database, clients, TimeSpan.FromSeconds(warmup) + TimeSpan.FromMinutes(minutes));
        Console.WriteLine($"  seeded in {Stopwatch.GetElapsedTime(started).TotalSeconds:0} s: {world.Summary}");

        var run = new Run(api, database, postmaster, world, clients);
        await run.DriveAsync(TimeSpan.FromSeconds(warmup), TimeSpan.FromMinutes(minutes));
        await run.VerifyAsync(raw);
    }

    /// <summary>What PostgreSQL alone does with the same number of clients: one INSERT of an event-sized row (a tax assessment's
    /// payload, the columns Marten writes for ours) per statement into a table with marten.mt_events' columns and indexes.
    /// Medians of <paramref name="rounds"/>.</summary>
    private static async Task<Workload.Run> RawBaselineAsync(BenchDatabase database, int clients, int seconds, int rounds)
    {
        var options = Events.Types().SerializerOptions;
        var dotnetType = Workload.DotnetType(typeof(Confederal.Domain.Fiscal.TaxAssessed));
        var headers = Workload.CodeHeaders();
        var runs = new List<Workload.Run>();
        for (var round = 0; round < rounds; round++)
        {
            runs.Add(await Workload.MeasureAsync(clients, seconds, async (_, i) =>
            {
                await using var command = database.DataSource.CreateCommand("""
                    INSERT INTO raw_soak_events (id, stream_id, version, type, data, mt_dotnet_type, correlation_id, headers, user_name)
                    VALUES ($1, $2, 1, 'tax-assessed.v1', $3, $4, $5, $6, 'municipality:ge')
                    """);
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Confederal.Domain.Fiscal.TaxAssessed.FilingStreamId("ge", Guid.CreateVersion7()) });
                command.Parameters.Add(new NpgsqlParameter<string>
                {
                    TypedValue = JsonSerializer.Serialize(new Confederal.Domain.Fiscal.TaxAssessed("ge", Taxpayer("ge", (int)(i % TaxpayersPerCanton)), Year,
                        1_000_000 + i), options),
                    NpgsqlDbType = NpgsqlDbType.Jsonb,
                });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = dotnetType });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Guid.NewGuid().ToString("N") });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = headers, NpgsqlDbType = NpgsqlDbType.Jsonb });
                await command.ExecuteNonQueryAsync();
                return 1;
            }));
        }

        await database.ExecuteAsync("TRUNCATE raw_soak_events");
        return new Workload.Run(Stats.Median(runs.Select(r => r.EventsPerSecond)), Stats.Median(runs.Select(r => r.P50Ms)),
            Stats.Median(runs.Select(r => r.P99Ms)));
    }

    private static string Taxpayer(string canton, int n) => $"{canton}-t{n:D5}";

    private static string Seeded(string canton, int n) => $"{canton}-s{n:D4}";

    private static DateOnly Today => DateOnly.FromDateTime(DateTime.UtcNow);

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body, JsonSerializerOptions.Web), Encoding.UTF8, "application/json");

    private static HttpRequestMessage Request(HttpMethod method, string path, string? token, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        if (method != HttpMethod.Get)
        {
            // Unique per write, as a municipal system that retries would send it.
            request.Headers.Add("Idempotency-Key", Guid.NewGuid().ToString());
        }

        return request;
    }

    private sealed record Canton(string Id, string Municipality, Guid OpenBallot, Guid CertifiedBallot);

    /// <summary>The seeded confederation: cantons with their municipalities' tokens and ballots, organizations with theirs.</summary>
    private sealed class World
    {
        private World(ApiProcess api, IReadOnlyList<Canton> cantons, IReadOnlyList<(string Id, string Token)> organizations, TimeSpan tokenLifetime)
        {
            Api = api;
            Cantons = cantons;
            Organizations = organizations;
            TokenLifetime = tokenLifetime;
        }

        public ApiProcess Api { get; }

        public IReadOnlyList<Canton> Cantons { get; }

        public IReadOnlyList<(string Id, string Token)> Organizations { get; }

        public TimeSpan TokenLifetime { get; }

        public long SeededAssessments => (long)Cantons.Count * TaxpayersPerCanton;

        public long SeededResidents => (long)Cantons.Count * SeededResidentsPerCanton;

        public string Summary =>
            $"{Cantons.Count} cantons with their {Year} policies, {Organizations.Count} organizations, {SeededAssessments:N0} assessments, " +
            $"{Cantons.Count * SeededDesignationsPerCanton:N0} designations, {SeededResidents:N0} residents, {Cantons.Count} certified ballots of " +
            $"{CertifiedBallotVotes} votes, {Cantons.Count} ballots open for the run";

        public string Person(string personId) => Api.Token(Roles.Person, subject: personId, lifetime: TokenLifetime);

        public static async Task<World> SeedAsync(ApiProcess api, BenchDatabase database, int parallelism, TimeSpan run)
        {
            var lifetime = run + TimeSpan.FromHours(1);
            using var http = api.Client(parallelism);
            var admin = api.Token(Roles.Admin, subject: "soak-admin", lifetime: lifetime);
            foreach (var (id, name, currency, _, _, _) in CantonSeeds)
            {
                await MustAsync(http, Request(HttpMethod.Put, $"/api/v1/cantons/{id}", admin, Json(new { name, currency })));
            }

            foreach (var (id, kind, accepts) in OrganizationSeeds)
            {
                await MustAsync(http, Request(HttpMethod.Put, $"/api/v1/organizations/{id}", admin,
                    Json(new { name = id.Replace('-', ' '), kind, acceptsRedistribution = accepts })));
            }

            var municipalities = CantonSeeds.ToDictionary(c => c.Id, c => api.Token(Roles.Municipality, subject: $"{c.Id}-admin", canton: c.Id, lifetime: lifetime));
            foreach (var (id, _, _, rateBp, unallocated, votingAge) in CantonSeeds)
            {
                var municipality = municipalities[id];
                await MustAsync(http, Request(HttpMethod.Put, $"/api/v1/cantons/{id}/fiscal-years/{Year}/policy", municipality, Json(new
                {
                    designationRateBp = rateBp,
                    maxOrganizations = 3,
                    unallocatedPolicy = unallocated,
                    deadline = DateTimeOffset.UtcNow + lifetime + TimeSpan.FromDays(30),
                    eligibleOrganizations = "all",
                })));
                await MustAsync(http, Request(HttpMethod.Put, $"/api/v1/cantons/{id}/voting-rules", municipality,
                    Json(new { votingAge, minimumResidenceDays = 0 })));
                var lines = new StringBuilder();
                for (var n = 0; n < TaxpayersPerCanton; n++)
                {
                    lines.Append(CultureInfo.InvariantCulture,
                        $$"""{"personId":"{{Taxpayer(id, n)}}","fiscalYear":{{Year}},"amountMinor":{{Amount(n)}}}""").Append('\n');
                }

                await MustAsync(http, Request(HttpMethod.Post, $"/api/v1/cantons/{id}/tax-assessments/batch", municipality,
                    new StringContent(lines.ToString(), Encoding.UTF8, "application/x-ndjson")));
            }

            var organizationIds = OrganizationSeeds.Select(o => o.Id).ToArray();
            await Parallel.ForEachAsync(
                CantonSeeds.SelectMany(c => Enumerable.Range(0, SeededDesignationsPerCanton).Select(n => (Canton: c.Id, Person: Taxpayer(c.Id, n * 5)))),
                new ParallelOptions { MaxDegreeOfParallelism = parallelism },
                async (d, _) => await MustAsync(http, Request(HttpMethod.Put, $"/api/v1/cantons/{d.Canton}/fiscal-years/{Year}/designations/{d.Person}",
                    api.Token(Roles.Person, subject: d.Person), Json(Choices(new Random(d.Person.GetHashCode(StringComparison.Ordinal)), organizationIds)))));
            await Parallel.ForEachAsync(
                CantonSeeds.SelectMany(c => Enumerable.Range(0, SeededResidentsPerCanton).Select(n => (Canton: c.Id, Person: Seeded(c.Id, n)))),
                new ParallelOptions { MaxDegreeOfParallelism = parallelism },
                async (r, _) => await MustAsync(http, Request(HttpMethod.Post, $"/api/v1/cantons/{r.Canton}/residents", municipalities[r.Canton],
                    Json(Arrival(new Random(r.Person.GetHashCode(StringComparison.Ordinal)), r.Person)))));

            // A ballot per canton that closes in a few seconds, voted by some of the seeded residents and certified, for
            // the results to be read; and one open for the whole run.
            var closesSoon = DateTimeOffset.UtcNow.AddSeconds(10);
            var certified = new Dictionary<string, Guid>();
            var open = new Dictionary<string, Guid>();
            foreach (var (id, name, _, _, _, _) in CantonSeeds)
            {
                certified[id] = await CallAsync(http, municipalities[id], id, $"Shall {name} publish its budget weekly?", closesSoon);
                open[id] = await CallAsync(http, municipalities[id], id, $"Shall {name} twin with another canton?",
                    DateTimeOffset.UtcNow + lifetime);
            }

            string[] options = ["approve", "reject", "abstain"];
            await Parallel.ForEachAsync(
                CantonSeeds.SelectMany(c => Enumerable.Range(0, CertifiedBallotVotes).Select(n => (Canton: c.Id, Person: Seeded(c.Id, n)))),
                new ParallelOptions { MaxDegreeOfParallelism = parallelism },
                async (v, _) => await MustAsync(http, Request(HttpMethod.Post, $"/api/v1/cantons/{v.Canton}/ballots/{certified[v.Canton]}/votes",
                    api.Token(Roles.Person, subject: v.Person), Json(new { option = options[v.Person.Length % options.Length] }))));
            if (closesSoon - DateTimeOffset.UtcNow is { Ticks: > 0 } wait)
            {
                await Task.Delay(wait + TimeSpan.FromMilliseconds(200));
            }

            foreach (var (id, _, _, _, _, _) in CantonSeeds)
            {
                await MustAsync(http, Request(HttpMethod.Post, $"/api/v1/cantons/{id}/ballots/{certified[id]}/close", municipalities[id]));
            }

            await SettleAsync(database);
            return new World(api,
                [.. CantonSeeds.Select(c => new Canton(c.Id, municipalities[c.Id], open[c.Id], certified[c.Id]))],
                [.. organizationIds.Select(o => (o, api.Token(Roles.Organization, subject: o, lifetime: lifetime)))],
                lifetime);
        }

        private static async Task<Guid> CallAsync(HttpClient http, string municipality, string canton, string question, DateTimeOffset closesAt)
        {
            var opensAt = DateTimeOffset.UtcNow.AddMinutes(-1);
            var body = await MustAsync(http, Request(HttpMethod.Post, $"/api/v1/cantons/{canton}/ballots", municipality, Json(new
            {
                question,
                options = new[] { "approve", "reject", "abstain" },
                censusDate = DateOnly.FromDateTime(opensAt.UtcDateTime),
                opensAt,
                closesAt,
            })));
            return JsonDocument.Parse(body).RootElement.GetProperty("ballotId").GetGuid();
        }

        private static async Task<string> MustAsync(HttpClient http, HttpRequestMessage request)
        {
            using (request)
            using (var response = await http.SendAsync(request))
            {
                var body = await response.Content.ReadAsStringAsync();
                return response.IsSuccessStatusCode
                    ? body
                    : throw new InvalidOperationException($"{request.Method} {request.RequestUri}: {(int)response.StatusCode} {body}");
            }
        }
    }

    private static long Amount(long n) => 400_000 + n * 7_919 % 9_600_000;

    /// <summary>One to three distinct organizations, shares in basis points summing to 10000.</summary>
    private static object Choices(Random random, string[] organizations)
    {
        var picked = organizations.OrderBy(_ => random.Next()).Take(random.Next(1, 4)).ToArray();
        var shares = new int[picked.Length];
        var left = 10_000;
        for (var i = 0; i < picked.Length - 1; i++)
        {
            shares[i] = random.Next(1, left - (picked.Length - 1 - i)) / 100 * 100 + 100;
            shares[i] = Math.Min(shares[i], left - (picked.Length - 1 - i) * 100);
            left -= shares[i];
        }

        shares[^1] = left;
        return new
        {
            choices = picked.Select((o, i) => new { organizationId = o, shareBp = shares[i] }),
            standing = random.Next(4) == 0,
        };
    }

    /// <summary>An adult who moved in some time ago (before yesterday, so that they are on the roll of a ballot whose census
    /// date is today).</summary>
    private static object Arrival(Random random, string person)
    {
        var birth = Today.AddYears(-20).AddDays(-random.Next(0, 60 * 365));
        var since = birth.AddDays(random.Next(0, Today.AddDays(-1).DayNumber - birth.DayNumber));
        return new { personId = person, residentSince = since, birthDate = birth };
    }

    /// <summary>Waits until Marten's high-water mark has passed every committed event and every projection has applied them.</summary>
    private static async Task<TimeSpan> SettleAsync(BenchDatabase database)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            await using var command = database.DataSource.CreateCommand($"""
                SELECT NOT EXISTS (SELECT 1 FROM {MartenStore.Schema}.mt_event_progression
                                   WHERE (name = 'HighWaterMark' OR name LIKE '%:All')
                                     AND last_seq_id < (SELECT coalesce(max(seq_id), 0) FROM {EventLog.Table}))
                   AND EXISTS (SELECT 1 FROM {MartenStore.Schema}.mt_event_progression WHERE name = 'HighWaterMark')
                """);
            if ((bool)(await command.ExecuteScalarAsync())!)
            {
                return Stopwatch.GetElapsedTime(started);
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Latencies in buckets 2 % apart from 0.05 ms to beyond a minute: percentiles of every sample within 2 %, at a
    /// fixed size whatever the run's length. Safe to record into from many threads.</summary>
    private sealed class Histogram
    {
        private const double Smallest = 0.05;
        private static readonly double Step = Math.Log(1.02);
        private readonly long[] _counts = new long[800];
        private long _count;
        private double _max;

        public long Count => Interlocked.Read(ref _count);

        public double MaxMs => _max;

        public void Record(double ms)
        {
            var bucket = ms <= Smallest ? 0 : Math.Min(_counts.Length - 1, (int)Math.Ceiling(Math.Log(ms / Smallest) / Step));
            Interlocked.Increment(ref _counts[bucket]);
            Interlocked.Increment(ref _count);
            double seen;
            while (ms > (seen = Volatile.Read(ref _max)) && Interlocked.CompareExchange(ref _max, ms, seen) != seen)
            {
            }
        }

        /// <summary>The upper bound of the bucket holding the <paramref name="quantile"/> sample; NaN when empty.</summary>
        public double Percentile(double quantile)
        {
            var total = Count;
            if (total == 0)
            {
                return double.NaN;
            }

            var rank = (long)Math.Ceiling(quantile * total);
            long seen = 0;
            for (var i = 0; i < _counts.Length; i++)
            {
                seen += Interlocked.Read(ref _counts[i]);
                if (seen >= rank)
                {
                    return Math.Min(Smallest * Math.Exp(i * Step), _max);
                }
            }

            return _max;
        }
    }

    /// <summary>Samples of one phase (warm-up or measured): per kind, all latencies and those since the last report; errors
    /// by kind and status, with the first bodies.</summary>
    private sealed class Recorder
    {
        private readonly Histogram[] _all = [.. Kinds.Select(_ => new Histogram())];
        private readonly Histogram[] _interval = [.. Kinds.Select(_ => new Histogram())];
        private readonly long[] _errors = new long[Kinds.Length];
        private readonly long[] _intervalErrors = new long[Kinds.Length];

        public long Started { get; } = Stopwatch.GetTimestamp();

        public ConcurrentDictionary<string, long> ErrorsByStatus { get; } = new(StringComparer.Ordinal);

        public ConcurrentQueue<string> FirstErrors { get; } = new();

        public Histogram All(Kind kind) => _all[(int)kind];

        public long Errors(Kind kind) => Interlocked.Read(ref _errors[(int)kind]);

        public void Record(Kind kind, double ms, int status, string? errorBody)
        {
            _all[(int)kind].Record(ms);
            Volatile.Read(ref _interval[(int)kind]).Record(ms);
            if (errorBody is null)
            {
                return;
            }

            Interlocked.Increment(ref _errors[(int)kind]);
            Interlocked.Increment(ref _intervalErrors[(int)kind]);
            var key = status == 0 ? $"{Labels[(int)kind]}: no answer" : $"{Labels[(int)kind]}: {status}";
            ErrorsByStatus.AddOrUpdate(key, 1, (_, n) => n + 1);
            if (FirstErrors.Count < ShownErrorBodies)
            {
                FirstErrors.Enqueue($"{key} {errorBody[..Math.Min(errorBody.Length, 600)]}");
            }
        }

        /// <summary>The interval's latencies and errors per kind, and a fresh interval.</summary>
        public (Histogram[] Latencies, long[] Errors) TakeInterval()
        {
            var latencies = Kinds.Select(k => Interlocked.Exchange(ref _interval[(int)k], new Histogram())).ToArray();
            var errors = Kinds.Select(k => Interlocked.Exchange(ref _intervalErrors[(int)k], 0)).ToArray();
            return (latencies, errors);
        }
    }

    /// <summary>Writes acknowledged with a 2xx since the seeding (<see cref="Writes"/>: since the run began), warm-up
    /// included: what the database must hold afterwards.</summary>
    private sealed class Acknowledged
    {
        public long Assessments;
        public long ImportedRows;
        public long Registrations;
        public long Departures;
        public long Votes;
        public long Writes;
    }

    /// <summary>Memory at a <see cref="Stopwatch"/> timestamp.</summary>
    private sealed record MemorySample(long At, double ApiMiB, double ServerPrivateMiB, double ServerSharedMiB);

    /// <summary>One run of the mix: the clients, the reporter and the memory sampler.</summary>
    private sealed class Run(ApiProcess api, BenchDatabase database, int postmaster, World world, int clients)
    {
        private readonly Acknowledged _acknowledged = new();
        private long _keysBefore;
        private readonly List<MemorySample> _memory = [];
        private Recorder _recorder = new();
        private long _measuredFrom;
        private long _measuredTo;
        private int _serverProcesses;
        private (double Api, double Server, double Driver) _cpuBefore;
        private (double Api, double Server, double Driver) _cpuAfter;

        public async Task DriveAsync(TimeSpan warmup, TimeSpan duration)
        {
            Console.WriteLine();
            Console.WriteLine($"Soak: {clients} clients, each its own connection, for {duration.TotalMinutes:0.#} min after a {warmup.TotalSeconds:0} s warm-up " +
                              $"(not counted); a report every {ReportEvery.TotalSeconds:0} s. Mix (weights): " +
                              string.Join(", ", Kinds.Select(k => $"{Labels[(int)k]} {Weights[(int)k]}")) + ".");
            _keysBefore = await KeysAsync();
            using var stop = new CancellationTokenSource();
            var organizationIds = world.Organizations.Select(o => o.Id).ToArray();
            var loops = Enumerable.Range(0, clients).Select(c => Task.Run(() => new Client(c, clients, world, organizationIds, this).RunAsync(stop.Token))).ToArray();
            using var sampling = new CancellationTokenSource();
            var sampler = SampleAsync(sampling.Token);

            await Task.Delay(warmup);
            var warm = Interlocked.Exchange(ref _recorder, new Recorder());
            _measuredFrom = _recorder.Started;
            if (warmup > TimeSpan.Zero)
            {
                Console.WriteLine($"  warm-up done: {Kinds.Sum(k => warm.All(k).Count) / warmup.TotalSeconds:N0} req/s, " +
                                  $"{Kinds.Sum(warm.Errors):N0} errors; API RSS {api.ResidentMiB():N0} MiB");
            }

            _cpuBefore = Cpu();
            var lastReport = _measuredFrom;
            for (var reported = TimeSpan.Zero; reported < duration;)
            {
                reported = reported + ReportEvery < duration ? reported + ReportEvery : duration;
                var elapsed = Stopwatch.GetElapsedTime(_measuredFrom);
                await Task.Delay(elapsed < reported ? reported - elapsed : TimeSpan.Zero);
                var now = Stopwatch.GetTimestamp();
                ReportInterval(Stopwatch.GetElapsedTime(lastReport, now).TotalSeconds);
                lastReport = now;
            }

            await stop.CancelAsync();
            _measuredTo = Stopwatch.GetTimestamp();
            _cpuAfter = Cpu();
            await Task.WhenAll(loops);
            await sampling.CancelAsync();
            await sampler;
        }

        public void Record(Kind kind, double ms, int status, string? errorBody) => Volatile.Read(ref _recorder).Record(kind, ms, status, errorBody);

        public Acknowledged Acknowledged => _acknowledged;

        /// <summary>CPU seconds so far of the API, of the PostgreSQL server and of this process (the load generator).</summary>
        private (double Api, double Server, double Driver) Cpu()
        {
            var (driver, server) = Stats.CpuSeconds();
            return (ProcessStatus.CpuSeconds(api.Pid), server, driver);
        }

        private async Task SampleAsync(CancellationToken ct)
        {
            using var timer = new PeriodicTimer(SampleEvery);
            try
            {
                do
                {
                    var (serverPrivate, serverShared, processes) = ProcessStatus.Server(postmaster);
                    lock (_memory)
                    {
                        _memory.Add(new MemorySample(Stopwatch.GetTimestamp(), api.ResidentMiB(), serverPrivate, serverShared));
                    }

                    _serverProcesses = processes;
                }
                while (await timer.WaitForNextTickAsync(ct));
            }
            catch (OperationCanceledException)
            {
                // the run is over
            }
        }

        private MemorySample LatestMemory()
        {
            lock (_memory)
            {
                return _memory[^1];
            }
        }

        private void ReportInterval(double seconds)
        {
            var (latencies, errors) = _recorder.TakeInterval();
            var memory = LatestMemory();
            var total = latencies.Sum(h => h.Count);
            var writes = Kinds.Where(k => k <= LastWrite).Sum(k => latencies[(int)k].Count);
            Console.WriteLine();
            Console.WriteLine($"[{Stopwatch.GetElapsedTime(_measuredFrom).TotalMinutes,5:0.0} min] {total / seconds,7:N0} req/s ({writes / seconds:N0} writes/s), " +
                              $"{errors.Sum():N0} errors; API RSS {memory.ApiMiB:N0} MiB; PostgreSQL {memory.ServerPrivateMiB:N0} MiB private + " +
                              $"{memory.ServerSharedMiB:N0} MiB shared ({_serverProcesses} processes); " +
                              $"log lines from the API: {api.LoggedLines}");
            Console.WriteLine($"  {"kind",-22} {"req/s",8} {"p50 ms",8} {"p99 ms",8} {"errors",7}");
            foreach (var kind in Kinds)
            {
                var h = latencies[(int)kind];
                Console.WriteLine($"  {Labels[(int)kind],-22} {h.Count / seconds,8:N1} {h.Percentile(0.5),8:0.0} {h.Percentile(0.99),8:0.0} {errors[(int)kind],7:N0}");
            }
        }

        public async Task VerifyAsync(Workload.Run raw)
        {
            var settled = await SettleAsync(database);
            var recorder = _recorder;
            var seconds = Stopwatch.GetElapsedTime(_measuredFrom, _measuredTo).TotalSeconds;
            Console.WriteLine();
            Console.WriteLine($"Soak over {seconds / 60:0.0} min, {clients} clients (from every sample of the measured part; warm-up left out):");
            Console.WriteLine($"  {"kind",-22} {"requests",10} {"req/s",8} {"p50 ms",8} {"p99 ms",8} {"max ms",8} {"errors",7}");
            foreach (var kind in Kinds)
            {
                var h = recorder.All(kind);
                Console.WriteLine($"  {Labels[(int)kind],-22} {h.Count,10:N0} {h.Count / seconds,8:N1} {h.Percentile(0.5),8:0.0} {h.Percentile(0.99),8:0.0} " +
                                  $"{h.MaxMs,8:N0} {recorder.Errors(kind),7:N0}");
            }

            var writes = Kinds.Where(k => k <= LastWrite).Sum(k => recorder.All(k).Count);
            var reads = Kinds.Where(k => k > LastWrite).Sum(k => recorder.All(k).Count);
            var errors = Kinds.Sum(recorder.Errors);
            Console.WriteLine($"  {"all writes",-22} {writes,10:N0} {writes / seconds,8:N1}");
            Console.WriteLine($"  {"all reads",-22} {reads,10:N0} {reads / seconds,8:N1}");
            Console.WriteLine($"  {"all",-22} {writes + reads,10:N0} {(writes + reads) / seconds,8:N1} {"",8} {"",8} {"",8} {errors,7:N0}");
            Console.WriteLine($"  raw PostgreSQL, {clients} clients each INSERTing one event-sized row per statement: {raw.EventsPerSecond:N0} rows/s " +
                              $"(p50 {raw.P50Ms:0.0} ms, p99 {raw.P99Ms:0.0} ms): the ceiling of one-event writes on this server.");
            var requests = writes + reads;
            Console.WriteLine($"  CPU per request: API {(_cpuAfter.Api - _cpuBefore.Api) / requests * 1e6:N0} µs, PostgreSQL " +
                              $"{(_cpuAfter.Server - _cpuBefore.Server) / requests * 1e6:N0} µs, load generator {(_cpuAfter.Driver - _cpuBefore.Driver) / requests * 1e6:N0} µs " +
                              $"({Environment.ProcessorCount} cores, shared by all three).");
            Console.WriteLine($"  the high-water mark and projections had caught up {settled.TotalSeconds:0.0} s after the load stopped.");

            foreach (var (key, count) in recorder.ErrorsByStatus.OrderByDescending(e => e.Value))
            {
                Console.WriteLine($"  errors {key}: {count:N0}");
            }

            foreach (var body in recorder.FirstErrors)
            {
                Console.WriteLine($"  first errors: {body}");
            }

            var found = await FoundAsync();
            var expected = new[]
            {
                ("assessments", world.SeededAssessments + _acknowledged.Assessments + _acknowledged.ImportedRows, found.Assessments),
                ("residents", world.SeededResidents + _acknowledged.Registrations, found.Registrations),
                ("departures", _acknowledged.Departures, found.Departures),
                ("votes on the open ballots", _acknowledged.Votes, found.Votes),
                ("idempotency records of the run's writes", _acknowledged.Writes, await KeysAsync() - _keysBefore),
            };

            List<MemorySample> memory;
            lock (_memory)
            {
                memory = [.. _memory.Where(m => m.At >= _measuredFrom && m.At <= _measuredTo)];
            }

            Console.WriteLine();
            Console.WriteLine("Memory over the measured part (MiB; PostgreSQL: its processes' private memory summed, and the shared buffers touched):");
            Console.WriteLine($"  {"min",6} {"API RSS",8} {"PG private",11} {"PG shared",10}");
            var every = (int)(ReportEvery / SampleEvery);
            foreach (var m in memory.Where((_, i) => i % every == 0 || i == memory.Count - 1))
            {
                Console.WriteLine($"  {Minutes(m),6:0.0} {m.ApiMiB,8:N0} {m.ServerPrivateMiB,11:N0} {m.ServerSharedMiB,10:N0}");
            }

            Console.WriteLine();
            Console.WriteLine("Verdict:");
            Console.WriteLine($"  errors: {errors:N0} of {requests:N0} requests (lines the API logged: {api.LoggedLines}) → {(errors == 0 ? "PASS" : "FAIL")}");
            Console.WriteLine("  every write acknowledged with a 2xx (seeding and warm-up included) is in the log, once:");
            foreach (var (what, acknowledged, inLog) in expected)
            {
                Console.WriteLine($"    {what}: {acknowledged:N0} acknowledged, {inLog:N0} recorded → {(acknowledged == inLog ? "PASS" : "FAIL")}");
            }

            Console.WriteLine($"  {Flatness("API RSS", memory, m => m.ApiMiB)}");
            Console.WriteLine($"  {Flatness("PostgreSQL private", memory, m => m.ServerPrivateMiB)}");
            Console.WriteLine($"  PostgreSQL shared buffers touched: {memory[^1].ServerSharedMiB:N0} MiB at the end (they fill up to shared_buffers as the data grows).");
        }

        private async Task<long> KeysAsync()
        {
            await using var command = database.DataSource.CreateCommand("SELECT count(*) FROM idempotency_keys");
            return (long)(await command.ExecuteScalarAsync())!;
        }

        private async Task<(long Assessments, long Registrations, long Departures, long Votes)> FoundAsync()
        {
            var types = Events.Types();
            await using var command = database.DataSource.CreateCommand($"""
                SELECT count(*) FILTER (WHERE type = '{types.NameOf(typeof(Confederal.Domain.Fiscal.TaxAssessed)).Alias}'),
                       count(*) FILTER (WHERE type = '{types.NameOf(typeof(Confederal.Domain.Census.ResidentRegistered)).Alias}'),
                       count(*) FILTER (WHERE type = '{types.NameOf(typeof(Confederal.Domain.Census.ResidentDeparted)).Alias}')
                FROM {EventLog.Table}
                """);
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            var (assessments, registrations, departures) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2));
            await reader.CloseAsync();
            await using var votes = database.DataSource.CreateCommand("SELECT count(*) FROM ballot_participations WHERE ballot_id = ANY($1)");
            votes.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. world.Cantons.Select(c => c.OpenBallot)] });
            return (assessments, registrations, departures, (long)(await votes.ExecuteScalarAsync())!);
        }

        /// <summary>The median of the second third of the samples against that of the last third, and the least-squares slope
        /// over both: flat when the last third grew by no more than the larger of 5 % and 16 MiB.</summary>
        private double Minutes(MemorySample sample) => Stopwatch.GetElapsedTime(_measuredFrom, sample.At).TotalMinutes;

        private string Flatness(string what, List<MemorySample> samples, Func<MemorySample, double> value)
        {
            var third = samples.Count / 3;
            if (third < 2)
            {
                return $"{what}: too few samples to judge";
            }

            var second = Stats.Median(samples.Skip(third).Take(third).Select(value));
            var last = Stats.Median(samples.Skip(2 * third).Select(value));
            var tail = samples.Skip(third).ToList();
            var meanX = tail.Average(Minutes);
            var meanY = tail.Average(value);
            var slope = tail.Sum(s => (Minutes(s) - meanX) * (value(s) - meanY)) / tail.Sum(s => (Minutes(s) - meanX) * (Minutes(s) - meanX));
            var flat = last - second <= Math.Max(16, second * 0.05);
            return $"{what}: median {second:N0} MiB in the second third, {last:N0} MiB in the last ({last - second:+0;-0;0} MiB), " +
                   $"slope {slope:+0.00;-0.00} MiB/min → {(flat ? "flat, PASS" : "growing, FAIL")}";
        }
    }

    /// <summary>One client: its own connection, its own share of the taxpayers (so that no two clients write one stream at
    /// once), the residents it registered waiting to vote, and those who voted, some of whom then leave.</summary>
    private sealed class Client
    {
        private readonly int _index;
        private readonly int _clients;
        private readonly World _world;
        private readonly string[] _organizations;
        private readonly Run _run;
        private readonly Random _random;
        private readonly int _totalWeight = Weights.Sum();
        private readonly Queue<(Canton Canton, string Person)> _toVote = new();
        private readonly Queue<(Canton Canton, string Person)> _voted = new();
        private int _arrivals;

        public Client(int index, int clients, World world, string[] organizations, Run run)
        {
            _index = index;
            _clients = clients;
            _world = world;
            _organizations = organizations;
            _run = run;
            _random = new Random(7_919 * index + 1);
            foreach (var canton in world.Cantons)
            {
                for (var n = index; n < SeededResidentsPerCanton; n += clients)
                {
                    _toVote.Enqueue((canton, Seeded(canton.Id, n)));
                }
            }
        }

        private int OwnedTaxpayers => _index < TaxpayersPerCanton ? (TaxpayersPerCanton - 1 - _index) / _clients + 1 : 0;

        public async Task RunAsync(CancellationToken stop)
        {
            using var http = _world.Api.Client();
            while (!stop.IsCancellationRequested)
            {
                var (kind, request, acknowledge) = Next(Pick());
                var started = Stopwatch.GetTimestamp();
                var status = 0;
                string? error = null;
                try
                {
                    using var response = await http.SendAsync(request, CancellationToken.None);
                    status = (int)response.StatusCode;
                    if (!response.IsSuccessStatusCode)
                    {
                        error = await response.Content.ReadAsStringAsync(CancellationToken.None);
                    }
                }
                catch (HttpRequestException e)
                {
                    error = e.Message;
                }
                catch (TaskCanceledException)
                {
                    error = $"no answer within {http.Timeout.TotalSeconds:0} s";
                }
                finally
                {
                    request.Dispose();
                }

                _run.Record(kind, Stopwatch.GetElapsedTime(started).TotalMilliseconds, status, error);
                if (error is null && kind <= LastWrite)
                {
                    acknowledge?.Invoke();
                    Interlocked.Increment(ref _run.Acknowledged.Writes);
                }
            }
        }

        private Kind Pick()
        {
            var roll = _random.Next(_totalWeight);
            foreach (var kind in Kinds)
            {
                roll -= Weights[(int)kind];
                if (roll < 0)
                {
                    return kind;
                }
            }

            return Kinds[^1];
        }

        private (Kind, HttpRequestMessage, Action?) Next(Kind kind)
        {
            var canton = _world.Cantons[_random.Next(_world.Cantons.Count)];
            var acknowledged = _run.Acknowledged;
            switch (kind)
            {
                case Kind.Assess:
                {
                    var person = Taxpayer(canton.Id, _index + _clients * _random.Next(OwnedTaxpayers));
                    return (kind, Request(HttpMethod.Post, $"/api/v1/cantons/{canton.Id}/tax-assessments", canton.Municipality,
                            Json(new { personId = person, fiscalYear = Year, amountMinor = Amount(_random.Next()) })),
                        () => Interlocked.Increment(ref acknowledged.Assessments));
                }

                case Kind.Import:
                {
                    var rows = Math.Min(ImportRows, OwnedTaxpayers);
                    var first = _random.Next(OwnedTaxpayers);
                    var lines = new StringBuilder();
                    for (var i = 0; i < rows; i++)
                    {
                        var person = Taxpayer(canton.Id, _index + _clients * ((first + i) % OwnedTaxpayers));
                        lines.Append(CultureInfo.InvariantCulture,
                            $$"""{"personId":"{{person}}","fiscalYear":{{Year}},"amountMinor":{{Amount(_random.Next())}}}""").Append('\n');
                    }

                    return (kind, Request(HttpMethod.Post, $"/api/v1/cantons/{canton.Id}/tax-assessments/batch", canton.Municipality,
                            new StringContent(lines.ToString(), Encoding.UTF8, "application/x-ndjson")),
                        () => Interlocked.Add(ref acknowledged.ImportedRows, rows));
                }

                case Kind.Designate:
                {
                    var person = Taxpayer(canton.Id, _index + _clients * _random.Next(OwnedTaxpayers));
                    return (kind, Request(HttpMethod.Put, $"/api/v1/cantons/{canton.Id}/fiscal-years/{Year}/designations/{person}",
                        _world.Person(person), Json(Choices(_random, _organizations))), null);
                }

                case Kind.Register:
                {
                    var person = $"{canton.Id}-r{_index:D3}x{++_arrivals:D6}";
                    return (kind, Request(HttpMethod.Post, $"/api/v1/cantons/{canton.Id}/residents", canton.Municipality,
                            Json(Arrival(_random, person))),
                        () =>
                        {
                            Interlocked.Increment(ref acknowledged.Registrations);
                            _toVote.Enqueue((canton, person));
                        });
                }

                case Kind.Vote:
                {
                    if (!_toVote.TryDequeue(out var voter))
                    {
                        return Next(Kind.Register);
                    }

                    string[] options = ["approve", "reject", "abstain"];
                    return (kind, Request(HttpMethod.Post, $"/api/v1/cantons/{voter.Canton.Id}/ballots/{voter.Canton.OpenBallot}/votes",
                            _world.Person(voter.Person), Json(new { option = options[_random.Next(options.Length)] })),
                        () =>
                        {
                            Interlocked.Increment(ref acknowledged.Votes);
                            _voted.Enqueue(voter);
                        });
                }

                case Kind.Depart:
                {
                    // Only those who have voted leave: a departure today takes a person off the open ballots' rolls.
                    if (!_voted.TryDequeue(out var resident))
                    {
                        return Next(Kind.Vote);
                    }

                    return (kind, Request(HttpMethod.Post, $"/api/v1/cantons/{resident.Canton.Id}/residents/{resident.Person}/departure",
                            resident.Canton.Municipality, Json(new { leftOn = Today })),
                        () => Interlocked.Increment(ref acknowledged.Departures));
                }

                case Kind.Budget:
                    return (kind, Request(HttpMethod.Get, $"/api/v1/cantons/{canton.Id}/budgets/{Year}", null), null);

                case Kind.Receipts:
                {
                    var (organization, token) = _world.Organizations[_random.Next(_world.Organizations.Count)];
                    return (kind, Request(HttpMethod.Get, $"/api/v1/organizations/{organization}/receipts/{Year}", token), null);
                }

                case Kind.Census:
                    return (kind, Request(HttpMethod.Get, $"/api/v1/cantons/{canton.Id}/census", null), null);

                case Kind.Results:
                    return (kind, Request(HttpMethod.Get, $"/api/v1/cantons/{canton.Id}/ballots/{canton.CertifiedBallot}/results", null), null);

                default:
                    return (kind, Request(HttpMethod.Get, "/api/v1/organizations", null), null);
            }
        }
    }
}
