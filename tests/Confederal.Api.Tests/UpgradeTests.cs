using System.Diagnostics;
using System.IO.Compression;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Confederal.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>A database written by the store before Marten (Upgrade/pre-marten: a seeded demo, dumped with what it
/// served) upgrades at the API's start without losing an event: every served number is what the old version served,
/// and the audit trail, its old seals included, still verifies.</summary>
public sealed class UpgradeTests
{
    private static readonly string Fixture = Path.Combine(AppContext.BaseDirectory, "Upgrade", "pre-marten");

    // The fixture was captured a minute after its seed: ballots still open, the year's policies not yet past their deadline.
    private static readonly DateTimeOffset CapturedAt = new(2026, 12, 2, 17, 0, 0, TimeSpan.Zero);

    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task A_database_of_the_store_before_marten_serves_every_number_as_before_and_its_trail_still_verifies()
    {
        var connectionString = await RestoreAsync();
        var data = Directory.CreateTempSubdirectory("confederal-upgrade-").FullName;
        foreach (var key in Directory.GetFiles(Path.Combine(Fixture, "keys")))
        {
            File.Copy(key, Path.Combine(data, Path.GetFileName(key)));
        }

        try
        {
            await using var api = ApiFactory.On(connectionString, data);
            api.Clock.Advance(CapturedAt - TimeProvider.System.GetUtcNow());
            foreach (var projection in api.Services.GetServices<IProjection>())
            {
                await api.ProjectedAsync(projection.Name);
            }

            Assert.Equal(611, await api.SealedAsync());
            await using (var moved = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
                             "SELECT (SELECT count(*) FROM marten.mt_events), (SELECT count(*) FROM es.events_before_marten)"))
            await using (var counts = await moved.ExecuteReaderAsync())
            {
                await counts.ReadAsync();
                Assert.Equal((611L, 611L), (counts.GetInt64(0), counts.GetInt64(1)));
            }

            var audit = new Audit(api);
            var anonymous = api.CreateClient();
            using var served = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(Fixture, "served.json")));
            var differences = new List<string>();
            foreach (var entry in served.RootElement.EnumerateObject())
            {
                var client = entry.Name.Contains("/receipts/", StringComparison.Ordinal) || entry.Name.StartsWith("/api/v1/audit/events", StringComparison.Ordinal)
                    ? audit.Auditor
                    : anonymous;
                using var response = await client.GetAsync(entry.Name);
                var then = entry.Value.GetProperty("status").GetInt32();
                var body = await response.Content.ReadAsStringAsync();
                if ((int)response.StatusCode != then)
                {
                    differences.Add($"{entry.Name}: {(int)response.StatusCode}, was {then}: {body}");
                }
                else if (!JsonNode.DeepEquals(WithoutTraceIds(JsonNode.Parse(entry.Value.GetProperty("body").GetRawText())), WithoutTraceIds(WithoutNotFoundCode(WithoutDefaultRetention(WithoutNoLedgers(JsonNode.Parse(body)))))))
                {
                    differences.Add($"{entry.Name}: {body}{Environment.NewLine}   was {entry.Value.GetProperty("body").GetRawText()}");
                }
            }

            Assert.True(differences.Count == 0, $"{differences.Count} of {served.RootElement.EnumerateObject().Count()} answers differ:{Environment.NewLine}{string.Join(Environment.NewLine, differences.Take(10))}");
            Assert.True(served.RootElement.EnumerateObject().Count() > 100, "the fixture holds what the old version served");

            // The seals the old version signed are still there, unchanged, and the moved log verifies against them.
            var known = OldSeals();
            Assert.Equal(89, known.Count);
            var fromDatabase = await audit.VerifyDatabaseAsync(known);
            Assert.True(fromDatabase.Passed, fromDatabase.Failure?.ToString());
            var fromFeed = await audit.VerifyFeedAsync(known);
            Assert.True(fromFeed.Passed, fromFeed.Failure?.ToString());

            // The years recorded before per-year handles keep naming people as they did: a correction replaces the old
            // assessment (the year's taxpayers stay as many), and a standing choice of then is restated in a new year.
            var db = api.Services.GetRequiredService<NpgsqlDataSource>();
            var (canton, person, choices) = (await Sql.ListAsync(db, """
                SELECT DISTINCT ON (data ->> 'cantonId', data ->> 'personId') data ->> 'cantonId', data ->> 'personId', data -> 'choices', type, data ->> 'standing'
                FROM marten.mt_events WHERE split_part(type, '.v', 1) IN ('designation-chosen', 'designation-withdrawn') AND data ->> 'fiscalYear' = '2026'
                ORDER BY data ->> 'cantonId', data ->> 'personId', seq_id DESC
                """, r => (r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4)), CancellationToken.None))
                .Where(d => d.Item4.StartsWith("designation-chosen", StringComparison.Ordinal) && d.Item5 == "true").Select(d => (d.Item1, d.Item2, d.Item3!)).First();
            var fiscal = new Fiscal(api);
            var taxpayers = (await fiscal.BudgetAsync(canton, 2026)).Taxpayers;
            await fiscal.AssessAsync(canton, person, 2026, 4_242_424);
            await fiscal.AssessAsync(canton, person, 2027, 1_000_000);
            await api.ProjectedAsync(Features.Fiscal.BudgetProjection.ProjectionName);
            Assert.Equal(taxpayers, (await fiscal.BudgetAsync(canton, 2026)).Taxpayers);
            var carried = await fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/2027/designations/{person}");
            Assert.Equal(2026, carried.GetProperty("carriedFromYear").GetInt32());
            Assert.Equal(
                JsonNode.Parse(choices)!.AsArray().Select(c => c!["organizationId"]!.GetValue<string>()),
                carried.GetProperty("choices").EnumerateArray().Select(c => c.GetProperty("organizationId").GetString()!));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>A new database on the test cluster with the fixture's dump restored into it by psql.</summary>
    private static async Task<string> RestoreAsync()
    {
        var cluster = await TestPostgres.ClusterAsync();
        var name = $"upgrade_{Environment.ProcessId}_{Guid.NewGuid():N}";
        await cluster.CreateDatabaseAsync(name);
        var connectionString = cluster.ConnectionString(name);
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        var psql = new ProcessStartInfo(Path.Combine(EmbeddedPostgres.FindBinDirectory(), "psql"))
        {
            ArgumentList = { "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", target.Host!, "-p", target.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", target.Username!, "-d", name },
            Environment = { ["PGPASSWORD"] = target.Password },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psql)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await using (var dump = new GZipStream(File.OpenRead(Path.Combine(Fixture, "confederal.sql.gz")), CompressionMode.Decompress))
        {
            await dump.CopyToAsync(process.StandardInput.BaseStream);
        }

        process.StandardInput.Close();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"psql exited with {process.ExitCode}: {await errors}{await output}");
        return connectionString;
    }

    private static List<Seal> OldSeals() =>
    [
        .. File.ReadLines(Path.Combine(Fixture, "trail.ndjson"))
            .Select(line => JsonNode.Parse(line)!["seal"])
            .Where(seal => seal is not null)
            .Select(seal => seal!.Deserialize<Seal>(Web)!),
    ];

    /// <summary>The answer without its <c>ledgers</c> when they are none: budgets and receipts name the placed cantons' logs
    /// they reflect since cantons could be placed, and the old version had none.</summary>
    private static JsonNode? WithoutNoLedgers(JsonNode? node)
    {
        if (node is JsonObject o && o["ledgers"] is JsonArray { Count: 0 })
        {
            o.Remove("ledgers");
        }

        return node;
    }

    // Cantons gained their retention of tax records after the old version: the old cantons keep the default, which the
    // old answers could not state.
    private static JsonNode? WithoutDefaultRetention(JsonNode? node)
    {
        foreach (var canton in node is JsonArray cantons ? cantons.OfType<JsonObject>() : node is JsonObject one ? [one] : [])
        {
            if (canton["taxRetentionYears"] is JsonValue years && years.GetValue<int>() == Domain.Cantons.Canton.DefaultTaxRetentionYears)
            {
                canton.Remove("taxRetentionYears");
            }
        }

        return node;
    }

    // A 404 problem names what is missing by a stable code since the pages translate codes (issue 18); the old version's
    // had none.
    private static JsonNode? WithoutNotFoundCode(JsonNode? node)
    {
        if (node is JsonObject problem && problem["status"] is JsonValue status && status.TryGetValue<int>(out var number) && number == 404
            && problem["code"] is JsonValue code && code.TryGetValue<string>(out var name) && name.EndsWith("-not-found", StringComparison.Ordinal))
        {
            problem.Remove("code");
        }

        return node;
    }

    private static JsonNode? WithoutTraceIds(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                o.Remove("traceId");
                foreach (var (_, value) in o)
                {
                    WithoutTraceIds(value);
                }

                break;
            case JsonArray a:
                foreach (var value in a)
                {
                    WithoutTraceIds(value);
                }

                break;
        }

        return node;
    }
}
