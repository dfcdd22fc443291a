using System.Diagnostics;
using Microsoft.Playwright;

namespace Confederal.Api.Tests.Browser;

/// <summary>
/// The API on a real loopback port (Kestrel: the in-memory test server is out of a browser's reach) with a Chromium
/// to browse it, shared by every class marked <c>[Collection(BrowserSite.Collection)]</c> that takes a
/// <see cref="BrowserSite"/> in its constructor: Chromium and the API start once, and the browser classes take turns
/// on the machine's two cores. Tests share its database and <see cref="ApiFactory.Clock"/>, so each works on cantons
/// and people of its own. Each test opens a browser context of its own (cookies, storage) with
/// <see cref="NewContextAsync"/>.
/// </summary>
public sealed class BrowserSite : IAsyncLifetime
{
    public const string Collection = "Browser";

    private Chromium? _chromium;
    private Uri? _address;

    /// <summary>The API served to the browser: its database, <see cref="ApiFactory.Clock"/>,
    /// <see cref="ApiFactory.SigningKey"/> and clients (<see cref="ApiFactory.ClientAs"/> goes over the same port).</summary>
    public ApiFactory Api { get; } = new();

    /// <summary>Where the API listens, e.g. http://127.0.0.1:41234/; contexts resolve relative paths against it.</summary>
    public Uri Address => _address ?? throw new InvalidOperationException("The site has not started.");

    public IBrowser Browser => (_chromium ?? throw new InvalidOperationException("The site has not started.")).Browser;

    /// <summary>How long the API and the browser took to start, side by side.</summary>
    public TimeSpan StartTime { get; private set; }

    /// <summary>How long the browser alone took to start.</summary>
    public TimeSpan BrowserLaunchTime => _chromium?.LaunchTime ?? TimeSpan.Zero;

    public async Task InitializeAsync()
    {
        var watch = Stopwatch.StartNew();
        var browser = Chromium.LaunchAsync();
        try
        {
            await Api.InitializeAsync();
            Api.UseKestrel(0);
            await Task.Run(Api.StartServer);
            _address = Api.ClientOptions.BaseAddress;
        }
        finally
        {
            _chromium = await browser;
        }

        StartTime = watch.Elapsed;
    }

    /// <summary>A fresh context (no cookies, no storage) whose relative URLs go to <see cref="Address"/>; close it at
    /// the end of the test with <c>await using</c>.</summary>
    public Task<IBrowserContext> NewContextAsync(BrowserNewContextOptions? options = null)
    {
        options ??= new BrowserNewContextOptions();
        options.BaseURL ??= Address.ToString();
        return Browser.NewContextAsync(options);
    }

    public async Task DisposeAsync()
    {
        if (_chromium is not null)
        {
            await _chromium.DisposeAsync();
        }

        await Api.DisposeAsync();
    }
}

/// <summary>Gives the classes of the browser collection one <see cref="BrowserSite"/>.</summary>
[CollectionDefinition(BrowserSite.Collection)]
public sealed class BrowserCollection : ICollectionFixture<BrowserSite>;
