using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
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
    private const int Year = 2026;
    private const int PersonsPerClient = 250;
    private static readonly string[] Organizations = ["commons-a", "commons-b", "commons-c"];

    private static readonly Choice[][] Variants =
    [
        [new("commons-a", 10_000)],
        [new("commons-a", 5_000), new("commons-b", 5_000)],
        [new("commons-a", 3_000), new("commons-b", 3_000), new("commons-c", 4_000)],
    ];

    private static readonly Migration RawTable = Workload.RawEventsTable("raw-0002-designation-events", "raw_designation_events");

    public static async Task RunAsync(EmbeddedPostgres cluster, int clients, int seconds, int rounds, int warmup)
    {
        await using var database = await BenchDatabase.CreateAsync(cluster, "designations", [.. Database.Migrations, RawTable]);
        await using var host = ApiHost.Start(database.ConnectionString);
        await host.SetUpFiscalYearAsync([Canton], Organizations);
        var people = Enumerable.Range(0, clients)
            .Select(c => Enumerable.Range(0, PersonsPerClient).Select(p => $"d{c:D3}-{p:D4}").ToArray())
            .ToArray();
        await AssessAsync(host, people.SelectMany(p => p));
        await host.SettleAsync();

        var requests = people.Select(ps => ps.Select(p => (
                Path: $"/api/v1/cantons/{Canton}/fiscal-years/{Year}/designations/{p}",
                Token: host.Token(Roles.Person, subject: p)))
            .ToArray()).ToArray();
        var bodies = Variants.Select(v => JsonSerializer.SerializeToUtf8Bytes(new
        {
            choices = v.Select(c => new { organizationId = c.OrganizationId, shareBp = c.ShareBp }),
            standing = false,
        })).ToArray();
        var oursDone = people.Select(ps => new int[ps.Length]).ToArray();
        var rawDone = people.Select(ps => new int[ps.Length]).ToArray();
        var http = Enumerable.Range(0, clients).Select(_ => host.Client()).ToArray();
        await Task.WhenAll(http.Select(async h => (await h.GetAsync(new Uri("/health/live", UriKind.Relative))).Dispose()));

        Console.WriteLine($"Warming up for {warmup} s (the JIT's tiers settle; not timed)...");
        await OursAsync(host, http, requests, bodies, oursDone, warmup);
        await RawAsync(database, people, rawDone, Math.Max(1, warmup / 4));

        Console.WriteLine($"{$"designations, {clients} clients",-34} {"raw INSERT/s",16} {"ours req/s",12} {"ratio",7} {"ours p50 ms",12} " +
                          $"{"ours p99 ms",12} {"raw p99 ms",11} {"CPU µs/op raw",14} {"ours",10}");
        var raw = new List<Stats.Costed>();
        var ours = new List<Stats.Costed>();
        for (var round = 0; round < rounds; round++)
        {
            if (round % 2 == 0)
            {
                raw.Add(await Stats.CostedAsync(() => RawAsync(database, people, rawDone, seconds)));
                ours.Add(await Stats.CostedAsync(() => OursAsync(host, http, requests, bodies, oursDone, seconds)));
            }
            else
            {
                ours.Add(await Stats.CostedAsync(() => OursAsync(host, http, requests, bodies, oursDone, seconds)));
                raw.Add(await Stats.CostedAsync(() => RawAsync(database, people, rawDone, seconds)));
            }
        }

        foreach (var client in http)
        {
            client.Dispose();
        }

        Stats.PrintLatencyRow("PUT designation (median)", raw, ours);
    }

    private static async Task<Workload.Run> OursAsync(
        ApiHost host, HttpClient[] http, (string Path, string Token)[][] requests, byte[][] bodies, int[][] done, int seconds)
    {
        var json = new MediaTypeHeaderValue("application/json");
        var run = await Workload.MeasureAsync(http.Length, seconds, async (client, i) =>
        {
            var person = (int)(i % PersonsPerClient);
            var (path, token) = requests[client][person];
            var body = bodies[done[client][person]++ % bodies.Length];
            using var request = new HttpRequestMessage(HttpMethod.Put, path) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = json;
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http[client].SendAsync(request);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            return 1;
        });
        await host.SettleAsync(); // the budgets projection's backlog is not left to the next run
        return run;
    }

    /// <summary>The raw equivalent of a designation: one INSERT of the same event's row (the columns Marten writes for
    /// ours, a code-sized header) into a table with marten.mt_events' columns and indexes, one statement per request.</summary>
    private static async Task<Workload.Run> RawAsync(BenchDatabase database, string[][] people, int[][] done, int seconds)
    {
        var options = Events.Types().SerializerOptions;
        var payloads = people.Select(ps => ps.Select(p => Variants
            .Select(v => JsonSerializer.Serialize(new DesignationChosen(Canton, p, Year, v, false), options))
            .ToArray()).ToArray()).ToArray();
        var dotnetType = Workload.DotnetType(typeof(DesignationChosen));
        var headers = Workload.CodeHeaders();
        return await Workload.MeasureAsync(people.Length, seconds, async (client, i) =>
        {
            var person = (int)(i % PersonsPerClient);
            var version = ++done[client][person];
            await using var command = database.DataSource.CreateCommand("""
                INSERT INTO raw_designation_events (id, stream_id, version, type, data, mt_dotnet_type, correlation_id, causation_id, headers, user_name)
                VALUES ($1, $2, $3, 'designation-chosen.v1', $4, $5, $6, NULL, $7, $8)
                """);
            command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"designations-{Canton}-{people[client][person]}" });
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = version });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payloads[client][person][version % Variants.Length], NpgsqlDbType = NpgsqlDbType.Jsonb });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = dotnetType });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Guid.NewGuid().ToString("N") });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = headers, NpgsqlDbType = NpgsqlDbType.Jsonb });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"person:{people[client][person]}" });
            await command.ExecuteNonQueryAsync();
            return 1;
        });
    }

    /// <summary>Everyone is assessed first (one bulk import), so that each answer carries the designable amount.</summary>
    private static async Task AssessAsync(ApiHost host, IEnumerable<string> people)
    {
        var lines = new StringBuilder();
        foreach (var (person, i) in people.Select((p, i) => (p, i)))
        {
            lines.Append(CultureInfo.InvariantCulture, $$"""{"personId":"{{person}}","fiscalYear":{{Year}},"amountMinor":{{1_000_000 + i * 7_919 % 500_000}}}""").Append('\n');
        }

        using var municipality = host.Client(host.Token(Roles.Municipality, subject: $"{Canton}-admin", canton: Canton));
        using var content = new StringContent(lines.ToString(), Encoding.UTF8, "application/x-ndjson");
        using var response = await municipality.PostAsync(new Uri($"/api/v1/cantons/{Canton}/tax-assessments/batch", UriKind.Relative), content);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"The assessments' import answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}
