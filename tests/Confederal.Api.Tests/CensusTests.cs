using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>The census of DESIGN.md: residence only, one residence at a time, counts and never lists.</summary>
public sealed class CensusTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Democracy _d = new(api);
    private static readonly DateOnly Jan2020 = new(2020, 1, 1);

    [Fact]
    public async Task An_arrival_ends_the_residence_elsewhere_on_that_day()
    {
        await _d.Fiscal.CantonAsync("cz-a");
        await _d.Fiscal.CantonAsync("cz-b", "EUR");
        Assert.Equal(HttpStatusCode.Created, (await _d.ResideAsync("cz-a", "mover", Jan2020)).StatusCode);
        var moved = new DateOnly(2023, 6, 1);
        Assert.Equal(HttpStatusCode.Created, (await _d.ResideAsync("cz-b", "mover", moved)).StatusCode);

        Assert.Equal(0, await _d.CensusAsync("cz-a", Jan2020.AddDays(-1)));
        Assert.Equal(1, await _d.CensusAsync("cz-a", Jan2020));
        Assert.Equal(1, await _d.CensusAsync("cz-a", moved.AddDays(-1)));
        Assert.Equal(0, await _d.CensusAsync("cz-a", moved));
        Assert.Equal(0, await _d.CensusAsync("cz-b", moved.AddDays(-1)));
        Assert.Equal(1, await _d.CensusAsync("cz-b", moved));
    }

    [Fact]
    public async Task A_departure_counts_from_the_day_left_and_a_retry_records_nothing()
    {
        await _d.Fiscal.CantonAsync("cz-dep");
        await _d.ResideAsync("cz-dep", "leaver", Jan2020);
        await _d.ResideAsync("cz-dep", "stayer", Jan2020);
        var left = new DateOnly(2024, 3, 10);
        Assert.Equal(HttpStatusCode.OK, (await _d.DepartAsync("cz-dep", "leaver", left)).StatusCode);
        var events = await api.CountEventsAsync();

        Assert.Equal(HttpStatusCode.OK, (await _d.DepartAsync("cz-dep", "leaver", left)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _d.ResideAsync("cz-dep", "stayer", Jan2020)).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
        Assert.Equal(2, await _d.CensusAsync("cz-dep", left.AddDays(-1)));
        Assert.Equal(1, await _d.CensusAsync("cz-dep", left));
    }

    [Fact]
    public async Task The_census_is_a_public_count_never_a_list()
    {
        await _d.Fiscal.CantonAsync("cz-count");
        await _d.ResideAsync("cz-count", "counted-person", Jan2020);
        var body = await api.CreateClient().GetStringAsync($"/api/v1/cantons/cz-count/census?on=2021-01-01");
        using var census = JsonDocument.Parse(body);
        Assert.Equal(["cantonId", "on", "residents"], census.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.DoesNotContain("counted-person", body, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await api.CreateClient().GetAsync("/api/v1/cantons/cz-nowhere/census")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.CreateClient().GetAsync("/api/v1/cantons/cz-count/census?on=yesterday")).StatusCode);
    }

    [Fact]
    public async Task Residence_history_is_not_rewritten()
    {
        await _d.Fiscal.CantonAsync("cz-r1");
        await _d.Fiscal.CantonAsync("cz-r2");
        await _d.ResideAsync("cz-r1", "hist", new DateOnly(2021, 1, 1));
        var events = await api.CountEventsAsync();

        await api.AssertRefusedAsync(await _d.ResideAsync("cz-r2", "hist", new DateOnly(2020, 1, 1)), HttpStatusCode.Conflict, "residence-out-of-order", events);
        await api.AssertRefusedAsync(await _d.ResideAsync("cz-r1", "hist", new DateOnly(2022, 1, 1)), HttpStatusCode.Conflict, "already-resident", events);
        await api.AssertRefusedAsync(await _d.ResideAsync("cz-r2", "hist", new DateOnly(2022, 1, 1), birth: new DateOnly(1990, 1, 1)),
            HttpStatusCode.Conflict, "birth-date-mismatch", events);
        await api.AssertRefusedAsync(await _d.DepartAsync("cz-r2", "hist", new DateOnly(2022, 1, 1)), HttpStatusCode.Conflict, "not-resident", events);
        await api.AssertRefusedAsync(await _d.DepartAsync("cz-r1", "hist", new DateOnly(2021, 1, 1)), HttpStatusCode.Conflict, "departure-before-arrival", events);
        await api.AssertRefusedAsync(await _d.DepartAsync("cz-r1", "nobody", new DateOnly(2021, 1, 1)), HttpStatusCode.Conflict, "not-resident", events);
    }

    [Fact]
    public async Task Bad_residence_input_is_a_problem_and_records_nothing()
    {
        await _d.Fiscal.CantonAsync("cz-bad");
        var municipality = _d.Fiscal.Municipality("cz-bad");
        var events = await api.CountEventsAsync();
        var tomorrow = _d.Today.AddDays(1);
        object[] bodies =
        [
            new { personId = "bad id!", residentSince = "2020-01-01", birthDate = "1980-01-01" },
            new { personId = "p1", residentSince = tomorrow, birthDate = "1980-01-01" },
            new { personId = "p1", residentSince = "2020-01-01", birthDate = "2021-01-01" },
            new { personId = "p1", residentSince = "1850-01-01", birthDate = "1840-01-01" },
            new { personId = "p1", birthDate = "1980-01-01" },
            new { personId = "p1", residentSince = "2020-01-01" },
            new { personId = "p1", residentSince = "2020-13-01", birthDate = "1980-01-01" },
            new { personId = "p1", residentSince = "2020-01-01", birthDate = "1980-01-01", nationality = "any" },
            new { personId = "p1", residentSince = "2020-01-01", birthDate = "1980-01-01", origin = "any" },
        ];
        foreach (var body in bodies)
        {
            await api.AssertRefusedAsync(await municipality.PostAsJsonAsync("/api/v1/cantons/cz-bad/residents", body), HttpStatusCode.BadRequest, null, events);
        }

        await api.AssertRefusedAsync(await municipality.PostAsJsonAsync("/api/v1/cantons/cz-bad/residents/p1/departure", new { leftOn = tomorrow }),
            HttpStatusCode.BadRequest, null, events);
        await api.AssertRefusedAsync(await _d.ResideAsync("cz-nowhere", "p1", Jan2020), HttpStatusCode.NotFound, null, events);
        var other = api.ClientAs(Roles.Municipality, "x", canton: "cz-other");
        Assert.Equal(HttpStatusCode.Forbidden, (await other.PostAsJsonAsync("/api/v1/cantons/cz-bad/residents",
            new { personId = "p1", residentSince = "2020-01-01", birthDate = "1980-01-01" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _d.Fiscal.Person("p1").PostAsJsonAsync("/api/v1/cantons/cz-bad/residents",
            new { personId = "p1", residentSince = "2020-01-01", birthDate = "1980-01-01" })).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task Voting_rules_default_to_16_and_no_minimum_and_are_validated()
    {
        await _d.Fiscal.CantonAsync("cz-rules");
        var rules = await api.CreateClient().GetFromJsonAsync<JsonElement>("/api/v1/cantons/cz-rules/voting-rules");
        Assert.Equal(16, rules.GetProperty("votingAge").GetInt32());
        Assert.Equal(0, rules.GetProperty("minimumResidenceDays").GetInt32());

        var municipality = _d.Fiscal.Municipality("cz-rules");
        await Fiscal.Ok(municipality.PutAsJsonAsync("/api/v1/cantons/cz-rules/voting-rules", new { votingAge = 18, minimumResidenceDays = 90 }));
        var events = await api.CountEventsAsync();
        await Fiscal.Ok(municipality.PutAsJsonAsync("/api/v1/cantons/cz-rules/voting-rules", new { votingAge = 18, minimumResidenceDays = 90 }));
        Assert.Equal(events, await api.CountEventsAsync());
        rules = await api.CreateClient().GetFromJsonAsync<JsonElement>("/api/v1/cantons/cz-rules/voting-rules");
        Assert.Equal(18, rules.GetProperty("votingAge").GetInt32());

        foreach (var body in new object[] { new { votingAge = -1, minimumResidenceDays = 0 }, new { votingAge = 16 }, new { votingAge = 16, minimumResidenceDays = 99999 } })
        {
            await api.AssertRefusedAsync(await municipality.PutAsJsonAsync("/api/v1/cantons/cz-rules/voting-rules", body), HttpStatusCode.BadRequest, null, events);
        }
    }
}
