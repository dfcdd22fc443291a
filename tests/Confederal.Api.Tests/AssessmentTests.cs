using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>Tax assessments, one by one and in bulk: municipalities of their own canton only; bad input records nothing.</summary>
public sealed class AssessmentTests(ApiFactory api) : IClassFixture<ApiFactory>, IAsyncLifetime
{
    private readonly Fiscal _fiscal = new(api);

    public async Task InitializeAsync()
    {
        await _fiscal.CantonAsync("as-home");
        await _fiscal.CantonAsync("as-other");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<HttpResponseMessage> BatchAsync(string body, string contentType, string canton = "as-home") =>
        _fiscal.Municipality(canton).PostAsync($"/api/v1/cantons/{canton}/tax-assessments/batch", new StringContent(body, Encoding.UTF8, contentType));

    private async Task<JsonElement> ProblemAsync(HttpResponseMessage response, HttpStatusCode expected, long eventsBefore)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(expected == response.StatusCode, $"{(int)response.StatusCode} {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(eventsBefore, await api.CountEventsAsync());
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static TheoryData<string, string, string, HttpStatusCode> BadAssessments => new()
    {
        { "negative amount", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": -1}""", "application/json", HttpStatusCode.BadRequest },
        { "fractional amount", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": 10.5}""", "application/json", HttpStatusCode.BadRequest },
        { "amount over the ceiling", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": 100000000000001}""", "application/json", HttpStatusCode.BadRequest },
        { "amount over int64", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": 99999999999999999999}""", "application/json", HttpStatusCode.BadRequest },
        { "amount as a string", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": "100"}""", "application/json", HttpStatusCode.BadRequest },
        { "missing amount", """{"personId": "a1", "fiscalYear": 2026}""", "application/json", HttpStatusCode.BadRequest },
        { "person id with a space", """{"personId": "a 1", "fiscalYear": 2026, "amountMinor": 1}""", "application/json", HttpStatusCode.BadRequest },
        { "year before 2000", """{"personId": "a1", "fiscalYear": 1999, "amountMinor": 1}""", "application/json", HttpStatusCode.BadRequest },
        { "a nationality field", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": 1, "nationality": "x"}""", "application/json", HttpStatusCode.BadRequest },
        { "malformed JSON", """{"personId": "a1", "fiscalYear": 20""", "application/json", HttpStatusCode.BadRequest },
        { "wrong content type", """{"personId": "a1", "fiscalYear": 2026, "amountMinor": 1}""", "text/plain", HttpStatusCode.UnsupportedMediaType },
        { "oversized body", $$"""{"personId": "{{new string('a', 2 * 1024 * 1024)}}", "fiscalYear": 2026, "amountMinor": 1}""", "application/json", HttpStatusCode.RequestEntityTooLarge },
    };

    [Theory]
    [MemberData(nameof(BadAssessments))]
    public async Task A_bad_assessment_is_a_4xx_problem_and_records_nothing(string why, string body, string contentType, HttpStatusCode expected)
    {
        var events = await api.CountEventsAsync();

        var response = await _fiscal.Municipality("as-home").PostAsync("/api/v1/cantons/as-home/tax-assessments", new StringContent(body, Encoding.UTF8, contentType));

        Assert.True(expected == response.StatusCode, $"{why}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        await ProblemAsync(response, expected, events);
    }

    [Fact]
    public async Task An_assessment_for_an_unknown_canton_is_404_and_records_nothing()
    {
        var events = await api.CountEventsAsync();

        var response = await _fiscal.Municipality("as-nowhere").PostAsJsonAsync("/api/v1/cantons/as-nowhere/tax-assessments",
            new { personId = "a1", fiscalYear = 2026, amountMinor = 1 });

        await ProblemAsync(response, HttpStatusCode.NotFound, events);
    }

    [Fact]
    public async Task A_municipality_cannot_touch_another_cantons_data()
    {
        var events = await api.CountEventsAsync();
        var other = _fiscal.Municipality("as-other");

        Assert.Equal(HttpStatusCode.Forbidden, (await other.PostAsJsonAsync("/api/v1/cantons/as-home/tax-assessments",
            new { personId = "a1", fiscalYear = 2026, amountMinor = 1 })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await other.PostAsync("/api/v1/cantons/as-home/tax-assessments/batch",
            new StringContent("""{"personId": "a1", "fiscalYear": 2026, "amountMinor": 1}""", Encoding.UTF8, "application/x-ndjson"))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await other.PutAsJsonAsync("/api/v1/cantons/as-home/fiscal-years/2026/policy",
            new { designationRateBp = 70, unallocatedPolicy = "retain", deadline = DateTimeOffset.UtcNow.AddDays(1) })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await api.ClientAs(Roles.Municipality, "no-canton").PostAsJsonAsync("/api/v1/cantons/as-home/tax-assessments",
            new { personId = "a1", fiscalYear = 2026, amountMinor = 1 })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _fiscal.Admin.PostAsJsonAsync("/api/v1/cantons/as-home/tax-assessments",
            new { personId = "a1", fiscalYear = 2026, amountMinor = 1 })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _fiscal.Person("a1").PostAsJsonAsync("/api/v1/cantons/as-home/tax-assessments",
            new { personId = "a1", fiscalYear = 2026, amountMinor = 1 })).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_bulk_import_of_ndjson_and_csv_records_every_line_and_the_latest_assessment_of_a_person_wins()
    {
        await _fiscal.PolicyAsync("as-home", 2027, rateBp: 100);
        var ndjson = "\uFEFF{\"personId\": \"b1\", \"fiscalYear\": 2027, \"amountMinor\": 1000}\r\n"
                     + "{\"fiscalYear\": 2027, \"amountMinor\": 2000, \"personId\": \"b2\"}\n\n"
                     + "{\"personId\": \"b1\", \"fiscalYear\": 2027, \"amountMinor\": 1500}";
        var csv = "personId,fiscalYear,amountMinor\r\nb3,2027,3000\r\nb4,2027,0\r\n";

        var first = await BatchAsync(ndjson, "application/x-ndjson");
        var second = await BatchAsync(csv, "text/csv"); // StringContent adds "; charset=utf-8"

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(3, (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("assessments").GetInt64());
        Assert.Equal(2, (await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("assessments").GetInt64());
        var budget = await _fiscal.BudgetAsync("as-home", 2027);
        Assert.Equal(1_500 + 2_000 + 3_000, budget.RevenueMinor); // b1's 1,000 was corrected to 1,500
        Assert.Equal(4, budget.Taxpayers);
    }

    [Fact]
    public async Task One_bad_line_rejects_the_whole_batch_naming_each_bad_line_and_records_nothing()
    {
        var lines = Enumerable.Range(1, 5_000).Select(i => $"{{\"personId\": \"c{i}\", \"fiscalYear\": 2026, \"amountMinor\": {i}}}").ToList();
        lines[1_233] = """{"personId": "c1234", "fiscalYear": 2026, "amountMinor": -5}""";
        lines[4_999] = """{"personId": "c5000", "fiscalYear": 2026""";
        var events = await api.CountEventsAsync();

        var problem = await ProblemAsync(await BatchAsync(string.Join('\n', lines), "application/x-ndjson"), HttpStatusCode.BadRequest, events);

        Assert.Equal(2, problem.GetProperty("invalidLines").GetInt64());
        var errors = problem.GetProperty("errors").EnumerateArray().ToList();
        Assert.Equal([1_234L, 5_000L], errors.Select(e => e.GetProperty("line").GetInt64()));
        Assert.Contains("amountMinor", errors[0].GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_batch_lists_its_first_100_bad_lines_and_counts_them_all()
    {
        var csv = "personId,fiscalYear,amountMinor\n" + string.Join('\n', Enumerable.Range(1, 150).Select(i => $"d{i},2026,1.5"));
        var events = await api.CountEventsAsync();

        var problem = await ProblemAsync(await BatchAsync(csv, "text/csv"), HttpStatusCode.BadRequest, events);

        Assert.Equal(150, problem.GetProperty("invalidLines").GetInt64());
        Assert.Equal(100, problem.GetProperty("errors").GetArrayLength());
        Assert.Equal(2, problem.GetProperty("errors")[0].GetProperty("line").GetInt64());
    }

    public static TheoryData<string, string, string, HttpStatusCode> BadBatches => new()
    {
        { "empty body", "", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "only blank lines", "\n\n", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "CSV without its header", "e1,2026,100\n", "text/csv", HttpStatusCode.BadRequest },
        { "CSV with a wrong header", "person,year,amount\ne1,2026,100\n", "text/csv", HttpStatusCode.BadRequest },
        { "CSV with four fields", "personId,fiscalYear,amountMinor\ne1,2026,100,x\n", "text/csv", HttpStatusCode.BadRequest },
        { "CSV with a quoted field", "personId,fiscalYear,amountMinor\n\"e1\",2026,100\n", "text/csv", HttpStatusCode.BadRequest },
        { "NDJSON with an unknown member", """{"personId": "e1", "fiscalYear": 2026, "amountMinor": 1, "origin": "x"}""", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "NDJSON with a repeated member", """{"personId": "e1", "fiscalYear": 2026, "amountMinor": 1, "amountMinor": 2}""", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "NDJSON with two objects on a line", """{"personId": "e1", "fiscalYear": 2026, "amountMinor": 1}{}""", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "NDJSON array", """[{"personId": "e1", "fiscalYear": 2026, "amountMinor": 1}]""", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "a line too long", $$"""{"personId": "{{new string('e', 5000)}}", "fiscalYear": 2026, "amountMinor": 1}""", "application/x-ndjson", HttpStatusCode.BadRequest },
        { "JSON content type", """{"personId": "e1", "fiscalYear": 2026, "amountMinor": 1}""", "application/json", HttpStatusCode.UnsupportedMediaType },
    };

    [Theory]
    [MemberData(nameof(BadBatches))]
    public async Task A_bad_batch_is_a_4xx_problem_and_records_nothing(string why, string body, string contentType, HttpStatusCode expected)
    {
        var events = await api.CountEventsAsync();

        var response = await BatchAsync(body, contentType);

        Assert.True(expected == response.StatusCode, $"{why}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        await ProblemAsync(response, expected, events);
    }

    [Fact]
    public async Task A_batch_for_an_unknown_canton_is_404()
    {
        var events = await api.CountEventsAsync();

        await ProblemAsync(await BatchAsync("""{"personId": "e1", "fiscalYear": 2026, "amountMinor": 1}""", "application/x-ndjson", "as-nowhere"),
            HttpStatusCode.NotFound, events);
    }
}
