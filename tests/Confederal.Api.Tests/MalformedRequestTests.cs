using System.Net;
using System.Text;
using System.Text.Json;

namespace Confederal.Api.Tests;

/// <summary>Whatever arrives, the answer is a 4xx problem, never a 500, and nothing is recorded.</summary>
public sealed class MalformedRequestTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    public static TheoryData<string, string, string, string, HttpStatusCode> Requests => new()
    {
        { "malformed JSON", "/api/v1/cantons/ge", """{"name": "Genève", "currency": """, "application/json", HttpStatusCode.BadRequest },
        { "not JSON at all", "/api/v1/cantons/ge", "name=Genève", "application/json", HttpStatusCode.BadRequest },
        { "empty body", "/api/v1/cantons/ge", "", "application/json", HttpStatusCode.BadRequest },
        { "JSON null", "/api/v1/cantons/ge", "null", "application/json", HttpStatusCode.BadRequest },
        { "an array", "/api/v1/cantons/ge", "[]", "application/json", HttpStatusCode.BadRequest },
        { "wrong content type", "/api/v1/cantons/ge", """{"name": "Genève", "currency": "CHF"}""", "text/plain", HttpStatusCode.UnsupportedMediaType },
        { "unknown field", "/api/v1/cantons/ge", """{"name": "Genève", "currency": "CHF", "nationality": "x"}""", "application/json", HttpStatusCode.BadRequest },
        { "a number for a string", "/api/v1/cantons/ge", """{"name": 12, "currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "missing name", "/api/v1/cantons/ge", """{"currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "blank name", "/api/v1/cantons/ge", """{"name": "  ", "currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "unknown currency", "/api/v1/cantons/ge", """{"name": "Genève", "currency": "XYZ"}""", "application/json", HttpStatusCode.BadRequest },
        { "lowercase currency", "/api/v1/cantons/ge", """{"name": "Genève", "currency": "chf"}""", "application/json", HttpStatusCode.BadRequest },
        { "uppercase canton id", "/api/v1/cantons/GE", """{"name": "Genève", "currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "one-letter canton id", "/api/v1/cantons/g", """{"name": "Genève", "currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "canton id with a dot", "/api/v1/cantons/g.e", """{"name": "Genève", "currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "name too long", "/api/v1/cantons/ge", $$"""{"name": "{{new string('x', 201)}}", "currency": "CHF"}""", "application/json", HttpStatusCode.BadRequest },
        { "unknown route", "/api/v1/nowhere", "{}", "application/json", HttpStatusCode.NotFound },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Bad_input_is_a_4xx_problem_and_records_nothing(string why, string path, string body, string contentType, HttpStatusCode expected)
    {
        var events = await api.CountEventsAsync();
        using var content = new StringContent(body, Encoding.UTF8, contentType);

        var response = await api.Admin().PutAsync(path, content);

        Assert.True(expected == response.StatusCode, $"{why}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal((int)expected, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_validation_problem_names_each_field_with_its_message()
    {
        using var content = new StringContent("""{"name": "", "currency": "XYZ"}""", Encoding.UTF8, "application/json");

        var response = await api.Admin().PutAsync("/api/v1/cantons/ge", content);

        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var errors = problem.RootElement.GetProperty("errors");
        Assert.True(errors.TryGetProperty("name", out _));
        Assert.Contains("ISO 4217", errors.GetProperty("currency")[0].GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_method_the_route_does_not_allow_is_a_405_problem()
    {
        var response = await api.Admin().DeleteAsync("/api/v1/cantons/ge");

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }
}
