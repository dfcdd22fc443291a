using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.Playwright;

namespace Confederal.Api.Tests.Browser;

/// <summary>The people's pages in Debian's Chromium, against the API on a real port: what a person sees and does there
/// is what the REST API reports, to the minor unit. Every page is checked by axe-core and photographed.</summary>
[Collection(BrowserSite.Collection)]
public sealed class PeoplePagesTests(BrowserSite site)
{
    private readonly Fiscal _fiscal = new(site.Api);
    private readonly Democracy _democracy = new(site.Api);
    private readonly PageScenes _scenes = new(site);

    private int Year => site.Api.Clock.GetUtcNow().Year;

    [Fact]
    public async Task A_three_way_split_is_saved_with_exactly_the_amounts_the_page_showed()
    {
        var (canton, person) = ("split-" + PageScenes.Suffix(), "split-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromDays(30));
        await _fiscal.AssessAsync(canton, person, Year, 1_234_567); // designable: floor(1,234,567 × 70 / 10,000) = 8,641
        await using var context = await site.NewContextAsync();
        var page = await SignInAsync(context, person, $"/me/designations?canton={canton}&year={Year}");

        Assert.Equal("8641", await page.Locator("#designable").GetAttributeAsync("data-minor"));
        await ChooseAsync(page, 0, $"{canton}-oceans", "33.33");
        await ChooseAsync(page, 1, $"{canton}-linux", "33,33");
        await ChooseAsync(page, 2, $"{canton}-culture", "33.34");
        await page.GetByRole(AriaRole.Button, new() { Name = "Show the amounts" }).ClickAsync();
        var shown = await AmountsAsync(page, "#preview");
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("designations-preview");

        // Largest remainder: 2,880.05 and 2,880.05 and 2,880.91 floor to 2,880 each; the unit left goes to the last.
        Assert.Equal(new Dictionary<string, long> { [$"{canton}-culture"] = 2881, [$"{canton}-linux"] = 2880, [$"{canton}-oceans"] = 2880 }, shown);
        Assert.Contains("CHF 28.81", await page.Locator("#preview").InnerTextAsync(), StringComparison.Ordinal); // English as written in Switzerland: en-CH

        await page.GetByRole(AriaRole.Button, new() { Name = "Save my choice" }).ClickAsync();
        await Assertions.Expect(page.Locator("#done")).ToContainTextAsync("saved");
        var saved = await _fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/{Year}/designations/{person}");
        Assert.Equal(shown, saved.GetProperty("choices").EnumerateArray()
            .ToDictionary(c => c.GetProperty("organizationId").GetString()!, c => c.GetProperty("amountMinor").GetInt64()));
        Assert.Equal(shown, await AmountsAsync(page, "#current"));
        await page.ScreenshotAsync("designations-saved");
    }

    [Fact]
    public async Task Shares_that_do_not_add_up_to_100_percent_are_refused_on_the_page_and_nothing_is_recorded()
    {
        var (canton, person) = ("sum-" + PageScenes.Suffix(), "sum-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromDays(30));
        await _fiscal.AssessAsync(canton, person, Year, 500_000);
        await using var context = await site.NewContextAsync();
        var page = await SignInAsync(context, person, $"/me/designations?canton={canton}&year={Year}");
        var before = await site.Api.CountEventsAsync();

        await ChooseAsync(page, 0, $"{canton}-oceans", "60");
        await ChooseAsync(page, 1, $"{canton}-linux", "30");
        await page.GetByRole(AriaRole.Button, new() { Name = "Save my choice" }).ClickAsync();

        await Assertions.Expect(page.Locator("#problems")).ToContainTextAsync("The shares must add up to exactly 100 %, not 90");
        Assert.Equal(before, await site.Api.CountEventsAsync());
        await page.AssertAccessibleAsync();
    }

    [Fact]
    public async Task Past_the_deadline_the_choice_is_shown_read_only_with_the_reason_and_cannot_change()
    {
        var (canton, person) = ("late-" + PageScenes.Suffix(), "late-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromHours(1));
        await _fiscal.AssessAsync(canton, person, Year, 1_000_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, Year, person, false, ($"{canton}-linux", 10_000)));
        await using var context = await site.NewContextAsync();
        var page = await SignInAsync(context, person, $"/me/designations?canton={canton}&year={Year}");
        await ChooseAsync(page, 0, $"{canton}-oceans", "100");

        site.Api.Clock.Advance(TimeSpan.FromHours(2)); // the deadline passes while the form is open
        var before = await site.Api.CountEventsAsync();
        await page.GetByRole(AriaRole.Button, new() { Name = "Save my choice" }).ClickAsync();
        await Assertions.Expect(page.Locator("#problems")).ToContainTextAsync("can no longer change");
        Assert.Equal(before, await site.Api.CountEventsAsync());

        await page.GotoAsync($"/me/designations?canton={canton}&year={Year}");
        await Assertions.Expect(page.Locator("#locked")).ToContainTextAsync("the deadline for");
        Assert.Equal(0, await page.Locator("form[method=post] button#save, button#withdraw").CountAsync());
        Assert.Equal(new Dictionary<string, long> { [$"{canton}-linux"] = 7_000 }, await AmountsAsync(page, "#current"));
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("designations-after-deadline");
    }

    [Fact]
    public async Task A_person_votes_without_a_mouse_and_finds_the_receipt_among_the_counted_ballots()
    {
        var (canton, person) = ("vote-" + PageScenes.Suffix(), "vote-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromDays(30));
        Assert.Equal(HttpStatusCode.Created, (await _democracy.ResideAsync(canton, person, _democracy.Today.AddYears(-3))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await _democracy.ResideAsync(canton, person + "-other", _democracy.Today.AddYears(-3))).StatusCode);
        await _scenes.ProjectedAsync();
        var ballot = await _democracy.BallotAsync(canton, options: ["tram", "bus"]);
        await _democracy.ReceiptAsync(canton, ballot, person + "-other", "bus");
        await _scenes.ProjectedAsync();

        await using var context = await site.NewContextAsync();
        var page = await SignInAsync(context, person, $"/me/ballots?canton={canton}");
        await Assertions.Expect(page.Locator($"[data-ballot='{ballot}'] .eligibility")).ToContainTextAsync("You are on the roll");
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("ballots-open");

        // Keyboard only: Tab to the option, Space to choose it, Tab to the button, Enter.
        await TabToAsync(page, "input[type=radio][value=tram]");
        await page.Keyboard.PressAsync("Space");
        await TabToAsync(page, $"[data-ballot='{ballot}'] button[type=submit]");
        await page.Keyboard.PressAsync("Enter");
        var receipt = (await page.Locator("#receipt").InnerTextAsync()).Trim();
        Assert.Matches("^[a-z2-7]{24}$", receipt);
        await Assertions.Expect(page.Locator($"[data-ballot='{ballot}'] .participation")).ToBeVisibleAsync();
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("ballots-voted");

        site.Api.Clock.Advance(TimeSpan.FromHours(2));
        await Fiscal.Ok(_fiscal.Municipality(canton).PostAsync($"/api/v1/cantons/{canton}/ballots/{ballot}/close", null));
        await page.GotoAsync($"/cantons/{canton}/ballots/{ballot}");
        await page.GetByLabel("My receipt").FillAsync(receipt);
        await page.GetByRole(AriaRole.Button, new() { Name = "Check" }).ClickAsync();
        await Assertions.Expect(page.Locator("#check-result")).ToContainTextAsync("Counted");
        Assert.Equal("tram", await page.Locator("#counted-option").InnerTextAsync());
        Assert.Equal("1", await page.Locator("[data-option=tram] [data-count]").GetAttributeAsync("data-count"));
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("ballot-results");

        await page.GetByLabel("My receipt").FillAsync(receipt[..^1] + (receipt[^1] == 'a' ? 'b' : 'a'));
        await page.GetByRole(AriaRole.Button, new() { Name = "Check" }).ClickAsync();
        await Assertions.Expect(page.Locator("#check-result")).ToContainTextAsync("No counted ballot");
    }

    [Fact]
    public async Task The_budget_page_shows_the_figures_the_api_serves()
    {
        var (canton, partner, pact) = ("bud-" + PageScenes.Suffix(), "bud-" + PageScenes.Suffix(), "pact-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromDays(30), unallocated: "proportional");
        await _fiscal.CantonAsync(partner, "CHF");
        await _fiscal.PolicyAsync(partner, Year, 100);
        await _fiscal.PactAsync(pact, "CHF", "equal");
        await _fiscal.JoinAsync(pact, canton, 250, Year);
        await _fiscal.JoinAsync(pact, partner, 500, Year);
        foreach (var (person, tax) in new[] { ("a", 1_234_567L), ("b", 987_654L), ("c", 55_555L), ("d", 3_000_001L) })
        {
            await _fiscal.AssessAsync(canton, $"{canton}-{person}", Year, tax);
        }

        await _fiscal.AssessAsync(partner, $"{partner}-e", Year, 2_000_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, Year, $"{canton}-a", false, ($"{canton}-linux", 5_000), ($"{canton}-oceans", 5_000)));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, Year, $"{canton}-b", false, ($"{canton}-culture", 10_000)));
        await _scenes.ProjectedAsync();
        var api = await site.Api.CreateClient().GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/budgets/{Year}");

        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync($"/cantons/{canton}/budgets/{Year}");

        var expected = new Dictionary<string, long>
        {
            ["revenue"] = api.GetProperty("revenueMinor").GetInt64(),
            ["pool"] = api.GetProperty("designablePoolMinor").GetInt64(),
            ["designated"] = api.GetProperty("designatedMinor").GetInt64(),
            ["redistributed"] = api.GetProperty("redistributedMinor").GetInt64(),
            ["retained"] = api.GetProperty("retainedMinor").GetInt64(),
            ["net"] = api.GetProperty("netBudgetMinor").GetInt64(),
        };
        foreach (var d in api.GetProperty("designations").EnumerateArray())
        {
            expected["organization:" + d.GetProperty("organizationId").GetString()] = d.GetProperty("amountMinor").GetInt64();
        }

        foreach (var (kind, member) in new[] { ("contribution", "contributions"), ("receipt", "receipts") })
        {
            foreach (var line in api.GetProperty(member).EnumerateArray())
            {
                expected[$"{kind}:{line.GetProperty("pactId").GetString()}"] = line.GetProperty("amountMinor").GetInt64();
            }
        }

        var shown = await page.Locator("[data-figure][data-minor]").EvaluateAllAsync<Dictionary<string, long>>(
            "cells => Object.fromEntries(cells.map(c => [c.dataset.figure, Number(c.dataset.minor)]))");
        Assert.Equal(expected.OrderBy(e => e.Key, StringComparer.Ordinal), shown.OrderBy(e => e.Key, StringComparer.Ordinal));
        Assert.Contains($"{canton}-linux", string.Join(",", expected.Keys), StringComparison.Ordinal);
        Assert.True(expected[$"contribution:{pact}"] > 0 && expected[$"receipt:{pact}"] > 0);
        Assert.Equal(api.GetProperty("position").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
            await page.Locator("[data-testid=position]").InnerTextAsync());
        Assert.Equal(expected["net"], expected["revenue"] - expected["designated"] - expected[$"contribution:{pact}"] + expected[$"receipt:{pact}"]);
        Assert.Equal(2, await page.Locator("svg.chart[role=img]").CountAsync());
        Assert.Contains("CHF", await page.Locator("[data-figure=revenue]").InnerTextAsync(), StringComparison.Ordinal);
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("budget");
    }

    [Fact]
    public async Task Signing_in_keeps_the_token_out_of_every_url_and_out_of_reach_of_scripts()
    {
        var person = "signin-" + PageScenes.Suffix();
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        var urls = new List<string>();
        page.Request += (_, request) => urls.Add(request.Url);

        await page.GotoAsync("/me/designations");
        Assert.EndsWith("/sign-in?returnUrl=%2Fme%2Fdesignations", page.Url, StringComparison.Ordinal);
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("sign-in");
        await page.GetByLabel("or another person id").FillAsync(person);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in as this person" }).ClickAsync();

        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(person);
        Assert.EndsWith("/me/designations", page.Url, StringComparison.Ordinal);
        var session = (await context.CookiesAsync()).Single(c => c.Name == PageSession.Cookie);
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);
        Assert.DoesNotContain(PageSession.Cookie, await page.EvaluateAsync<string>("() => document.cookie"), StringComparison.Ordinal);
        Assert.DoesNotContain(urls, u => u.Contains(session.Value, StringComparison.Ordinal) || u.Contains("eyJ", StringComparison.Ordinal));

        // The REST API does not take the page's cookie: a session cannot be used to call it from elsewhere.
        using var handler = new HttpClientHandler { UseCookies = false };
        using var client = new HttpClient(handler) { BaseAddress = site.Address };
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/cantons/x/fiscal-years/{Year}/designations/{person}");
        request.Headers.Add("Cookie", $"{PageSession.Cookie}={session.Value}");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(request)).StatusCode);

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = "Sign in" })).ToBeVisibleAsync();
        Assert.DoesNotContain(await context.CookiesAsync(), c => c.Name == PageSession.Cookie);
    }

    [Fact]
    public async Task Organizations_are_found_by_name_and_kind_and_a_withdrawal_leaves_no_choice()
    {
        var (canton, person) = ("find-" + PageScenes.Suffix(), "find-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromDays(30));
        await _fiscal.AssessAsync(canton, person, Year, 400_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, Year, person, true, ($"{canton}-oceans", 10_000)));
        await using var context = await site.NewContextAsync();
        var page = await SignInAsync(context, person, $"/me/designations?canton={canton}&year={Year}");
        Assert.Equal("Standing: it carries over to later years until you change or withdraw it.", (await page.Locator("#current + p").InnerTextAsync()).Trim());

        await page.GetByLabel("Kind").SelectOptionAsync("cultural");
        await page.GetByLabel("Name contains").FillAsync(canton);
        await page.GetByRole(AriaRole.Button, new() { Name = "Filter the lists" }).ClickAsync();
        var offered = await page.Locator("#org-1 option").AllInnerTextsAsync();
        Assert.Equal(["— none —", $"{canton}-culture (Cultural)"], offered);
        // The row holding a choice keeps it even when the filter hides it.
        Assert.Equal($"{canton}-oceans", await page.Locator("#org-0").InputValueAsync());

        await page.GetByRole(AriaRole.Button, new() { Name = "Withdraw my designation" }).ClickAsync();
        await Assertions.Expect(page.Locator("#done")).ToContainTextAsync("withdrawn");
        await Assertions.Expect(page.Locator("#no-choice")).ToBeVisibleAsync();
        var saved = await _fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/{Year}/designations/{person}");
        Assert.Equal(0, saved.GetProperty("choices").GetArrayLength());
        await page.AssertAccessibleAsync();
    }

    [Fact]
    public async Task A_pasted_token_signs_in_a_person_and_no_one_else()
    {
        var person = "paste-" + PageScenes.Suffix();
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync("/sign-in");

        foreach (var refused in new[]
                 {
                     DevTokens.Issue(site.Api.SigningKey, Roles.Municipality, canton: "ge"),
                     DevTokens.Issue(new Microsoft.IdentityModel.Tokens.SymmetricSecurityKey(new byte[32]), Roles.Person, person),
                     "not a token",
                 })
        {
            await page.GetByLabel("Bearer token from the confederation's identity provider").FillAsync(refused);
            await page.GetByRole(AriaRole.Button, new() { Name = "Sign in with this token" }).ClickAsync();
            await Assertions.Expect(page.Locator("#sign-in-refusal")).ToBeVisibleAsync();
            Assert.DoesNotContain(await context.CookiesAsync(), c => c.Name == PageSession.Cookie);
        }

        await page.GetByLabel("Bearer token from the confederation's identity provider").FillAsync(DevTokens.Issue(site.Api.SigningKey, Roles.Person, person));
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in with this token" }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(person);
    }

    [Fact]
    public async Task The_home_page_lists_the_cantons_and_passes_the_accessibility_check()
    {
        var canton = "home-" + PageScenes.Suffix();
        await _scenes.GenevaLikeCantonAsync(canton, deadlineIn: TimeSpan.FromDays(30));
        await _scenes.ProjectedAsync();
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync("/");
        await Assertions.Expect(page.GetByRole(AriaRole.Link, new() { Name = $"Budget {Year} of Canton {canton}" })).ToBeVisibleAsync();
        await page.AssertAccessibleAsync();
        await page.ScreenshotAsync("home");
    }

    private async Task<IPage> SignInAsync(IBrowserContext context, string person, string then)
    {
        await _scenes.ProjectedAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync(then);
        await page.GetByLabel("or another person id").FillAsync(person);
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign in as this person" }).ClickAsync();
        await Assertions.Expect(page.GetByTestId("signed-in-as")).ToHaveTextAsync(person);
        return page;
    }

    private static async Task ChooseAsync(IPage page, int row, string organization, string share)
    {
        await page.GetByLabel($"Organization {row + 1}", new() { Exact = true }).SelectOptionAsync(organization);
        await page.GetByLabel($"Share of organization {row + 1}, in %").FillAsync(share);
    }

    private static async Task<Dictionary<string, long>> AmountsAsync(IPage page, string table) =>
        await page.Locator($"{table} tbody tr").EvaluateAllAsync<Dictionary<string, long>>(
            "rows => Object.fromEntries(rows.map(r => [r.dataset.organization, Number(r.querySelector('[data-minor]').dataset.minor)]))");

    private static async Task TabToAsync(IPage page, string selector)
    {
        for (var i = 0; i < 100; i++)
        {
            if (await page.EvaluateAsync<bool>("s => document.activeElement === document.querySelector(s)", selector))
            {
                return;
            }

            await page.Keyboard.PressAsync("Tab");
        }

        Assert.Fail($"Tab never reached {selector}.");
    }
}
