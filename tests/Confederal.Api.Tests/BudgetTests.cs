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
