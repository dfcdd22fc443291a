using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using Confederal.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>fiscal-policy-set rows stored as version 1, before version 2 made eligibility explicit, inserted as production
/// wrote them.</summary>
internal static class FiscalPolicyV1
{
    /// <summary>A v1 payload as the API wrote it: camelCase, kebab-case enums, every field, a null list for "all".</summary>
    public static JsonObject Payload(string canton, int year, int rateBp, string unallocated, DateTimeOffset deadline, string[]? eligible) => new()
    {
        ["cantonId"] = canton,
        ["fiscalYear"] = year,
        ["designationRateBp"] = rateBp,
        ["maxOrganizations"] = 3,
        ["unallocatedPolicy"] = unallocated,
        ["deadline"] = deadline.ToUniversalTime(),
        ["eligibleOrganizations"] = eligible is null ? null : new JsonArray([.. eligible.Select(e => JsonValue.Create(e))]),
    };

    /// <summary>Inserts the row into Marten's tables with SQL (type version 1; fiscal-policy-set unless another
    /// <paramref name="type"/> is named), as a writer of that version stored it, with the authentication code its writer
    /// computed (every event carries one); returns its position.</summary>
    public static Task<long> InsertAsync(NpgsqlDataSource db, EventLog log, string stream, JsonNode payload, string type = "fiscal-policy-set") =>
        StoredRows.InsertAsync(db, log, stream, new EventName(type, 1), payload.ToJsonString());

    /// <summary>The stored rows of a stream as they are: (version, type version, data).</summary>
    public static async Task<List<(long Version, int TypeVersion, string Data)>> StoredAsync(NpgsqlDataSource db, string stream)
    {
        await using var command = db.CreateCommand($"SELECT version, type, data::text FROM {EventLog.Table} WHERE stream_id = $1 ORDER BY version");
        command.Parameters.Add(new NpgsqlParameter { Value = stream });
        var rows = new List<(long, int, string)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetInt64(0), EventName.FromAlias(reader.GetString(1)).Version, reader.GetString(2)));
        }

        return rows;
    }

    public static void AssertPolicy(FiscalPolicySet expected, object actual)
    {
        var policy = Assert.IsType<FiscalPolicySet>(actual);
        Assert.Equal(expected.EligibleOrganizations, policy.EligibleOrganizations);
        Assert.Equal(expected with { EligibleOrganizations = [] }, policy with { EligibleOrganizations = [] });
    }
}

/// <summary>The event store reads fiscal-policy-set v1 rows as v2, whichever way it reads them, and leaves them as stored;
/// a v1 row missing a field or malformed is an error naming its position.</summary>
public sealed class FiscalPolicyVersionTests
{
    private static readonly DateTimeOffset Deadline = new(2027, 3, 31, 22, 0, 0, TimeSpan.Zero);

    /// <summary>A store on a database of its own, whose log is read after <see cref="HeadAsync"/> moved its head.</summary>
    private static async Task<(NpgsqlDataSource Db, EventLog Log)> StoreAsync()
    {
        var db = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(Database.Migrations));
        return (db, new OpenStore(db, Events.Types(), []).Log);
    }

    /// <summary>Moves the high-water mark over everything committed, as a running daemon would.</summary>
    private static async Task HeadAsync(NpgsqlDataSource db)
    {
        using var store = new OpenStore(db, Events.Types(), []);
        await store.Daemon.CatchUpAsync();
    }

    [Fact]
    public async Task A_v1_policy_is_read_as_v2_all_for_a_null_list_listed_for_a_list_even_an_empty_one()
    {
        var (db, log) = await StoreAsync();
        await using var _ = db;
        await FiscalPolicyV1.InsertAsync(db, log, "fiscal-policy-ge-2026", FiscalPolicyV1.Payload("ge", 2026, 70, "proportional", Deadline, null));
        await FiscalPolicyV1.InsertAsync(db, log, "fiscal-policy-vd-2026", FiscalPolicyV1.Payload("vd", 2026, 100, "retain", Deadline, ["linux", "oceans"]));
        await FiscalPolicyV1.InsertAsync(db, log, "fiscal-policy-ti-2026", FiscalPolicyV1.Payload("ti", 2026, 0, "retain", Deadline, []));
        var stored = await FiscalPolicyV1.StoredAsync(db, "fiscal-policy-vd-2026");

        FiscalPolicySet[] expected =
        [
            new("ge", 2026, 70, 3, UnallocatedPolicy.Proportional, Deadline, Eligibility.All, []),
            new("vd", 2026, 100, 3, UnallocatedPolicy.Retain, Deadline, Eligibility.Listed, ["linux", "oceans"]),
            new("ti", 2026, 0, 3, UnallocatedPolicy.Retain, Deadline, Eligibility.Listed, []),
        ];
        await HeadAsync(db);
        var all = await log.ReadAllAsync(0).ToListAsync();
        var upTo = await log.ReadUpToAsync(3, BudgetProjection.EventsFolded).ToListAsync();
        var streams = await log.ReadStreamsAsync(["fiscal-policy-ge-2026", "fiscal-policy-vd-2026", "fiscal-policy-ti-2026"]);

        Assert.Equal([1L, 2L, 3L], all.Select(e => e.Position));
        Assert.All(all, e => Assert.Equal("fiscal-policy-set", e.Type));
        for (var i = 0; i < expected.Length; i++)
        {
            FiscalPolicyV1.AssertPolicy(expected[i], all[i].Data);
            FiscalPolicyV1.AssertPolicy(expected[i], upTo[i].Data);
            FiscalPolicyV1.AssertPolicy(expected[i], Assert.Single(streams[$"fiscal-policy-{expected[i].CantonId}-2026"]).Data);
        }

        Assert.Null((await log.AggregateStreamAsync<FiscalPolicy>("fiscal-policy-ge-2026", FiscalPolicy.Apply)).State!.EligibleOrganizations);
        Assert.False((await log.AggregateStreamAsync<FiscalPolicy>("fiscal-policy-ti-2026", FiscalPolicy.Apply)).State!.IsEligible("linux"));
        Assert.Equal(stored, await FiscalPolicyV1.StoredAsync(db, "fiscal-policy-vd-2026"));
        Assert.Equal(1, Assert.Single(stored).TypeVersion);
    }

    [Fact]
    public async Task A_new_policy_is_appended_as_v2_with_its_eligibility()
    {
        var (db, log) = await StoreAsync();
        await using var _ = db;

        await log.AppendAsync("fiscal-policy-ge-2026", ExpectedVersion.NoStream,
            [new FiscalPolicySet("ge", 2026, 70, 3, UnallocatedPolicy.Retain, Deadline, Eligibility.All, [])]);

        var (_, typeVersion, data) = Assert.Single(await FiscalPolicyV1.StoredAsync(db, "fiscal-policy-ge-2026"));
        Assert.Equal(2, typeVersion);
        using var json = JsonDocument.Parse(data);
        Assert.Equal("all", json.RootElement.GetProperty("eligibility").GetString());
        Assert.Equal(0, json.RootElement.GetProperty("eligibleOrganizations").GetArrayLength());
    }

    public static TheoryData<string, string, string> Corrupt => new()
    {
        { "no deadline", "deadline", "'deadline' is missing" },
        { "no list at all (null is all, absent is not)", "eligibleOrganizations", "'eligibleOrganizations' is missing" },
        { "a null canton", "cantonId=null", "'cantonId' is null" },
        { "a string for the list", "eligibleOrganizations=\"all\"", "$.eligibleOrganizations" },
        { "a string for the rate", "designationRateBp=\"lots\"", "$.designationRateBp" },
        { "an unknown unallocated policy", "unallocatedPolicy=\"sometimes\"", "$.unallocatedPolicy" },
    };

    [Theory]
    [MemberData(nameof(Corrupt))]
    public async Task A_v1_policy_missing_a_field_or_malformed_fails_with_an_error_naming_its_position(string why, string change, string reason)
    {
        var (db, log) = await StoreAsync();
        await using var _ = db;
        await log.AppendAsync("canton-ge", ExpectedVersion.NoStream, [new Domain.Cantons.CantonRegistered("ge", "GE", "CHF")]);
        var payload = FiscalPolicyV1.Payload("ge", 2026, 70, "retain", Deadline, null);
        if (change.Split('=', 2) is [var field, var value])
        {
            payload[field] = JsonNode.Parse(value);
        }
        else
        {
            payload.Remove(change);
        }

        var position = await FiscalPolicyV1.InsertAsync(db, log, "fiscal-policy-ge-2026", payload);
        await HeadAsync(db);

        foreach (var read in new Func<Task>[]
                 {
                     () => log.ReadAllAsync(0).ToListAsync().AsTask(),
                     () => log.ReadStreamAsync("fiscal-policy-ge-2026").ToListAsync().AsTask(),
                     () => log.ReadUpToAsync(position, BudgetProjection.EventsFolded).ToListAsync().AsTask(),
                 })
        {
            var error = await Assert.ThrowsAsync<EventStoreException>(read);
            Assert.Equal(position, error.Position);
            Assert.Contains($"position {position} (stream 'fiscal-policy-ge-2026')", error.Message, StringComparison.Ordinal);
            Assert.True(error.Message.Contains($"'fiscal-policy-set' v1 payload is corrupt", StringComparison.Ordinal)
                        && error.Message.Contains(reason, StringComparison.Ordinal), $"{why}: {error.Message}");
        }
    }
}

/// <summary>Over the API, on policies stored as v1 beside v2 ones: the budgets read model and its rebuild, a budget as of
/// the head, the policy served, designations decided on the v1 eligibility, a retried PUT that records nothing, and
/// changes (by the municipality and by a carried ballot) appended as v2.</summary>
public sealed class FiscalPolicyVersionApiTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Democracy _d = new(api);

    private Fiscal F => _d.Fiscal;

    private NpgsqlDataSource Db => api.Services.GetRequiredService<NpgsqlDataSource>();

    private async Task<string> BudgetJsonAsync(string canton, string query = "") =>
        await api.CreateClient().GetStringAsync($"/api/v1/cantons/{canton}/budgets/2026{query}");

    private async Task<JsonElement> PolicyAsync(string canton) =>
        await api.CreateClient().GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/2026/policy");

    [Fact]
    public async Task Read_models_rebuilds_and_decisions_on_v1_policies_give_the_right_answers_and_changes_are_appended_as_v2()
    {
        var log = api.Services.GetRequiredService<EventLog>();
        var deadline = api.Clock.GetUtcNow().AddDays(30);
        await F.CantonAsync("v1-ge");
        await F.CantonAsync("v1-vd");
        await F.OrganizationAsync("v1-linux");
        await F.OrganizationAsync("v1-sea");
        // v1-ge: every organization eligible, proportional; v1-vd: only v1-linux, retained. Both at 1 %.
        await FiscalPolicyV1.InsertAsync(Db, log, "fiscal-policy-v1-ge-2026", FiscalPolicyV1.Payload("v1-ge", 2026, 100, "proportional", deadline, null));
        await FiscalPolicyV1.InsertAsync(Db, log, "fiscal-policy-v1-vd-2026", FiscalPolicyV1.Payload("v1-vd", 2026, 100, "retain", deadline, ["v1-linux"]));
        var storedGe = await FiscalPolicyV1.StoredAsync(Db, "fiscal-policy-v1-ge-2026");
        var storedVd = await FiscalPolicyV1.StoredAsync(Db, "fiscal-policy-v1-vd-2026");

        Assert.Equal("all", (await PolicyAsync("v1-ge")).GetProperty("eligibleOrganizations").GetString());
        Assert.Equal(["v1-linux"], (await PolicyAsync("v1-vd")).GetProperty("eligibleOrganizations").EnumerateArray().Select(e => e.GetString()));

        // Designations are decided on the v1 eligibility.
        await F.AssessAsync("v1-ge", "a1", 2026, 1_000_000); // 10,000
        await F.AssessAsync("v1-ge", "a2", 2026, 500_000);   // 5,000
        await F.AssessAsync("v1-ge", "a3", 2026, 200_000);   // 2,000, no choice: split 1,000 / 1,000 by weight
        await F.AssessAsync("v1-vd", "b1", 2026, 800_000);   // 8,000
        await F.AssessAsync("v1-vd", "b2", 2026, 300_000);   // 3,000, no choice: retained
        await Fiscal.Ok(F.DesignateAsync("v1-ge", 2026, "a1", false, ("v1-sea", 10000)));
        await Fiscal.Ok(F.DesignateAsync("v1-ge", 2026, "a2", false, ("v1-linux", 10000)));
        var events = await api.CountEventsAsync();
        var refused = await F.DesignateAsync("v1-vd", 2026, "b1", false, ("v1-sea", 10000));
        await api.AssertRefusedAsync(refused, HttpStatusCode.Conflict, "organization-not-eligible", events);
        await Fiscal.Ok(F.DesignateAsync("v1-vd", 2026, "b1", false, ("v1-linux", 10000)));

        var ge = await F.BudgetAsync("v1-ge", 2026);
        var vd = await F.BudgetAsync("v1-vd", 2026);
        Assert.Equal((100, 11_000L, 6_000L, 0L), (ge.DesignationRateBp, ge.AmountOf("v1-sea"), ge.AmountOf("v1-linux"), ge.RetainedMinor));
        Assert.Equal((8_000L, 0L, 3_000L), (vd.AmountOf("v1-linux"), vd.AmountOf("v1-sea"), vd.RetainedMinor));

        // The same policy again decides nothing: the v1 row reads as the policy asked.
        events = await api.CountEventsAsync();
        await F.PolicyAsync("v1-vd", 2026, rateBp: 100, unallocated: "retain", eligible: new[] { "v1-linux" }, deadline: deadline);
        Assert.Equal(events, await api.CountEventsAsync());

        // A change by the municipality is appended as v2 after the v1 row, and recounts the year: 12,000 / 6,000 / 2,400.
        await F.PolicyAsync("v1-ge", 2026, rateBp: 120, unallocated: "proportional", deadline: deadline);
        var ge2 = (await FiscalPolicyV1.StoredAsync(Db, "fiscal-policy-v1-ge-2026"))[^1];
        Assert.Equal((2L, 2), (ge2.Version, ge2.TypeVersion));
        using (var json = JsonDocument.Parse(ge2.Data))
        {
            Assert.Equal("all", json.RootElement.GetProperty("eligibility").GetString());
            Assert.Equal(0, json.RootElement.GetProperty("eligibleOrganizations").GetArrayLength());
        }

        ge = await F.BudgetAsync("v1-ge", 2026);
        Assert.Equal((120, 13_200L, 7_200L), (ge.DesignationRateBp, ge.AmountOf("v1-sea"), ge.AmountOf("v1-linux")));

        // A carried ballot raising v1-vd's rate keeps its v1 list: appended as v2, listed. 12,000 / 4,500 retained.
        for (var i = 0; i < 3; i++)
        {
            await Fiscal.Ok(_d.ResideAsync("v1-vd", $"v1-vd-voter{i}", new DateOnly(2012, 1, 1)));
        }

        var ballot = await _d.BallotAsync("v1-vd", proposal: new { kind = "set-designation-rate", fiscalYear = 2026, designationRateBp = 150 });
        for (var i = 0; i < 3; i++)
        {
            await _d.ReceiptAsync("v1-vd", ballot, $"v1-vd-voter{i}", "yes");
        }

        Assert.True((await _d.CloseAsync("v1-vd", ballot)).GetProperty("enacted").GetBoolean());
        var vd2 = (await FiscalPolicyV1.StoredAsync(Db, "fiscal-policy-v1-vd-2026"))[^1];
        Assert.Equal((2L, 2), (vd2.Version, vd2.TypeVersion));
        using (var json = JsonDocument.Parse(vd2.Data))
        {
            Assert.Equal("listed", json.RootElement.GetProperty("eligibility").GetString());
            Assert.Equal(["v1-linux"], json.RootElement.GetProperty("eligibleOrganizations").EnumerateArray().Select(e => e.GetString()));
        }

        Assert.Equal(["v1-linux"], (await PolicyAsync("v1-vd")).GetProperty("eligibleOrganizations").EnumerateArray().Select(e => e.GetString()));
        vd = await F.BudgetAsync("v1-vd", 2026);
        Assert.Equal((150, 12_000L, 4_500L), (vd.DesignationRateBp, vd.AmountOf("v1-linux"), vd.RetainedMinor));

        // Rebuilt from position 0 over the mix of v1 and v2 rows, and folded as of the head: the same budgets.
        var live = (await BudgetJsonAsync("v1-ge"), await BudgetJsonAsync("v1-vd"));
        using (var store = new OpenStore(Db, Events.Types(), [new BudgetProjection(pageSize: 5)]))
        {
            await store.Daemon.RebuildAsync(BudgetProjection.ProjectionName);
        }

        Assert.Equal(live, (await BudgetJsonAsync("v1-ge"), await BudgetJsonAsync("v1-vd")));
        Assert.Equal(live, (await BudgetJsonAsync("v1-ge", $"?asOf={vd.Position}"), await BudgetJsonAsync("v1-vd", $"?asOf={vd.Position}")));

        // The v1 rows are still as they were stored.
        Assert.Equal(storedGe[0], (await FiscalPolicyV1.StoredAsync(Db, "fiscal-policy-v1-ge-2026"))[0]);
        Assert.Equal(storedVd[0], (await FiscalPolicyV1.StoredAsync(Db, "fiscal-policy-v1-vd-2026"))[0]);
        Assert.Equal(1, storedGe[0].TypeVersion);

        // Sealed and verified like any event; the feed serves them as stored, version 1, for replays to upcast.
        await api.SealedAsync();
        var audit = new Audit(api);
        Assert.True((await audit.VerifyDatabaseAsync()).Passed);
        var (trail, _) = await audit.FeedAsync("&type=fiscal-policy-set");
        Assert.Contains(trail, e => e.Event is { StreamId: "fiscal-policy-v1-ge-2026", Version: 1, TypeVersion: 1 } v1
                                    && v1.Data.GetProperty("eligibleOrganizations").ValueKind == JsonValueKind.Null);
        Assert.Contains(trail, e => e.Event is { StreamId: "fiscal-policy-v1-ge-2026", Version: 2, TypeVersion: 2 });
    }
}
