using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.RegularExpressions;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Internal;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Confederal.Api.Tests;

/// <summary>
/// Operators' telemetry: our metrics under their names on the Prometheus scrape endpoint, who may scrape it, and that no
/// metric, span or log record exported over OTLP names a person, a pseudonym of one or a vote's choice (DESIGN.md,
/// Privacy).
/// </summary>
[Collection(Alone)]
public sealed partial class TelemetryTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    /// <summary>OpenTelemetry tells instruments apart by meter and instrument name, so in a process with several hosts
    /// (the suite's other API factories) a host's provider may export another host's Confederal meter and ignore its
    /// own. These tests run alone, after the others, when the only hosts are theirs.</summary>
    public const string Alone = "telemetry, alone";

    [Fact]
    public async Task The_scrape_endpoint_serves_our_metrics_by_their_names()
    {
        var fiscal = new Fiscal(api);
        const string canton = "tm-metrics";
        var year = api.Clock.GetUtcNow().Year;
        await fiscal.CantonAsync(canton);
        await fiscal.OrganizationAsync("tm-commons");
        await fiscal.PolicyAsync(canton, year, 70);
        await fiscal.AssessAsync(canton, "tm-ana", year, 1_000_000);
        await fiscal.AssessAsync(canton, "tm-ben", year, 2_000_000);
        var before = await ScrapeAsync();

        // One write, retried with its key: replayed once. Refusals: 400, 401, 403, 409, once each.
        var municipality = fiscal.Municipality(canton);
        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/cantons/{canton}/tax-assessments")
            {
                Content = JsonContent.Create(new { personId = "tm-cy", fiscalYear = year, amountMinor = 300_000 }),
                Headers = { { Idempotency.Header, "tm-assess-cy" } },
            };
            await Fiscal.Ok(municipality.SendAsync(request));
        }

        Assert.Equal(HttpStatusCode.BadRequest, (await municipality.PostAsJsonAsync($"/api/v1/cantons/{canton}/tax-assessments",
            new { personId = "tm-cy", fiscalYear = year, amountMinor = -1 })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().PutAsJsonAsync($"/api/v1/cantons/{canton}", new { name = "X", currency = "CHF" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await municipality.PutAsJsonAsync($"/api/v1/cantons/{canton}", new { name = "X", currency = "CHF" })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await fiscal.Admin.PutAsJsonAsync($"/api/v1/cantons/{canton}", new { name = "X", currency = "EUR" })).StatusCode);

        await api.ProjectedAsync(BudgetProjection.ProjectionName);
        await api.Services.GetRequiredService<LedgerMetrics>().ReadAsync(CancellationToken.None);
        var after = await ScrapeAsync();

        Assert.Equal(1, Delta("confederal_idempotent_replays_total"));
        foreach (var status in new[] { "400", "401", "403", "409" })
        {
            Assert.Equal(1, Delta("confederal_requests_refused_total", $"status=\"{status}\""));
        }

        Assert.Equal(3, Value(after, "confederal_events_appended_total", "type=\"tax-assessed\"", "database=\"directory\""));
        Assert.Equal(0, Value(after, "confederal_projection_lag_events", $"projection=\"{BudgetProjection.ProjectionName}\"", "database=\"directory\""));
        Assert.NotNull(Value(after, "confederal_audit_unsealed_events", "database=\"directory\""));
        Assert.Contains("http_server_request_duration_seconds", after, StringComparison.Ordinal); // ASP.NET Core's own
        Assert.Contains("db_client_operation_duration_seconds", after, StringComparison.Ordinal); // Npgsql's own

        // The notary seals: nothing is left unsealed, and the gauge says so at the next reading.
        await api.SealedAsync();
        await api.Services.GetRequiredService<LedgerMetrics>().ReadAsync(CancellationToken.None);
        Assert.Equal(0, Value(await ScrapeAsync(), "confederal_audit_unsealed_events", "database=\"directory\""));
        return;

        double Delta(string name, params string[] labels) => (Value(after, name, labels) ?? 0) - (Value(before, name, labels) ?? 0);
    }

    [Fact]
    public async Task The_scrape_endpoint_is_off_in_production_unless_set_and_then_for_administrators_only()
    {
        var production = new HostingEnvironment { EnvironmentName = Environments.Production };
        Assert.Equal(MetricsScrape.Off, Telemetry.Scrape(Configuration(), production));
        Assert.Equal(MetricsScrape.Open, Telemetry.Scrape(Configuration(), new HostingEnvironment { EnvironmentName = Environments.Development }));
        Assert.Equal(MetricsScrape.Admin, Telemetry.Scrape(Configuration(("Telemetry:MetricsScrape", "admin")), production));
        Assert.Throws<InvalidOperationException>(() => Telemetry.Scrape(Configuration(("Telemetry:MetricsScrape", "public")), production));

        await using (var off = await ApiFactory.StartAsync(("Telemetry:MetricsScrape", "Off")))
        {
            Assert.Equal(HttpStatusCode.NotFound, (await off.Admin().GetAsync(Telemetry.ScrapePath)).StatusCode);
        }

        await using var admin = await ApiFactory.StartAsync(("Telemetry:MetricsScrape", "Admin"));
        Assert.Equal(HttpStatusCode.Unauthorized, (await admin.CreateClient().GetAsync(Telemetry.ScrapePath)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await admin.ClientAs(Roles.Auditor).GetAsync(Telemetry.ScrapePath)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.Admin().GetAsync(Telemetry.ScrapePath)).StatusCode);
    }

    [Fact]
    public async Task No_metric_span_or_log_record_names_a_person_a_pseudonym_or_a_vote_choice()
    {
        await using var collector = await OtlpCollector.StartAsync();
        var people = new[] { "tm-private-ana", "tm-private-ben" };
        var choices = new[] { "tm-quokka-choice", "tm-narwhal-choice" };
        const string canton = "tm-private";
        string[] secrets;
        string scraped;
        await using (var traced = await ApiFactory.StartAsync(
                         (Telemetry.OtlpEndpointSetting, collector.Address), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")))
        {
            var democracy = new Democracy(traced);
            var fiscal = democracy.Fiscal;
            var year = traced.Clock.GetUtcNow().Year;
            await fiscal.CantonAsync(canton);
            await fiscal.OrganizationAsync("tm-private-commons");
            await fiscal.PolicyAsync(canton, year, 70);
            await Fiscal.Ok(fiscal.Municipality(canton).PutAsJsonAsync($"/api/v1/cantons/{canton}/voting-rules", new { votingAge = 16, minimumResidenceDays = 0 }));
            foreach (var person in people)
            {
                await Fiscal.Ok(democracy.ResideAsync(canton, person, democracy.Today.AddYears(-2)));
                await fiscal.AssessAsync(canton, person, year, 1_000_000);
                await Fiscal.Ok(fiscal.DesignateAsync(canton, year, person, true, ("tm-private-commons", 10_000)));
                Assert.Equal(HttpStatusCode.OK, (await fiscal.Person(person).GetAsync($"/api/v1/cantons/{canton}/fiscal-years/{year}/designations/{person}")).StatusCode);
            }

            var ballot = await democracy.BallotAsync(canton, choices);
            await democracy.ReceiptAsync(canton, ballot, people[0], choices[0]);
            await democracy.ReceiptAsync(canton, ballot, people[1], choices[1]);
            Assert.Equal(HttpStatusCode.Conflict, (await democracy.VoteAsync(canton, ballot, people[1], choices[0])).StatusCode);
            await democracy.CloseAsync(canton, ballot);
            await traced.ProjectedAsync(BudgetProjection.ProjectionName);
            await traced.Services.GetRequiredService<LedgerMetrics>().ReadAsync(CancellationToken.None);
            scraped = await (await traced.CreateClient().GetAsync(Telemetry.ScrapePath)).Content.ReadAsStringAsync();

            var keys = traced.Services.GetRequiredService<PersonKeys>();
            var years = await traced.Services.GetRequiredService<FiscalYearKeys>().FindAsync(canton, year, CancellationToken.None);
            var pseudonyms = traced.Services.GetRequiredService<Pseudonyms>();
            var handles = new List<string>();
            foreach (var person in people)
            {
                var key = (await keys.FindAsync(person, CancellationToken.None))!;
                handles.AddRange([person, pseudonyms.Of(person), key.Taxpayer, key.Resident, years!.Of(key.Taxpayer)]);
            }

            secrets = [.. handles, .. choices];
            // Everything recorded so far goes to the collector now (the Prometheus reader's part of the meter provider's flush
            // is a scrape's, so its result is not the OTLP export's).
            Assert.True(traced.Services.GetRequiredService<TracerProvider>().ForceFlush());
            traced.Services.GetRequiredService<MeterProvider>().ForceFlush();
            Assert.True(traced.Services.GetRequiredService<LoggerProvider>().ForceFlush());
        }

        var received = collector.Received;
        Assert.Contains("/v1/traces", received.Keys);
        Assert.Contains("/v1/metrics", received.Keys);
        Assert.Contains("/v1/logs", received.Keys);
        var exported = received.ToDictionary(r => r.Key, r => Encoding.UTF8.GetString([.. r.Value.SelectMany(b => b)]));
        // What was exported is real: the spans name routes, Npgsql's and Marten's work; the metrics ours; the logs requests.
        Assert.Contains("/api/v1/cantons/{cantonId}/ballots/{ballotId:guid}/votes", exported["/v1/traces"], StringComparison.Ordinal);
        Assert.Contains("Npgsql", exported["/v1/traces"], StringComparison.Ordinal);
        Assert.Contains("marten.connection", exported["/v1/traces"], StringComparison.Ordinal);
        Assert.Contains("confederal_events_appended", exported["/v1/metrics"], StringComparison.Ordinal);
        Assert.Contains("answered", exported["/v1/logs"], StringComparison.Ordinal);
        Assert.Contains("confederal_requests_refused_total", scraped, StringComparison.Ordinal);
        foreach (var secret in secrets)
        {
            Assert.False(scraped.Contains(secret, StringComparison.Ordinal), $"/metrics names '{secret}'.");
            foreach (var (signal, text) in exported)
            {
                Assert.False(text.Contains(secret, StringComparison.Ordinal), $"OTLP {signal} names '{secret}'.");
            }
        }
    }

    private async Task<string> ScrapeAsync()
    {
        using var response = await api.CreateClient().GetAsync(Telemetry.ScrapePath);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>The value of the sample of <paramref name="name"/> whose labels include all of <paramref name="labels"/>.</summary>
    private static double? Value(string scraped, string name, params string[] labels)
    {
        foreach (Match sample in Sample().Matches(scraped))
        {
            if (sample.Groups["name"].Value == name && labels.All(l => sample.Groups["labels"].Value.Contains(l, StringComparison.Ordinal)))
            {
                return double.Parse(sample.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>[^}]*)\})? (?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex Sample();

    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();

    /// <summary>An OTLP/HTTP receiver on loopback that keeps every body it is sent, by path (/v1/traces, /v1/metrics,
    /// /v1/logs). OTLP's protobuf writes strings as their UTF-8 bytes, so a name in any attribute is found in them.</summary>
    private sealed class OtlpCollector : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentDictionary<string, ConcurrentQueue<byte[]>> _received = new(StringComparer.Ordinal);

        private OtlpCollector(WebApplication app) => _app = app;

        public string Address => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();

        public IReadOnlyDictionary<string, ConcurrentQueue<byte[]>> Received => _received;

        public static async Task<OtlpCollector> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            var app = builder.Build();
            var collector = new OtlpCollector(app);
            app.MapPost("/v1/{signal}", async (HttpContext http) =>
            {
                using var body = new MemoryStream();
                await http.Request.Body.CopyToAsync(body);
                collector._received.GetOrAdd(http.Request.Path, _ => new()).Enqueue(body.ToArray());
                http.Response.ContentType = "application/x-protobuf";
            });
            await app.StartAsync();
            return collector;
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }
}

[CollectionDefinition(TelemetryTests.Alone, DisableParallelization = true)]
public sealed class TelemetryCollection;
