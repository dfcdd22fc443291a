using System.Diagnostics;
using Microsoft.Playwright;

namespace Confederal.Api.Tests.Browser;

/// <summary>Debian's headless Chromium driven by Playwright. Playwright's own browser download cannot work on this
/// machine, so the tests launch the distribution's build (<c>apt-get install chromium</c>; <c>.ci/run</c> installs it)
/// through the driver that the Microsoft.Playwright package ships (its own Node.js, copied beside the test binaries).</summary>
public sealed class Chromium : IAsyncDisposable
{
    public const string ExecutablePath = "/usr/bin/chromium";

    // The background services (component updates, sync, safe browsing lists, QUIC probes) dial hosts that this
    // machine's closed network refuses; without these flags pages wait on those refusals.
    private static readonly string[] Arguments =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ];

    private readonly IPlaywright _playwright;

    private Chromium(IPlaywright playwright, IBrowser browser, TimeSpan launchTime)
    {
        _playwright = playwright;
        Browser = browser;
        LaunchTime = launchTime;
    }

    public IBrowser Browser { get; }

    /// <summary>How long starting the driver and the browser took.</summary>
    public TimeSpan LaunchTime { get; }

    public static async Task<Chromium> LaunchAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"The browser tests need Debian's Chromium at {ExecutablePath}: apt-get install chromium");
        }

        var watch = Stopwatch.StartNew();
        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                Args = Arguments,
            });
            return new Chromium(playwright, browser, watch.Elapsed);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.CloseAsync();
        _playwright.Dispose();
    }
}
