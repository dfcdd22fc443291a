using System.Net;
using System.Net.Http.Json;

namespace Confederal.Api.Tests;

public sealed class BudgetTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    [Fact]
    public async Task Designations_flow_from_assessments_to_the_budget_to_the_minor_unit()
    {
        await _fiscal.CantonAsync("flow");
        await _fiscal.OrganizationAsync("flow-linux");
        await _fiscal.OrganizationAsync("flow-oceans");
        await _fiscal.PolicyAsync("flow", 2026, rateBp: 70);
        await _fiscal.AssessAsync("flow", "p1", 2026, 1_000_000); // designable 7,000
        await _fiscal.AssessAsync("flow", "p2", 2026, 333_333);   // designable floor(2,333.331) = 2,333
        await Fiscal.Ok(_fiscal.DesignateAsync("flow", 2026, "p1", false, ("flow-linux", 5000), ("flow-oceans", 5000)));

        var budget = await _fiscal.BudgetAsync("flow", 2026);

        Assert.Equal("CHF", budget.Currency);
        Assert.Equal(1_333_333, budget.RevenueMinor);
        Assert.Equal(9_333, budget.DesignablePoolMinor);
        Assert.Equal(3_500, budget.AmountOf("flow-linux"));
        Assert.Equal(3_500, budget.AmountOf("flow-oceans"));
        Assert.Equal(2_333, budget.RetainedMinor);
        Assert.Equal(7_000, budget.DesignatedMinor);
        Assert.Equal(1_333_333 - 7_000, budget.NetBudgetMinor);
        Assert.Empty(budget.Contributions);
        Assert.True(budget.Position > 0);
    }
}

/// <summary>Unallocated money: retained, or redistributed by Italy's rule; suspended organizations; currencies.</summary>
public sealed class RedistributionTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    // The same five taxpayers in two cantons, at 1 %:
    //   p1 1,000,000 → 10,000: arts 100 %            → arts 10,000
    //   p2   500,000 →  5,000: sea 50 %, faith 50 %  → sea 2,500, faith 2,500
    //   p3   300,000 →  3,000: arts 20 %, sea 80 %   → arts 600, sea 2,400
    //   p4   700,001 →  7,000 (floor of 7,000.01): no choice
    //   p5   123,456 →  1,234 (floor of 1,234.56): no choice
    // revenue 2,623,457; designable pool 26,234; unallocated 7,000 + 1,234 = 8,234.
    private async Task FiveTaxpayersAsync(string canton, string unallocated)
    {
        await _fiscal.CantonAsync(canton);
        await _fiscal.OrganizationAsync("arts", "cultural");
        await _fiscal.OrganizationAsync("sea", "commons");
        await _fiscal.OrganizationAsync("faith", "community", acceptsRedistribution: false);
        await _fiscal.PolicyAsync(canton, 2026, rateBp: 100, unallocated: unallocated);
        foreach (var (person, tax) in new[] { ("p1", 1_000_000L), ("p2", 500_000L), ("p3", 300_000L), ("p4", 700_001L), ("p5", 123_456L) })
        {
            await _fiscal.AssessAsync(canton, person, 2026, tax);
        }

        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "p1", false, ("arts", 10000)));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "p2", false, ("sea", 5000), ("faith", 5000)));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "p3", false, ("arts", 2000), ("sea", 8000)));
    }

    [Fact]
    public async Task Proportional_redistribution_follows_Italys_rule_and_skips_an_organization_that_declines()
    {
        await FiveTaxpayersAsync("it-proportional", "proportional");

        var budget = await _fiscal.BudgetAsync("it-proportional", 2026);

        // Weights = Σ shareBp of organizations that accept: arts 10,000 + 2,000 = 12,000; sea 5,000 + 8,000 = 13,000;
        // faith declines. 8,234 × 12,000/25,000 = 3,952.32 → 3,952; × 13,000/25,000 = 4,281.68 → 4,281; the unit left
        // goes to the larger remainder (.68): sea 4,282.
        Assert.Equal(2_623_457, budget.RevenueMinor);
        Assert.Equal(26_234, budget.DesignablePoolMinor);
        Assert.Equal(
            [new BudgetLine("arts", 10_600 + 3_952, 3_952, 2), new BudgetLine("faith", 2_500, 0, 1), new BudgetLine("sea", 4_900 + 4_282, 4_282, 2)],
            budget.Designations);
        Assert.Equal(8_234, budget.UnallocatedMinor);
        Assert.Equal(8_234, budget.RedistributedMinor);
        Assert.Equal(0, budget.RetainedMinor);
        Assert.Equal(26_234, budget.DesignatedMinor);
        Assert.Equal(2_623_457 - 26_234, budget.NetBudgetMinor);
    }

    [Fact]
    public async Task Retain_keeps_the_unallocated_amount_in_the_canton()
    {
        await FiveTaxpayersAsync("it-retain", "retain");

        var budget = await _fiscal.BudgetAsync("it-retain", 2026);

        Assert.Equal([new BudgetLine("arts", 10_600, 0, 2), new BudgetLine("faith", 2_500, 0, 1), new BudgetLine("sea", 4_900, 0, 2)], budget.Designations);
        Assert.Equal(8_234, budget.RetainedMinor);
        Assert.Equal(0, budget.RedistributedMinor);
        Assert.Equal(18_000, budget.DesignatedMinor);
        Assert.Equal(2_623_457 - 18_000, budget.NetBudgetMinor);
    }

    [Fact]
    public async Task Nothing_is_redistributed_when_nobody_chose()
    {
        await _fiscal.CantonAsync("nobody-chose");
        await _fiscal.PolicyAsync("nobody-chose", 2026, rateBp: 70, unallocated: "proportional");
        await _fiscal.AssessAsync("nobody-chose", "q1", 2026, 100_000);
        await _fiscal.AssessAsync("nobody-chose", "q2", 2026, 50_000);

        var budget = await _fiscal.BudgetAsync("nobody-chose", 2026);

        Assert.Empty(budget.Designations);
        Assert.Equal(1_050, budget.UnallocatedMinor);
        Assert.Equal(1_050, budget.RetainedMinor);
        Assert.Equal(0, budget.RedistributedMinor);
        Assert.Equal(150_000, budget.NetBudgetMinor);
    }

    [Fact]
    public async Task A_suspended_organization_receives_nothing_for_an_open_year_and_its_shares_count_as_unallocated()
    {
        await _fiscal.CantonAsync("suspensions");
        await _fiscal.OrganizationAsync("sus-a");
        await _fiscal.OrganizationAsync("sus-b");
        await _fiscal.PolicyAsync("suspensions", 2026, rateBp: 100);
        await _fiscal.AssessAsync("suspensions", "r1", 2026, 100_000);
        await Fiscal.Ok(_fiscal.DesignateAsync("suspensions", 2026, "r1", false, ("sus-a", 5000), ("sus-b", 5000)));
        Assert.Equal(500, (await _fiscal.BudgetAsync("suspensions", 2026)).AmountOf("sus-b"));

        await Fiscal.Ok(_fiscal.Admin.PostAsync("/api/v1/organizations/sus-b/suspension", null));
        var suspended = await _fiscal.BudgetAsync("suspensions", 2026);
        await Fiscal.Ok(_fiscal.Admin.PostAsync("/api/v1/organizations/sus-b/reinstatement", null));
        var reinstated = await _fiscal.BudgetAsync("suspensions", 2026);

        Assert.Equal([new BudgetLine("sus-a", 500, 0, 1)], suspended.Designations);
        Assert.Equal(500, suspended.UnallocatedMinor);
        Assert.Equal(500, suspended.RetainedMinor);
        Assert.Equal(500, reinstated.AmountOf("sus-b"));
    }

    [Fact]
    public async Task Receipts_are_per_canton_and_currency_and_amounts_of_different_currencies_are_never_added()
    {
        await _fiscal.CantonAsync("cur-chf", "CHF");
        await _fiscal.CantonAsync("cur-eur", "EUR");
        await _fiscal.OrganizationAsync("cur-commons");
        foreach (var (canton, tax) in new[] { ("cur-chf", 100_000L), ("cur-eur", 300_000L) })
        {
            await _fiscal.PolicyAsync(canton, 2026, rateBp: 100);
            await _fiscal.AssessAsync(canton, "s1", 2026, tax);
            await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "s1", false, ("cur-commons", 10000)));
        }

        await api.ProjectedAsync("budgets");
        var receipts = await api.ClientAs(Infrastructure.Roles.Organization, "cur-commons")
            .GetFromJsonAsync<System.Text.Json.JsonElement>("/api/v1/organizations/cur-commons/receipts/2026");

        var lines = receipts.GetProperty("receipts").EnumerateArray()
            .Select(r => (r.GetProperty("cantonId").GetString(), r.GetProperty("currency").GetString(), r.GetProperty("amountMinor").GetInt64(), r.GetProperty("taxpayers").GetInt64()))
            .ToList();
        Assert.Equal([("cur-chf", "CHF", 1_000L, 1L), ("cur-eur", "EUR", 3_000L, 1L)], lines);
        var totals = receipts.GetProperty("totals").EnumerateArray()
            .Select(t => (t.GetProperty("currency").GetString(), t.GetProperty("amountMinor").GetInt64())).ToList();
        Assert.Equal([("CHF", 1_000L), ("EUR", 3_000L)], totals);
        Assert.DoesNotContain("s1", receipts.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Receipts_are_for_the_organization_itself_the_admin_and_auditors_only()
    {
        await _fiscal.OrganizationAsync("rcpt");
        await api.ProjectedAsync("budgets");
        const string path = "/api/v1/organizations/rcpt/receipts/2026";

        Assert.Equal(HttpStatusCode.OK, (await api.ClientAs(Infrastructure.Roles.Organization, "rcpt").GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _fiscal.Admin.GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await api.ClientAs(Infrastructure.Roles.Auditor, "audit").GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await api.ClientAs(Infrastructure.Roles.Organization, "other-org").GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _fiscal.Person("someone").GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _fiscal.Admin.GetAsync("/api/v1/organizations/never-heard/receipts/2026")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _fiscal.Admin.GetAsync("/api/v1/organizations/rcpt/receipts/1999")).StatusCode);
    }
}
