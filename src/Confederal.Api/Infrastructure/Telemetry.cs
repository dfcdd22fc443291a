using System.Diagnostics.Metrics;
using Confederal.EventStore;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Confederal.Api.Infrastructure;

/// <summary>Who may read the Prometheus scrape endpoint <c>/metrics</c> (setting <see cref="Telemetry.ScrapeSetting"/>).</summary>
public enum MetricsScrape
{
    /// <summary>Not served (the default in Production): export over OTLP instead.</summary>
    Off,

    /// <summary>Served to a confederation administrator's token.</summary>
    Admin,

    /// <summary>Served to anyone who reaches it (the default in Development).</summary>
    Open,
}

/// <summary>
/// OpenTelemetry, as its SDK is meant to be set up: metrics of ASP.NET Core, HttpClient, Npgsql, Marten and ours always
/// (for <c>/metrics</c> and OTLP), and, when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set, every signal (traces, metrics,
/// logs) exported over OTLP. No attribute names a person: spans carry the route template, never the path (which may hold a
/// person id), nor the query, nor exceptions' messages; our own metrics are counts by event type, projection, database
/// and status.
/// </summary>
public static class Telemetry
{
    public const string ScrapeSetting = "Telemetry:MetricsScrape";
    public const string OtlpEndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";
    public const string ScrapePath = "/metrics";

    public static MetricsScrape Scrape(IConfiguration configuration, IHostEnvironment environment) =>
        configuration[ScrapeSetting] is { Length: > 0 } value
            ? Enum.TryParse<MetricsScrape>(value, ignoreCase: true, out var scrape) && Enum.IsDefined(scrape)
                ? scrape
                : throw new InvalidOperationException($"{ScrapeSetting} must be Off, Admin or Open, not '{value}'.")
            : environment.IsDevelopment() ? MetricsScrape.Open : MetricsScrape.Off;

    public static void AddConfederalTelemetry(this WebApplicationBuilder builder)
    {
        var scrape = Scrape(builder.Configuration, builder.Environment);
        var otlp = !string.IsNullOrEmpty(builder.Configuration[OtlpEndpointSetting]);
        builder.Services.AddSingleton<ConfederalMetrics>();
        builder.Services.AddSingleton<LedgerMetrics>();
        if (scrape != MetricsScrape.Off || otlp)
        {
            builder.Services.AddHostedService(sp => sp.GetRequiredService<LedgerMetrics>()); // read only when someone can see it
        }

        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("confederal-api"))
            .WithMetrics(metrics =>
            {
                metrics.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation().AddNpgsqlInstrumentation()
                    .AddMeter(ConfederalMetrics.MeterName, "Marten");
                if (scrape != MetricsScrape.Off)
                {
                    // Every scrape reads the figures of its moment (the exporter would otherwise serve a copy for 300 ms).
                    metrics.AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0);
                }
            });
        if (!otlp)
        {
            return; // spans nobody reads are not made
        }

        telemetry.WithTracing(tracing => tracing
                .SetSampler(new ParentBasedSampler(new RequestsOnly()))
                .AddAspNetCoreInstrumentation(o => o.EnrichWithHttpResponse = (activity, response) =>
                    activity.SetTag("url.path", Route(response.HttpContext)).SetTag("url.query", null))
                .AddHttpClientInstrumentation()
                .AddNpgsql()
                .AddSource("Marten"))
            .UseOtlpExporter();
    }

    /// <summary>Serves <see cref="ScrapePath"/> as <see cref="Scrape"/> says.</summary>
    public static void MapMetrics(this WebApplication app)
    {
        var scrape = Scrape(app.Configuration, app.Environment);
        if (scrape == MetricsScrape.Off)
        {
            return;
        }

        var endpoint = app.MapPrometheusScrapingEndpoint(ScrapePath).ExcludeFromDescription().DisableRateLimiting();
        if (scrape == MetricsScrape.Admin)
        {
            // A bearer token, as for the REST API (outside /api the default scheme is the pages' session).
            endpoint.RequireAuthorization(p => p.AddAuthenticationSchemes(JwtBearerDefaults.AuthenticationScheme).RequireRole(Roles.Admin));
        }
    }

    /// <summary>A trace starts at a request: the work of background services (Marten's daemon polls the log many times a
    /// second, the notary, the sweeps) starts none, so that traces are of what callers asked.</summary>
    private sealed class RequestsOnly : Sampler
    {
        public override SamplingResult ShouldSample(in SamplingParameters parameters) =>
            new(parameters.Kind == System.Diagnostics.ActivityKind.Server ? SamplingDecision.RecordAndSample : SamplingDecision.Drop);
    }

    /// <summary>The request's route template, as the request log names it: never its path.</summary>
    public static string Route(HttpContext http) => (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)";
}

/// <summary>Our counts of what requests did. In-process: each instance counts its own requests.</summary>
public sealed class ConfederalMetrics
{
    public const string MeterName = "Confederal";

    /// <summary>The answers counted as refusals: a request the platform would not carry out as sent.</summary>
    private static readonly HashSet<int> Refusals = [400, 401, 403, 409, 413, 415, 422, 429, 503];

    private readonly Counter<long> _replays;
    private readonly Counter<long> _refused;

    public ConfederalMetrics(IMeterFactory meters)
    {
        Meter = meters.Create(MeterName);
        _replays = Meter.CreateCounter<long>("confederal_idempotent_replays", "{request}",
            "Writes answered from an Idempotency-Key's recorded answer, recording nothing again.");
        _refused = Meter.CreateCounter<long>("confederal_requests_refused", "{request}",
            "Requests refused, by status: 400, 401, 403, 409, 413, 415, 422, 429, 503.");
    }

    public Meter Meter { get; }

    public void Replayed() => _replays.Add(1);

    public void Answered(int status)
    {
        if (Refusals.Contains(status))
        {
            _refused.Add(1, new KeyValuePair<string, object?>("status", status));
        }
    }
}

/// <summary>
/// What the logs hold, read from each database every few seconds (setting <see cref="IntervalSetting"/>): how far each
/// projection and the notary's seals are behind the log's head (in positions, which have a hole where a transaction
/// rolled back: at most that many events), and how many events of each type the log holds (counted up to the high-water mark, below which the order is final, so no event is counted twice or
/// missed). These are facts about the log, not the process: every instance reports the same, so aggregate them with
/// max, not sum.
/// </summary>
public sealed partial class LedgerMetrics : BackgroundService
{
    public const string IntervalSetting = "Telemetry:LedgerIntervalSeconds";

    private readonly Shards _shards;
    private readonly Database _database;
    private readonly ILogger<LedgerMetrics> _logger;
    private readonly TimeSpan _interval;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _reading = new(1, 1);
    private readonly Dictionary<string, Reading> _readings = new(StringComparer.Ordinal);

    public LedgerMetrics(Shards shards, Database database, ConfederalMetrics metrics, IConfiguration configuration, ILogger<LedgerMetrics> logger)
    {
        _shards = shards;
        _database = database;
        _logger = logger;
        _interval = TimeSpan.FromSeconds(configuration.GetValue(IntervalSetting, 5.0));
        metrics.Meter.CreateObservableGauge("confederal_projection_lag_events",
            () => Observe((database, r) => r.Lag.Select(p => new Measurement<long>(p.Value, Tag("projection", p.Key), Tag("database", database)))),
            "{event}", "Per projection and database: the log's head minus the projection's checkpoint.");
        metrics.Meter.CreateObservableCounter("confederal_events_appended",
            () => Observe((database, r) => r.Appended.Select(t => new Measurement<long>(t.Value, Tag("type", t.Key), Tag("database", database)))),
            "{event}", "Per event type and database: the events the log holds up to its high-water mark.");
        metrics.Meter.CreateObservableGauge("confederal_audit_unsealed_events",
            () => Observe((database, r) => [new Measurement<long>(r.Unsealed, Tag("database", database))]),
            "{event}", "Per database: the log's head minus the notary's last sealed position.");
    }

    /// <summary>One database's reading: lag by projection, events by type (cumulative), events not sealed.</summary>
    private sealed record Reading(Dictionary<string, long> Lag, Dictionary<string, long> Appended, long CountedThrough, long Unsealed);

    private static KeyValuePair<string, object?> Tag(string name, object value) => new(name, value);

    private IEnumerable<Measurement<long>> Observe(Func<string, Reading, IEnumerable<Measurement<long>>> measure)
    {
        lock (_lock)
        {
            return [.. _readings.SelectMany(d => measure(d.Key, d.Value))];
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_interval);
        do
        {
            try
            {
                await ReadAsync(stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                Failed(_logger, e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Reads every migrated database now. One reading at a time: each counts on from the last, so that two
    /// readings at once (the timer's and a caller's) cannot leave a count lower than one already served.</summary>
    public async Task ReadAsync(CancellationToken ct)
    {
        await _reading.WaitAsync(ct);
        try
        {
            foreach (var shard in _shards.Where(s => _database.IsMigrated(s.Database.Id)))
            {
                Reading? last;
                lock (_lock)
                {
                    last = _readings.GetValueOrDefault(Label(shard.Database.Id));
                }

                var reading = await ReadAsync(shard.Database.DataSource, last, ct);
                lock (_lock)
                {
                    _readings[Label(shard.Database.Id)] = reading;
                }
            }
        }
        finally
        {
            _reading.Release();
        }
    }

    /// <summary>A database as the metrics name it: "directory", or the canton placed on a database of its own.</summary>
    private static string Label(string databaseId) => databaseId == LedgerDatabase.DirectoryId ? "directory" : databaseId;

    private static async Task<Reading> ReadAsync(NpgsqlDataSource db, Reading? last, CancellationToken ct)
    {
        var progress = $"{MartenStore.Schema}.mt_event_progression";
        var head = (await Sql.ListAsync(db, $"SELECT coalesce(max(seq_id), 0) FROM {EventLog.Table}", r => r.GetInt64(0), ct)).Single();
        var lag = (await Sql.ListAsync(db, $"SELECT name, last_seq_id FROM {progress} WHERE name LIKE '%:All'",
                r => (Name: r.GetString(0)[..^":All".Length], Checkpoint: r.GetInt64(1)), ct))
            .ToDictionary(p => p.Name, p => Math.Max(0, head - p.Checkpoint), StringComparer.Ordinal);
        var mark = (await Sql.ListAsync(db, $"SELECT coalesce(max(last_seq_id), 0) FROM {progress} WHERE name = 'HighWaterMark'", r => r.GetInt64(0), ct)).Single();
        var from = last?.CountedThrough ?? 0;
        var appended = new Dictionary<string, long>(last?.Appended ?? [], StringComparer.Ordinal);
        if (mark > from)
        {
            foreach (var (type, count) in await Sql.ListAsync(db,
                         $"SELECT split_part(type, '.v', 1), count(*) FROM {EventLog.Table} WHERE seq_id > $1 AND seq_id <= $2 GROUP BY 1",
                         r => (r.GetString(0), r.GetInt64(1)), ct, from, mark))
            {
                appended[type] = appended.GetValueOrDefault(type) + count;
            }
        }

        var sealedThrough = (await Sql.ListAsync(db, "SELECT coalesce(max(to_position), 0) FROM audit_seals", r => r.GetInt64(0), ct)).Single();
        return new Reading(lag, appended, Math.Max(from, mark), Math.Max(0, head - sealedThrough));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not read the ledger's metrics; retrying at the next interval")]
    private static partial void Failed(ILogger logger, Exception exception);
}
