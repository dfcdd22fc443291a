using Stopwatch = System.Diagnostics.Stopwatch;
using System.Net.Http.Json;
using System.Text;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>The budgets read model: kept by the daemon, never computed on a GET; rebuilt from position 0 it is the same,
/// whatever the page size.</summary>
public sealed class BudgetProjectionTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private static readonly string[] Tables =
    [
        "fiscal_cantons", "fiscal_organizations", "fiscal_taxpayers", "budgets", "budget_tallies", "organization_receipts",
        "pacts", "pact_members", "pact_lines", "census_days",
    ];

    private readonly Fiscal _fiscal = new(api);

    [Fact]
    public async Task A_page_that_fails_in_the_host_is_retried_until_it_applies_and_never_passed_over()
    {
        await using var host = new ApiFactory();
        await ((IAsyncLifetime)host).InitializeAsync();
        var fiscal = new Fiscal(host);
        await fiscal.CantonAsync("ge");
        await fiscal.PolicyAsync("ge", 2026, 70);
        await host.ProjectedAsync("budgets");
        var db = host.Services.GetRequiredService<NpgsqlDataSource>();
        var daemon = host.Services.GetRequiredService<ProjectionDaemon>();

        // Every page of the budgets now fails in Marten's hosted daemon (one of its tables is gone), for some seconds.
        await using (var away = db.CreateCommand("ALTER TABLE budget_tallies RENAME TO budget_tallies_away"))
        {
            await away.ExecuteNonQueryAsync();
        }

        await fiscal.AssessAsync("ge", "alice", 2026, 1_000_000);
        var head = await host.Services.GetRequiredService<EventLog>().ReadLastCommittedAsync();
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.True(await daemon.ReadCheckpointAsync("budgets") < head, "the page applied without its table");

        await using (var back = db.CreateCommand("ALTER TABLE budget_tallies_away RENAME TO budget_tallies"))
        {
            await back.ExecuteNonQueryAsync();
        }

        await host.ProjectedAsync("budgets");
        var budget = (await host.CreateClient().GetFromJsonAsync<Budget>("/api/v1/cantons/ge/budgets/2026"))!;
        Assert.Equal(1_000_000, budget.RevenueMinor);
        Assert.Equal(1, budget.Taxpayers);
    }

    private async Task<string> SnapshotAsync()
    {
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();
        var snapshot = new StringBuilder();
        foreach (var table in Tables)
        {
            await using var command = db.CreateCommand($"SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM {table} t");
            snapshot.Append(table).Append('\n').Append(await command.ExecuteScalarAsync()).Append('\n');
        }

        return snapshot.ToString();
    }

    // Two pacts: per-resident in CHF between hist-a and hist-c (which has no budget, then leaves), equal in EUR between
    // hist-b (its rate changing from 2027) and hist-d (no budget); residents come and go around 1 January while budgets
    // change.
    private async Task HistoryAsync()
    {
        await _fiscal.CantonAsync("hist-a", "CHF");
        await _fiscal.CantonAsync("hist-b", "EUR");
        await _fiscal.CantonAsync("hist-c", "CHF");
        await _fiscal.CantonAsync("hist-d", "EUR");
        await _fiscal.OrganizationAsync("h-arts", "cultural");
        await _fiscal.OrganizationAsync("h-sea", "commons");
        await _fiscal.OrganizationAsync("h-faith", "community", acceptsRedistribution: false);
        await _fiscal.PactAsync("h-rhine", "CHF", "per-resident");
        await _fiscal.PactAsync("h-po", "EUR", "equal");
        await _fiscal.JoinAsync("h-rhine", "hist-a", 500, 2026);
        await _fiscal.JoinAsync("h-rhine", "hist-c", 300, 2026);
        await _fiscal.JoinAsync("h-po", "hist-b", 1_000, 2026);
        await _fiscal.JoinAsync("h-po", "hist-d", 2_000, 2026);
        for (var i = 1; i <= 12; i++)
        {
            await _fiscal.ResidentAsync($"hr{i}", i % 3 == 0 ? "hist-a" : "hist-c", new DateOnly(2025, 12, 29).AddDays(i % 5));
        }

        foreach (var canton in new[] { "hist-a", "hist-b" })
        {
            await _fiscal.PolicyAsync(canton, 2026, rateBp: 70, unallocated: "proportional");
            await _fiscal.PolicyAsync(canton, 2027, rateBp: 90);
            var lines = Enumerable.Range(1, 300).Select(i => $"h{i},{2026 + i % 2},{i * 1_013}");
            await Fiscal.Ok(_fiscal.Municipality(canton).PostAsync($"/api/v1/cantons/{canton}/tax-assessments/batch",
                new StringContent("personId,fiscalYear,amountMinor\n" + string.Join('\n', lines), Encoding.UTF8, "text/csv")));
            for (var i = 1; i <= 40; i++)
            {
                await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, $"h{i}", i % 3 == 0, ("h-arts", 3000 + i), ("h-sea", 7000 - i)));
            }

            await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "h5", false, ("h-faith", 10000)));
            await _fiscal.AssessAsync(canton, "h3", 2026, 77_777);
            await Fiscal.Ok(_fiscal.Person("h6").DeleteAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/h6"));
        }

        // Alone in its page: an organization's change reaches members' open books through no canton the page names.
        await api.ProjectedAsync("budgets");
        await Fiscal.Ok(_fiscal.Admin.PostAsync("/api/v1/organizations/h-sea/suspension", null));
        await api.ProjectedAsync("budgets");
        await _fiscal.DepartAsync("hr2", "hist-c", new DateOnly(2026, 1, 1));
        await _fiscal.ResidentAsync("hr2", "hist-a", new DateOnly(2026, 1, 1));
        await _fiscal.JoinAsync("h-po", "hist-b", 700, 2027);
        await _fiscal.LeaveAsync("h-rhine", "hist-c", 2027);
        await _fiscal.PolicyAsync("hist-a", 2027, rateBp: 120, unallocated: "proportional");
        await api.ProjectedAsync("budgets");
    }

    [Fact]
    public async Task A_rebuild_from_position_0_gives_identical_rows_whatever_the_page_size()
    {
        await HistoryAsync();
        var live = await SnapshotAsync();
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();

        using (var store = new OpenStore(db, Events.Types(), [new BudgetProjection(pageSize: 7)]))
        {
            await store.Daemon.RebuildAsync(BudgetProjection.ProjectionName);
        }

        var smallPages = await SnapshotAsync();
        using (var store = new OpenStore(db, Events.Types(), [new BudgetProjection()]))
        {
            await store.Daemon.RebuildAsync(BudgetProjection.ProjectionName);
        }

        var onePage = await SnapshotAsync();

        Assert.Contains("hist-b", live, StringComparison.Ordinal);
        Assert.Contains("(h-rhine,2026,hist-c,CHF,0,", live, StringComparison.Ordinal); // a member without a budget receives
        Assert.Contains("(h-po,2027,hist-b,EUR,", live, StringComparison.Ordinal);
        Assert.DoesNotContain("(h-rhine,2027,hist-c", live, StringComparison.Ordinal);
        Assert.Equal(live, smallPages);
        Assert.Equal(live, onePage);
    }

    [Fact]
    public async Task A_new_rate_recounts_every_designable_amount_of_the_year()
    {
        await _fiscal.CantonAsync("recount");
        await _fiscal.OrganizationAsync("rc-org");
        await _fiscal.PolicyAsync("recount", 2026, rateBp: 70);
        await _fiscal.AssessAsync("recount", "t1", 2026, 100_001); // 700 at 0.7 %, 1,000 at 1 %
        await _fiscal.AssessAsync("recount", "t2", 2026, 50_050);  // 350 at 0.7 %, 500 at 1 %
        await Fiscal.Ok(_fiscal.DesignateAsync("recount", 2026, "t1", false, ("rc-org", 10000)));
        Assert.Equal(1_050, (await _fiscal.BudgetAsync("recount", 2026)).DesignablePoolMinor);

        await _fiscal.PolicyAsync("recount", 2026, rateBp: 100);

        var budget = await _fiscal.BudgetAsync("recount", 2026);
        Assert.Equal(100, budget.DesignationRateBp);
        Assert.Equal(1_500, budget.DesignablePoolMinor);
        Assert.Equal(1_000, budget.AmountOf("rc-org"));
        Assert.Equal(500, budget.RetainedMinor);
    }

    [Fact]
    public async Task Under_light_load_the_budget_catches_up_within_a_second()
    {
        await _fiscal.CantonAsync("latency");
        await _fiscal.OrganizationAsync("lat-org");
        await _fiscal.PolicyAsync("latency", 2026, rateBp: 100);
        await _fiscal.AssessAsync("latency", "u1", 2026, 100_000);
        await _fiscal.BudgetAsync("latency", 2026);
        var client = api.CreateClient();

        var clock = Stopwatch.StartNew();
        await Fiscal.Ok(_fiscal.DesignateAsync("latency", 2026, "u1", false, ("lat-org", 10000)));
        while ((await client.GetFromJsonAsync<Budget>("/api/v1/cantons/latency/budgets/2026"))!.AmountOf("lat-org") != 1_000)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), "The budget did not show the designation within a second.");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_budget_of_a_known_canton_with_no_data_is_zero_and_an_unknown_canton_is_404()
    {
        await _fiscal.CantonAsync("empty-year", "JPY");
        var budget = await _fiscal.BudgetAsync("empty-year", 2040);

        Assert.Equal("JPY", budget.Currency);
        Assert.Equal(0, budget.RevenueMinor);
        Assert.Empty(budget.Designations);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, (await api.CreateClient().GetAsync("/api/v1/cantons/never-registered/budgets/2026")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, (await api.CreateClient().GetAsync("/api/v1/cantons/empty-year/budgets/1999")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, (await api.CreateClient().GetAsync("/api/v1/cantons/empty-year/budgets/next")).StatusCode);
    }
}
