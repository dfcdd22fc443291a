using System.Diagnostics;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Confederal.Api.Tests.Browser;

/// <summary>The browser fixture itself: Chromium reaches the API, axe-core tells a bad page from a good one, screenshots
/// are PNGs where the README says.</summary>
[Collection(BrowserSite.Collection)]
public sealed class BrowserSiteTests(BrowserSite site, ITestOutputHelper output)
{
    private const string Inaccessible = """
        <!doctype html>
        <html lang="en"><head><title>Bad</title></head>
        <body><main><h1>Bad</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><input type="text"></main></body></html>
        """;

    private const string Accessible = """
        <!doctype html>
        <html lang="en"><head><title>Good</title></head>
        <body><main><h1>Good</h1>
        <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A dot">
        <label for="name">Name</label><input id="name" type="text">
        </main></body></html>
        """;

    [Fact]
    public async Task Chromium_renders_what_the_api_serves_on_its_loopback_port()
    {
        Assert.True(site.Address.IsLoopback, site.Address.ToString());
        var watch = Stopwatch.StartNew();
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();

        var response = await page.GotoAsync("/health/live");

        Assert.Equal(200, response?.Status);
        Assert.Equal("Healthy", (await page.Locator("body").InnerTextAsync()).Trim());
        output.WriteLine($"site started in {site.StartTime.TotalMilliseconds:F0} ms (browser {site.BrowserLaunchTime.TotalMilliseconds:F0} ms), " +
                         $"first page in {watch.Elapsed.TotalMilliseconds:F0} ms");
    }

    [Fact]
    public async Task The_browser_reads_what_the_tests_clients_wrote_to_the_same_api()
    {
        var canton = "fixture-" + Guid.NewGuid().ToString("N")[..8];
        await new Fiscal(site.Api).CantonAsync(canton);
        await site.Api.ProjectedAsync("cantons");
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();

        await page.GotoAsync($"/api/v1/cantons/{canton}");

        Assert.Contains($"\"name\":\"{canton.ToUpperInvariant()}\"", await page.Locator("body").InnerTextAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Axe_reports_an_image_without_alt_text_and_an_unlabelled_field_as_blocking()
    {
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.SetContentAsync(Inaccessible);

        var violations = await page.AxeAsync();
        var failure = await Assert.ThrowsAsync<FailException>(page.AssertAccessibleAsync);

        Assert.Contains(violations, v => v is { Id: "image-alt", IsSeriousOrCritical: true } && v.Nodes.Single().Target == "img");
        Assert.Contains(violations, v => v is { Id: "label", IsSeriousOrCritical: true } && v.Nodes.Single().Target == "input");
        Assert.Contains("image-alt", failure.Message, StringComparison.Ordinal);
        Assert.Contains("label", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Axe_passes_a_page_with_alt_text_and_labelled_fields()
    {
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.SetContentAsync(Accessible);

        Assert.Empty(await page.AxeAsync());
        await page.AssertAccessibleAsync();
    }

    [Fact]
    public async Task Axe_checks_a_page_the_api_serves_after_navigating_away_from_another()
    {
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.SetContentAsync(Inaccessible);
        Assert.NotEmpty(await page.AxeAsync());

        await page.GotoAsync("/health/live");

        Assert.DoesNotContain(await page.AxeAsync(), v => v.Id is "image-alt" or "label");
    }

    [Fact]
    public async Task A_screenshot_is_a_full_page_png_in_the_artifacts_folder()
    {
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync("/health/live");

        var path = await page.ScreenshotAsync("browser-fixture-health");

        Assert.Equal(Path.Combine(HostTests.RepositoryRoot(), "artifacts", "screenshots", "browser-fixture-health.png"), path);
        var bytes = await File.ReadAllBytesAsync(path);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A], bytes[..8]);
        Assert.True(File.GetLastWriteTimeUtc(path) > DateTime.UtcNow.AddMinutes(-1));
    }

    [Fact]
    public async Task A_screenshot_name_cannot_leave_the_artifacts_folder()
    {
        await using var context = await site.NewContextAsync();
        var page = await context.NewPageAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => page.ScreenshotAsync("../escape"));
    }

    [Fact]
    public async Task An_axe_core_tarball_other_than_the_pinned_one_is_refused()
    {
        await AxeCore.SourceAsync();
        var tarball = await File.ReadAllBytesAsync(AxeCore.CachedTarball);
        Assert.StartsWith("/*! axe v" + AxeCore.Version, AxeCore.Read(tarball), StringComparison.Ordinal);

        tarball[^1] ^= 1;

        Assert.Throws<InvalidDataException>(() => AxeCore.Read(tarball));
    }
}
