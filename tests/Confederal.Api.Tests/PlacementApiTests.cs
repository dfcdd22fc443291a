using Confederal.Api.Features.Persons;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Fiscal;
using Confederal.Cli;
using Confederal.Cli.Audit;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Pacts;
using Confederal.EventStore;
using Confederal.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>
/// The API over three servers of the test's own: the directory, and two canton shards (Shards:Cantons). pl-ge's ledger
/// is on shard A, pl-ti's on shard B, pl-vd's in the directory. What crosses cantons is served from the directory, from
/// copies of each canton's log, to the minor unit.
/// </summary>
public sealed class PlacementApiTests : IAsyncLifetime
{
    private const string Ge = "pl-ge";
    private const string Ti = "pl-ti";
    private const string Vd = "pl-vd";
    private EmbeddedPostgres _directory = null!;
    private EmbeddedPostgres _shardA = null!;
    private EmbeddedPostgres _shardB = null!;
    private ApiFactory _api = null!;

    public async Task InitializeAsync()
    {
        (_directory, _shardA, _shardB) = (await TestPostgres.StartServerAsync(), await TestPostgres.StartServerAsync(), await TestPostgres.StartServerAsync());
        foreach (var server in new[] { _directory, _shardA, _shardB })
        {
            await server.CreateDatabaseAsync("confederal");
        }

        _api = ApiFactory.On(_directory.ConnectionString("confederal"));
        _api.Settings[$"{Database.ShardsSection}:{Ge}"] = _shardA.ConnectionString("confederal");
        _api.Settings[$"{Database.ShardsSection}:{Ti}"] = _shardB.ConnectionString("confederal");
        await _api.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await _api.DisposeAsync();
        foreach (var server in new[] { _directory, _shardA, _shardB })
        {
            await server.DisposeAsync();
        }
    }

    private Placement Placement => _api.Services.GetRequiredService<Placement>();

    /// <summary>Copies both ways now (what the copiers do within their poll), then waits for every database's budgets.
    /// The directory's facts reach a canton's database first, then the canton's log the directory.</summary>
    private async Task SyncAsync()
    {
        var copies = _api.Services.GetRequiredService<DirectoryCopies>();
        foreach (var shard in Placement.All) // a copy reads only below its source's high-water mark
        {
            await shard.Daemon.WaitForHighWaterMarkAsync(await shard.Log.ReadLastCommittedAsync()).WaitAsync(TimeSpan.FromSeconds(30));
        }

        foreach (var canton in new[] { Ge, Ti })
        {
            await copies.ToCantonCopy(canton).CopyAsync();
            await copies.FromCanton(canton).CopyAsync();
        }

        foreach (var shard in Placement.All)
        {
            var head = await shard.Log.ReadLastCommittedAsync();
            await shard.Daemon.WaitForAsync(BudgetProjection.ProjectionName, head).WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>An export's events: id, stream, and what was recorded (all but the position and the chain's hash, which
    /// are each log's own).</summary>
    private static async Task<List<(Guid EventId, string StreamId, string Recorded)>> ExportedEventsAsync(string path)
    {
        string[] recorded = ["streamId", "version", "type", "typeVersion", "recordedAt", "actor", "correlationId", "causationId", "data"];
        var events = new List<(Guid, string, string)>();
        foreach (var line in await File.ReadAllLinesAsync(path))
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(line)!["event"] is System.Text.Json.Nodes.JsonObject e)
            {
                events.Add((e["eventId"]!.GetValue<Guid>(), e["streamId"]!.GetValue<string>(), string.Join('|', recorded.Select(f => e[f]?.ToJsonString()))));
            }
        }

        return events;
    }

    /// <summary>The position, in a placed canton's database, of the last event of its own log that budgets fold.</summary>
    private static async Task<long> LastFoldedAsync(string connectionString)
    {
        var types = Events.Types();
        await using var db = NpgsqlDataSource.Create(connectionString);
        await using var command = db.CreateCommand($"SELECT seq_id, stream_id FROM {EventLog.Table} WHERE type = ANY($1) ORDER BY seq_id DESC");
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. BudgetProjection.EventsFolded.SelectMany(types.AliasesOf)] });
        await using var rows = await command.ExecuteReaderAsync();
        while (await rows.ReadAsync())
        {
            if (!DirectoryCopies.IsShared(rows.GetString(1)))
            {
                return rows.GetInt64(0);
            }
        }

        return 0;
    }

    internal static async Task<long> CountAsync(string connectionString, string sql)
    {
        await using var db = NpgsqlDataSource.Create(connectionString);
        await using var command = db.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task Cantons_on_different_servers_settle_their_pact_and_add_up_their_receipts_to_the_minor_unit_and_a_stopped_shard_stops_only_its_canton()
    {
        var d = new Democracy(_api);
        var fiscal = d.Fiscal;
        foreach (var canton in new[] { Ge, Ti, Vd })
        {
            await fiscal.CantonAsync(canton);
        }

        await fiscal.OrganizationAsync("pl-linux");
        await fiscal.PactAsync("pl-alps");
        await SyncAsync(); // the placed cantons' databases now know the cantons, the organization and the pact

        var deadline = _api.Clock.GetUtcNow().AddDays(60);
        foreach (var (canton, person, tax) in new[] { (Ge, "alice", 1_000_000L), (Ti, "bob", 500_001L), (Vd, "carol", 300_000L) })
        {
            await fiscal.PolicyAsync(canton, 2027, rateBp: 100, deadline: deadline);
            await fiscal.AssessAsync(canton, person, 2027, tax);
            await Fiscal.Ok(fiscal.DesignateAsync(canton, 2027, person, false, ("pl-linux", 10_000)));
        }

        // pl-ge joins by its own binding ballot, enacted in its own database; the others' memberships are appended to
        // their own logs directly.
        for (var i = 0; i < 3; i++)
        {
            await Fiscal.Ok(d.ResideAsync(Ge, $"ge-voter-{i}", new DateOnly(2012, 1, 1)));
        }

        var join = await d.BallotAsync(Ge, proposal: new { kind = "join-pact", pactId = "pl-alps", contributionRateBp = 1_000, fromFiscalYear = 2027 });
        for (var i = 0; i < 3; i++)
        {
            await d.ReceiptAsync(Ge, join, $"ge-voter-{i}", i < 2 ? "yes" : "no");
        }

        var closed = await d.CloseAsync(Ge, join);
        Assert.True(closed.GetProperty("enacted").GetBoolean(), closed.ToString());
        Assert.Equal(3, closed.GetProperty("eligible").GetInt64()); // the roll is counted on the directory's census register
        await Placement.Of(Ti).Log.AppendAsync(Pact.MembershipsStreamId(Ti), ExpectedVersion.NoStream, [new PactJoined("pl-alps", Ti, 334, 2027, Guid.NewGuid())]);
        await fiscal.JoinAsync("pl-alps", Vd, 500, 2027);
        await SyncAsync();

        // Bases (revenue − 1 % designated): 990,000, 495,001 and 297,000; contributions 10 %, 3.34 % and 5 %, floored:
        // 99,000 + 16,533 + 14,850 = 130,383, back in equal thirds of 43,461.
        var budgets = new Dictionary<string, Budget>();
        foreach (var canton in new[] { Ge, Ti, Vd })
        {
            budgets[canton] = await fiscal.BudgetAsync(canton, 2027);
            Assert.True(budgets[canton].Balances, budgets[canton].ToString());
            Assert.Equal([new PactLine("pl-alps", 43_461)], budgets[canton].Receipts);
        }

        Assert.Equal([new PactLine("pl-alps", 99_000)], budgets[Ge].Contributions);
        Assert.Equal([new PactLine("pl-alps", 16_533)], budgets[Ti].Contributions);
        Assert.Equal([new PactLine("pl-alps", 14_850)], budgets[Vd].Contributions);

        // The organization's receipts from cantons on three servers, and the confederation's identity in CHF.
        var receipts = await _api.Admin().GetFromJsonAsync<ReceiptsView>("/api/v1/organizations/pl-linux/receipts/2027");
        Assert.Equal([(Ge, 10_000L), (Ti, 5_000L), (Vd, 3_000L)], receipts!.Receipts.Select(r => (r.CantonId, r.AmountMinor)).OrderBy(r => r.CantonId, StringComparer.Ordinal));
        Assert.Equal([new CurrencyTotalView("CHF", 18_000)], receipts.Totals);
        Assert.Equal(budgets.Values.Sum(b => b.DesignatedMinor), receipts.Totals.Single().AmountMinor);

        // Each cross-canton answer says how far it reflects each placed canton's own log: through the last event of it the
        // budgets fold (pl-vd's is the directory's, whose position is the answer's own). A budget folded from the log as of
        // the answer's position says the same.
        var (a0, b0) = (_shardA.ConnectionString("confederal"), _shardB.ConnectionString("confederal"));
        LedgerView[] reflected = [new(Ge, await LastFoldedAsync(a0)), new(Ti, await LastFoldedAsync(b0))];
        Assert.Equal(reflected, receipts.Ledgers);
        using var reader = _api.CreateClient();
        foreach (var canton in new[] { Ge, Ti, Vd })
        {
            var served = await reader.GetFromJsonAsync<BudgetView>($"/api/v1/cantons/{canton}/budgets/2027");
            Assert.Equal(reflected, served!.Ledgers);
            Assert.Equal(receipts.Position, served.Position);
        }

        var asOf = await reader.GetFromJsonAsync<BudgetView>($"/api/v1/cantons/{Vd}/budgets/2027?asOf={receipts.Position}");
        Assert.Equal(reflected, asOf!.Ledgers);
        Assert.Equal(budgets[Vd].NetBudgetMinor, asOf.NetBudgetMinor);

        // Each canton's ledger is in its own database; the directory holds copies, the other shard nothing of it.
        var (directory, a, b) = (_directory.ConnectionString("confederal"), _shardA.ConnectionString("confederal"), _shardB.ConnectionString("confederal"));
        Task<string> TaxpayerAsync(string person, string canton) => Assessed.HandleAsync(_api.Services, person, canton, 2027);
        var Alice = $"SELECT count(*) FROM {EventLog.Table} WHERE stream_id = 'designations-{Ge}-{await TaxpayerAsync("alice", Ge)}'";
        Assert.Equal(1, await CountAsync(a, Alice));
        Assert.Equal(1, await CountAsync(directory, Alice));
        Assert.Equal(0, await CountAsync(b, Alice));
        Assert.Equal(1, await CountAsync(b, $"SELECT count(*) FROM {EventLog.Table} WHERE stream_id = 'designations-{Ti}-{await TaxpayerAsync("bob", Ti)}' AND tenant_id = '{Ti}'"));
        Assert.Equal(1, await CountAsync(directory, $"SELECT count(*) FROM {EventLog.Table} WHERE stream_id = 'designations-{Vd}-{await TaxpayerAsync("carol", Vd)}'"));
        Assert.Equal(1, await CountAsync(a, $"SELECT count(*) FROM {EventLog.Table} WHERE stream_id = '{Pact.MembershipsStreamId(Ge)}'"));
        Assert.Equal(0, await CountAsync(a, $"SELECT count(*) FROM {EventLog.Table} WHERE stream_id LIKE 'residence-%'")); // the census stays in the directory

        // A keyed write to a placed canton records its answer in the canton's database, with what it wrote.
        var keyed = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/cantons/{Ge}/tax-assessments")
        {
            Content = JsonContent.Create(new { personId = "keyed", fiscalYear = 2027, amountMinor = 0 }),
        };
        keyed.Headers.Add("Idempotency-Key", "pl-keyed-1");
        var municipality = fiscal.Municipality(Ge);
        await Fiscal.Ok(municipality.SendAsync(keyed));
        var again = new HttpRequestMessage(HttpMethod.Post, keyed.RequestUri) { Content = JsonContent.Create(new { personId = "keyed", fiscalYear = 2027, amountMinor = 0 }) };
        again.Headers.Add("Idempotency-Key", "pl-keyed-1");
        Assert.True((await Fiscal.Ok(municipality.SendAsync(again))).Headers.Contains(Idempotency.ReplayedHeader));
        Assert.Equal(1, await CountAsync(a, "SELECT count(*) FROM idempotency_keys"));
        await using (var shardA = NpgsqlDataSource.Create(a))
        {
            Assert.Equal(1, (await Assessed.OfAsync(_api.Services.GetRequiredService<PersonKeys>(), _api.Services.GetRequiredService<Features.Fiscal.FiscalYearKeys>(), shardA, ["keyed"]))["keyed"]);
        }

        // Shard B stops under load: pl-ti's writes fail with 503, pl-ge's and pl-vd's go on; what pl-ti acknowledged is
        // all there when it returns.
        var acknowledged = new Dictionary<string, List<string>> { [Ge] = [], [Ti] = [], [Vd] = [] };
        var refused = new Dictionary<string, List<HttpStatusCode>> { [Ge] = [], [Ti] = [], [Vd] = [] };
        using var stop = new CancellationTokenSource();
        var writers = acknowledged.Keys.Select(canton => Task.Run(async () =>
        {
            for (var n = 0; !stop.IsCancellationRequested || n < 20; n++)
            {
                var person = $"{canton}-load-{n}";
                var response = await fiscal.Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/tax-assessments", new { personId = person, fiscalYear = 2027, amountMinor = 1_000 + n });
                if (response.IsSuccessStatusCode)
                {
                    acknowledged[canton].Add(person);
                }
                else
                {
                    refused[canton].Add(response.StatusCode);
                }
            }
        })).ToList();
        await Task.Delay(300);
        // Stopped, not crashed: the test servers run with synchronous_commit = off, which a crash may undo (a canton's
        // server runs with it on, see the README; PlacementTests prove a crash and promotion lose nothing then).
        await _shardB.StopAsync();
        await Task.Delay(1_000);
        var during = await fiscal.Municipality(Ti).PostAsJsonAsync($"/api/v1/cantons/{Ti}/tax-assessments", new { personId = "while-down", fiscalYear = 2027, amountMinor = 5 });
        await _api.AssertRefusedAsync(during, HttpStatusCode.ServiceUnavailable, null);
        Assert.Equal(HttpStatusCode.OK, (await _api.CreateClient().GetAsync($"/api/v1/cantons/{Ti}/budgets/2027")).StatusCode); // served by the directory
        stop.Cancel();
        await Task.WhenAll(writers);
        Assert.NotEmpty(refused[Ti]);
        Assert.NotEmpty(acknowledged[Ti]);
        Assert.Empty(refused[Ge]);
        Assert.Empty(refused[Vd]);
        Assert.All(refused[Ti], s => Assert.Equal(HttpStatusCode.ServiceUnavailable, s));

        await _shardB.StartAgainAsync();
        await Fiscal.Ok(fiscal.Municipality(Ti).PostAsJsonAsync($"/api/v1/cantons/{Ti}/tax-assessments", new { personId = "after", fiscalYear = 2027, amountMinor = 7 }));
        await SyncAsync();
        foreach (var (canton, persons) in acknowledged)
        {
            var budget = await fiscal.BudgetAsync(canton, 2027);
            var expected = new[] { Ge, Ti, Vd }.ToDictionary(c => c, c => budgets[c].RevenueMinor)[canton]
                + persons.Sum(p => 1_000L + int.Parse(p[(p.LastIndexOf('-') + 1)..], System.Globalization.CultureInfo.InvariantCulture)) + (canton == Ti ? 7 : 0);
            Assert.Equal(expected, budget.RevenueMinor);
        }

        // The directory's log holds every canton's, copied verbatim: its sealed export verifies, and replayed offline it
        // reproduces every served number, the ballot pl-ge holds in its own database and the cross-canton ones included.
        await _api.SealedAsync();
        var export = Path.Combine(Path.GetTempPath(), $"confederal-placement-{Guid.NewGuid():N}.ndjson");
        var geExport = Path.ChangeExtension(export, ".ge.ndjson");
        try
        {
            await CliRunner.ExportAsync(_api, export);
            var replay = await new AuditReplay(Events.Types()).RunAsync(AuditExportFile.ReadAsync(export));
            using var client = CliRunner.Client(_api);
            using var auditor = CliRunner.Auditor(_api);
            var served = await ServedComparison.CompareAsync(replay, client, auditor, TimeSpan.FromSeconds(10));
            Assert.Empty(replay.Differences);
            Assert.Empty(served.Differences);
            Assert.Equal(3, served.Budgets);
            Assert.Equal(1, served.Ballots);

            // pl-ge's own log, exported from its own database, verifies by its own chain and seals; each of its own
            // events is in the directory's export as it was recorded.
            await CliRunner.ExportAsync(_api, geExport, "--ledger", Ge);
            var (verified, report) = await CliRunner.RunAsync(_api, "audit", "verify", "--file", geExport);
            Assert.True(verified == ExitCodes.Ok, report);
            var copies = (await ExportedEventsAsync(export)).ToDictionary(e => e.EventId, e => e.Recorded);
            var own = (await ExportedEventsAsync(geExport)).Where(e => !DirectoryCopies.IsShared(e.StreamId)).ToList();
            Assert.Contains(own, e => e.StreamId.StartsWith("ballot-", StringComparison.Ordinal));
            Assert.All(own, e => Assert.Equal(e.Recorded, copies.GetValueOrDefault(e.EventId)));
        }
        finally
        {
            File.Delete(export);
            File.Delete(geExport);
        }
    }

    [Fact]
    public async Task A_canton_whose_server_is_down_at_start_answers_503_while_the_others_are_served_and_is_served_once_it_returns()
    {
        await _shardB.StopAsync();
        var fiscal = new Fiscal(_api);
        foreach (var canton in new[] { Ge, Ti, Vd })
        {
            await fiscal.CantonAsync(canton); // the directory's
        }

        await SyncCantonAsync(Ge);
        await fiscal.PolicyAsync(Ge, 2027, rateBp: 100);
        await fiscal.PolicyAsync(Vd, 2027, rateBp: 100);
        var down = await fiscal.Municipality(Ti).PutAsJsonAsync($"/api/v1/cantons/{Ti}/fiscal-years/2027/policy", new
        {
            designationRateBp = 100, maxOrganizations = 3, unallocatedPolicy = "retain", deadline = _api.Clock.GetUtcNow().AddDays(30), eligibleOrganizations = "all",
        });
        await _api.AssertRefusedAsync(down, HttpStatusCode.ServiceUnavailable, "database-unavailable");
        Assert.True(down.Headers.RetryAfter is not null);
        Assert.Equal(HttpStatusCode.OK, (await _api.CreateClient().GetAsync("/health/ready")).StatusCode); // the directory answers

        await _shardB.StartAgainAsync();
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!_api.Services.GetRequiredService<Database>().IsMigrated(Ti))
        {
            await Task.Delay(50, patience.Token);
        }

        await SyncCantonAsync(Ti);
        await fiscal.PolicyAsync(Ti, 2027, rateBp: 100);
        await fiscal.AssessAsync(Ti, "tia", 2027, 10_000);
        await SyncAsync();
        Assert.Equal(10_000, (await fiscal.BudgetAsync(Ti, 2027)).RevenueMinor);
    }

    /// <summary>Waits until the canton's database has the directory's facts.</summary>
    private async Task SyncCantonAsync(string canton)
    {
        var directory = Placement.Directory;
        await directory.Daemon.WaitForHighWaterMarkAsync(await directory.Log.ReadLastCommittedAsync()).WaitAsync(TimeSpan.FromSeconds(30));
        await _api.Services.GetRequiredService<DirectoryCopies>().ToCantonCopy(canton).CopyAsync();
    }
}

/// <summary>A canton with history in the directory gets a database of its own (`confederal placement move`).</summary>
public sealed class CantonMoveTests : IAsyncLifetime
{
    private EmbeddedPostgres _directory = null!;
    private EmbeddedPostgres _shard = null!;
    private readonly string _data = Directory.CreateTempSubdirectory("confederal-move-").FullName;

    public async Task InitializeAsync()
    {
        (_directory, _shard) = (await TestPostgres.StartServerAsync(), await TestPostgres.StartServerAsync());
        await _directory.CreateDatabaseAsync("confederal");
        await _shard.CreateDatabaseAsync("confederal");
    }

    public async Task DisposeAsync()
    {
        await _shard.DisposeAsync();
        await _directory.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    private static Task<long> CountAsync(string connectionString, string sql) => PlacementApiTests.CountAsync(connectionString, sql);

    private static HttpRequestMessage KeyedAssessment()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/cantons/mv-ge/tax-assessments")
        {
            Content = JsonContent.Create(new { personId = "bob", fiscalYear = 2027, amountMinor = 0 }),
        };
        request.Headers.Add("Idempotency-Key", "mv-keyed");
        return request;
    }

    [Fact]
    public async Task A_moved_canton_keeps_its_history_budget_open_ballot_and_keyed_answers_and_goes_on_in_its_own_database()
    {
        var (directory, shard) = (_directory.ConnectionString("confederal"), _shard.ConnectionString("confederal"));
        Budget before;
        Guid ballot;
        await using (var unplaced = ApiFactory.On(directory, _data))
        {
            var d = new Democracy(unplaced);
            await d.Fiscal.CantonAsync("mv-ge");
            await d.Fiscal.OrganizationAsync("mv-linux");
            await d.Fiscal.PolicyAsync("mv-ge", 2027, rateBp: 100, deadline: DateTimeOffset.UtcNow.AddDays(60));
            await d.Fiscal.AssessAsync("mv-ge", "alice", 2027, 1_000_000);
            await Fiscal.Ok(d.Fiscal.DesignateAsync("mv-ge", 2027, "alice", false, ("mv-linux", 10_000)));
            await Fiscal.Ok(d.ResideAsync("mv-ge", "mv-voter", new DateOnly(2012, 1, 1)));
            ballot = await d.BallotAsync("mv-ge", closesAt: DateTimeOffset.UtcNow.AddHours(1));
            await d.ReceiptAsync("mv-ge", ballot, "mv-voter", "beta-choice"); // in the ballot box, not an event yet
            await Fiscal.Ok(d.Fiscal.Municipality("mv-ge").SendAsync(KeyedAssessment()));
            await unplaced.ProjectedAsync(BudgetProjection.ProjectionName);
            before = (await d.Fiscal.Municipality("mv-ge").GetFromJsonAsync<Budget>("/api/v1/cantons/mv-ge/budgets/2027"))!;
        }

        var (code, output) = await CliRunner.RunAsync(
            _ => throw new InvalidOperationException("no HTTP"), _data, "placement", "move", "--canton", "mv-ge", "--to", shard, "--directory", directory);
        Assert.True(code == ExitCodes.Ok, output);
        Assert.True((await CliRunner.RunAsync(_ => throw new InvalidOperationException("no HTTP"), _data,
            "placement", "move", "--canton", "mv-ge", "--to", shard, "--directory", directory)).Code == ExitCodes.Ok); // again: nothing twice

        await using var placed = ApiFactory.On(directory, _data);
        placed.Settings[$"{Database.ShardsSection}:mv-ge"] = shard;
        var fiscal = new Fiscal(placed);
        await placed.ProjectedAsync(BudgetProjection.ProjectionName);
        Assert.Equal(JsonSerializer.Serialize(before), JsonSerializer.Serialize(await fiscal.Municipality("mv-ge").GetFromJsonAsync<Budget>("/api/v1/cantons/mv-ge/budgets/2027")));

        // Its history is in its own database: the designation continues its stream there, and reaches the directory.
        await Fiscal.Ok(fiscal.DesignateAsync("mv-ge", 2027, "alice", true, ("mv-linux", 10_000)));
        var alice = await Assessed.HandleAsync(placed.Services, "alice", "mv-ge", 2027);
        var Version = $"SELECT version FROM {MartenStore.Schema}.mt_streams WHERE id = 'designations-mv-ge-{alice}'";
        Assert.Equal(2, await CountAsync(shard, Version));

        var copies = placed.Services.GetRequiredService<DirectoryCopies>();
        var log = placed.Services.GetRequiredService<Placement>().Home("mv-ge");
        await log.Daemon.WaitForHighWaterMarkAsync(await log.Log.ReadLastCommittedAsync()).WaitAsync(TimeSpan.FromSeconds(30));
        await copies.FromCanton("mv-ge").CopyAsync();
        await placed.ProjectedAsync(BudgetProjection.ProjectionName);
        Assert.Equal(2, await CountAsync(directory, Version)); // the directory's copy continues the stream it had
        var after = (await fiscal.Municipality("mv-ge").GetFromJsonAsync<Budget>("/api/v1/cantons/mv-ge/budgets/2027"))!;
        Assert.Equal(10_000, after.DesignatedMinor);
        Assert.True(after.Balances, after.ToString());

        // The vote cast before the move is counted when the ballot closes in the canton's database.
        placed.Clock.Advance(TimeSpan.FromHours(2));
        var closed = await Fiscal.Ok(fiscal.Municipality("mv-ge").PostAsync($"/api/v1/cantons/mv-ge/ballots/{ballot}/close", null));
        var results = await closed.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(1, results.GetProperty("votes").GetInt64());

        // A keyed write retried after the move finds its answer: recorded once.
        Assert.True((await Fiscal.Ok(fiscal.Municipality("mv-ge").SendAsync(KeyedAssessment()))).Headers.Contains(Idempotency.ReplayedHeader));
    }
}

/// <summary>Shards:Cantons is read before anything starts: one canton per key, each in a database of its own.</summary>
public sealed class ShardSettingsTests
{
    [Theory]
    [InlineData("Shards:Cantons:Not_A_Slug", "Host=a;Database=x", "is not a canton id")]
    [InlineData("Shards:Cantons:ge", "", "has no connection string")]
    [InlineData("Shards:Cantons:ge", "Host=directory;Port=5432;Database=confederal", "name the same database")]
    public void A_shard_setting_that_is_not_one_canton_in_a_database_of_its_own_stops_the_start(string key, string value, string reason)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Confederal"] = "Host=directory;Database=confederal",
            ["Shards:Cantons:ti"] = "Host=ti;Database=confederal",
            [key] = value,
        }).Build();

        var refused = Assert.Throws<InvalidOperationException>(() => Database.ReadShards(configuration));
        Assert.Contains(reason, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Shards_name_each_canton_s_database()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Confederal"] = "Host=directory;Database=confederal",
            ["Shards:Cantons:ti"] = "Host=ti;Database=confederal",
            ["Shards:Cantons:ge"] = "Host=directory;Database=geneve",
        }).Build();

        Assert.Equal(["ge", "ti"], Database.ReadShards(configuration).Keys);
    }
}

/// <summary>The directory on a primary and its streaming standby, both named in ConnectionStrings:Confederal.</summary>
public sealed class ReplicaReadTests : IAsyncLifetime
{
    private EmbeddedPostgres _primary = null!;
    private EmbeddedPostgres _standby = null!;
    private ApiFactory _api = null!;

    public async Task InitializeAsync()
    {
        _primary = await TestPostgres.StartServerAsync();
        await _primary.CreateDatabaseAsync("confederal");
        _standby = await TestPostgres.StartReplicaAsync(_primary, "directory_standby");
        var both = new NpgsqlConnectionStringBuilder(_primary.ConnectionString("confederal"))
        {
            Host = $"127.0.0.1:{_primary.Port},127.0.0.1:{_standby.Port}",
        };
        both.Remove("Port");
        _api = ApiFactory.On(both.ConnectionString);
        await _api.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await _api.DisposeAsync();
        await _standby.DisposeAsync();
        await _primary.DisposeAsync();
    }

    private static async Task<Budget> BudgetAsync(HttpClient client) =>
        (await client.GetFromJsonAsync<Budget>("/api/v1/cantons/rr-ge/budgets/2027"))!;

    private async Task ReplayAsync(string command)
    {
        await using var standby = NpgsqlDataSource.Create(_standby.ConnectionString("confederal"));
        await using var pause = standby.CreateCommand($"SELECT {command}()");
        await pause.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task Anonymous_budget_reads_are_served_by_the_standby_with_the_position_it_reflects_and_a_caller_with_a_token_by_the_primary()
    {
        var fiscal = new Fiscal(_api);
        await fiscal.CantonAsync("rr-ge");
        await fiscal.PolicyAsync("rr-ge", 2027, rateBp: 100);
        await fiscal.AssessAsync("rr-ge", "first", 2027, 1_000);
        var municipality = fiscal.Municipality("rr-ge"); // a caller with a token: served by the primary
        await _api.ProjectedAsync(BudgetProjection.ProjectionName);
        var primary = await BudgetAsync(municipality);
        Assert.Equal(1_000, primary.RevenueMinor);
        var anonymous = _api.CreateClient();
        using (var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            // The standby's replay catching up: until it has the canton, it answers 404, as the primary did before.
            while (await anonymous.GetAsync("/api/v1/cantons/rr-ge/budgets/2027", patience.Token) is var response
                   && (response.StatusCode == HttpStatusCode.NotFound || (await response.Content.ReadFromJsonAsync<Budget>(patience.Token))!.Position < primary.Position))
            {
                await Task.Delay(20, patience.Token);
            }
        }

        // The standby stops replaying: what it serves stays as it was, and says so; the primary's answer moves on.
        await ReplayAsync("pg_wal_replay_pause");
        try
        {
            await fiscal.AssessAsync("rr-ge", "second", 2027, 2_000);
            await _api.ProjectedAsync(BudgetProjection.ProjectionName);
            var moved = await BudgetAsync(municipality);
            Assert.Equal(3_000, moved.RevenueMinor);
            Assert.True(moved.Position > primary.Position);

            var stale = await BudgetAsync(anonymous);
            Assert.Equal(1_000, stale.RevenueMinor);
            Assert.Equal(primary.Position, stale.Position);
        }
        finally
        {
            await ReplayAsync("pg_wal_replay_resume");
        }

        // Every write went to the primary (a standby refuses writes), and nothing is lost or stale once replay resumes.
        using var caughtUp = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while ((await BudgetAsync(anonymous)).RevenueMinor != 3_000)
        {
            await Task.Delay(20, caughtUp.Token);
        }
    }

    /// <summary>Waits until the standby has replayed everything the primary has written so far.</summary>
    private async Task StandbyCaughtUpAsync()
    {
        await using var primary = NpgsqlDataSource.Create(_primary.ConnectionString("confederal"));
        await using var written = primary.CreateCommand("SELECT pg_current_wal_lsn()::text");
        var lsn = (string)(await written.ExecuteScalarAsync())!;
        await using var standby = NpgsqlDataSource.Create(_standby.ConnectionString("confederal"));
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            await using var replayed = standby.CreateCommand("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn");
            replayed.Parameters.Add(new NpgsqlParameter<string> { TypedValue = lsn });
            if ((bool)(await replayed.ExecuteScalarAsync(patience.Token))!)
            {
                return;
            }

            await Task.Delay(20, patience.Token);
        }
    }

    [Fact]
    public async Task With_the_primary_stopped_the_standby_serves_budgets_certified_results_and_receipts_and_a_result_it_has_not_replayed_is_read_on_the_primary()
    {
        var d = new Democracy(_api);
        var fiscal = d.Fiscal;
        await fiscal.CantonAsync("rr-pu");
        await fiscal.OrganizationAsync("rr-org");
        await fiscal.PolicyAsync("rr-pu", 2027, rateBp: 100);
        await fiscal.AssessAsync("rr-pu", "payer", 2027, 100_000);
        await Fiscal.Ok(fiscal.DesignateAsync("rr-pu", 2027, "payer", false, ("rr-org", 10_000)));
        await Fiscal.Ok(d.ResideAsync("rr-pu", "voter", new DateOnly(2012, 1, 1)));
        var first = await d.BallotAsync("rr-pu");
        await d.ReceiptAsync("rr-pu", first, "voter", "alpha-choice");
        var closedFirst = await d.CloseAsync("rr-pu", first);
        var second = await d.BallotAsync("rr-pu");
        await d.ReceiptAsync("rr-pu", second, "voter", "beta-choice");
        await StandbyCaughtUpAsync();

        // Certified while the standby's replay is paused: the standby has the ballot open, so the primary serves its record.
        await ReplayAsync("pg_wal_replay_pause");
        JsonElement closedSecond;
        try
        {
            closedSecond = await d.CloseAsync("rr-pu", second);
            Assert.Equal(closedSecond.GetRawText(), (await d.ResultsAsync("rr-pu", second)).GetRawText());
        }
        finally
        {
            await ReplayAsync("pg_wal_replay_resume");
        }

        // What the primary serves, once the standby has replayed it all (the results as the closes answered them).
        await _api.ProjectedAsync(BudgetProjection.ProjectionName);
        await StandbyCaughtUpAsync();
        using var auditor = _api.ClientAs(Roles.Auditor, subject: "court-of-audit");
        using var organization = _api.ClientAs(Roles.Organization, subject: "rr-org");
        using var admin = _api.Admin();
        using var anonymous = _api.CreateClient();
        string[] results = [$"/api/v1/cantons/rr-pu/ballots/{first}/results", $"/api/v1/cantons/rr-pu/ballots/{second}/results"];
        const string Receipts = "/api/v1/organizations/rr-org/receipts/2027";
        const string Budget = "/api/v1/cantons/rr-pu/budgets/2027";
        var primary = new Dictionary<string, string>
        {
            [results[0]] = closedFirst.GetRawText(),
            [results[1]] = closedSecond.GetRawText(),
            [Receipts] = await admin.GetStringAsync(Receipts),
            [Budget] = await fiscal.Municipality("rr-pu").GetStringAsync(Budget),
        };
        Assert.Equal(1_000, JsonSerializer.Deserialize<ReceiptsView>(primary[Receipts], JsonSerializerOptions.Web)!.Totals.Single().AmountMinor);

        // The primary stops: public reads go on from the standby, the same to the minor unit and at the same position; what
        // only the primary serves (writes; the reads of a caller who may be reading their own write) answers 503.
        await _primary.StopAsync();
        Assert.Equal(primary[results[0]], await anonymous.GetStringAsync(results[0]));
        Assert.Equal(primary[results[1]], await anonymous.GetStringAsync(results[1]));
        Assert.Equal(primary[results[1]], await fiscal.Municipality("rr-pu").GetStringAsync(results[1])); // final: anyone's
        Assert.Equal(primary[Budget], await anonymous.GetStringAsync(Budget));
        Assert.Equal(primary[Receipts], await organization.GetStringAsync(Receipts));
        Assert.Equal(primary[Receipts], await auditor.GetStringAsync(Receipts));
        await _api.AssertRefusedAsync(await admin.GetAsync(Receipts), HttpStatusCode.ServiceUnavailable, null);
        await _api.AssertRefusedAsync(await fiscal.Municipality("rr-pu").GetAsync(Budget), HttpStatusCode.ServiceUnavailable, null);
        await _api.AssertRefusedAsync(
            await fiscal.Municipality("rr-pu").PostAsJsonAsync("/api/v1/cantons/rr-pu/tax-assessments", new { personId = "late", fiscalYear = 2027, amountMinor = 1 }),
            HttpStatusCode.ServiceUnavailable, null);
    }

    [Fact]
    public async Task When_the_primary_dies_and_its_synchronous_standby_is_promoted_the_API_writes_to_it_and_every_acknowledged_write_is_there()
    {
        await _primary.RequireSynchronousStandbyAsync("directory_standby");
        var fiscal = new Fiscal(_api);
        await fiscal.CantonAsync("rr-fo");
        await fiscal.PolicyAsync("rr-fo", 2027, rateBp: 100);
        var municipality = fiscal.Municipality("rr-fo");
        var acknowledged = new System.Collections.Concurrent.ConcurrentBag<string>();
        var promoted = false;
        var afterPromotion = 0;
        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var n = 0; Volatile.Read(ref afterPromotion) < 20 && !patience.IsCancellationRequested; n++)
            {
                var person = $"w{w}-{n}";
                var response = await municipality.PostAsJsonAsync("/api/v1/cantons/rr-fo/tax-assessments", new { personId = person, fiscalYear = 2027, amountMinor = 1 });
                if (response.IsSuccessStatusCode)
                {
                    acknowledged.Add(person);
                    if (Volatile.Read(ref promoted))
                    {
                        Interlocked.Increment(ref afterPromotion);
                    }
                }
                else
                {
                    // Refused or outcome unknown, never a 500.
                    Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable,
                        $"{(int)response.StatusCode}: {string.Join(Environment.NewLine, _api.Logs.Lines.Where(l => l.Contains("Unhandled", StringComparison.Ordinal)).Take(1))}");
                    await Task.Delay(100);
                }
            }
        })).ToList();

        // Writes are under way (the first of a year also creates the year's key, on a loaded machine not within a
        // fixed delay) before the crash.
        while (acknowledged.IsEmpty && !patience.IsCancellationRequested)
        {
            await Task.Delay(50);
        }

        await Task.Delay(500);
        var beforeCrash = acknowledged.Count;
        await _primary.StopAsync(immediate: true); // a crash
        await _standby.PromoteAsync();
        Volatile.Write(ref promoted, true);
        await Task.WhenAll(writers);

        Assert.True(beforeCrash > 0);
        Assert.True(afterPromotion >= 20, $"{afterPromotion} writes after the promotion");
        await using var db = NpgsqlDataSource.Create(_standby.ConnectionString("confederal"));
        await using var stored = db.CreateCommand($"SELECT array_agg(data->>'taxpayer') FROM {EventLog.Table} WHERE stream_id LIKE 'tax-filing-rr-fo-%'");
        var taxpayers = ((string?[])(await stored.ExecuteScalarAsync())!).ToHashSet(StringComparer.Ordinal);
        var audit = _api.Services.GetRequiredService<Features.Audit.AuditKeys>();
        var keys = await new Features.Persons.PersonKeys(db, audit, TimeProvider.System).FindAsync([.. acknowledged], CancellationToken.None);
        var years = await new Features.Fiscal.FiscalYearKeys(db, audit, TimeProvider.System).LinkedAsync(null, CancellationToken.None);
        Assert.DoesNotContain(acknowledged, p => !(keys.TryGetValue(p, out var key) && years.Any(y => taxpayers.Contains(y.Of(key.Taxpayer)))));
    }
}
