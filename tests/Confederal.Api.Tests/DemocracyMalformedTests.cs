using System.Text;

namespace Confederal.Api.Tests;

/// <summary>Malformed requests to the census and ballot endpoints: a 4xx problem, never a 500, nothing recorded.</summary>
public sealed class DemocracyMalformedTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    public static TheoryData<string, string, string, string?> Requests => new()
    {
        { "municipality", "POST", "/api/v1/cantons/dm/residents", """{"personId": "p1", "residentSince": "2020-02-30", "birthDate": "1980-01-01"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents", """{"personId": "p1", "residentSince": "01/02/2020", "birthDate": "1980-01-01"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents", """{"personId": "p1", "residentSince": 20200101, "birthDate": "1980-01-01"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents", """{"personId": null, "residentSince": "2020-01-01", "birthDate": "1980-01-01"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents", "null" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents", "[]" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents/p%20x/departure", """{"leftOn": "2021-01-01"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/residents/p1/departure", """{"leftOn": null}""" },
        { "municipality", "PUT", "/api/v1/cantons/dm/voting-rules", """{"votingAge": "16", "minimumResidenceDays": 0}""" },
        { "municipality", "PUT", "/api/v1/cantons/dm/voting-rules", """{"votingAge": 16.5, "minimumResidenceDays": 0}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/ballots", """{"question": "Q?", "options": "yes,no", "censusDate": "2020-01-01", "opensAt": "2020-01-01T00:00:00Z", "closesAt": "2099-01-01T00:00:00Z"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/ballots", """{"question": "Q?", "options": ["a", "b"], "censusDate": "2020-01-01", "opensAt": "yesterday", "closesAt": "2099-01-01T00:00:00Z"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/ballots", """{"question": "Q?", "options": ["yes", "no"], "censusDate": "2020-01-01", "opensAt": "2020-01-01T00:00:00Z", "closesAt": "2099-01-01T00:00:00Z", "proposal": {"kind": 0}}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/ballots", """{"question": "Q?", "options": ["yes", "no"], "censusDate": "2020-01-01", "opensAt": "2020-01-01T00:00:00Z", "closesAt": "2099-01-01T00:00:00Z", "proposal": "raise"}""" },
        { "municipality", "POST", "/api/v1/cantons/dm/ballots/not-a-guid/close", null },
        { "person", "POST", "/api/v1/cantons/dm/ballots/{ballot}/votes", """{"option": 1}""" },
        { "person", "POST", "/api/v1/cantons/dm/ballots/{ballot}/votes", """{"option": ["a"]}""" },
        { "person", "POST", "/api/v1/cantons/dm/ballots/{ballot}/votes", "" },
        { "public", "GET", "/api/v1/cantons/dm/census?on=2026-02-30", null },
        { "public", "GET", "/api/v1/cantons/dm/census?on=1800-01-01", null },
        { "public", "GET", "/api/v1/cantons/dm/ballots/{ballot}/results?page=abc", null },
        { "public", "GET", "/api/v1/cantons/dm/ballots/{ballot}/results?page=99999999999", null },
        { "public", "GET", "/api/v1/cantons/dm/ballots/00000000-0000-0000-0000-000000000000", null },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Bad_input_is_a_4xx_problem_and_records_nothing(string caller, string method, string path, string? body)
    {
        var d = new Democracy(api);
        await d.Fiscal.CantonAsync("dm");
        await Fiscal.Ok(d.ResideAsync("dm", "p1", new DateOnly(2010, 1, 1)));
        var ballot = await d.BallotAsync("dm", options: ["a", "b"]);
        var events = await api.CountEventsAsync();
        var client = caller switch
        {
            "municipality" => d.Fiscal.Municipality("dm"),
            "person" => d.Fiscal.Person("p1"),
            _ => api.CreateClient(),
        };
        using var request = new HttpRequestMessage(new HttpMethod(method), path.Replace("{ballot}", ballot.ToString(), StringComparison.Ordinal));
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        var response = await client.SendAsync(request);

        var status = (int)response.StatusCode;
        Assert.True(status is >= 400 and < 500 && status != 401 && status != 403,
            $"{method} {path} {body}: {status} {await response.Content.ReadAsStringAsync()}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);

        Assert.Equal(events, await api.CountEventsAsync());
    }
}
