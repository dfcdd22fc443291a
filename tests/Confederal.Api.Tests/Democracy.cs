using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>Helpers for residents, voting rules and ballots over the API.</summary>
public sealed class Democracy(ApiFactory api)
{
    public Fiscal Fiscal { get; } = new(api);

    public DateOnly Today => DateOnly.FromDateTime(api.Clock.GetUtcNow().UtcDateTime);

    public async Task<HttpResponseMessage> ResideAsync(string canton, string person, DateOnly since, DateOnly? birth = null) =>
        await Fiscal.Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/residents",
            new { personId = person, residentSince = since, birthDate = birth ?? new DateOnly(1980, 5, 17) });

    public async Task<HttpResponseMessage> DepartAsync(string canton, string person, DateOnly leftOn) =>
        await Fiscal.Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/residents/{person}/departure", new { leftOn });

    public async Task<long> CensusAsync(string canton, DateOnly on)
    {
        var census = await api.CreateClient().GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/census?on={on:yyyy-MM-dd}");
        return census.GetProperty("residents").GetInt64();
    }

    /// <summary>Calls a ballot open from a minute ago for an hour, its census date the day it opens unless given.</summary>
    public async Task<Guid> BallotAsync(string canton, string[]? options = null, object? proposal = null, DateOnly? censusDate = null,
        DateTimeOffset? opensAt = null, DateTimeOffset? closesAt = null)
    {
        var response = await CallAsync(canton, options, proposal, censusDate, opensAt, closesAt);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("ballotId").GetGuid();
    }

    public Task<HttpResponseMessage> CallAsync(string canton, string[]? options = null, object? proposal = null, DateOnly? censusDate = null,
        DateTimeOffset? opensAt = null, DateTimeOffset? closesAt = null)
    {
        var now = api.Clock.GetUtcNow();
        var opens = opensAt ?? now.AddMinutes(-1);
        return Fiscal.Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/ballots", new
        {
            question = "Shall the canton do it?",
            options = options ?? (proposal is null ? ["alpha-choice", "beta-choice", "gamma-choice"] : ["yes", "no"]),
            censusDate = censusDate ?? DateOnly.FromDateTime(opens.UtcDateTime),
            opensAt = opens,
            closesAt = closesAt ?? now.AddHours(1),
            proposal,
        });
    }

    public Task<HttpResponseMessage> VoteAsync(string canton, Guid ballot, string person, string option) =>
        Fiscal.Person(person).PostAsJsonAsync($"/api/v1/cantons/{canton}/ballots/{ballot}/votes", new { option });

    public async Task<string> ReceiptAsync(string canton, Guid ballot, string person, string option)
    {
        var response = await Fiscal.Ok(VoteAsync(canton, ballot, person, option));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("receipt").GetString()!;
    }

    public async Task<JsonElement> EligibilityAsync(string canton, Guid ballot, string person) =>
        await Fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/ballots/{ballot}/eligibility");

    /// <summary>Moves the clock past the ballot's end and closes it.</summary>
    public async Task<JsonElement> CloseAsync(string canton, Guid ballot)
    {
        api.Clock.Advance(TimeSpan.FromHours(2));
        var response = await Fiscal.Ok(Fiscal.Municipality(canton).PostAsync($"/api/v1/cantons/{canton}/ballots/{ballot}/close", null));
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    public async Task<JsonElement> ResultsAsync(string canton, Guid ballot, int page = 0) =>
        await api.CreateClient().GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/ballots/{ballot}/results?page={page}");
}
