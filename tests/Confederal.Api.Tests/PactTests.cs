using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>Pacts in the budgets: what each member puts in and gets back, to the minor unit, in what the API serves.</summary>
public sealed class PactBudgetTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    // Three CHF cantons at 1 % in 2026, retained:
    //   {p}-ge: alice 1,000,000 → 10,000 designated to Linux; revenue − designated = 990,000
    //   {p}-vd: bob 500,001 → 5,000 designable, no choice, retained; revenue − designated = 500,001
    //   {p}-ti: no budget
    // They join the pact at 10 %, 3.34 % and 5 % from 2026: ge floor(99,000) = 99,000; vd floor(16,700.0334) = 16,700;
    // ti 0. Pool 115,700.
    private async Task ThreeCantonsAsync(string prefix, string distribution)
    {
        var (ge, vd, ti) = ($"{prefix}-ge", $"{prefix}-vd", $"{prefix}-ti");
        await _fiscal.CantonAsync(ge);
        await _fiscal.CantonAsync(vd);
        await _fiscal.CantonAsync(ti);
        await _fiscal.OrganizationAsync($"{prefix}-linux");
        await _fiscal.PolicyAsync(ge, 2026, rateBp: 100);
        await _fiscal.PolicyAsync(vd, 2026, rateBp: 100);
        await _fiscal.AssessAsync(ge, "alice", 2026, 1_000_000);
        await _fiscal.AssessAsync(vd, "bob", 2026, 500_001);
        await Fiscal.Ok(_fiscal.DesignateAsync(ge, 2026, "alice", false, ($"{prefix}-linux", 10000)));
        await _fiscal.PactAsync($"{prefix}-alps", "CHF", distribution);
        await _fiscal.JoinAsync($"{prefix}-alps", ge, 1_000, 2026);
        await _fiscal.JoinAsync($"{prefix}-alps", vd, 334, 2026);
        await _fiscal.JoinAsync($"{prefix}-alps", ti, 500, 2026);
    }

    private async Task<(Budget Ge, Budget Ti, Budget Vd)> BudgetsAsync(string prefix)
    {
        var budgets = (await _fiscal.BudgetAsync($"{prefix}-ge", 2026), await _fiscal.BudgetAsync($"{prefix}-ti", 2026), await _fiscal.BudgetAsync($"{prefix}-vd", 2026));
        foreach (var budget in new[] { budgets.Item1, budgets.Item2, budgets.Item3 })
        {
            Assert.True(budget.Balances, $"{budget.CantonId}: {budget}");
        }

        Assert.Equal(
            new[] { budgets.Item1, budgets.Item2, budgets.Item3 }.Sum(b => b.Contributions.Sum(c => c.AmountMinor)),
            new[] { budgets.Item1, budgets.Item2, budgets.Item3 }.Sum(b => b.Receipts.Sum(r => r.AmountMinor)));
        return budgets;
    }

    [Fact]
    public async Task Members_budgets_show_what_they_put_into_an_equal_pact_and_get_back_to_the_minor_unit()
    {
        await ThreeCantonsAsync("eq", "equal");

        var (ge, ti, vd) = await BudgetsAsync("eq");

        // 115,700 / 3 = 38,566 rest 2: one unit each to the first cantons in ordinal order, eq-ge and eq-ti.
        Assert.Equal([new PactLine("eq-alps", 99_000)], ge.Contributions);
        Assert.Equal([new PactLine("eq-alps", 38_567)], ge.Receipts);
        Assert.Equal(1_000_000 - 10_000 - 99_000 + 38_567, ge.NetBudgetMinor);
        Assert.Equal([new PactLine("eq-alps", 16_700)], vd.Contributions);
        Assert.Equal([new PactLine("eq-alps", 38_566)], vd.Receipts);
        Assert.Equal(500_001 - 16_700 + 38_566, vd.NetBudgetMinor);
        // A member without a budget contributes nothing and still receives.
        Assert.Equal(0, ti.RevenueMinor);
        Assert.Equal([new PactLine("eq-alps", 0)], ti.Contributions);
        Assert.Equal([new PactLine("eq-alps", 38_567)], ti.Receipts);
        Assert.Equal(38_567, ti.NetBudgetMinor);
    }

    [Fact]
    public async Task A_designation_in_one_member_changes_what_every_member_receives()
    {
        await ThreeCantonsAsync("des", "equal");
        await BudgetsAsync("des");

        // bob designates his 5,000: des-vd contributes floor(495,001 × 3.34 %) = floor(16,533.0334) = 16,533; the pool
        // is 99,000 + 16,533 = 115,533 = 3 × 38,511.
        await Fiscal.Ok(_fiscal.DesignateAsync("des-vd", 2026, "bob", false, ("des-linux", 10000)));
        var (ge, ti, vd) = await BudgetsAsync("des");

        Assert.Equal([new PactLine("des-alps", 38_511)], ge.Receipts);
        Assert.Equal(1_000_000 - 10_000 - 99_000 + 38_511, ge.NetBudgetMinor);
        Assert.Equal([new PactLine("des-alps", 38_511)], ti.Receipts);
        Assert.Equal(38_511, ti.NetBudgetMinor);
        Assert.Equal([new PactLine("des-alps", 16_533)], vd.Contributions);
        Assert.Equal(500_001 - 5_000 - 16_533 + 38_511, vd.NetBudgetMinor);
    }

    [Fact]
    public async Task A_per_resident_pact_splits_by_residents_on_1_January_and_follows_the_census()
    {
        await ThreeCantonsAsync("res", "per-resident");
        await _fiscal.ResidentAsync("r1", "res-ge", new DateOnly(2020, 3, 1));
        await _fiscal.ResidentAsync("r2", "res-ge", new DateOnly(2025, 12, 31));
        await _fiscal.ResidentAsync("r3", "res-ge", new DateOnly(2026, 1, 1)); // arrived that day: counts
        await _fiscal.ResidentAsync("r4", "res-ge", new DateOnly(2026, 1, 2)); // a day late
        await _fiscal.ResidentAsync("r5", "res-ge", new DateOnly(2019, 1, 1));
        await _fiscal.DepartAsync("r5", "res-ge", new DateOnly(2026, 1, 1)); // gone that day: not in res-ge…
        await _fiscal.ResidentAsync("r5", "res-vd", new DateOnly(2026, 1, 1)); // …but in res-vd
        await _fiscal.ResidentAsync("r6", "res-vd", new DateOnly(2021, 6, 1));
        await _fiscal.ResidentAsync("r7", "res-ti", new DateOnly(2024, 7, 1));

        var (ge, ti, vd) = await BudgetsAsync("res");

        var census = new Democracy(api);
        Assert.Equal(3, await census.CensusAsync("res-ge", new DateOnly(2026, 1, 1)));
        Assert.Equal(1, await census.CensusAsync("res-ti", new DateOnly(2026, 1, 1)));
        Assert.Equal(2, await census.CensusAsync("res-vd", new DateOnly(2026, 1, 1)));

        // Residents on 1 January 2026: res-ge 3, res-ti 1, res-vd 2. 115,700 × 3/6 = 57,850; 115,700 / 6 = 19,283 rest 2;
        // 115,700 × 2/6 = 38,566 rest 4: the unit left goes to res-vd.
        Assert.Equal([new PactLine("res-alps", 57_850)], ge.Receipts);
        Assert.Equal([new PactLine("res-alps", 19_283)], ti.Receipts);
        Assert.Equal([new PactLine("res-alps", 38_567)], vd.Receipts);

        // A resident of res-ti since November 2025, registered now: weights 3, 2, 2. 115,700 × 3/7 = 49,585 rest 5;
        // × 2/7 = 33,057 rest 1, twice: the unit left goes to res-ge.
        await _fiscal.ResidentAsync("r8", "res-ti", new DateOnly(2025, 11, 1));
        (ge, ti, vd) = await BudgetsAsync("res");

        Assert.Equal([new PactLine("res-alps", 49_586)], ge.Receipts);
        Assert.Equal([new PactLine("res-alps", 33_057)], ti.Receipts);
        Assert.Equal([new PactLine("res-alps", 33_057)], vd.Receipts);
        Assert.Equal(1_000_000 - 10_000 - 99_000 + 49_586, ge.NetBudgetMinor);
    }

    [Fact]
    public async Task A_canton_that_leaves_keeps_the_years_before_and_a_member_without_a_budget_loses_its_lines()
    {
        await ThreeCantonsAsync("left", "equal");
        await BudgetsAsync("left");

        await _fiscal.LeaveAsync("left-alps", "left-ti", 2026);
        await _fiscal.LeaveAsync("left-alps", "left-vd", 2027);
        var (ge, ti, vd) = await BudgetsAsync("left");

        // ge and vd in 2026: 115,700 / 2 = 57,850 each; ti, gone, is back to an empty budget.
        Assert.Equal([new PactLine("left-alps", 57_850)], ge.Receipts);
        Assert.Equal([new PactLine("left-alps", 57_850)], vd.Receipts);
        Assert.Empty(ti.Contributions);
        Assert.Empty(ti.Receipts);
        Assert.Equal(0, ti.NetBudgetMinor);
    }
}

/// <summary>Founding pacts (the confederation admin) and reading them (public).</summary>
public sealed class PactTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    private sealed record Membership(int FromFiscalYear, int? ContributionRateBp);

    private sealed record Member(string CantonId, Membership[] Timeline);

    private sealed record Pact(string PactId, string Name, string Currency, string Distribution, Member[] Members);

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    [Fact]
    public async Task The_admin_founds_and_renames_a_pact_retries_record_nothing_and_its_terms_are_fixed()
    {
        var admin = _fiscal.Admin;
        var created = await admin.PutAsync("/api/v1/pacts/rhine", Json("""{"name": "Rhine", "currency": "CHF", "distribution": "per-resident"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("/api/v1/pacts/rhine", created.Headers.Location?.OriginalString);
        var founded = (await created.Content.ReadFromJsonAsync<Pact>())!;
        Assert.Equal(("rhine", "Rhine", "CHF", "per-resident"), (founded.PactId, founded.Name, founded.Currency, founded.Distribution));
        Assert.Empty(founded.Members);
        var events = await api.CountEventsAsync();

        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/api/v1/pacts/rhine", Json("""{"name": "Rhine", "currency": "CHF", "distribution": "per-resident"}"""))).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
        var renamed = await admin.PutAsync("/api/v1/pacts/rhine", Json("""{"name": "Rhine basin", "currency": "CHF", "distribution": "per-resident"}"""));
        Assert.Equal(HttpStatusCode.OK, renamed.StatusCode);
        Assert.Equal("Rhine basin", (await renamed.Content.ReadFromJsonAsync<Pact>())!.Name);
        Assert.Equal(events + 1, await api.CountEventsAsync());

        foreach (var terms in new[] { """{"name": "Rhine", "currency": "EUR", "distribution": "per-resident"}""", """{"name": "Rhine", "currency": "CHF", "distribution": "equal"}""" })
        {
            var refused = await admin.PutAsync("/api/v1/pacts/rhine", Json(terms));
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Equal("pact-terms-fixed", await Fiscal.CodeAsync(refused));
        }

        Assert.Equal(events + 1, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_pact_is_public_with_each_members_timeline_and_an_unknown_one_is_404()
    {
        await _fiscal.CantonAsync("tl-ge");
        await _fiscal.CantonAsync("tl-vd");
        await _fiscal.PactAsync("tl-alps", "CHF", "equal");
        await _fiscal.JoinAsync("tl-alps", "tl-vd", 250, 2026);
        await _fiscal.JoinAsync("tl-alps", "tl-ge", 100, 2026);
        await _fiscal.JoinAsync("tl-alps", "tl-ge", 300, 2028);
        await _fiscal.LeaveAsync("tl-alps", "tl-vd", 2030);
        await _fiscal.JoinAsync("tl-alps", "tl-ge", 200, 2027); // decides 2027 and after: the 2028 rate goes
        await api.ProjectedAsync("budgets");

        var pact = await api.CreateClient().GetFromJsonAsync<Pact>("/api/v1/pacts/tl-alps");

        Assert.Equal("TL-ALPS", pact!.Name);
        Assert.Equal("equal", pact.Distribution);
        Assert.Equal(
            ["tl-ge from 2026 100 bp, from 2027 200 bp", "tl-vd from 2026 250 bp, from 2030 left"],
            pact.Members.Select(m => $"{m.CantonId} " + string.Join(", ", m.Timeline.Select(t => $"from {t.FromFiscalYear} {(t.ContributionRateBp is { } bp ? $"{bp} bp" : "left")}"))));
        var unknown = await api.CreateClient().GetAsync("/api/v1/pacts/tl-nowhere");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Only_the_admin_founds_pacts()
    {
        var body = """{"name": "Po", "currency": "EUR", "distribution": "equal"}""";
        var events = await api.CountEventsAsync();

        Assert.Equal(HttpStatusCode.Forbidden, (await _fiscal.Municipality("ge").PutAsync("/api/v1/pacts/po", Json(body))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await api.ClientAs(Roles.Auditor, "audit").PutAsync("/api/v1/pacts/po", Json(body))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().PutAsync("/api/v1/pacts/po", Json(body))).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    public static TheoryData<string, string, string> BadPacts => new()
    {
        { "uppercase pact id", "/api/v1/pacts/Alps", """{"name": "Alps", "currency": "CHF", "distribution": "equal"}""" },
        { "one-letter pact id", "/api/v1/pacts/a", """{"name": "Alps", "currency": "CHF", "distribution": "equal"}""" },
        { "pact id with a dot", "/api/v1/pacts/al.ps", """{"name": "Alps", "currency": "CHF", "distribution": "equal"}""" },
        { "missing name", "/api/v1/pacts/alps", """{"currency": "CHF", "distribution": "equal"}""" },
        { "blank name", "/api/v1/pacts/alps", """{"name": "", "currency": "CHF", "distribution": "equal"}""" },
        { "name with spaces around", "/api/v1/pacts/alps", """{"name": " Alps ", "currency": "CHF", "distribution": "equal"}""" },
        { "name too long", "/api/v1/pacts/alps", $$"""{"name": "{{new string('x', 201)}}", "currency": "CHF", "distribution": "equal"}""" },
        { "unknown currency", "/api/v1/pacts/alps", """{"name": "Alps", "currency": "XYZ", "distribution": "equal"}""" },
        { "lowercase currency", "/api/v1/pacts/alps", """{"name": "Alps", "currency": "chf", "distribution": "equal"}""" },
        { "missing currency", "/api/v1/pacts/alps", """{"name": "Alps", "distribution": "equal"}""" },
        { "unknown distribution", "/api/v1/pacts/alps", """{"name": "Alps", "currency": "CHF", "distribution": "by-size"}""" },
        { "distribution as a number", "/api/v1/pacts/alps", """{"name": "Alps", "currency": "CHF", "distribution": 0}""" },
        { "missing distribution", "/api/v1/pacts/alps", """{"name": "Alps", "currency": "CHF"}""" },
        { "unknown field", "/api/v1/pacts/alps", """{"name": "Alps", "currency": "CHF", "distribution": "equal", "members": []}""" },
        { "malformed JSON", "/api/v1/pacts/alps", """{"name": "Alps", "currency": """ },
        { "JSON null", "/api/v1/pacts/alps", "null" },
    };

    [Theory]
    [MemberData(nameof(BadPacts))]
    public async Task A_bad_pact_is_a_400_problem_and_records_nothing(string why, string path, string body)
    {
        var events = await api.CountEventsAsync();

        var response = await _fiscal.Admin.PutAsync(path, Json(body));

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{why}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(400, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(events, await api.CountEventsAsync());
    }
}
