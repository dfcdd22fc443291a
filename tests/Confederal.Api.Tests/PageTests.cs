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
    [InlineData("CHF", "fr-CH", 4_020_620_404L, "40 206 204.04 CHF")]
    [InlineData("CHF", "de-CH", 123_456L, "CHF 1’234.56")]
    [InlineData("EUR", "it-IT", 123_456L, "1.234,56 €")]
    [InlineData("JPY", "ja-JP", 123_456L, "￥123,456")]
    [InlineData("KWD", "en", 1_234_567L, "KWD 1,234.567")]
    [InlineData("EUR", "en-GB", -5L, "-EUR 0.05")]
    [InlineData("CHF", "it-IT", 150L, "1,50 CHF")]
    public void Money_reads_in_the_cantons_locale_with_the_currencys_minor_digits(string currency, string locale, long minor, string expected) =>
        Assert.Equal(expected, new CantonFormat(currency, locale, "UTC").Money(minor).Replace('\u202f', ' ').Replace('\u00a0', ' '));

    [Fact]
    public void Instants_read_in_the_cantons_time_zone_and_say_which()
    {
        var format = new CantonFormat("JPY", "ja-JP", "Asia/Tokyo");
        Assert.Equal("2026年12月31日木曜日 23:59 (Asia/Tokyo)", format.Instant(new DateTimeOffset(2026, 12, 31, 14, 59, 0, TimeSpan.Zero)));
        Assert.Equal("33,34%", new CantonFormat("EUR", "it-IT", "Europe/Rome").Share(3334).Replace('\u00a0', ' '));
    }
}
