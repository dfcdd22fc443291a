extern alias api;

using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.IdentityModel.Tokens;
using Npgsql;

namespace Confederal.Benchmarks;

/// <summary>
/// The real API (Confederal.Api's Program, its services, middleware, Marten and its projection daemon) on Kestrel at
/// 127.0.0.1 on a free port, in Development with a dev signing key, on a database of the benchmark's cluster.
/// It logs warnings only: the per-request information line written to a terminal would measure the terminal.
/// </summary>
public sealed class ApiHost : WebApplicationFactory<api::Program>
{
    private readonly string _connectionString;
    private readonly IReadOnlyDictionary<string, string> _settings;
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("confederal-bench-api-").FullName;

    private ApiHost(string connectionString, IReadOnlyDictionary<string, string> settings)
    {
        _connectionString = connectionString;
        _settings = settings;
        SigningKey = DevTokens.LoadOrCreateKey(_dataDirectory);
    }

    public SecurityKey SigningKey { get; }

    public Uri Address { get; private set; } = null!;

    /// <summary>Starts the API on <paramref name="connectionString"/> (the directory) with further configuration
    /// <paramref name="settings"/> (keys such as <c>Shards:Cantons:ge</c>).</summary>
    public static ApiHost Start(string connectionString, IReadOnlyDictionary<string, string>? settings = null)
    {
        // The API's appsettings are copied beside this program; `dotnet run` starts it from elsewhere, where
        // WebApplicationFactory would not find them (it looks for its manifest in the current directory).
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_CONFEDERAL_API", AppContext.BaseDirectory);
        var host = new ApiHost(connectionString, settings ?? new Dictionary<string, string>());
        host.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        host.StartServer();
        host.Address = new Uri(host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return host;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Development");
        builder.UseSetting("ConnectionStrings:Confederal", _connectionString);
        builder.UseSetting(DataDirectory.Setting, _dataDirectory);
        // It measures the platform, not its rate limits: one municipality sends thousands of requests a second here.
        builder.UseSetting("RateLimiting:Client:PermitsPerSecond", "1000000");
        builder.UseSetting("RateLimiting:Client:Burst", "1000000");
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureLogging(logging =>
        {
            logging.ClearProviders();
            logging.AddSimpleConsole(o => o.SingleLine = true);
            logging.AddFilter<ConsoleLoggerProvider>(null, LogLevel.Warning);
        });
    }

    public string Token(string role, string? subject = null, string? canton = null) =>
        DevTokens.Issue(SigningKey, role, subject, canton, TimeSpan.FromHours(4));

    /// <summary>An HTTP client over real sockets, with its own connection pool of <paramref name="connections"/>.</summary>
    public HttpClient Client(string? token = null, int connections = 1)
    {
        var client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            UseCookies = false,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
        })
        {
            BaseAddress = Address,
            Timeout = Timeout.InfiniteTimeSpan,
        };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    /// <summary>A PUT that must succeed (setup, not timed).</summary>
    public static async Task PutAsync(HttpClient client, string path, object body)
    {
        using var response = await client.PutAsJsonAsync(path, body);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>Sets up cantons, organizations and a 2026 policy per canton over the API, as an admin and the cantons'
    /// municipalities would.</summary>
    public async Task SetUpFiscalYearAsync(IReadOnlyList<string> cantons, IReadOnlyList<string> organizations)
    {
        await RegisterAsync(cantons, organizations);
        await SetPoliciesAsync(cantons);
    }

    /// <summary>Registers cantons and organizations, as the admin would (the directory's facts).</summary>
    public async Task RegisterAsync(IReadOnlyList<string> cantons, IReadOnlyList<string> organizations)
    {
        using var admin = Client(Token(Roles.Admin, subject: "bench-admin"));
        foreach (var canton in cantons)
        {
            await PutAsync(admin, $"/api/v1/cantons/{canton}", new { name = canton.ToUpperInvariant(), currency = "CHF" });
        }

        foreach (var organization in organizations)
        {
            await PutAsync(admin, $"/api/v1/organizations/{organization}", new { name = organization, kind = "commons", acceptsRedistribution = true });
        }
    }

    /// <summary>A 2026 policy per canton, as each canton's municipality would set it.</summary>
    public async Task SetPoliciesAsync(IReadOnlyList<string> cantons)
    {
        foreach (var canton in cantons)
        {
            using var municipality = Client(Token(Roles.Municipality, subject: $"{canton}-admin", canton: canton));
            await PutAsync(municipality, $"/api/v1/cantons/{canton}/fiscal-years/2026/policy", new
            {
                designationRateBp = 70,
                maxOrganizations = 3,
                unallocatedPolicy = "retain",
                deadline = DateTimeOffset.UtcNow.AddDays(30),
                eligibleOrganizations = "all",
            });
        }
    }

    /// <summary>Waits until Marten's high-water mark has passed every event committed so far and each of the host's
    /// projections has applied them (not timed: so that one run's backlog does not slow the next); returns that position.</summary>
    public async Task<long> SettleAsync()
    {
        var log = Services.GetRequiredService<EventLog>();
        var daemon = Services.GetRequiredService<ProjectionDaemon>();
        var last = await log.ReadLastCommittedAsync();
        await daemon.WaitForHighWaterMarkAsync(last);
        foreach (var projection in Services.GetServices<IProjection>())
        {
            await daemon.WaitForAsync(projection.Name, last);
        }

        // The seed filled empty tables within seconds, before autovacuum's first look (a minute): without statistics the
        // planner takes tens of thousands of rows for a few (Marten's gap detection then scans all of mt_events every
        // poll). A database in service has been analyzed; so is this one before it is measured.
        await using var analyze = DataSource.CreateCommand("ANALYZE");
        analyze.CommandTimeout = 0;
        await analyze.ExecuteNonQueryAsync();
        return last;
    }

    public NpgsqlDataSource DataSource => Services.GetRequiredService<NpgsqlDataSource>();

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        Directory.Delete(_dataDirectory, recursive: true);
    }
}
