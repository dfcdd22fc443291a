using System.Net;
using System.Security.Cryptography;
using Confederal.Api.Infrastructure;
using Confederal.Api.Pages;

namespace Confederal.Api.Tests;

/// <summary>The pages' rules that need no browser: where a sign-in may return to, who may pick a demo person, and how
/// money and dates read in a canton's locale.</summary>
public sealed class PageTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    [Theory]
    [InlineData("/me/ballots?canton=ge", "/me/ballots?canton=ge")]
    [InlineData("/", "/")]
    [InlineData("//evil.example/me", "/")]
    [InlineData("/\\evil.example", "/")]
    [InlineData("https://evil.example/", "/")]
    [InlineData("javascript:alert(1)", "/")]
    [InlineData("", "/")]
    [InlineData(null, "/")]
    public void A_sign_in_returns_only_to_a_path_of_this_site(string? returnUrl, string expected) =>
        Assert.Equal(expected, PageSession.LocalPath(returnUrl));

    [Fact]
    public async Task A_page_for_people_without_a_session_leads_to_the_sign_in_and_back()
    {
        using var client = api.CreateClient(new() { AllowAutoRedirect = false });
        using var response = await client.GetAsync("/me/ballots?canton=ge");
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        Assert.Equal("/sign-in?returnUrl=%2Fme%2Fballots%3Fcanton%3Dge", response.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task The_rest_api_is_not_opened_by_a_page_session_nor_the_pages_by_a_bearer_token()
    {
        var token = DevTokens.Issue(api.SigningKey, Roles.Person, "it-001");
        using var client = api.CreateClient(new() { AllowAutoRedirect = false });
        using var withCookie = new HttpRequestMessage(HttpMethod.Get, "/api/v1/cantons/ge/fiscal-years/2026/designations/it-001");
        withCookie.Headers.Add("Cookie", $"{PageSession.Cookie}={token}");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(withCookie)).StatusCode);

        using var withHeader = new HttpRequestMessage(HttpMethod.Get, "/me/designations");
        withHeader.Headers.Authorization = new("Bearer", token);
        Assert.Equal(HttpStatusCode.Redirect, (await client.SendAsync(withHeader)).StatusCode);
    }

    [Fact]
    public async Task With_a_configured_issuer_nobody_can_pick_a_demo_person()
    {
        await using var production = await ApiFactory.StartAsync(
            ("Auth:SigningKey", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32))), ("Auth:Issuer", "https://id.example"),
            ("Auth:Audience", "confederal"));
        var page = await production.CreateClient().GetStringAsync("/sign-in");
        Assert.DoesNotContain("Sign in as this person", page, StringComparison.Ordinal);
        Assert.Contains("Sign in with this token", page, StringComparison.Ordinal);

        var development = await api.CreateClient().GetStringAsync("/sign-in");
        Assert.Contains("Sign in as this person", development, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pages_forbid_framing_scripts_and_caching()
    {
        using var response = await api.CreateClient().GetAsync("/sign-in");
        Assert.Contains("default-src 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", response.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        Assert.True(response.Headers.CacheControl?.NoStore);
    }

    [Theory]
    [InlineData("CHF", "fr-CH", "fr", 4_020_620_404L, "40 206 204.04 CHF")]
    [InlineData("CHF", "de-CH", "de", 123_456L, "CHF 1’234.56")]
    [InlineData("EUR", "it-IT", "it", 123_456L, "1.234,56 €")]
    [InlineData("JPY", "ja-JP", "ja", 123_456L, "￥123,456")]
    [InlineData("KWD", "en", "en", 1_234_567L, "KWD 1,234.567")]
    [InlineData("EUR", "en-GB", "en", -5L, "-EUR 0.05")]
    [InlineData("CHF", "it-IT", "it", 150L, "1,50 CHF")]
    [InlineData("CHF", "fr-CH", "it", 123_456L, "CHF 1’234.56")] // Italian as written in Switzerland: it-CH
    [InlineData("CHF", "fr-CH", "ja", 123_456L, "CHF 1,234.56")] // ja-CH: an ISO code is never glued to the number
    [InlineData("EUR", "it-IT", "de", 123_456L, "1.234,56 €")] // de-IT
    public void Money_reads_in_the_cantons_locale_with_the_currencys_minor_digits(string currency, string locale, string language, long minor, string expected) =>
        Assert.Equal(expected, new CantonFormat(currency, locale, "UTC", language).Money(minor).Replace('\u202f', ' ').Replace('\u00a0', ' '));

    [Fact]
    public void Instants_read_in_the_cantons_time_zone_and_say_which()
    {
        var format = new CantonFormat("JPY", "ja-JP", "Asia/Tokyo", "ja");
        Assert.Equal("2026年12月31日木曜日 23:59 (Asia/Tokyo)", format.Instant(new DateTimeOffset(2026, 12, 31, 14, 59, 0, TimeSpan.Zero)));
        Assert.Equal("33,34%", new CantonFormat("EUR", "it-IT", "Europe/Rome", "it").Share(3334).Replace('\u00a0', ' '));
    }

    [Fact]
    public void Dates_of_a_canton_read_in_the_language_of_the_page()
    {
        var day = new DateOnly(2026, 12, 2);
        Assert.Equal("mercredi, 2 décembre 2026", new CantonFormat("CHF", "fr-CH", "Europe/Zurich", "fr").Date(day));
        Assert.Equal("mercoledì, 2 dicembre 2026", new CantonFormat("CHF", "fr-CH", "Europe/Zurich", "it").Date(day));
        Assert.Equal("2026年12月2日水曜日", new CantonFormat("CHF", "fr-CH", "Europe/Zurich", "ja").Date(day));
        Assert.Equal("Wednesday, 2 December 2026", new CantonFormat("CHF", "fr-CH", "Europe/Zurich", "en").Date(day));
    }

    [Fact]
    public async Task The_language_menu_remembers_a_language_the_pages_speak_and_refuses_any_other()
    {
        using var client = api.CreateClient(new() { AllowAutoRedirect = false });
        var page = await client.GetStringAsync("/sign-in");
        var token = System.Text.RegularExpressions.Regex.Match(page, "name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"").Groups[1].Value;
        Assert.NotEmpty(token);

        async Task<HttpResponseMessage> PostAsync(string language, string returnUrl) =>
            await client.PostAsync("/language", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["__RequestVerificationToken"] = token, ["language"] = language, ["returnUrl"] = returnUrl,
            }));

        using var refused = await PostAsync("xx", "/sign-in");
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.False(refused.Headers.Contains("Set-Cookie"));

        using var elsewhere = await PostAsync("de", "https://evil.example/");
        Assert.Equal("/", elsewhere.Headers.Location?.OriginalString); // local paths only

        using var chosen = await PostAsync("ja", "/sign-in?returnUrl=%2Fme%2Fballots");
        Assert.Equal(HttpStatusCode.Redirect, chosen.StatusCode);
        Assert.Equal("/sign-in?returnUrl=%2Fme%2Fballots", chosen.Headers.Location?.OriginalString);
        var cookie = chosen.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(Languages.Cookie + "=", StringComparison.Ordinal));
        Assert.Contains("confederal-language=ja;", cookie, StringComparison.Ordinal);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("max-age=31536000", cookie, StringComparison.OrdinalIgnoreCase);

        using var japanese = new HttpRequestMessage(HttpMethod.Get, "/sign-in");
        japanese.Headers.Add("Cookie", $"{Languages.Cookie}=ja");
        japanese.Headers.AcceptLanguage.ParseAdd("fr-CH");
        var html = await (await client.SendAsync(japanese)).Content.ReadAsStringAsync();
        Assert.Contains("<html lang=\"ja\">", html, StringComparison.Ordinal);
        Assert.Contains($"<h1>{PageTextTests.In("ja")["Layout.SignIn"]}</h1>", html, StringComparison.Ordinal); // as written, not as &#x…;

        using var withoutToken = await client.PostAsync("/language", new FormUrlEncodedContent(new Dictionary<string, string> { ["language"] = "ja" }));
        Assert.Equal(HttpStatusCode.BadRequest, withoutToken.StatusCode); // antiforgery: no other site sets it
    }

    [Fact]
    public async Task The_rest_apis_problems_stay_english_whatever_language_the_caller_reads()
    {
        using var client = api.CreateClient();
        foreach (var path in new[] { "/api/v1/cantons/zz", "/api/v1/cantons/zz/budgets/1999" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.AcceptLanguage.ParseAdd("fr-CH");
            request.Headers.Add("Cookie", $"{Languages.Cookie}=ja");
            using var response = await client.SendAsync(request);
            var problem = await response.Content.ReadAsStringAsync();
            Assert.Contains(response.StatusCode == HttpStatusCode.NotFound ? "Canton 'zz' does not exist." : "must be between 2000 and 2100", problem,
                StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("/me/designations", "?handler=Preview&canton=ge&year=2026", "/me/designations?canton=ge&year=2026")]
    [InlineData("/me/ballots", "?canton=ge&HANDLER=Vote", "/me/ballots?canton=ge")]
    [InlineData("/", "", "/")]
    public void The_language_menu_returns_to_the_page_shown_as_a_get(string path, string query, string expected)
    {
        var http = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        http.Request.Path = path;
        http.Request.QueryString = new Microsoft.AspNetCore.Http.QueryString(query);
        Assert.Equal(expected, Languages.ReturnUrl(http.Request));
    }

    [Theory]
    [InlineData(null, null, "fr-CH", "fr")] // the canton's language by default
    [InlineData(null, null, "pt-BR", "en")] // a canton of another language: English
    [InlineData(null, null, null, "en")] // a page about no canton
    [InlineData(null, "it-CH, fr;q=0.8", "fr-CH", "it")] // the browser's first language the pages speak
    [InlineData(null, "pt-BR, ja;q=0.5, de;q=0.7", "fr-CH", "de")] // by quality, not by order
    [InlineData(null, "pt-BR, nl", "fr-CH", "fr")] // none the pages speak: the canton's
    [InlineData(null, "ja;q=0, en;q=0.1", "fr-CH", "en")] // q=0 means "not this one"
    [InlineData(null, "%%%;;;q=x", "de-CH", "de")] // a malformed header is no choice
    [InlineData("es", "it-CH", "fr-CH", "es")] // the menu's choice beats the browser
    [InlineData("xx", "it-CH", "fr-CH", "it")] // a cookie of no language the pages speak is ignored
    public void A_page_speaks_the_persons_choice_else_their_browsers_else_the_cantons_else_english(
        string? cookie, string? acceptLanguage, string? cantonLocale, string expected)
    {
        var http = new Microsoft.AspNetCore.Http.DefaultHttpContext();
        if (cookie is not null)
        {
            http.Request.Headers.Cookie = $"{Languages.Cookie}={cookie}";
        }

        if (acceptLanguage is not null)
        {
            http.Request.Headers.AcceptLanguage = acceptLanguage;
        }

        Assert.Equal(expected, Languages.Of(http.Request, cantonLocale));
    }
}
