using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

/// <summary>Requests the fuzzer found answered with a 500, accepted though malformed, or refused without a problem;
/// each is now a 4xx problem that records nothing.</summary>
public sealed class FoundByFuzzingTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    private async Task<long> CantonAsync(string canton)
    {
        await _fiscal.CantonAsync(canton);
        return await api.CountEventsAsync();
    }

    [Theory]
    [InlineData("application/xml")]
    [InlineData("text/html")]
    [InlineData("image/png")]
    public async Task A_client_that_accepts_no_JSON_still_gets_problems(string accept)
    {
        var client = api.CreateClient();
        client.DefaultRequestHeaders.Accept.ParseAdd(accept);

        // Thrown by a handler (was a 500: the exception handler declined, and a 404 it does not write becomes an error).
        await api.AssertRefusedAsync(await client.GetAsync("/api/v1/cantons/nowhere-canton"), HttpStatusCode.NotFound, null);
        // Thrown by the binder (was a 400 without a body).
        await api.AssertRefusedAsync(await client.GetAsync("/api/v1/cantons/nowhere-canton/budgets/20x6"), HttpStatusCode.BadRequest, null);
        // No route (was text/plain).
        await api.AssertRefusedAsync(await client.GetAsync("/api/v1/cantons/ge/ballots/not-a-guid"), HttpStatusCode.NotFound, null);
    }

    [Theory]
    [InlineData("""{"leftOn": "2026-01-01", "leftOn": "2026-01-01"}""")]
    [InlineData("""{"leftOn": "2026-01-01", "LeftOn": "2025-01-01"}""")]
    public async Task A_body_that_repeats_a_member_is_refused(string body)
    {
        await CantonAsync("rp");
        await _fiscal.ResidentAsync("repeat-1", "rp", new DateOnly(2000, 1, 1));
        var events = await api.CountEventsAsync();

        var response = await _fiscal.Municipality("rp").PostAsync("/api/v1/cantons/rp/residents/repeat-1/departure",
            new StringContent(body, Encoding.UTF8, "application/json"));

        await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, null, events);
    }

    [Theory]
    [InlineData("a b")]
    [InlineData("p\u0001")]
    [InlineData("é")]
    public async Task Designations_of_a_malformed_person_id_are_refused(string personId)
    {
        await CantonAsync("pm");
        await _fiscal.OrganizationAsync("pm-org");
        await _fiscal.PolicyAsync("pm", 2026, 70);
        var events = await api.CountEventsAsync();
        var person = _fiscal.Person(personId);
        var path = $"/api/v1/cantons/pm/fiscal-years/2026/designations/{Uri.EscapeDataString(personId)}";

        await api.AssertRefusedAsync(await person.PutAsJsonAsync(path, new { choices = new[] { new { organizationId = "pm-org", shareBp = 10000 } } }),
            HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await person.DeleteAsync(path), HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await person.GetAsync(path), HttpStatusCode.BadRequest, null);
    }

    [Theory]
    [InlineData("2026/01/01")]
    [InlineData("01/02/2026")]
    [InlineData("2026-1-2")]
    public async Task A_census_date_not_written_yyyy_mm_dd_is_refused(string on)
    {
        await _fiscal.CantonAsync("cd");

        await api.AssertRefusedAsync(await api.CreateClient().GetAsync($"/api/v1/cantons/cd/census?on={Uri.EscapeDataString(on)}"),
            HttpStatusCode.BadRequest, null);
        Assert.Equal(HttpStatusCode.OK, (await api.CreateClient().GetAsync("/api/v1/cantons/cd/census?on=2026-01-02")).StatusCode);
    }

    public static TheoryData<string, byte[]> BadBatches => new()
    {
        { "invalid UTF-8 in a string (was a 500)", [.. """{"personId": "p-"""u8, 0xC3, 0x28, .. "\", \"fiscalYear\": 2026, \"amountMinor\": 1}\n"u8] },
        { "a line over 4096 bytes arriving whole (was a 500 when it spanned two buffers)", Encoding.UTF8.GetBytes(
            string.Concat(Enumerable.Range(0, 40).Select(i => $$"""{"personId": "p-{{i}}", "fiscalYear": 2026, "amountMinor": 1}""" + "\n"))
            + $$"""{"personId": "{{new string('p', 5000)}}", "fiscalYear": 2026, "amountMinor": 1}""" + "\n") },
    };

    [Theory]
    [MemberData(nameof(BadBatches))]
    public async Task A_malformed_batch_line_is_reported_and_the_batch_records_nothing(string why, byte[] body)
    {
        var events = await CantonAsync("bb");
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-ndjson");

        var response = await _fiscal.Municipality("bb").PostAsync("/api/v1/cantons/bb/tax-assessments/batch", content);

        await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, null, events);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.True(problem.RootElement.GetProperty("invalidLines").GetInt64() == 1, why);
    }

    [Theory]
    [InlineData("\"", "\"}")]
    [InlineData("[\"", "\"]}")]
    public async Task Invalid_UTF_8_in_the_eligible_organizations_is_refused(string before, string after)
    {
        var events = await CantonAsync("eu");
        byte[] body = [.. """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z", "eligibleOrganizations": """u8,
            .. Encoding.UTF8.GetBytes(before), 0x80, .. "all"u8, .. Encoding.UTF8.GetBytes(after)];
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");

        var response = await _fiscal.Municipality("eu").PutAsync("/api/v1/cantons/eu/fiscal-years/2026/policy", content);

        await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, null, events);
    }

    [Theory]
    [InlineData("bad\u0000id", false)]
    [InlineData("tab\there", false)]
    [InlineData("ключ", false)]
    [InlineData("order-42/retry:1", true)]
    public async Task A_correlation_id_is_recorded_only_if_it_is_visible_ASCII(string correlation, bool kept)
    {
        var canton = $"ci-{Guid.NewGuid():N}"[..20];
        var client = api.Admin();
        client.DefaultRequestHeaders.TryAddWithoutValidation("X-Correlation-Id", correlation);

        var response = await client.PutAsJsonAsync($"/api/v1/cantons/{canton}", new { name = "Correlated", currency = "CHF" });

        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        await using var command = api.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand(
            "SELECT correlation_id FROM marten.mt_events WHERE stream_id LIKE '%' || $1");
        command.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = canton });
        var recorded = (string?)await command.ExecuteScalarAsync();
        Assert.Equal(kept, recorded == correlation);
        Assert.True(recorded is { Length: > 0 } && recorded.All(c => c is >= '!' and <= '~'), recorded);
    }
}
