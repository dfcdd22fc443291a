using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Pacts;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

/// <summary>Helpers that set up a canton, its organizations, a fiscal year, residents and pacts over the API;
/// memberships, which only a carried ballot records, are appended as events.</summary>
public sealed class Fiscal(ApiFactory api)
{
    public HttpClient Admin { get; } = api.Admin();

    public HttpClient Municipality(string canton) => api.ClientAs(Roles.Municipality, subject: $"{canton}-admin", canton: canton);

    public HttpClient Person(string personId) => api.ClientAs(Roles.Person, subject: personId);

    public async Task CantonAsync(string canton, string currency = "CHF") =>
        await Ok(Admin.PutAsJsonAsync($"/api/v1/cantons/{canton}", new { name = canton.ToUpperInvariant(), currency }));

    public async Task OrganizationAsync(string id, string kind = "commons", bool acceptsRedistribution = true) =>
        await Ok(Admin.PutAsJsonAsync($"/api/v1/organizations/{id}", new { name = id, kind, acceptsRedistribution }));

    public async Task PolicyAsync(string canton, int year, int rateBp, string unallocated = "retain", object? eligible = null,
        int maxOrganizations = 3, DateTimeOffset? deadline = null) =>
        await Ok(Municipality(canton).PutAsJsonAsync($"/api/v1/cantons/{canton}/fiscal-years/{year}/policy", new
        {
            designationRateBp = rateBp,
            maxOrganizations,
            unallocatedPolicy = unallocated,
            deadline = deadline ?? api.Clock.GetUtcNow().AddDays(30),
            eligibleOrganizations = eligible ?? "all",
        }));

    public async Task AssessAsync(string canton, string person, int year, long amountMinor) =>
        await Ok(Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/tax-assessments",
            new { personId = person, fiscalYear = year, amountMinor }));

    public Task<HttpResponseMessage> DesignateAsync(string canton, int year, string person, bool standing, params (string Organization, int ShareBp)[] choices) =>
        Person(person).PutAsJsonAsync($"/api/v1/cantons/{canton}/fiscal-years/{year}/designations/{person}", new
        {
            choices = choices.Select(c => new { organizationId = c.Organization, shareBp = c.ShareBp }),
            standing,
        });

    public async Task PactAsync(string pact, string currency = "CHF", string distribution = "equal") =>
        await Ok(Admin.PutAsJsonAsync($"/api/v1/pacts/{pact}", new { name = pact.ToUpperInvariant(), currency, distribution }));

    /// <summary>What a carried join-pact ballot enacts.</summary>
    public Task JoinAsync(string pact, string canton, int rateBp, int fromYear) =>
        AppendAsync(Pact.MembershipsStreamId(canton), new PactJoined(pact, canton, rateBp, fromYear, Guid.NewGuid()));

    public Task LeaveAsync(string pact, string canton, int fromYear) =>
        AppendAsync(Pact.MembershipsStreamId(canton), new PactLeft(pact, canton, fromYear, Guid.NewGuid()));

    public async Task ResidentAsync(string person, string canton, DateOnly since) =>
        await Ok(Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/residents",
            new { personId = person, residentSince = since, birthDate = new DateOnly(1980, 1, 1) }));

    public async Task DepartAsync(string person, string canton, DateOnly leftOn) =>
        await Ok(Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/residents/{person}/departure", new { leftOn }));

    private async Task AppendAsync(string stream, object @event) =>
        await api.Services.GetRequiredService<EventLog>().AppendAsync(stream, ExpectedVersion.Any, [@event]);

    public async Task<Budget> BudgetAsync(string canton, int year)
    {
        await api.ProjectedAsync("budgets");
        return (await api.CreateClient().GetFromJsonAsync<Budget>($"/api/v1/cantons/{canton}/budgets/{year}"))!;
    }

    public static async Task<HttpResponseMessage> Ok(Task<HttpResponseMessage> request)
    {
        var response = await request;
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        return response;
    }

    public static async Task<string?> CodeAsync(HttpResponseMessage response)
    {
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return problem.RootElement.TryGetProperty("code", out var code) ? code.GetString() : null;
    }
}

public sealed record BudgetLine(string OrganizationId, long AmountMinor, long RedistributedMinor, long Taxpayers);

public sealed record PactLine(string PactId, long AmountMinor);

public sealed record Budget(
    string CantonId, int FiscalYear, string Currency, long RevenueMinor, long Taxpayers, int DesignationRateBp, long DesignablePoolMinor,
    BudgetLine[] Designations, long UnallocatedMinor, long RedistributedMinor, long RetainedMinor, long DesignatedMinor,
    PactLine[] Contributions, PactLine[] Receipts, long NetBudgetMinor, long Position)
{
    public long AmountOf(string organization) => Designations.SingleOrDefault(d => d.OrganizationId == organization)?.AmountMinor ?? 0;

    /// <summary>DESIGN.md's identity, checked on what the API serves.</summary>
    public bool Balances =>
        NetBudgetMinor == RevenueMinor - DesignatedMinor - Contributions.Sum(c => c.AmountMinor) + Receipts.Sum(r => r.AmountMinor)
        && DesignablePoolMinor == Designations.Sum(d => d.AmountMinor) + RetainedMinor;
}
