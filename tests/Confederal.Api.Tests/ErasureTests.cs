using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Cli.Audit;
using Confederal.EventStore;
using Confederal.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>
/// Erasure destroys a person's key: afterwards nothing in the database, its server log or a fresh export names them or
/// opens to them, while every event stays, every seal verifies and every number (budgets, receipts, census, ballot
/// results, and a replay of the log) is as before. On a server of its own, which logs every statement.
/// </summary>
public sealed class ErasureTests : IAsyncLifetime
{
    private const string Person = "er-person:4f1c.alpha";
    private static readonly DateOnly Born = new(1977, 3, 14);
    private const string BornText = "1977-03-14";

    private EmbeddedPostgres _server = null!;
    private ApiFactory _api = null!;
    private string _directory = null!;

    private Democracy D => new(_api);

    private Fiscal F => new(_api);

    public async Task InitializeAsync()
    {
        _server = await TestPostgres.StartServerAsync(new Dictionary<string, string> { ["log_statement"] = "'all'" });
        _api = ApiFactory.On(await TestPostgres.CreateDatabaseAsync(_server, "erasure", Database.Migrations));
        await _api.InitializeAsync();
        _directory = Directory.CreateTempSubdirectory("confederal-erasure-").FullName;
    }

    public async Task DisposeAsync()
    {
        await _api.DisposeAsync();
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private static JsonContent Basis(string basis, string reference = "case 2026/114") => JsonContent.Create(new { basis, reference });

    private Task<HttpResponseMessage> EraseAsync(string person, string basis, HttpClient? client = null, string? idempotencyKey = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Delete, $"/api/v1/persons/{person}") { Content = Basis(basis) };
        if (idempotencyKey is not null)
        {
            request.Headers.Add(Idempotency.Header, idempotencyKey);
        }

        return (client ?? F.Admin).SendAsync(request);
    }

    /// <summary>Two cantons whose 2026 years close in a day, three organizations, and a taxpayer beside the person.</summary>
    private async Task ConfederationAsync()
    {
        await F.CantonAsync("er-ge");
        await F.CantonAsync("er-vd");
        foreach (var organization in new[] { "er-oceans", "er-linux", "er-care" })
        {
            await F.OrganizationAsync(organization);
        }

        foreach (var canton in new[] { "er-ge", "er-vd" })
        {
            await F.PolicyAsync(canton, 2026, 70, deadline: _api.Clock.GetUtcNow().AddDays(1));
        }

        await F.AssessAsync("er-ge", "er-other", 2026, 2_000_000);
        await Fiscal.Ok(F.DesignateAsync("er-ge", 2026, "er-other", false, ("er-care", 10_000)));
    }

    /// <summary>The person assesses, designates (three ways, standing), votes, moves to another canton and leaves it.</summary>
    private async Task<Guid> LiveAsync(string person)
    {
        await Fiscal.Ok(D.ResideAsync("er-ge", person, new DateOnly(2015, 1, 1), Born));
        await Fiscal.Ok(D.ResideAsync("er-ge", "er-neighbour", new DateOnly(2010, 1, 1), new DateOnly(1990, 5, 5)));
        await F.AssessAsync("er-ge", person, 2026, 1_000_000);
        await F.AssessAsync("er-ge", person, 2026, 1_234_567); // a correction
        await Fiscal.Ok(F.DesignateAsync("er-ge", 2026, person, true, ("er-oceans", 5000), ("er-linux", 3000), ("er-care", 2000)));
        var ballot = await D.BallotAsync("er-ge", censusDate: new DateOnly(2020, 1, 1));
        await D.ReceiptAsync("er-ge", ballot, person, "alpha-choice");
        await D.ReceiptAsync("er-ge", ballot, "er-neighbour", "beta-choice");
        await D.CloseAsync("er-ge", ballot);
        await Fiscal.Ok(D.ResideAsync("er-vd", person, new DateOnly(2021, 6, 1), Born));
        await Fiscal.Ok(D.DepartAsync("er-vd", person, new DateOnly(2022, 1, 1)));
        return ballot;
    }

    /// <summary>What the API serves and a replay of a fresh export recomputes, positions left out (an erasure appends an
    /// event, which moves them).</summary>
    private async Task<(string Served, ReplayResult Replay, ComparisonReport Comparison, string Export)> NumbersAsync(Guid ballot, string name)
    {
        await _api.SealedAsync();
        await _api.ProjectedAsync(Features.Fiscal.BudgetProjection.ProjectionName);

        var client = _api.CreateClient();
        var auditor = _api.ClientAs(Roles.Auditor, subject: "court-of-audit");
        var served = new JsonArray();
        foreach (var path in new[]
                 {
                     "/api/v1/cantons/er-ge/budgets/2026", "/api/v1/cantons/er-vd/budgets/2026",
                     "/api/v1/cantons/er-ge/census?on=2020-01-01", "/api/v1/cantons/er-vd/census?on=2021-12-31",
                     $"/api/v1/cantons/er-ge/ballots/{ballot}/results",
                 })
        {
            served.Add(WithoutPositions(JsonNode.Parse(await client.GetStringAsync(path))));
        }

        foreach (var organization in new[] { "er-oceans", "er-linux", "er-care" })
        {
            served.Add(WithoutPositions(JsonNode.Parse(await auditor.GetStringAsync($"/api/v1/organizations/{organization}/receipts/2026"))));
        }

        var export = Path.Combine(_directory, $"{name}.ndjson");
        await CliRunner.ExportAsync(_api, export);
        var replay = await new AuditReplay(Events.Types()).RunAsync(AuditExportFile.ReadAsync(export));
        using var anyone = CliRunner.Client(_api);
        using var courtOfAudit = CliRunner.Auditor(_api);
        var comparison = await ServedComparison.CompareAsync(replay, anyone, courtOfAudit, TimeSpan.FromSeconds(10));
        return (served.ToJsonString(), replay, comparison, export);
    }

    private static JsonNode? WithoutPositions(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(p => p.Key).ToList())
                {
                    if (key.Contains("position", StringComparison.OrdinalIgnoreCase) || key is "ledgers" or "asOf")
                    {
                        o.Remove(key);
                    }
                    else
                    {
                        WithoutPositions(o[key]);
                    }
                }

                break;
            case JsonArray a:
                foreach (var item in a)
                {
                    WithoutPositions(item);
                }

                break;
        }

        return node;
    }

    private static string ReplayedNumbers(ReplayResult r) => JsonSerializer.Serialize(new
    {
        Budgets = r.Budgets.Select(b => b with { Position = 0 }),
        Receipts = r.Receipts.Select(x => x with { Position = 0 }),
        r.Ballots,
    });

    private async Task<string> DumpAsync()
    {
        var connection = new NpgsqlConnectionStringBuilder(_server.ConnectionString("erasure"));
        var start = new ProcessStartInfo(Path.Combine(EmbeddedPostgres.FindBinDirectory(), "pg_dump"))
        {
            ArgumentList = { "--no-owner", "-h", connection.Host!, "-p", connection.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-U", connection.Username!, "erasure" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["PGPASSWORD"] = connection.Password },
        };
        using var dump = Process.Start(start)!;
        var text = dump.StandardOutput.ReadToEndAsync();
        var errors = dump.StandardError.ReadToEndAsync();
        await dump.WaitForExitAsync();
        Assert.True(dump.ExitCode == 0, await errors);
        return await text;
    }

    [Fact]
    public async Task An_erased_person_leaves_no_trace_in_the_database_its_log_or_an_export_and_every_number_stays()
    {
        await ConfederationAsync();
        var ballot = await LiveAsync(Person);
        _api.Clock.Advance(TimeSpan.FromDays(2)); // the 2026 years close
        var before = await NumbersAsync(ballot, "before");
        Assert.Empty(before.Replay.Differences);
        Assert.Empty(before.Comparison.Differences);
        // Until the erasure the feed opens the birth date beside an arrival, and the census register holds it.
        Assert.Contains(BornText, await File.ReadAllTextAsync(before.Export), StringComparison.Ordinal);
        Assert.Contains(BornText, await DumpAsync(), StringComparison.Ordinal);

        // The canton keeps 2026's tax records until 2036: only a court order erases the person now.
        await _api.AssertRefusedAsync(await EraseAsync(Person, "erasure-request"), HttpStatusCode.Conflict, "retention-period");
        var erased = await EraseAsync(Person, "court-order", idempotencyKey: "erase-114");
        Assert.Equal(HttpStatusCode.NoContent, erased.StatusCode);

        // Retried with its key, the erasure answers as the first time; without it, the person is unknown.
        var again = await EraseAsync(Person, "court-order", idempotencyKey: "erase-114");
        Assert.Equal(HttpStatusCode.NoContent, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues(Idempotency.ReplayedHeader).Single());
        await _api.AssertRefusedAsync(await EraseAsync(Person, "court-order"), HttpStatusCode.NotFound, null);
        Assert.Null(await _api.Services.GetRequiredService<PersonKeys>().FindAsync(Person, CancellationToken.None));

        var after = await NumbersAsync(ballot, "after");
        Assert.Equal(before.Served, after.Served);
        Assert.Equal(ReplayedNumbers(before.Replay), ReplayedNumbers(after.Replay));
        Assert.Empty(after.Replay.Differences);
        Assert.Empty(after.Comparison.Differences);
        Assert.Contains(after.Replay.Ballots, b => b.BallotId == ballot && b.Eligible == 2 && b.Votes == 2);
        Assert.True((await new Audit(_api).VerifyDatabaseAsync()).Passed);

        // The feed shows the person as erased; nothing anywhere names them or their birth date.
        var (trail, _) = await new Audit(_api).FeedAsync();
        var arrivals = trail.Select(t => t.Event).OfType<AuditEvent>().Where(e => e.Type == "resident-registered").ToList();
        Assert.Contains(arrivals, e => e.Person == AuditPerson.IsErased);
        var erasure = Assert.Single(trail, t => t.Event?.Type == "person-erased").Event!;
        Assert.Equal("court-order", erasure.Data.GetProperty("basis").GetString()); // the lawful basis, recorded
        Assert.Equal("case 2026/114", erasure.Data.GetProperty("reference").GetString());
        Assert.Equal([ballot], erasure.Data.GetProperty("eligibleIn").EnumerateArray().Select(b => b.GetGuid()));
        var exported = await File.ReadAllTextAsync(after.Export);
        var dump = await DumpAsync();
        var serverLog = await File.ReadAllTextAsync(_server.ServerLog);
        Assert.Contains("person_keys", serverLog, StringComparison.Ordinal); // every statement was logged
        foreach (var (what, text) in new[] { ("export", exported), ("pg_dump", dump), ("server log", serverLog) })
        {
            Assert.False(text.Contains(Person, StringComparison.Ordinal), $"The {what} names the person.");
            Assert.False(text.Contains(BornText, StringComparison.Ordinal), $"The {what} holds the birth date.");
        }
    }

    [Fact]
    public async Task An_erasure_is_refused_with_a_code_and_records_nothing_while_the_person_must_be_kept()
    {
        await ConfederationAsync();
        await F.AssessAsync("er-ge", "er-open-year", 2027, 500_000); // 2027 has no policy yet: open
        await Fiscal.Ok(D.ResideAsync("er-ge", "er-resident", new DateOnly(2015, 1, 1), Born));
        await Fiscal.Ok(D.ResideAsync("er-ge", "er-on-roll", new DateOnly(2015, 1, 1), Born));
        await Fiscal.Ok(D.DepartAsync("er-ge", "er-on-roll", new DateOnly(2022, 1, 1)));
        await D.BallotAsync("er-ge", censusDate: new DateOnly(2020, 1, 1)); // open, its roll taken when they lived there
        await _api.SealedAsync();
        var events = await _api.CountEventsAsync();

        await _api.AssertRefusedAsync(await EraseAsync("er-nobody", "court-order"), HttpStatusCode.NotFound, null, events);
        await _api.AssertRefusedAsync(await EraseAsync("er-resident", "court-order", F.Municipality("er-ge")), HttpStatusCode.Forbidden, null, events);
        await _api.AssertRefusedAsync(await EraseAsync("er-resident", "court-order", F.Person("er-resident")), HttpStatusCode.Forbidden, null, events);
        await _api.AssertRefusedAsync(await EraseAsync("er-resident", "because"), HttpStatusCode.BadRequest, null, events);
        var naming = await F.Admin.SendAsync(new HttpRequestMessage(HttpMethod.Delete, "/api/v1/persons/er-resident")
        {
            Content = Basis("court-order", "order about ER-RESIDENT of 1 May"),
        });
        await _api.AssertRefusedAsync(naming, HttpStatusCode.BadRequest, null, events);
        await _api.AssertRefusedAsync(await EraseAsync("er-open-year", "court-order"), HttpStatusCode.Conflict, "open-fiscal-year", events);
        await _api.AssertRefusedAsync(await EraseAsync("er-resident", "court-order"), HttpStatusCode.Conflict, "still-resident", events);
        await _api.AssertRefusedAsync(await EraseAsync("er-on-roll", "court-order"), HttpStatusCode.Conflict, "open-ballot-roll", events);

        var keys = _api.Services.GetRequiredService<PersonKeys>();
        foreach (var kept in new[] { "er-open-year", "er-resident", "er-on-roll" })
        {
            Assert.NotNull(await keys.FindAsync(kept, CancellationToken.None));
        }
    }

    [Fact]
    public async Task Past_the_retention_a_canton_sets_a_request_of_the_person_is_enough()
    {
        var refused = await F.Admin.PutAsJsonAsync("/api/v1/cantons/er-short", new { name = "SHORT", currency = "CHF", taxRetentionYears = 101 });
        await _api.AssertRefusedAsync(refused, HttpStatusCode.BadRequest, null);
        var registered = await Fiscal.Ok(F.Admin.PutAsJsonAsync("/api/v1/cantons/er-short", new { name = "SHORT", currency = "CHF", taxRetentionYears = 0 }));
        Assert.Equal(0, (await registered.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("taxRetentionYears").GetInt32());
        var year = _api.Clock.GetUtcNow().Year - 1; // kept until the end of its own year only: past
        await F.PolicyAsync("er-short", year, 70, deadline: _api.Clock.GetUtcNow().AddDays(1));
        await F.AssessAsync("er-short", "er-taxpayer", year, 300_000);
        _api.Clock.Advance(TimeSpan.FromDays(2));

        Assert.Equal(HttpStatusCode.NoContent, (await EraseAsync("er-taxpayer", "erasure-request")).StatusCode);
        Assert.Null(await _api.Services.GetRequiredService<PersonKeys>().FindAsync("er-taxpayer", CancellationToken.None));
    }

    [Fact]
    public async Task A_key_table_restored_from_before_an_erasure_is_erased_again_by_the_log()
    {
        await F.CantonAsync("er-gone");
        await Fiscal.Ok(D.ResideAsync("er-gone", "er-emigrant", new DateOnly(2001, 1, 1), Born));
        await Fiscal.Ok(D.DepartAsync("er-gone", "er-emigrant", new DateOnly(2003, 1, 1)));
        var db = _api.Services.GetRequiredService<NpgsqlDataSource>();
        async Task<long> CountAsync(string sql)
        {
            await using var command = db.CreateCommand(sql);
            return (long)(await command.ExecuteScalarAsync())!;
        }

        async Task ExecuteAsync(string sql)
        {
            await using var command = db.CreateCommand(sql);
            await command.ExecuteNonQueryAsync();
        }

        // The backup: the key table and the register as they were before the erasure.
        await ExecuteAsync("CREATE TABLE backup_keys AS SELECT * FROM person_keys; CREATE TABLE backup_register AS SELECT * FROM residences");
        Assert.Equal(HttpStatusCode.NoContent, (await EraseAsync("er-emigrant", "erasure-request")).StatusCode);
        const string Rows = "SELECT count(*) FROM person_keys";
        const string BirthDates = "SELECT count(*) FROM residences WHERE birth_date IS NOT NULL";
        var (rows, birthDates) = (await CountAsync(Rows), await CountAsync(BirthDates));

        await ExecuteAsync("""
            INSERT INTO person_keys SELECT * FROM backup_keys ON CONFLICT DO NOTHING;
            UPDATE residences r SET birth_date = b.birth_date FROM backup_register b WHERE (r.resident, r.since) = (b.resident, b.since)
            """);
        Assert.Equal((rows + 1, birthDates + 1), (await CountAsync(Rows), await CountAsync(BirthDates))); // the erased person is back

        var (code, output) = await CliRunner.RunAsync(_api, "persons", "forget-erased", "--database", _server.ConnectionString("erasure"));
        Assert.True(code == Cli.ExitCodes.Ok, output);
        Assert.Contains("1 erasures in the log: 1 key rows and 1 register birth dates forgotten again.", output, StringComparison.Ordinal);
        Assert.Equal((rows, birthDates), (await CountAsync(Rows), await CountAsync(BirthDates)));
        (code, output) = await CliRunner.RunAsync(_api, "persons", "forget-erased", "--database", _server.ConnectionString("erasure"));
        Assert.Contains("0 key rows and 0 register birth dates", output, StringComparison.Ordinal);
    }
}
