using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Budgets as of a position or an instant: folded from the log, they are what the read model served then.</summary>
public sealed class BudgetAsOfTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    private async Task<(string Json, long Position)> ServedAsync(string canton, int year, string query = "")
    {
        var response = await api.CreateClient().GetAsync($"/api/v1/cantons/{canton}/budgets/{year}{query}");
        var json = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {json}");
        using var document = JsonDocument.Parse(json);
        return (json, document.RootElement.GetProperty("position").GetInt64());
    }

    /// <summary>What the read model served after one step of a history: per budget, the JSON; and its position.</summary>
    private sealed record Served(long Position, Dictionary<(string Canton, int Year), string> Json)
    {
        public Budget Budget(string canton, int year) => JsonSerializer.Deserialize<Budget>(Json[(canton, year)], JsonSerializerOptions.Web)!;
    }

    // Two CHF cantons at 1 % and 0.7 %; one taxpayer's tax corrected, designations chosen, changed, carried into 2027 and
    // withdrawn; an organization declining redistribution, one suspended while 2026 is open; an equal pact that both
    // cantons join, after which the other canton's assessments move the receipts; a new rate recounting the year.
    // After each step: the budgets {p}-ge 2026 and 2027 and {p}-vd 2026 as served.
    private async Task<List<Served>> HistoryAsync(string p)
    {
        var (ge, vd, linux, sea, faith) = ($"{p}-ge", $"{p}-vd", $"{p}-linux", $"{p}-sea", $"{p}-faith");
        var served = new List<Served>();
        async Task StepAsync(Func<Task> step)
        {
            await step();
            await api.ProjectedAsync("budgets");
            var json = new Dictionary<(string, int), string>();
            long position = 0;
            foreach (var (canton, year) in new[] { (ge, 2026), (ge, 2027), (vd, 2026) })
            {
                (json[(canton, year)], position) = await ServedAsync(canton, year);
            }

            Assert.True(served.Count == 0 || position > served[^1].Position, "every step records events");
            served.Add(new Served(position, json));
        }

        await StepAsync(async () =>
        {
            await _fiscal.CantonAsync(ge);
            await _fiscal.CantonAsync(vd);
            await _fiscal.OrganizationAsync(linux);
            await _fiscal.OrganizationAsync(sea);
            await _fiscal.OrganizationAsync(faith, "community", acceptsRedistribution: false);
        });
        await StepAsync(() => _fiscal.PolicyAsync(ge, 2026, rateBp: 100, unallocated: "proportional"));
        await StepAsync(async () =>
        {
            await _fiscal.AssessAsync(ge, "p1", 2026, 1_000_000);
            await _fiscal.AssessAsync(ge, "p2", 2026, 500_001);
            await _fiscal.AssessAsync(ge, "p3", 2026, 250_000);
            await _fiscal.AssessAsync(ge, "p4", 2026, 99_999);
        });
        await StepAsync(async () =>
        {
            await _fiscal.PolicyAsync(vd, 2026, rateBp: 70);
            await _fiscal.AssessAsync(vd, "q1", 2026, 800_000);
        });
        await StepAsync(async () =>
        {
            await Fiscal.Ok(_fiscal.DesignateAsync(ge, 2026, "p1", true, (linux, 6000), (sea, 4000)));
            await Fiscal.Ok(_fiscal.DesignateAsync(ge, 2026, "p2", false, (faith, 10000)));
            await Fiscal.Ok(_fiscal.DesignateAsync(ge, 2026, "p3", false, (sea, 5000), (linux, 5000)));
        });
        await StepAsync(() => _fiscal.AssessAsync(ge, "p1", 2026, 1_200_000)); // a correction
        await StepAsync(async () =>
        {
            await _fiscal.PolicyAsync(ge, 2027, rateBp: 100);
            await _fiscal.AssessAsync(ge, "p1", 2027, 900_000); // p1's standing choice carries into 2027
        });
        await StepAsync(async () => await Fiscal.Ok(_fiscal.DesignateAsync(ge, 2026, "p1", true, (linux, 10000))));
        await StepAsync(async () => await Fiscal.Ok(_fiscal.Admin.PostAsync($"/api/v1/organizations/{sea}/suspension", null)));
        await StepAsync(async () =>
        {
            await _fiscal.PactAsync($"{p}-alps", "CHF", "equal");
            await _fiscal.JoinAsync($"{p}-alps", ge, 1_000, 2026);
            await _fiscal.JoinAsync($"{p}-alps", vd, 500, 2026);
        });
        await StepAsync(() => _fiscal.AssessAsync(vd, "q2", 2026, 400_000)); // moves what ge receives
        await StepAsync(async () => await Fiscal.Ok(_fiscal.Person("p2").DeleteAsync($"/api/v1/cantons/{ge}/fiscal-years/2026/designations/p2")));
        await StepAsync(() => _fiscal.PolicyAsync(ge, 2026, rateBp: 120, unallocated: "proportional")); // recounts 2026
        await StepAsync(() => _fiscal.CantonAsync($"{p}-late"));
        return served;
    }

    /// <summary>Each event's position and when it was recorded, in order.</summary>
    private async Task<List<(long Position, DateTimeOffset At)>> RecordedAtAsync()
    {
        await using var command = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
            "SELECT seq_id, timestamp FROM marten.mt_events ORDER BY seq_id");
        var recorded = new List<(long, DateTimeOffset)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            recorded.Add((reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1)));
        }

        return recorded;
    }

    private static string Instant(DateTimeOffset instant, TimeSpan offset) =>
        Uri.EscapeDataString(instant.ToOffset(offset).ToString("yyyy-MM-dd'T'HH:mm:ss.fffffffzzz", CultureInfo.InvariantCulture)
            .Replace("+00:00", "Z", StringComparison.Ordinal));

    [Fact]
    public async Task A_budget_as_of_a_position_or_an_instant_is_exactly_what_was_served_then()
    {
        var served = await HistoryAsync("at");
        var recorded = await RecordedAtAsync();

        for (var i = 0; i < served.Count; i++)
        {
            var (position, json) = served[i];
            foreach (var ((canton, year), then) in json)
            {
                Assert.Equal(then, (await ServedAsync(canton, year, $"?asOf={position}")).Json);
            }

            // An instant between this step and the next one is this step's budget, whatever the offset it is written with.
            var at = recorded.Last(r => r.Position <= position).At;
            var next = recorded.FirstOrDefault(r => r.Position > position);
            var between = at + ((next.Position > 0 ? next.At : api.Clock.GetUtcNow()) - at) / 2;
            Assert.Equal(json[("at-ge", 2026)], (await ServedAsync("at-ge", 2026, $"?asOf={Instant(between, TimeSpan.Zero)}")).Json);
            Assert.Equal(json[("at-vd", 2026)], (await ServedAsync("at-vd", 2026, $"?asOf={Instant(between, TimeSpan.FromHours(2))}")).Json);
            Assert.Equal(json[("at-ge", 2027)], (await ServedAsync("at-ge", 2027, $"?asOf={Instant(at, TimeSpan.FromHours(-5))}")).Json);
        }

        // The steps changed what they claim to: the history is worth replaying.
        Assert.Equal(0, served[0].Budget("at-ge", 2026).RevenueMinor);
        Assert.Equal(1_850_000, served[2].Budget("at-ge", 2026).RevenueMinor);
        Assert.Equal(2_050_000, served[5].Budget("at-ge", 2026).RevenueMinor);
        Assert.Equal(9_000, served[6].Budget("at-ge", 2027).AmountOf("at-linux") + served[6].Budget("at-ge", 2027).AmountOf("at-sea"));
        Assert.NotEqual(0, served[7].Budget("at-ge", 2026).AmountOf("at-sea"));
        Assert.Equal(0, served[8].Budget("at-ge", 2026).AmountOf("at-sea"));
        Assert.Empty(served[8].Budget("at-ge", 2026).Receipts);
        Assert.NotEmpty(served[9].Budget("at-ge", 2026).Receipts);
        Assert.NotEqual(served[9].Budget("at-ge", 2026).Receipts, served[10].Budget("at-ge", 2026).Receipts);
        Assert.Equal(120, served[12].Budget("at-ge", 2026).DesignationRateBp);
        Assert.All(served, s => Assert.True(s.Budget("at-ge", 2026).Balances));
    }

    [Fact]
    public async Task A_budget_as_of_the_head_is_the_live_budget()
    {
        await HistoryAsync("head");
        await api.ProjectedAsync("budgets");
        var (live, head) = await ServedAsync("head-ge", 2026);

        Assert.Equal(await api.Services.GetRequiredService<Confederal.EventStore.EventLog>().ReadHeadAsync(), head);
        Assert.Equal(live, (await ServedAsync("head-ge", 2026, $"?asOf={head}")).Json);
        Assert.Equal(live, (await ServedAsync("head-ge", 2026, $"?asOf={Instant(api.Clock.GetUtcNow(), TimeSpan.Zero)}")).Json);
    }

    [Fact]
    public async Task A_canton_not_registered_yet_at_the_position_or_never_is_not_found()
    {
        var served = await HistoryAsync("nf");
        var recorded = await RecordedAtAsync();
        var registeredLate = served[^1].Position;

        var before = await api.CreateClient().GetAsync($"/api/v1/cantons/nf-late/budgets/2026?asOf={registeredLate - 1}");
        var beforeAnyEvent = await api.CreateClient().GetAsync($"/api/v1/cantons/nf-ge/budgets/2026?asOf={Instant(recorded[0].At.AddSeconds(-1), TimeSpan.Zero)}");
        var never = await api.CreateClient().GetAsync("/api/v1/cantons/nf-never/budgets/2026?asOf=1");

        await api.AssertRefusedAsync(before, HttpStatusCode.NotFound, null);
        Assert.Contains($"not registered yet at position {registeredLate - 1}", await before.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await api.AssertRefusedAsync(beforeAnyEvent, HttpStatusCode.NotFound, null);
        await api.AssertRefusedAsync(never, HttpStatusCode.NotFound, null);
        Assert.Equal(HttpStatusCode.OK, (await api.CreateClient().GetAsync($"/api/v1/cantons/nf-late/budgets/2026?asOf={registeredLate}")).StatusCode);
    }

    [Fact]
    public async Task A_malformed_asOf_a_position_beyond_the_head_or_an_instant_in_the_future_is_a_400_that_records_nothing()
    {
        await _fiscal.CantonAsync("asof-bad");
        await api.ProjectedAsync("budgets");
        var head = await api.Services.GetRequiredService<Confederal.EventStore.EventLog>().ReadHeadAsync();
        var events = await api.CountEventsAsync();
        string[] malformed =
        [
            "", "abc", "0", "-1", "%2B5", "1.5", "1e3", "%205", "99999999999999999999", $"{head + 1}",
            "2026-03-01", "2026-03-01T12:00:00", "2026-03-01T12:00Z", "2026-03-01T12:00:00+01:00" /* + read as a space */,
            "2026-03-01T12:00:00%2B0100", "2026-13-01T12:00:00Z", "2026-02-30T12:00:00Z", "2026-03-01T12:00:00.12345678Z",
            "2026-03-01 12:00:00Z", Instant(api.Clock.GetUtcNow().AddMinutes(5), TimeSpan.Zero),
        ];

        foreach (var asOf in malformed)
        {
            var response = await api.CreateClient().GetAsync($"/api/v1/cantons/asof-bad/budgets/2026?asOf={asOf}");

            await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, null, events);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.True(problem.RootElement.GetProperty("errors").TryGetProperty("asOf", out _), $"{asOf}: {problem.RootElement}");
        }
    }
}

/// <summary>Designations are served in organizationId ordinal order, the ledger's, whatever the server's collation: on a
/// server whose default collation ignores hyphens (as glibc's en_US does), the read model and a budget as of the head
/// still agree.</summary>
public sealed class BudgetOrderTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    [Fact]
    public async Task Designations_are_in_ordinal_order_whatever_the_collation_of_the_read_model()
    {
        await using (var command = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("""
            CREATE COLLATION hyphen_blind (provider = icu, locale = 'und-u-ka-shifted');
            ALTER TABLE organization_receipts ALTER COLUMN organization_id TYPE text COLLATE hyphen_blind;
            """))
        {
            await command.ExecuteNonQueryAsync();
        }

        await _fiscal.CantonAsync("order");
        await _fiscal.OrganizationAsync("col-ab");
        await _fiscal.OrganizationAsync("col-a-c");
        await _fiscal.PolicyAsync("order", 2026, rateBp: 100);
        await _fiscal.AssessAsync("order", "o1", 2026, 100_000);
        await Fiscal.Ok(_fiscal.DesignateAsync("order", 2026, "o1", false, ("col-ab", 5000), ("col-a-c", 5000)));

        var budget = await _fiscal.BudgetAsync("order", 2026);
        var live = await api.CreateClient().GetStringAsync("/api/v1/cantons/order/budgets/2026");

        Assert.Equal(["col-a-c", "col-ab"], budget.Designations.Select(d => d.OrganizationId));
        Assert.Equal(live, await api.CreateClient().GetStringAsync($"/api/v1/cantons/order/budgets/2026?asOf={budget.Position}"));
    }
}
