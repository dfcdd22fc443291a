using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Confederal.Api.Infrastructure;
using Microsoft.Playwright;

namespace Confederal.Api.Tests.Browser;

/// <summary>The people's pages in Chromium in the canton's languages: each page in French, Italian and Japanese with no
/// English sentence of ours left, <c>lang</c> right and axe-core passing; the language menu; the fallbacks.</summary>
[Collection(BrowserSite.Collection)]
public sealed partial class LanguagePagesTests(BrowserSite site)
{
    private readonly Fiscal _fiscal = new(site.Api);
    private readonly Democracy _democracy = new(site.Api);
    private readonly PageScenes _scenes = new(site);

    private int Year => site.Api.Clock.GetUtcNow().Year;

    [Theory]
    [InlineData("fr", "fr-FR")]
    [InlineData("it", "it-IT")]
    [InlineData("ja", "ja-JP")]
    public async Task Every_page_speaks_the_language_the_browser_asks_for_and_stays_accessible(string language, string browserLocale)
    {
        var (canton, person) = ("lang-" + PageScenes.Suffix(), "lang-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(canton, TimeSpan.FromDays(30));
        await _fiscal.AssessAsync(canton, person, Year, 1_234_567);
        foreach (var resident in new[] { person, person + "-other" })
        {
            Assert.Equal(HttpStatusCode.Created, (await _democracy.ResideAsync(canton, resident, _democracy.Today.AddYears(-3))).StatusCode);
        }

        await _scenes.ProjectedAsync();
        var proposal = await _democracy.BallotAsync(canton, proposal: new { kind = "set-designation-rate", fiscalYear = Year, designationRateBp = 80 });
        await _democracy.ReceiptAsync(canton, proposal, person + "-other", "yes");
        var receipt = await _democracy.ReceiptAsync(canton, proposal, person, "no");
        await _democracy.CloseAsync(canton, proposal);
        await _democracy.BallotAsync(canton, options: ["tram", "bus"]);
        await _scenes.ProjectedAsync();

        await using var context = await site.NewContextAsync(new() { Locale = browserLocale });
        await SignInAsync(context, person);
        var page = await context.NewPageAsync();
        var text = PageTextTests.In(language);

        await page.GotoAsync("/");
        await SpeaksAsync(page, language);
        await page.GotoAsync("/sign-in");
        await SpeaksAsync(page, language);

        await page.GotoAsync($"/cantons/{canton}/budgets/{Year}");
        await SpeaksAsync(page, language);
        await page.ScreenshotAsync($"budget-{language}");

        await page.GotoAsync($"/cantons/{canton}/ballots/{proposal}");
        Assert.Equal(text["Ballot.Option.yes"], (await page.Locator("[data-option=yes] th").InnerTextAsync()).Trim());
        await page.Locator("#receipt").FillAsync(receipt);
        await page.Locator("#receipt").PressAsync("Enter");
        await Assertions.Expect(page.Locator("#counted-option")).ToHaveTextAsync(text["Ballot.Option.no"]);
        await SpeaksAsync(page, language);

        await page.GotoAsync($"/me/designations?canton={canton}&year={Year}");
        await SpeaksAsync(page, language);
        await page.Locator("#org-0").SelectOptionAsync($"{canton}-oceans");
        await page.Locator("#share-0").FillAsync("60");
        await page.Locator("#org-1").SelectOptionAsync($"{canton}-linux");
        await page.Locator("#share-1").FillAsync("30");
        await page.Locator("#save").ClickAsync();
        await Assertions.Expect(page.Locator("#problems")).ToBeVisibleAsync();
        await SpeaksAsync(page, language);
        await page.Locator("#share-1").FillAsync("40");
        await page.Locator("button[formaction*='handler=Preview']").Last.ClickAsync();
        await Assertions.Expect(page.Locator("#preview")).ToBeVisibleAsync();
        await SpeaksAsync(page, language);
        await page.ScreenshotAsync($"designations-{language}");

        await page.GotoAsync($"/me/ballots?canton={canton}");
        await SpeaksAsync(page, language);
        await page.Locator("input[type=radio][value=tram]").CheckAsync();
        await page.Locator("form:has(input[value=tram]) button[type=submit]").ClickAsync();
        await Assertions.Expect(page.Locator("#voted")).ToBeVisibleAsync();
        await SpeaksAsync(page, language);
        await page.ScreenshotAsync($"ballots-{language}");
    }

    [Fact]
    public async Task The_language_menu_switches_every_page_and_is_remembered()
    {
        var canton = "menu-" + PageScenes.Suffix();
        await _scenes.GenevaLikeCantonAsync(canton, TimeSpan.FromDays(30));
        await _scenes.ProjectedAsync();
        await using var context = await site.NewContextAsync(new() { Locale = "fr-CH" });
        var page = await context.NewPageAsync();
        await page.GotoAsync($"/cantons/{canton}/budgets/{Year}?asOf=");
        Assert.Equal("fr", await page.Locator("html").GetAttributeAsync("lang"));

        await page.Locator("#language").SelectOptionAsync("ja");
        await page.Locator("#language + button").ClickAsync();
        await page.WaitForURLAsync(new Regex($"/cantons/{canton}/budgets/{Year}\\?asOf=$"));
        await SpeaksAsync(page, "ja");
        await Assertions.Expect(page.Locator("#split-heading")).ToHaveTextAsync(PageTextTests.In("ja")["Budget.Split"]);
        Assert.Contains(await context.CookiesAsync(), c => c is { Name: Pages.Languages.Cookie, Value: "ja", HttpOnly: true });

        await page.GotoAsync("/");
        await SpeaksAsync(page, "ja"); // the choice beats both the browser (fr-CH) and the canton (fr-CH)
        await page.Locator("#language").SelectOptionAsync("en");
        await page.Locator("#language + button").ClickAsync();
        await Assertions.Expect(page.Locator("h1")).ToHaveTextAsync(PageTextTests.In("en")["Index.Heading"]);
        Assert.Equal("en", await page.Locator("html").GetAttributeAsync("lang"));
    }

    [Fact]
    public async Task Without_a_choice_a_page_speaks_the_cantons_language_and_english_when_the_pages_do_not_speak_it()
    {
        var (geneva, recife) = ("gva-" + PageScenes.Suffix(), "rec-" + PageScenes.Suffix());
        await _scenes.GenevaLikeCantonAsync(geneva, TimeSpan.FromDays(30));
        await Fiscal.Ok(_fiscal.Admin.PutAsJsonAsync($"/api/v1/cantons/{recife}",
            new { name = $"Cantão {recife}", currency = "BRL", locale = "pt-BR", timeZone = "America/Recife" }));
        await _fiscal.PolicyAsync(recife, Year, 70);
        await _scenes.ProjectedAsync();

        // A Portuguese browser: a language the pages do not speak.
        await using var context = await site.NewContextAsync(new() { Locale = "pt-BR" });
        var page = await context.NewPageAsync();
        await page.GotoAsync($"/cantons/{geneva}/budgets/{Year}");
        await SpeaksAsync(page, "fr");
        await page.GotoAsync($"/cantons/{recife}/budgets/{Year}");
        await SpeaksAsync(page, "en");
        await Assertions.Expect(page.Locator("#split-heading")).ToHaveTextAsync("Where the revenue goes");
        Assert.Contains("R$", await page.Locator("[data-figure=revenue]").InnerTextAsync(), StringComparison.Ordinal); // en-BR: the canton's money
        await page.GotoAsync("/");
        await SpeaksAsync(page, "en"); // about no canton
    }

    /// <summary>The page says <c>lang</c>=<paramref name="language"/>, shows no English sentence of our texts (those the
    /// language does not write alike), and passes axe-core.</summary>
    private static async Task SpeaksAsync(IPage page, string language)
    {
        Assert.Equal(language, await page.Locator("html").GetAttributeAsync("lang"));
        var shown = await page.EvaluateAsync<string>("""
            () => [document.title, document.body.innerText,
                   ...[...document.querySelectorAll('svg title, svg desc, option')].map(e => e.textContent),
                   ...[...document.querySelectorAll('[aria-label]')].map(e => e.getAttribute('aria-label'))].join('\n')
            """);
        if (language != Pages.Languages.Default)
        {
            var left = EnglishFragments(language).Where(f => shown.Contains(f, StringComparison.Ordinal)).ToList();
            Assert.True(left.Count == 0, $"English left on {page.Url} in {language}: {string.Join(" | ", left)}");
        }

        await page.AssertAccessibleAsync();
    }

    // The English of every text, cut at its placeholders and markup, that a reader would recognize as English: two words
    // or more, or one long word that the language does not write the same (Total, Budget, Option).
    private static IEnumerable<string> EnglishFragments(string language)
    {
        var translated = PageTextTests.In(language);
        return PageTextTests.In(Pages.Languages.Default)
            .SelectMany(e => Cut().Split(e.Value)
                .Select(f => f.Trim(' ', '.', ',', ':', ';', '(', ')', '“', '”', '—', '−', '+', '·', '\u00a0'))
                .Where(f => f.Contains(' ', StringComparison.Ordinal) || (f.Length >= 8 && !translated[e.Key].Contains(f, StringComparison.Ordinal))))
            .Distinct(StringComparer.Ordinal);
    }

    [GeneratedRegex(@"\{\d+\}|<[^<>]*>")]
    private static partial Regex Cut();

    private async Task SignInAsync(IBrowserContext context, string person) =>
        await context.AddCookiesAsync(
        [
            new Microsoft.Playwright.Cookie
            {
                Name = PageSession.Cookie, Value = DevTokens.Issue(site.Api.SigningKey, Roles.Person, person), Url = site.Address.ToString(),
                HttpOnly = true, SameSite = SameSiteAttribute.Strict,
            },
        ]);
}
