using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>The designation rules of DESIGN.md, over HTTP. Each test uses its own canton.</summary>
public sealed class DesignationTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    private async Task<string> CantonWithPolicyAsync(string canton, int maxOrganizations = 3, object? eligible = null, DateTimeOffset? deadline = null)
    {
        await _fiscal.CantonAsync(canton);
        foreach (var organization in new[] { "linux", "oceans", "choir", "diaspora" })
        {
            await _fiscal.OrganizationAsync(organization);
        }

        await _fiscal.PolicyAsync(canton, 2026, rateBp: 70, maxOrganizations: maxOrganizations, eligible: eligible, deadline: deadline);
        return canton;
    }

    [Fact]
    public async Task A_person_designates_and_reads_back_the_amounts_split_exactly()
    {
        var canton = await CantonWithPolicyAsync("d-read");
        await _fiscal.AssessAsync(canton, "ana", 2026, 1_000_001); // designable floor(7,000.007) = 7,000

        var response = await _fiscal.DesignateAsync(canton, 2026, "ana", false, ("oceans", 3333), ("linux", 3333), ("choir", 3334));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        await api.ProjectedAsync("budgets");
        var view = await _fiscal.Person("ana").GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/ana");

        Assert.Equal(1_000_001, view.GetProperty("assessedTaxMinor").GetInt64());
        Assert.Equal(7_000, view.GetProperty("designableMinor").GetInt64());
        // 7000 × 3334/10000 = 2333.8; × 3333/10000 = 2333.1 (twice): floors 2333 + 2333 + 2333 = 6999, the one left
        // goes to the largest remainder (.8, choir). Choices come back in organizationId order.
        var choices = view.GetProperty("choices").EnumerateArray()
            .Select(c => (c.GetProperty("organizationId").GetString(), c.GetProperty("amountMinor").GetInt64())).ToList();
        Assert.Equal([("choir", 2334L), ("linux", 2333L), ("oceans", 2333L)], choices);
        Assert.True(view.GetProperty("open").GetBoolean());
        var budget = await _fiscal.BudgetAsync(canton, 2026);
        Assert.Equal(2334, budget.AmountOf("choir"));
        Assert.Equal(2333, budget.AmountOf("oceans"));
    }

    [Fact]
    public async Task Designation_after_the_deadline_is_rejected_and_the_choice_stays_locked()
    {
        var canton = await CantonWithPolicyAsync("d-deadline", deadline: api.Clock.GetUtcNow().AddHours(1));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "bo", false, ("linux", 10000)));
        var events = await api.CountEventsAsync();
        var clock = api.Clock;
        clock.Advance(TimeSpan.FromHours(2));
        try
        {
            await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "bo", false, ("oceans", 10000)), HttpStatusCode.Conflict, "deadline-passed", events);
            await api.AssertRefusedAsync(await _fiscal.Person("bo").DeleteAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/bo"),
                HttpStatusCode.Conflict, "deadline-passed", events);
            await api.AssertRefusedAsync(await _fiscal.Municipality(canton).PutAsJsonAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/policy",
                new { designationRateBp = 100, unallocatedPolicy = "retain", deadline = clock.GetUtcNow().AddDays(1) }), HttpStatusCode.Conflict, "fiscal-year-closed", events);
            var view = await _fiscal.Person("bo").GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/bo");
            Assert.False(view.GetProperty("open").GetBoolean());
            Assert.Equal("linux", view.GetProperty("choices")[0].GetProperty("organizationId").GetString());
        }
        finally
        {
            clock.Advance(TimeSpan.FromHours(-2));
        }
    }

    [Fact]
    public async Task Suspended_unknown_and_ineligible_organizations_cannot_be_chosen()
    {
        var canton = await CantonWithPolicyAsync("d-orgs", eligible: new[] { "linux", "oceans", "choir" });
        await _fiscal.OrganizationAsync("d-orgs-suspended");
        await Fiscal.Ok(_fiscal.Admin.PostAsync("/api/v1/organizations/d-orgs-suspended/suspension", null));
        var events = await api.CountEventsAsync();

        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "cy", false, ("nobody-knows", 10000)), HttpStatusCode.Conflict, "organization-unknown", events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "cy", false, ("diaspora", 10000)), HttpStatusCode.Conflict, "organization-not-eligible", events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "cy", false, ("linux", 5000), ("d-orgs-suspended", 5000)),
            HttpStatusCode.Conflict, "organization-suspended", events);
    }

    [Fact]
    public async Task Shares_must_sum_to_10000_over_distinct_organizations_within_the_cantons_maximum()
    {
        var canton = await CantonWithPolicyAsync("d-shares", maxOrganizations: 2);
        var events = await api.CountEventsAsync();

        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "di", false, ("linux", 5000), ("oceans", 4999)), HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "di", false, ("linux", 5000), ("linux", 5000)), HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "di", false, ("linux", 0), ("oceans", 10000)), HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "di", false), HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2026, "di", false, ("linux", 4000), ("oceans", 3000), ("choir", 3000)),
            HttpStatusCode.Conflict, "too-many-choices", events);
        await api.AssertRefusedAsync(await _fiscal.DesignateAsync(canton, 2031, "di", false, ("linux", 10000)), HttpStatusCode.Conflict, "no-fiscal-policy", events);
    }

    [Fact]
    public async Task A_retried_designation_records_nothing_and_a_withdrawal_of_nothing_records_nothing()
    {
        var canton = await CantonWithPolicyAsync("d-retry");
        Assert.Equal(HttpStatusCode.Created, (await _fiscal.DesignateAsync(canton, 2026, "ed", true, ("linux", 10000))).StatusCode);
        var events = await api.CountEventsAsync();

        Assert.Equal(HttpStatusCode.OK, (await _fiscal.DesignateAsync(canton, 2026, "ed", true, ("linux", 10000))).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await _fiscal.Person("ed").DeleteAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/ed")).StatusCode);
        Assert.Equal(events + 1, await api.CountEventsAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await _fiscal.Person("ed").DeleteAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/ed")).StatusCode);
        Assert.Equal(events + 1, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_person_cannot_read_or_change_another_persons_designation()
    {
        var canton = await CantonWithPolicyAsync("d-private");
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "fa", false, ("choir", 10000)));
        var events = await api.CountEventsAsync();
        var path = $"/api/v1/cantons/{canton}/fiscal-years/2026/designations/fa";
        var body = new { choices = new[] { new { organizationId = "linux", shareBp = 10000 } }, standing = false };

        foreach (var intruder in new[]
                 {
                     _fiscal.Person("gus"), _fiscal.Admin, _fiscal.Municipality(canton), api.ClientAs(Roles.Auditor, "audit"),
                     api.ClientAs(Roles.Organization, "choir"),
                 })
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await intruder.GetAsync(path)).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await intruder.PutAsJsonAsync(path, body)).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await intruder.DeleteAsync(path)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().GetAsync(path)).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
        // The public budget shows totals only: no person, no choice of anyone.
        await _fiscal.AssessAsync(canton, "fa", 2026, 100_000);
        await api.ProjectedAsync("budgets");
        var budget = await api.CreateClient().GetStringAsync($"/api/v1/cantons/{canton}/budgets/2026");
        Assert.DoesNotContain("\"fa\"", budget, StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_log_line_names_the_person_who_designates()
    {
        var canton = await CantonWithPolicyAsync("d-logs");
        await _fiscal.AssessAsync(canton, "zz-secret-person", 2026, 100_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "zz-secret-person", false, ("diaspora", 10000)));
        await Fiscal.Ok(_fiscal.Person("zz-secret-person").GetAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/zz-secret-person"));
        await api.ProjectedAsync("budgets");

        Assert.DoesNotContain(api.Logs.Lines, line => line.Contains("zz-secret-person", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_designation_in_an_unknown_canton_is_404()
    {
        var events = await api.CountEventsAsync();

        await api.AssertRefusedAsync(await _fiscal.DesignateAsync("d-nowhere", 2026, "kim", false, ("linux", 10000)), HttpStatusCode.NotFound, null, events);
    }

    [Fact]
    public async Task Standing_designations_carry_to_later_years_until_changed_or_withdrawn()
    {
        var canton = await CantonWithPolicyAsync("d-standing");
        await _fiscal.PolicyAsync(canton, 2027, rateBp: 100);
        await _fiscal.PolicyAsync(canton, 2028, rateBp: 100);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "hu", true, ("oceans", 10000)));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "ida", false, ("oceans", 10000)));
        foreach (var year in new[] { 2026, 2027, 2028 })
        {
            await _fiscal.AssessAsync(canton, "hu", year, 100_000);
            await _fiscal.AssessAsync(canton, "ida", year, 100_000);
        }

        // 2027: hu's standing choice carries (1,000 to oceans); ida's plain one does not (1,000 retained).
        var carried = await _fiscal.BudgetAsync(canton, 2027);
        Assert.Equal(1_000, carried.AmountOf("oceans"));
        Assert.Equal(1_000, carried.RetainedMinor);
        var view = await _fiscal.Person("hu").GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/2027/designations/hu");
        Assert.Equal(2026, view.GetProperty("carriedFromYear").GetInt32());

        // Withdrawn for 2027: nothing carries into 2027 or 2028 any more; 2026 keeps its choice.
        Assert.Equal(HttpStatusCode.NoContent, (await _fiscal.Person("hu").DeleteAsync($"/api/v1/cantons/{canton}/fiscal-years/2027/designations/hu")).StatusCode);
        Assert.Equal(0, (await _fiscal.BudgetAsync(canton, 2027)).AmountOf("oceans"));
        Assert.Equal(0, (await _fiscal.BudgetAsync(canton, 2028)).AmountOf("oceans"));
        Assert.Equal(1_400, (await _fiscal.BudgetAsync(canton, 2026)).AmountOf("oceans"));
    }

    [Fact]
    public async Task A_correction_after_a_designation_moves_the_amounts()
    {
        var canton = await CantonWithPolicyAsync("d-correction");
        await _fiscal.AssessAsync(canton, "jo", 2026, 100_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "jo", false, ("linux", 10000)));
        Assert.Equal(700, (await _fiscal.BudgetAsync(canton, 2026)).AmountOf("linux"));

        await _fiscal.AssessAsync(canton, "jo", 2026, 250_000);

        var budget = await _fiscal.BudgetAsync(canton, 2026);
        Assert.Equal(250_000, budget.RevenueMinor);
        Assert.Equal(1, budget.Taxpayers);
        Assert.Equal(1_750, budget.AmountOf("linux"));
    }
}
