using System.Net.Http.Headers;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Confederal.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Api.Tests;

/// <summary>The API on a database of its own, in Development mode with a dev signing key in a temporary folder.</summary>
public sealed class ApiFactory : WebApplicationFactory<Program>, IAsyncLifetime
{
    private readonly string _dataDirectory;
    private readonly bool _ownsDataDirectory;
    private string _connectionString;

    public ApiFactory()
        : this("", null)
    {
    }

    private ApiFactory(string connectionString, string? dataDirectory)
    {
        _connectionString = connectionString;
        _ownsDataDirectory = dataDirectory is null;
        _dataDirectory = dataDirectory ?? Directory.CreateTempSubdirectory("confederal-api-tests-").FullName;
    }

    /// <summary>The API on an existing database (migrated at start if it is not), with the keys of
    /// <paramref name="dataDirectory"/> when given: a second host on the same data, as after a restart.</summary>
    public static ApiFactory On(string connectionString, string? dataDirectory = null) => new(connectionString, dataDirectory);

    public SecurityKey SigningKey => DevTokens.LoadOrCreateKey(_dataDirectory);

    public async Task InitializeAsync()
    {
        if (_connectionString.Length == 0)
        {
            _connectionString = await TestPostgres.CreateDatabaseAsync(Database.Migrations);
        }
    }

    /// <summary>An API of a test's own, with <paramref name="settings"/> over its configuration (null: the API's own
    /// value, e.g. a default rate limit); disposed by the test.</summary>
    public static async Task<ApiFactory> StartAsync(params (string Key, string? Value)[] settings)
    {
        var api = new ApiFactory();
        foreach (var (key, value) in settings)
        {
            if (value is null)
            {
                api.Settings.Remove(key);
            }
            else
            {
                api.Settings[key] = value;
            }
        }

        await api.InitializeAsync();
        return api;
    }

    /// <summary>The API's clock: real time until a test moves it.</summary>
    public ManualClock Clock { get; } = new();

    /// <summary>Every log line the API wrote, formatted.</summary>
    public CapturedLogs Logs { get; } = new();

    /// <summary>Configuration applied over the API's own, before it starts. Tests send many requests from few clients,
    /// so the rate limits are lifted unless a test sets them (or removes these to run on the configured defaults).</summary>
    public Dictionary<string, string?> Settings { get; } = new()
    {
        ["RateLimiting:Client:PermitsPerSecond"] = "1000000",
        ["RateLimiting:Client:Burst"] = "1000000",
        ["RateLimiting:AsOf:PermitsPerSecond"] = "1000000",
        ["RateLimiting:AsOf:Burst"] = "1000000",
        ["RateLimiting:AsOfConcurrency"] = "64",
    };

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.ConfigureLogging(logging => logging.AddProvider(Logs));
        builder.UseEnvironment("Development");
        builder.UseSetting("ConnectionStrings:Confederal", _connectionString);
        builder.UseSetting(DataDirectory.Setting, _dataDirectory);
        builder.ConfigureTestServices(services => services.AddSingleton<TimeProvider>(Clock));
        foreach (var (key, value) in Settings)
        {
            builder.UseSetting(key, value);
        }
    }

    public HttpClient ClientAs(string role, string? subject = null, string? canton = null)
    {
        var client = CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", DevTokens.Issue(SigningKey, role, subject, canton));
        return client;
    }

    public HttpClient Admin() => ClientAs(Roles.Admin, subject: "admin");

    /// <summary>Waits until every event appended so far is applied by the projection.</summary>
    public async Task ProjectedAsync(string projection)
    {
        var head = await Services.GetRequiredService<EventLog>().ReadLastCommittedAsync();
        try
        {
            await Services.GetRequiredService<ProjectionDaemon>().WaitForAsync(projection, head).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException e)
        {
            var failures = Logs.Lines.Where(l => l.Contains("Exception", StringComparison.Ordinal) || l.Contains("warn", StringComparison.Ordinal)).TakeLast(6);
            await using var progress = Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand(
                "SELECT string_agg(name || '=' || last_seq_id, ', ' ORDER BY name) FROM marten.mt_event_progression");
            throw new TimeoutException(
                $"Projection {projection} did not reach {head} (Marten's progress: {await progress.ExecuteScalarAsync()}). {string.Join(Environment.NewLine, failures)}", e);
        }
    }

    /// <summary>Seals every event appended so far, once the high-water mark has passed it; returns the last sealed position.</summary>
    public async Task<long> SealedAsync()
    {
        var head = await Services.GetRequiredService<EventLog>().ReadLastCommittedAsync();
        await Services.GetRequiredService<ProjectionDaemon>().WaitForHighWaterMarkAsync(head).WaitAsync(TimeSpan.FromSeconds(30));
        return await Services.GetRequiredService<Features.Audit.Notary>().SealAsync();
    }

    /// <summary>The request was refused with <paramref name="status"/> as a problem (with <paramref name="code"/> when
    /// given) and, when <paramref name="eventsBefore"/> is given, recorded nothing.</summary>
    public async Task AssertRefusedAsync(HttpResponseMessage response, System.Net.HttpStatusCode status, string? code, long? eventsBefore = null)
    {
        Assert.True(status == response.StatusCode, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        if (code is not null)
        {
            Assert.Equal(code, await Fiscal.CodeAsync(response));
        }

        if (eventsBefore is { } before)
        {
            Assert.Equal(before, await CountEventsAsync());
        }
    }

    public async Task<long> CountEventsAsync()
    {
        await using var command = Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand($"SELECT count(*) FROM {EventLog.Table}");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();

    /// <summary>Stops the API and deletes its data folder if it made it (a factory started by a test, not as a
    /// fixture, is disposed with <c>await using</c>).</summary>
    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (_ownsDataDirectory && Directory.Exists(_dataDirectory))
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
    }
}

public sealed class CapturedLogs : ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, System.Collections.Concurrent.ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{category}: {formatter(state, exception)} {exception}");
    }
}

public sealed class ManualClock : TimeProvider
{
    private TimeSpan _offset;

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + _offset;

    public void Advance(TimeSpan by) => _offset += by;

    /// <summary>Past noon, moves on to 01:00 the next day: a test that takes today's date at one moment and a ballot's
    /// census date at another (the clock is real time plus what tests advanced, hours at a time) then never straddles
    /// midnight.</summary>
    public void AwayFromMidnight()
    {
        var timeOfDay = GetUtcNow().TimeOfDay;
        if (timeOfDay > TimeSpan.FromHours(12))
        {
            Advance(TimeSpan.FromHours(25) - timeOfDay);
        }
    }
}
