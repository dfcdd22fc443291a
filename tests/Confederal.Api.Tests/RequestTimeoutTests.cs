using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

/// <summary>A request that cannot finish by its deadline (here: the log is locked by someone else) is cancelled down to
/// the database, answered 503 with Retry-After, and records nothing; once the lock is gone the same request succeeds.
/// The bulk import has a longer deadline of its own.</summary>
public sealed class RequestTimeoutTests
{
    private static async Task AssertTimedOutAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(503, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Contains("took too long", problem.RootElement.GetProperty("title").GetString(), StringComparison.Ordinal);
        Assert.Equal("5", Assert.Single(response.Headers.GetValues("Retry-After")));
    }

    [Fact]
    public async Task A_write_past_its_deadline_is_503_with_Retry_After_and_records_nothing()
    {
        await using var api = await ApiFactory.StartAsync(("RequestTimeouts:DefaultSeconds", "1"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        var municipality = fiscal.Municipality("ge");
        var events = await api.CountEventsAsync();

        var clock = Stopwatch.StartNew();
        await using (await EventLogLock.TakeAsync(api))
        {
            await AssertTimedOutAsync(await municipality.PostAsJsonAsync("/api/v1/cantons/ge/tax-assessments",
                new { personId = "alice", fiscalYear = 2026, amountMinor = 100_000 }));
            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));
        }

        Assert.Equal(events, await api.CountEventsAsync());
        var retried = await municipality.PostAsJsonAsync("/api/v1/cantons/ge/tax-assessments",
            new { personId = "alice", fiscalYear = 2026, amountMinor = 100_000 });
        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        Assert.Equal(events + 1, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_keyed_write_past_its_deadline_records_nothing_and_its_retry_with_the_same_key_is_recorded_once()
    {
        await using var api = await ApiFactory.StartAsync(("RequestTimeouts:DefaultSeconds", "1"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        var municipality = fiscal.Municipality("ge");
        municipality.DefaultRequestHeaders.Add(Idempotency.Header, "assessment-alice-2026");
        var events = await api.CountEventsAsync();
        Task<HttpResponseMessage> AssessAsync() => municipality.PostAsJsonAsync("/api/v1/cantons/ge/tax-assessments",
            new { personId = "alice", fiscalYear = 2026, amountMinor = 100_000 });

        await using (await EventLogLock.TakeAsync(api))
        {
            await AssertTimedOutAsync(await AssessAsync());
        }

        Assert.Equal(events, await api.CountEventsAsync());
        var retried = await AssessAsync();
        Assert.Equal(HttpStatusCode.Created, retried.StatusCode);
        Assert.False(retried.Headers.Contains(Idempotency.ReplayedHeader));
        var again = await AssessAsync();
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.Equal("true", Assert.Single(again.Headers.GetValues(Idempotency.ReplayedHeader)));
        Assert.Equal(events + 1, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_read_past_its_deadline_is_503_with_Retry_After()
    {
        await using var api = await ApiFactory.StartAsync(("RequestTimeouts:DefaultSeconds", "1"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        await api.ProjectedAsync("budgets");

        await using (await EventLogLock.TakeAsync(api))
        {
            await AssertTimedOutAsync(await api.CreateClient().GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=1"));
        }

        Assert.Equal(HttpStatusCode.OK, (await api.CreateClient().GetAsync("/api/v1/cantons/ge/budgets/2026?asOf=1")).StatusCode);
    }

    [Fact]
    public async Task A_bulk_import_has_a_longer_deadline_than_other_requests()
    {
        await using var api = await ApiFactory.StartAsync(("RequestTimeouts:DefaultSeconds", "1"), ("RequestTimeouts:ImportSeconds", "60"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        var events = await api.CountEventsAsync();
        var lines = string.Concat(Enumerable.Range(0, 100).Select(i => $$"""{"personId": "p-{{i}}", "fiscalYear": 2026, "amountMinor": 500}""" + "\n"));

        Task<HttpResponseMessage> import;
        await using (var hold = await EventLogLock.TakeAsync(api))
        {
            import = fiscal.Municipality("ge").PostAsync("/api/v1/cantons/ge/tax-assessments/batch",
                new StringContent(lines, Encoding.UTF8, "application/x-ndjson"));
            await Task.Delay(TimeSpan.FromSeconds(3)); // three times the default deadline
            Assert.False(import.IsCompleted);
        }

        var response = await import;
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal(events + 100, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_bulk_import_past_its_own_deadline_is_503_and_records_nothing()
    {
        await using var api = await ApiFactory.StartAsync(("RequestTimeouts:ImportSeconds", "1"));
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        var events = await api.CountEventsAsync();
        var lines = string.Concat(Enumerable.Range(0, 100).Select(i => $$"""{"personId": "p-{{i}}", "fiscalYear": 2026, "amountMinor": 500}""" + "\n"));

        await using (await EventLogLock.TakeAsync(api))
        {
            await AssertTimedOutAsync(await fiscal.Municipality("ge").PostAsync("/api/v1/cantons/ge/tax-assessments/batch",
                new StringContent(lines, Encoding.UTF8, "application/x-ndjson")));
        }

        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task Health_checks_have_no_deadline()
    {
        await using var api = await ApiFactory.StartAsync();

        var health = api.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.RoutePattern.RawText?.StartsWith("/health/", StringComparison.Ordinal) == true).ToList();

        Assert.Equal(2, health.Count);
        Assert.All(health, e => Assert.NotNull(e.Metadata.GetMetadata<DisableRequestTimeoutAttribute>()));
    }

    [Theory]
    [InlineData("POST", false)]
    [InlineData("PUT", false)]
    [InlineData("DELETE", false)]
    [InlineData("GET", true)]
    public async Task A_write_whose_handler_returned_is_answered_even_if_its_deadline_passed_meanwhile(string method, bool cancelled)
    {
        using var deadline = new CancellationTokenSource();
        var http = new DefaultHttpContext { Request = { Method = method } };
        http.Features.Set<IHttpRequestTimeoutFeature>(new Deadline(deadline));
        http.RequestAborted = deadline.Token;

        await RequestDeadlines.AnswerCommittedAsync(new DefaultEndpointFilterInvocationContext(http), _ =>
        {
            deadline.Cancel(); // the deadline passes between the commit and the answer
            return ValueTask.FromResult<object?>(Results.Created());
        });

        Assert.Equal(cancelled, http.RequestAborted.IsCancellationRequested);
    }

    private sealed class Deadline(CancellationTokenSource source) : IHttpRequestTimeoutFeature
    {
        public CancellationToken RequestTimeoutToken => source.Token;

        public void DisableTimeout() => source.CancelAfter(Timeout.InfiniteTimeSpan);
    }
}
