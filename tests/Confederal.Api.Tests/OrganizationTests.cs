using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

public sealed class OrganizationTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    private sealed record Organization(string OrganizationId, string Name, string Kind, bool AcceptsRedistribution, bool Suspended);

    [Fact]
    public async Task The_admin_recognizes_updates_suspends_and_reinstates_and_retries_record_nothing()
    {
        var admin = _fiscal.Admin;
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsJsonAsync("/api/v1/organizations/kernel",
            new { name = "Kernel", kind = "commons", acceptsRedistribution = true })).StatusCode);
        var events = await api.CountEventsAsync();

        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/v1/organizations/kernel",
            new { name = "Kernel", kind = "commons", acceptsRedistribution = true })).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
        await Fiscal.Ok(admin.PutAsJsonAsync("/api/v1/organizations/kernel", new { name = "Kernel", kind = "commons", acceptsRedistribution = false }));
        await Fiscal.Ok(admin.PostAsync("/api/v1/organizations/kernel/suspension", null));
        await Fiscal.Ok(admin.PostAsync("/api/v1/organizations/kernel/suspension", null));
        Assert.Equal(events + 2, await api.CountEventsAsync());

        await api.ProjectedAsync("organizations");
        var listed = await api.CreateClient().GetFromJsonAsync<Organization>("/api/v1/organizations/kernel");
        Assert.Equal(new Organization("kernel", "Kernel", "commons", false, true), listed);
        await Fiscal.Ok(admin.PostAsync("/api/v1/organizations/kernel/reinstatement", null));
        await Fiscal.Ok(admin.PostAsync("/api/v1/organizations/kernel/reinstatement", null));
        Assert.Equal(events + 3, await api.CountEventsAsync());
        await api.ProjectedAsync("organizations");
        Assert.False((await api.CreateClient().GetFromJsonAsync<Organization>("/api/v1/organizations/kernel"))!.Suspended);
    }

    [Fact]
    public async Task The_public_list_filters_by_kind()
    {
        await _fiscal.OrganizationAsync("kind-choir", "cultural");
        await _fiscal.OrganizationAsync("kind-diaspora", "origin");
        await api.ProjectedAsync("organizations");

        var cultural = await api.CreateClient().GetFromJsonAsync<Organization[]>("/api/v1/organizations?kind=cultural");

        Assert.Contains(cultural!, o => o.OrganizationId == "kind-choir");
        Assert.All(cultural!, o => Assert.Equal("cultural", o.Kind));
        Assert.Equal(HttpStatusCode.BadRequest, (await api.CreateClient().GetAsync("/api/v1/organizations?kind=religion")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await api.CreateClient().GetAsync("/api/v1/organizations/kind-nobody")).StatusCode);
    }

    public static TheoryData<string, string, HttpStatusCode> BadOrganizations => new()
    {
        { "unknown kind", """{"name": "X", "kind": "religion", "acceptsRedistribution": true}""", HttpStatusCode.BadRequest },
        { "kind as a number", """{"name": "X", "kind": 1, "acceptsRedistribution": true}""", HttpStatusCode.BadRequest },
        { "missing acceptsRedistribution", """{"name": "X", "kind": "commons"}""", HttpStatusCode.BadRequest },
        { "blank name", """{"name": "", "kind": "commons", "acceptsRedistribution": true}""", HttpStatusCode.BadRequest },
        { "unknown member", """{"name": "X", "kind": "commons", "acceptsRedistribution": true, "religion": "x"}""", HttpStatusCode.BadRequest },
    };

    [Theory]
    [MemberData(nameof(BadOrganizations))]
    public async Task A_bad_organization_is_a_400_problem_and_records_nothing(string why, string body, HttpStatusCode expected)
    {
        var events = await api.CountEventsAsync();

        var response = await _fiscal.Admin.PutAsync("/api/v1/organizations/bad-org", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.True(expected == response.StatusCode, $"{why}: {(int)response.StatusCode}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task Only_the_admin_manages_organizations_and_an_unknown_one_cannot_be_suspended()
    {
        var events = await api.CountEventsAsync();
        var body = new { name = "X", kind = "commons", acceptsRedistribution = true };

        Assert.Equal(HttpStatusCode.Forbidden, (await _fiscal.Municipality("ge").PutAsJsonAsync("/api/v1/organizations/x-org", body)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await api.ClientAs(Roles.Organization, "x-org").PutAsJsonAsync("/api/v1/organizations/x-org", body)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await api.CreateClient().PostAsync("/api/v1/organizations/x-org/suspension", null)).StatusCode);
        var unknown = await _fiscal.Admin.PostAsync("/api/v1/organizations/x-org/suspension", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
    }
}

public sealed class FiscalPolicyTests(ApiFactory api) : IClassFixture<ApiFactory>, IAsyncLifetime
{
    private readonly Fiscal _fiscal = new(api);

    public async Task InitializeAsync()
    {
        await _fiscal.CantonAsync("pol");
        await _fiscal.OrganizationAsync("pol-arts", "cultural");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task The_municipality_sets_the_policy_and_anyone_reads_it()
    {
        var deadline = new DateTimeOffset(2099, 3, 31, 22, 0, 0, TimeSpan.Zero);
        var set = await _fiscal.Municipality("pol").PutAsJsonAsync("/api/v1/cantons/pol/fiscal-years/2030/policy", new
        {
            designationRateBp = 70, unallocatedPolicy = "proportional", deadline, eligibleOrganizations = new[] { "pol-arts" },
        });
        Assert.Equal(HttpStatusCode.Created, set.StatusCode);

        var read = await api.CreateClient().GetFromJsonAsync<JsonElement>("/api/v1/cantons/pol/fiscal-years/2030/policy");
        Assert.Equal(70, read.GetProperty("designationRateBp").GetInt32());
        Assert.Equal(3, read.GetProperty("maxOrganizations").GetInt32()); // the default
        Assert.Equal("proportional", read.GetProperty("unallocatedPolicy").GetString());
        Assert.Equal(deadline, read.GetProperty("deadline").GetDateTimeOffset());
        Assert.Equal("pol-arts", read.GetProperty("eligibleOrganizations")[0].GetString());
        Assert.Equal(HttpStatusCode.NotFound, (await api.CreateClient().GetAsync("/api/v1/cantons/pol/fiscal-years/2031/policy")).StatusCode);
    }

    public static TheoryData<string, string, HttpStatusCode, string?> BadPolicies => new()
    {
        { "rate over 10000", """{"designationRateBp": 10001, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z"}""", HttpStatusCode.BadRequest, null },
        { "negative rate", """{"designationRateBp": -1, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z"}""", HttpStatusCode.BadRequest, null },
        { "eleven organizations", """{"designationRateBp": 70, "maxOrganizations": 11, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z"}""", HttpStatusCode.BadRequest, null },
        { "unknown unallocated policy", """{"designationRateBp": 70, "unallocatedPolicy": "give-away", "deadline": "2099-01-01T00:00:00Z"}""", HttpStatusCode.BadRequest, null },
        { "no deadline", """{"designationRateBp": 70, "unallocatedPolicy": "retain"}""", HttpStatusCode.BadRequest, null },
        { "deadline not a date", """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "soon"}""", HttpStatusCode.BadRequest, null },
        { "eligible neither all nor a list", """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z", "eligibleOrganizations": "some"}""", HttpStatusCode.BadRequest, null },
        { "eligible empty list", """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z", "eligibleOrganizations": []}""", HttpStatusCode.BadRequest, null },
        { "eligible twice the same", """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z", "eligibleOrganizations": ["pol-arts", "pol-arts"]}""", HttpStatusCode.BadRequest, null },
        { "eligible unknown organization", """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "2099-01-01T00:00:00Z", "eligibleOrganizations": ["pol-nobody"]}""", HttpStatusCode.Conflict, "organization-unknown" },
        { "deadline in the past", """{"designationRateBp": 70, "unallocatedPolicy": "retain", "deadline": "2001-01-01T00:00:00Z"}""", HttpStatusCode.Conflict, "deadline-in-the-past" },
    };

    [Theory]
    [MemberData(nameof(BadPolicies))]
    public async Task A_bad_policy_is_a_4xx_problem_and_records_nothing(string why, string body, HttpStatusCode expected, string? code)
    {
        var events = await api.CountEventsAsync();

        var response = await _fiscal.Municipality("pol").PutAsync("/api/v1/cantons/pol/fiscal-years/2032/policy", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.True(expected == response.StatusCode, $"{why}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        if (code is not null)
        {
            Assert.Equal(code, await Fiscal.CodeAsync(response));
        }

        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task A_policy_for_an_unknown_canton_or_year_out_of_range_is_refused()
    {
        var events = await api.CountEventsAsync();
        var body = new { designationRateBp = 70, unallocatedPolicy = "retain", deadline = DateTimeOffset.UtcNow.AddDays(1) };

        Assert.Equal(HttpStatusCode.NotFound, (await _fiscal.Municipality("pol-nowhere").PutAsJsonAsync("/api/v1/cantons/pol-nowhere/fiscal-years/2030/policy", body)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _fiscal.Municipality("pol").PutAsJsonAsync("/api/v1/cantons/pol/fiscal-years/2101/policy", body)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await _fiscal.Municipality("pol").PutAsJsonAsync("/api/v1/cantons/pol/fiscal-years/twenty/policy", body)).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
    }
}
