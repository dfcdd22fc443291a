using System.Net;
using System.Net.Http.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

public sealed class RequestLogTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    [Fact]
    public async Task Each_request_is_logged_once_by_route_template_never_by_raw_path_or_body()
    {
        var response = await api.Admin().PutAsJsonAsync("/api/v1/cantons/zg-logged", new { name = "Zug body text", currency = "CHF" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);

        var requestLines = api.Logs.Lines.Where(l => l.StartsWith("Confederal.Requests:", StringComparison.Ordinal)).ToList();
        Assert.Single(requestLines, l => l.Contains("PUT /api/v1/cantons/{cantonId} answered 201", StringComparison.Ordinal));
        Assert.DoesNotContain(api.Logs.Lines, l => l.Contains("zg-logged", StringComparison.Ordinal));
        Assert.DoesNotContain(api.Logs.Lines, l => l.Contains("Zug body text", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_request_refused_by_an_exception_is_logged_with_the_status_its_client_got()
    {
        var response = await api.ClientAs(Roles.Municipality, subject: "nowhere-admin", canton: "nowhere")
            .PostAsJsonAsync("/api/v1/cantons/nowhere/tax-assessments", new { personId = "p-logged", fiscalYear = 2026, amountMinor = 1 });
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);

        Assert.Single(api.Logs.Lines, l => l.Contains("POST /api/v1/cantons/{cantonId}/tax-assessments answered 404", StringComparison.Ordinal));
        Assert.DoesNotContain(api.Logs.Lines, l => l.Contains("tax-assessments answered 200", StringComparison.Ordinal));
    }
}
