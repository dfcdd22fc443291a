using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

public sealed class CantonTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private sealed record Canton(string CantonId, string Name, string Currency);

    [Fact]
    public async Task Admin_registers_a_canton_and_the_public_directory_lists_it()
    {
        var response = await api.Admin().PutAsJsonAsync("/api/v1/cantons/ge", new { name = "Genève", currency = "CHF" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/api/v1/cantons/ge", response.Headers.Location?.OriginalString);
        Assert.Equal(new Canton("ge", "Genève", "CHF"), await response.Content.ReadFromJsonAsync<Canton>());
        await api.ProjectedAsync("cantons");
        var listed = await api.CreateClient().GetFromJsonAsync<Canton[]>("/api/v1/cantons");
        Assert.Contains(new Canton("ge", "Genève", "CHF"), listed!);
        Assert.Equal(new Canton("ge", "Genève", "CHF"), await api.CreateClient().GetFromJsonAsync<Canton>("/api/v1/cantons/ge"));
    }

    [Fact]
    public async Task A_retried_put_records_nothing_new_and_a_rename_records_one_event()
    {
        var admin = api.Admin();
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsJsonAsync("/api/v1/cantons/ti", new { name = "Ticino", currency = "CHF" })).StatusCode);
        var events = await api.CountEventsAsync();

        var retried = await admin.PutAsJsonAsync("/api/v1/cantons/ti", new { name = "Ticino", currency = "CHF" });
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());

        var renamed = await admin.PutAsJsonAsync("/api/v1/cantons/ti", new { name = "Tessin", currency = "CHF" });
        Assert.Equal(HttpStatusCode.OK, renamed.StatusCode);
        Assert.Equal("\"2\"", renamed.Headers.ETag?.Tag);
        Assert.Equal(events + 1, await api.CountEventsAsync());
        await api.ProjectedAsync("cantons");
        Assert.Equal("Tessin", (await api.CreateClient().GetFromJsonAsync<Canton>("/api/v1/cantons/ti"))!.Name);
    }

    [Fact]
    public async Task A_cantons_currency_cannot_change_once_registered()
    {
        var admin = api.Admin();
        await admin.PutAsJsonAsync("/api/v1/cantons/vd", new { name = "Vaud", currency = "CHF" });
        var events = await api.CountEventsAsync();

        var response = await admin.PutAsJsonAsync("/api/v1/cantons/vd", new { name = "Vaud", currency = "EUR" });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("currency-is-fixed", problem.RootElement.GetProperty("code").GetString());
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized)]
    [InlineData(Roles.Municipality, HttpStatusCode.Forbidden)]
    [InlineData(Roles.Person, HttpStatusCode.Forbidden)]
    [InlineData(Roles.Auditor, HttpStatusCode.Forbidden)]
    [InlineData(Roles.Organization, HttpStatusCode.Forbidden)]
    public async Task Only_the_confederation_admin_registers_cantons(string? role, HttpStatusCode expected)
    {
        var client = role is null ? api.CreateClient() : api.ClientAs(role, subject: "x-1", canton: role == Roles.Municipality ? "zh" : null);
        var events = await api.CountEventsAsync();

        var response = await client.PutAsJsonAsync("/api/v1/cantons/zh", new { name = "Zürich", currency = "CHF" });

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task An_unknown_canton_is_a_404_problem()
    {
        var response = await api.CreateClient().GetAsync("/api/v1/cantons/atlantis");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Events_carry_the_actor_and_the_callers_correlation_id()
    {
        var admin = api.Admin();
        admin.DefaultRequestHeaders.Add("X-Correlation-Id", "import-2031-07");
        await admin.PutAsJsonAsync("/api/v1/cantons/bs", new { name = "Basel-Stadt", currency = "CHF" });

        await using var command = api.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand(
            "SELECT correlation_id || ' ' || actor FROM es.events WHERE stream_id = 'canton-bs'");
        Assert.Equal("import-2031-07 confederation-admin:admin", await command.ExecuteScalarAsync());
    }
}
