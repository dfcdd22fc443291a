using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using Npgsql;
using NpgsqlTypes;

namespace Confederal.Benchmarks;

/// <summary>
/// Designations written over HTTP by concurrent clients, each its own connection and its own people (a person token
/// each), every PUT changing that person's choices so that each records an event; beside as many raw writers each
/// inserting the same event's row per request into a table like marten.mt_events.
/// </summary>
public static class DesignationsBenchmark
{
    private const string Canton = "ge";

    internal static readonly string[] Organizations = ["commons-a", "commons-b", "commons-c"];

    internal static readonly Migration RawTable = Workload.RawEventsTable("raw-0002-designation-events", "raw_designation_events");

    public static async Task RunAsync(EmbeddedPostgres cluster, int clients, int seconds, int rounds, int warmup)
    {
        await using var database = await BenchDatabase.CreateAsync(cluster, "designations", [.. Database.Migrations, RawTable]);
        await using var host = ApiHost.Start(database.ConnectionString);
        await host.SetUpFiscalYearAsync([Canton], Organizations);
        using var designators = await Designators.PrepareAsync(host, Canton, clients);
        await host.SettleAsync();

        Console.WriteLine($"Warming up for {warmup} s (the JIT's tiers settle; not timed)...");
        await OursAsync(warmup);
        await designators.RawAsync(database.DataSource, Math.Max(1, warmup / 4));

        Console.WriteLine($"{$"designations, {clients} clients",-34} {"raw INSERT/s",16} {"ours req/s",12} {"ratio",7} {"ours p50 ms",12} " +
                          $"{"ours p99 ms",12} {"raw p99 ms",11} {"CPU µs/op raw",14} {"ours",10}");
        var (raw, ours) = await Stats.AlternateAsync(rounds, () => designators.RawAsync(database.DataSource, seconds), () => OursAsync(seconds));
        Stats.PrintLatencyRow("PUT designation (median)", raw, ours);

        async Task<Workload.Run> OursAsync(int duration)
        {
            var run = await designators.OursAsync(duration);
            await host.SettleAsync(); // the budgets projection's backlog is not left to the next run
            return run;
        }
    }
}

/// <summary>
/// The people of one canton, <see cref="PersonsPerClient"/> for each of the clients, assessed: each client with its own
/// connection PUTs its people's designations (a person token each), every PUT changing that person's choices so that
/// each records an event; and as many raw writers, each inserting the same event's row per request into
/// raw_designation_events (<see cref="DesignationsBenchmark.RawTable"/>).
/// </summary>
public sealed class Designators : IDisposable
{
    private const int Year = 2026;
    private const int PersonsPerClient = 250;

    private static readonly Choice[][] Variants =
    [
        [new("commons-a", 10_000)],
        [new("commons-a", 5_000), new("commons-b", 5_000)],
        [new("commons-a", 3_000), new("commons-b", 3_000), new("commons-c", 4_000)],
    ];

    private static readonly byte[][] Bodies = [.. Variants.Select(v => JsonSerializer.SerializeToUtf8Bytes(new
    {
        choices = v.Select(c => new { organizationId = c.OrganizationId, shareBp = c.ShareBp }),
        standing = false,
    }))];

    private readonly string _canton;
    private readonly string[][] _people;
    private readonly (string Path, string Token)[][] _requests;
    private readonly int[][] _oursDone;
    private readonly int[][] _rawDone;
    private readonly HttpClient[] _http;

    private Designators(ApiHost host, string canton, string[][] people)
    {
        _canton = canton;
        _people = people;
        _requests = [.. people.Select(ps => ps.Select(p => (
                Path: $"/api/v1/cantons/{canton}/fiscal-years/{Year}/designations/{p}",
                Token: host.Token(Roles.Person, subject: p)))
            .ToArray())];
        _oursDone = [.. people.Select(ps => new int[ps.Length])];
        _rawDone = [.. people.Select(ps => new int[ps.Length])];
        _http = [.. people.Select(_ => host.Client())];
    }

    /// <summary>Assesses the canton's people (one bulk import), so that each answer carries the designable amount, and
    /// opens the clients' connections.</summary>
    public static async Task<Designators> PrepareAsync(ApiHost host, string canton, int clients)
    {
        var people = Enumerable.Range(0, clients)
            .Select(c => Enumerable.Range(0, PersonsPerClient).Select(p => $"d{c:D3}-{p:D4}").ToArray())
            .ToArray();
        await AssessAsync(host, canton, people.SelectMany(p => p));
        var designators = new Designators(host, canton, people);
        await Task.WhenAll(designators._http.Select(async h => (await h.GetAsync(new Uri("/health/live", UriKind.Relative))).Dispose()));
        return designators;
    }

    public Task<Workload.Run> OursAsync(int seconds)
    {
        var json = new MediaTypeHeaderValue("application/json");
        return Workload.MeasureAsync(_http.Length, seconds, async (client, i) =>
        {
            var person = (int)(i % PersonsPerClient);
            var (path, token) = _requests[client][person];
            var body = Bodies[_oursDone[client][person]++ % Bodies.Length];
            using var request = new HttpRequestMessage(HttpMethod.Put, path) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = json;
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await _http[client].SendAsync(request);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            return 1;
        });
    }

    /// <summary>The raw equivalent of a designation: one INSERT of the same event's row (the columns Marten writes for
    /// ours, a code-sized header) into a table with marten.mt_events' columns and indexes, one statement per request.</summary>
    public async Task<Workload.Run> RawAsync(NpgsqlDataSource dataSource, int seconds)
    {
        var options = Events.Types().SerializerOptions;
        var payloads = _people.Select(ps => ps.Select(p => Variants
            .Select(v => JsonSerializer.Serialize(new DesignationChosen(_canton, p, Year, v, false), options))
            .ToArray()).ToArray()).ToArray();
        var dotnetType = Workload.DotnetType(typeof(DesignationChosen));
        var headers = Workload.CodeHeaders();
        return await Workload.MeasureAsync(_people.Length, seconds, async (client, i) =>
        {
            var person = (int)(i % PersonsPerClient);
            var version = ++_rawDone[client][person];
            await using var command = dataSource.CreateCommand("""
                INSERT INTO raw_designation_events (id, stream_id, version, type, data, mt_dotnet_type, correlation_id, causation_id, headers, user_name)
                VALUES ($1, $2, $3, 'designation-chosen.v1', $4, $5, $6, NULL, $7, $8)
                """);
            command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"designations-{_canton}-{_people[client][person]}" });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = version });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payloads[client][person][version % Variants.Length], NpgsqlDbType = NpgsqlDbType.Jsonb });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = dotnetType });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Guid.NewGuid().ToString("N") });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = headers, NpgsqlDbType = NpgsqlDbType.Jsonb });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"person:{_people[client][person]}" });
            await command.ExecuteNonQueryAsync();
            return 1;
        });
    }

    /// <summary>What the canton's people have designated, per organization: each person's designation as the API
    /// answers it to that person (GET, the amounts of its choices), summed.</summary>
    public async Task<IReadOnlyDictionary<string, long>> DesignatedAsync()
    {
        var sums = await Task.WhenAll(_requests.Select(async (requests, client) =>
        {
            var sum = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var (path, token) in requests)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                using var response = await _http[client].SendAsync(request);
                var view = await response.EnsureSuccessStatusCode().Content.ReadFromJsonAsync<DesignationView>();
                foreach (var choice in view!.Choices)
                {
                    sum[choice.OrganizationId] = sum.GetValueOrDefault(choice.OrganizationId) + (choice.AmountMinor ?? 0);
                }
            }

            return sum;
        }));
        return sums.SelectMany(s => s).GroupBy(s => s.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(s => s.Value), StringComparer.Ordinal);
    }

    public void Dispose()
    {
        foreach (var client in _http)
        {
            client.Dispose();
        }
    }

    /// <summary>Everyone is assessed first (one bulk import), so that each answer carries the designable amount.</summary>
    private static async Task AssessAsync(ApiHost host, string canton, IEnumerable<string> people)
    {
        var lines = new StringBuilder();
        foreach (var (person, i) in people.Select((p, i) => (p, i)))
        {
            lines.Append(CultureInfo.InvariantCulture, $$"""{"personId":"{{person}}","fiscalYear":{{Year}},"amountMinor":{{1_000_000 + i * 7_919 % 500_000}}}""").Append('\n');
        }

        using var municipality = host.Client(host.Token(Roles.Municipality, subject: $"{canton}-admin", canton: canton));
        using var content = new StringContent(lines.ToString(), Encoding.UTF8, "application/x-ndjson");
        using var response = await municipality.PostAsync(new Uri($"/api/v1/cantons/{canton}/tax-assessments/batch", UriKind.Relative), content);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The assessments' import answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}
