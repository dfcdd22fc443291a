using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Census;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Benchmarks;

/// <summary>
/// Votes cast over HTTP by concurrent clients (a fixed number per round, each by a different resident on a fresh ballot),
/// beside raw PostgreSQL doing the two inserts a vote needs in one transaction; then the close of a ballot of a million
/// votes, beside the same sealing done in plain SQL.
/// </summary>
public static class VotesBenchmark
{
    private const string Canton = "vt";
    private const string BigCanton = "vt-big";
    private static readonly string[] Options = ["yes", "no", "blank"];

    private static readonly Migration RawTables = new("raw-0003-ballot-box", """
        CREATE TABLE raw_participations (LIKE ballot_participations INCLUDING ALL);
        CREATE TABLE raw_box (LIKE ballot_box INCLUDING ALL);
        CREATE TABLE raw_sealed (page int, data jsonb);
        """);

    public static async Task RunAsync(EmbeddedPostgres cluster, int clients, int votes, int rounds, int closeVotes)
    {
        await using var database = await BenchDatabase.CreateAsync(cluster, "votes", [.. Database.Migrations, RawTables]);
        await using var host = ApiHost.Start(database.ConnectionString);
        using var admin = host.Client(host.Token(Roles.Admin, subject: "bench-admin"));
        foreach (var canton in new[] { Canton, BigCanton })
        {
            await ApiHost.PutAsync(admin, $"/api/v1/cantons/{canton}", new { name = canton.ToUpperInvariant(), currency = "CHF" });
        }

        Console.WriteLine($"Registering {votes:N0} residents (SQL, not timed)...");
        await VotersAsync(database, host, votes);
        await host.SettleAsync();

        var perClient = votes / clients;
        var tokens = Enumerable.Range(0, clients * perClient).Select(p => host.Token(Roles.Person, subject: Person(p))).ToArray();
        var http = Enumerable.Range(0, clients).Select(_ => host.Client()).ToArray();
        var bodies = Options.Select(o => JsonSerializer.SerializeToUtf8Bytes(new { option = o })).ToArray();

        Console.WriteLine("Warming up (one ballot, not timed)...");
        await OursAsync(host, http, tokens, bodies, clients, Math.Max(1, perClient / 10));
        await RawAsync(database, clients, Math.Max(1, perClient / 10));

        Console.WriteLine($"{$"votes, {clients} clients x {perClient:N0}",-34} {"raw votes/s",16} {"ours votes/s",12} {"ratio",7} {"ours p50 ms",12} " +
                          $"{"ours p99 ms",12} {"raw p99 ms",11} {"CPU µs/op raw",14} {"ours",10}");
        var raw = new List<Stats.Costed>();
        var ours = new List<Stats.Costed>();
        for (var round = 0; round < rounds; round++)
        {
            if (round % 2 == 0)
            {
                raw.Add(await Stats.CostedAsync(() => RawAsync(database, clients, perClient)));
                ours.Add(await Stats.CostedAsync(() => OursAsync(host, http, tokens, bodies, clients, perClient)));
            }
            else
            {
                ours.Add(await Stats.CostedAsync(() => OursAsync(host, http, tokens, bodies, clients, perClient)));
                raw.Add(await Stats.CostedAsync(() => RawAsync(database, clients, perClient)));
            }
        }

        foreach (var client in http)
        {
            client.Dispose();
        }

        Stats.PrintLatencyRow("POST vote (median)", raw, ours);
        Console.WriteLine();
        await CloseAsync(database, host, closeVotes, Math.Max(1, rounds / 2));
    }

    private static string Person(long i) => $"r{i:D7}";

    private static async Task<Workload.Run> OursAsync(ApiHost host, HttpClient[] http, string[] tokens, byte[][] bodies, int clients, int perClient)
    {
        var ballot = await CallAsync(host, Canton, TimeSpan.FromHours(1));
        var path = $"/api/v1/cantons/{Canton}/ballots/{ballot}/votes";
        var json = new MediaTypeHeaderValue("application/json");
        return await Workload.MeasureCountAsync(clients, perClient, async (client, i) =>
        {
            var person = client * perClient + (int)i;
            using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(bodies[person % bodies.Length]) };
            request.Content.Headers.ContentType = json;
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tokens[person]);
            using var response = await http[client].SendAsync(request);
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"POST {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            }

            return 1;
        });
    }

    /// <summary>The raw floor of a vote: the participation and the ballot inserted in one transaction, one round trip.</summary>
    private static async Task<Workload.Run> RawAsync(BenchDatabase database, int clients, int perClient)
    {
        var ballot = Guid.NewGuid();
        return await Workload.MeasureCountAsync(clients, perClient, async (client, i) =>
        {
            var person = client * perClient + (int)i;
            await using var batch = database.DataSource.CreateBatch();
            batch.BatchCommands.Add(Command("INSERT INTO raw_participations (ballot_id, resident) VALUES ($1, $2)", ballot, Person(person)));
            batch.BatchCommands.Add(Command("INSERT INTO raw_box (ballot_id, receipt, option) VALUES ($1, $2, $3)", ballot, Guid.NewGuid().ToString("N"), (short)(person % 3)));
            await batch.ExecuteNonQueryAsync();
            return 1;
        });
    }

    /// <summary>A ballot of <paramref name="votes"/> votes (box and register filled in SQL, the roll a million residents),
    /// closed over HTTP; beside the same reading, sealing into JSON pages and emptying of the box in plain SQL.</summary>
    private static async Task CloseAsync(BenchDatabase database, ApiHost host, int votes, int rounds)
    {
        Console.WriteLine($"Registering {votes:N0} residents of {BigCanton} (SQL, not timed)...");
        await ResidentsAsync(database, BigCanton, votes);
        using var municipality = host.Client(host.Token(Roles.Municipality, subject: $"{BigCanton}-admin", canton: BigCanton));
        Console.WriteLine($"{$"close a ballot of {votes / 1000:N0}k votes",-34} {"raw SQL s",16} {"ours s",12} {"ratio",7} {"peak MiB",12}");
        var raw = new List<double>();
        var ours = new List<double>();
        var peaks = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            var ballot = await CallAsync(host, BigCanton, TimeSpan.FromSeconds(2));
            await FillAsync(database, ballot, votes);
            raw.Add(await RawCloseAsync(database, ballot));
            await Task.Delay(TimeSpan.FromSeconds(2));
            await using var peak = new Stats.MemoryPeak();
            var started = Stopwatch.GetTimestamp();
            using var response = await municipality.PostAsync(new Uri($"/api/v1/cantons/{BigCanton}/ballots/{ballot}/close", UriKind.Relative), null);
            ours.Add(Stopwatch.GetElapsedTime(started).TotalSeconds);
            await peak.DisposeAsync();
            peaks.Add(peak.WorkingSetMiB);
            var results = await response.Content.ReadFromJsonAsync<JsonElement>();
            if (!response.IsSuccessStatusCode || results.GetProperty("votes").GetInt64() != votes || results.GetProperty("eligible").GetInt64() != votes)
            {
                throw new InvalidOperationException($"close: {(int)response.StatusCode} {results}");
            }

            await host.SettleAsync();
        }

        Console.WriteLine($"{"POST close (median)",-34} {Stats.Median(raw),16:0.00} {Stats.Median(ours),12:0.00} {Stats.Median(ours) / Stats.Median(raw),6:0.00}x {peaks.Max(),12:N0}");
        Console.WriteLine("raw SQL: the same box and register read in key order, aggregated into JSON pages of 10,000, inserted, and the box emptied, in one transaction.");
    }

    private static async Task<Guid> CallAsync(ApiHost host, string canton, TimeSpan open)
    {
        using var municipality = host.Client(host.Token(Roles.Municipality, subject: $"{canton}-admin", canton: canton));
        var now = DateTimeOffset.UtcNow;
        using var response = await municipality.PostAsJsonAsync($"/api/v1/cantons/{canton}/ballots", new
        {
            question = "Shall the canton do it?",
            options = Options,
            censusDate = DateOnly.FromDateTime(now.UtcDateTime),
            opensAt = now.AddMinutes(-1),
            closesAt = now + open,
        });
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return response.IsSuccessStatusCode ? body.GetProperty("ballotId").GetGuid() : throw new InvalidOperationException($"call: {body}");
    }

    // Voters as the API records them: a key table row each (made as the API makes them), the register rows, and the
    // residence streams and events (their eligibility is read from the register; the events are for Marten's daemon).
    private static async Task VotersAsync(BenchDatabase database, ApiHost host, int count)
    {
        var persons = host.Services.GetRequiredService<PersonKeys>();
        var born = new DateOnly(1980, 1, 1);
        foreach (var chunk in Enumerable.Range(0, count).Chunk(2_000))
        {
            var keys = await persons.ObtainAsync([.. chunk.Select(i => Person(i))], CancellationToken.None);
            var handles = chunk.Select(i => keys[Person(i)].Resident).ToArray();
            var sealedDates = chunk.Select(i => keys[Person(i)].SealBirthDate(born)).ToArray();
            await using var batch = database.DataSource.CreateBatch();
            batch.BatchCommands.Add(Command($"""
                INSERT INTO residences (resident, since, canton_id, until, birth_date)
                SELECT r, DATE '2010-01-01', '{Canton}', NULL, DATE '1980-01-01' FROM unnest($1::text[]) AS r
                """, (object)handles));
            batch.BatchCommands.Add(Command($"""
                INSERT INTO {MartenStore.Schema}.mt_streams (id, version) SELECT 'residence-' || r, 1 FROM unnest($1::text[]) AS r
                """, (object)handles));
            batch.BatchCommands.Add(Command($"""
                INSERT INTO {EventLog.Table} (seq_id, id, stream_id, version, type, data, timestamp, mt_dotnet_type, user_name)
                SELECT nextval('{MartenStore.Schema}.mt_events_sequence'), gen_random_uuid(), 'residence-' || r, 1,
                       '{Events.Types().NameOf(typeof(ResidentRegistered)).Alias}',
                       jsonb_build_object('resident', r, 'cantonId', '{Canton}', 'residentSince', '2010-01-01', 'sealedBirthDate', d),
                       now(), '{Workload.DotnetType(typeof(ResidentRegistered))}', 'municipality:{Canton}'
                FROM unnest($1::text[], $2::text[]) AS v(r, d)
                """, handles, sealedDates));
            await batch.ExecuteNonQueryAsync();
        }
    }

    // The residents of the big canton, in the register only: the close reads the register and the participations, whose
    // handles need no key (nobody votes or reads them here).
    private static async Task ResidentsAsync(BenchDatabase database, string canton, int count) =>
        await database.ExecuteAsync($"""
            INSERT INTO residences (resident, since, canton_id, until, birth_date)
            SELECT '{canton}-' || g, DATE '2010-01-01', '{canton}', NULL, DATE '1980-01-01' FROM generate_series(0, {count - 1}) AS g;
            """);

    private static async Task FillAsync(BenchDatabase database, Guid ballot, int votes)
    {
        await database.ExecuteAsync($"""
            INSERT INTO ballot_participations (ballot_id, resident) SELECT '{ballot}', '{BigCanton}-' || g FROM generate_series(0, {votes - 1}) AS g;
            INSERT INTO ballot_box (ballot_id, receipt, option)
            SELECT '{ballot}', md5(g::text || '{ballot}'), (g % 3)::smallint FROM generate_series(0, {votes - 1}) AS g;
            """);
        await database.ExecuteAsync("VACUUM ANALYZE ballot_participations, ballot_box");
    }

    private static async Task<double> RawCloseAsync(BenchDatabase database, Guid ballot)
    {
        var started = Stopwatch.GetTimestamp();
        await database.ExecuteAsync($"""
            BEGIN;
            SELECT option, count(*) FROM ballot_box WHERE ballot_id = '{ballot}' GROUP BY option;
            INSERT INTO raw_sealed (page, data)
            SELECT page, jsonb_build_object('receipts', jsonb_agg(receipt ORDER BY receipt COLLATE "C"), 'options', jsonb_agg(option ORDER BY receipt COLLATE "C"))
            FROM (SELECT receipt, option, (row_number() OVER (ORDER BY receipt COLLATE "C") - 1) / 10000 AS page FROM ballot_box WHERE ballot_id = '{ballot}') b
            GROUP BY page;
            INSERT INTO raw_sealed (page, data)
            SELECT page, jsonb_agg(resident ORDER BY resident COLLATE "C")
            FROM (SELECT resident, (row_number() OVER (ORDER BY resident COLLATE "C") - 1) / 10000 AS page FROM ballot_participations WHERE ballot_id = '{ballot}') p
            GROUP BY page;
            DELETE FROM ballot_box WHERE ballot_id = '{ballot}';
            ROLLBACK;
            """);
        return Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    private static NpgsqlBatchCommand Command(string sql, params object[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return command;
    }
}
