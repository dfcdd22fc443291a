using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Confederal.Api.Tests;

/// <summary>GET /api/v1/cantons/{cantonId}/ballots: a canton's ballots, newest first, each as GET …/ballots/{ballotId}
/// shows it. Its own API (the tests move the clock); each test uses its own cantons.</summary>
public sealed class ListBallotsTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Democracy _d = new(api);

    private async Task<List<JsonElement>> ListAsync(string canton, string query = "")
    {
        await api.ProjectedAsync("ballots");
        var response = await api.CreateClient().GetAsync($"/api/v1/cantons/{canton}/ballots{query}");
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return [.. (await response.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray()];
    }

    private static List<Guid> Ids(IEnumerable<JsonElement> ballots) => [.. ballots.Select(b => b.GetProperty("ballotId").GetGuid())];

    /// <summary>A canton with a ballot in each status (and two opening at the same instant) once the certified one is
    /// closed, the clock then 2 hours on; another canton with one ballot. Newest first, ties by ballotId.</summary>
    private async Task<(Guid Scheduled, Guid[] Open, Guid Closing, Guid Certified, Guid Elsewhere)> WorldAsync(string canton)
    {
        await _d.Fiscal.CantonAsync(canton);
        await _d.Fiscal.CantonAsync($"{canton}-x", "EUR");
        var t0 = api.Clock.GetUtcNow();
        var certified = await _d.BallotAsync(canton, opensAt: t0.AddMinutes(-3), closesAt: t0.AddHours(1));
        var closing = await _d.BallotAsync(canton, opensAt: t0.AddMinutes(-2), closesAt: t0.AddHours(1));
        var open = new[]
        {
            await _d.BallotAsync(canton, opensAt: t0.AddMinutes(-1), closesAt: t0.AddHours(5)),
            await _d.BallotAsync(canton, opensAt: t0.AddMinutes(-1), closesAt: t0.AddHours(5)),
        }.Order().ToArray();
        var scheduled = await _d.BallotAsync(canton, opensAt: t0.AddHours(3), closesAt: t0.AddHours(6));
        var elsewhere = await _d.BallotAsync($"{canton}-x", opensAt: t0.AddMinutes(1), closesAt: t0.AddHours(1));
        await _d.CloseAsync(canton, certified);
        return (scheduled, open, closing, certified, elsewhere);
    }

    [Fact]
    public async Task A_cantons_ballots_are_listed_newest_first_each_as_its_own_get_shows_it()
    {
        var (scheduled, open, closing, certified, elsewhere) = await WorldAsync("lb-all");

        var listed = await ListAsync("lb-all");

        Assert.Equal([scheduled, open[0], open[1], closing, certified], Ids(listed));
        Assert.Equal(["scheduled", "open", "open", "closing", "certified"], listed.Select(b => b.GetProperty("status").GetString()));
        foreach (var ballot in listed)
        {
            var one = await api.CreateClient().GetStringAsync($"/api/v1/cantons/lb-all/ballots/{ballot.GetProperty("ballotId").GetGuid()}");
            Assert.Equal(one, ballot.GetRawText());
        }

        Assert.Equal([elsewhere], Ids(await ListAsync("lb-all-x")));
    }

    [Fact]
    public async Task The_status_filter_lists_the_ballots_in_that_status_now()
    {
        var (scheduled, open, closing, certified, _) = await WorldAsync("lb-filter");

        Assert.Equal([scheduled], Ids(await ListAsync("lb-filter", "?status=scheduled")));
        Assert.Equal(open, Ids(await ListAsync("lb-filter", "?status=open")));
        Assert.Equal([closing], Ids(await ListAsync("lb-filter", "?status=closing")));
        Assert.Equal([certified], Ids(await ListAsync("lb-filter", "?status=certified")));

        api.Clock.Advance(TimeSpan.FromHours(2)); // 4 hours after the calls: the scheduled ballot opened
        Assert.Empty(await ListAsync("lb-filter", "?status=scheduled"));
        Assert.Equal([scheduled, .. open], Ids(await ListAsync("lb-filter", "?status=open")));
        api.Clock.Advance(TimeSpan.FromHours(1.5)); // 5.5 hours: the two open at once have closed
        Assert.Equal([scheduled], Ids(await ListAsync("lb-filter", "?status=open")));
        Assert.Equal([.. open, closing], Ids(await ListAsync("lb-filter", "?status=closing")));
        Assert.Equal([certified], Ids(await ListAsync("lb-filter", "?status=certified")));
    }

    [Fact]
    public async Task A_canton_without_ballots_lists_none_and_an_unknown_canton_is_a_404_problem()
    {
        await _d.Fiscal.CantonAsync("lb-none");

        Assert.Empty(await ListAsync("lb-none"));
        Assert.Empty(await ListAsync("lb-none", "?status=open"));
        await api.AssertRefusedAsync(await api.CreateClient().GetAsync("/api/v1/cantons/lb-atlantis/ballots"), HttpStatusCode.NotFound, code: null);
        await api.AssertRefusedAsync(await api.CreateClient().GetAsync("/api/v1/cantons/lb-atlantis/ballots?status=open"), HttpStatusCode.NotFound, code: null);
    }

    [Theory]
    [InlineData("closed")]
    [InlineData("Open")]
    [InlineData("")]
    [InlineData("open,closing")]
    [InlineData("%00")]
    public async Task A_status_that_is_not_one_of_the_four_is_a_400_naming_status(string status)
    {
        await _d.Fiscal.CantonAsync("lb-bad");

        var response = await api.CreateClient().GetAsync($"/api/v1/cantons/lb-bad/ballots?status={status}");

        await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, code: null);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(["status"], problem.RootElement.GetProperty("errors").EnumerateObject().Select(e => e.Name));
    }

    [Fact]
    public async Task Anyone_lists_a_cantons_ballots_without_signing_in()
    {
        await _d.Fiscal.CantonAsync("lb-public");
        var ballot = await _d.BallotAsync("lb-public");
        await api.ProjectedAsync("ballots");

        var anonymous = await api.CreateClient().GetAsync("/api/v1/cantons/lb-public/ballots");
        var person = await _d.Fiscal.Person("someone").GetAsync("/api/v1/cantons/lb-public/ballots");

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK], new[] { anonymous.StatusCode, person.StatusCode });
        Assert.Equal([ballot], Ids((await anonymous.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray()));
    }
}
