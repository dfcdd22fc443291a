using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>Who may vote, and when: eligibility exactly as DESIGN.md, over HTTP. Each test uses its own canton.</summary>
public sealed class BallotTests : IClassFixture<ApiFactory>
{
    private readonly ApiFactory _api;
    private readonly Democracy _d;

    public BallotTests(ApiFactory api)
    {
        _api = api;
        api.Clock.AwayFromMidnight(); // the tests compare today's date with census dates taken a moment later
        _d = new Democracy(api);
    }
    private static readonly DateOnly Long = new(2015, 1, 1);

    private async Task<string?> ReasonAsync(string canton, Guid ballot, string person)
    {
        var eligibility = await _d.EligibilityAsync(canton, ballot, person);
        var reason = eligibility.GetProperty("reason");
        Assert.Equal(reason.ValueKind == JsonValueKind.Null, eligibility.GetProperty("eligible").GetBoolean());
        return reason.ValueKind == JsonValueKind.Null ? null : reason.GetString();
    }

    [Fact]
    public async Task A_resident_of_any_background_votes_and_nothing_else_is_asked()
    {
        await _d.Fiscal.CantonAsync("bt-any");
        foreach (var person in new[] { "born-here", "arrived-from-far", "stateless-7" })
        {
            await Fiscal.Ok(_d.ResideAsync("bt-any", person, Long));
        }

        var ballot = await _d.BallotAsync("bt-any");
        foreach (var person in new[] { "born-here", "arrived-from-far", "stateless-7" })
        {
            Assert.Null(await ReasonAsync("bt-any", ballot, person));
            Assert.Equal(24, (await _d.ReceiptAsync("bt-any", ballot, person, "alpha-choice")).Length);
        }
    }

    [Fact]
    public async Task Moved_away_before_census_date_cannot_vote_in_the_old_canton_and_can_in_the_new_one()
    {
        await _d.Fiscal.CantonAsync("bt-old");
        await _d.Fiscal.CantonAsync("bt-new", "EUR");
        await Fiscal.Ok(_d.ResideAsync("bt-old", "emigrant", Long));
        await Fiscal.Ok(_d.ResideAsync("bt-new", "emigrant", _d.Today.AddDays(-10)));
        var oldBallot = await _d.BallotAsync("bt-old");
        var newBallot = await _d.BallotAsync("bt-new");

        Assert.Equal("not-resident-on-census-date", await ReasonAsync("bt-old", oldBallot, "emigrant"));
        await _api.AssertRefusedAsync(await _d.VoteAsync("bt-old", oldBallot, "emigrant", "alpha-choice"), HttpStatusCode.Forbidden, "not-on-roll");
        Assert.Null(await ReasonAsync("bt-new", newBallot, "emigrant"));
        await _d.ReceiptAsync("bt-new", newBallot, "emigrant", "beta-choice");
    }

    [Fact]
    public async Task A_resident_who_left_on_or_before_the_census_date_is_off_the_roll()
    {
        await _d.Fiscal.CantonAsync("bt-left");
        await Fiscal.Ok(_d.ResideAsync("bt-left", "left-today", Long));
        await Fiscal.Ok(_d.ResideAsync("bt-left", "left-tomorrow", Long));
        await Fiscal.Ok(_d.DepartAsync("bt-left", "left-today", _d.Today));
        var ballot = await _d.BallotAsync("bt-left", censusDate: _d.Today.AddDays(-1), opensAt: _api.Clock.GetUtcNow().AddMinutes(-1));
        Assert.Null(await ReasonAsync("bt-left", ballot, "left-today")); // resident the day before: the census date
        var today = await _d.BallotAsync("bt-left");
        Assert.Equal("not-resident-on-census-date", await ReasonAsync("bt-left", today, "left-today"));
        Assert.Null(await ReasonAsync("bt-left", today, "left-tomorrow"));
        Assert.Equal("not-resident-on-census-date", await ReasonAsync("bt-left", today, "never-registered"));
    }

    [Fact]
    public async Task Under_age_on_the_census_date_cannot_vote()
    {
        await _d.Fiscal.CantonAsync("bt-age");
        var census = _d.Today;
        await Fiscal.Ok(_d.ResideAsync("bt-age", "sixteen-today", census.AddYears(-16), birth: census.AddYears(-16)));
        await Fiscal.Ok(_d.ResideAsync("bt-age", "sixteen-tomorrow", census.AddYears(-16).AddDays(1), birth: census.AddYears(-16).AddDays(1)));
        var ballot = await _d.BallotAsync("bt-age");

        Assert.Null(await ReasonAsync("bt-age", ballot, "sixteen-today"));
        Assert.Equal("under-voting-age", await ReasonAsync("bt-age", ballot, "sixteen-tomorrow"));
        await _api.AssertRefusedAsync(await _d.VoteAsync("bt-age", ballot, "sixteen-tomorrow", "alpha-choice"), HttpStatusCode.Forbidden, "not-on-roll");
        await _d.ReceiptAsync("bt-age", ballot, "sixteen-today", "alpha-choice");
    }

    [Fact]
    public async Task Minimum_residence_counts_and_a_ballot_keeps_the_rules_it_was_called_with()
    {
        await _d.Fiscal.CantonAsync("bt-min");
        var municipality = _d.Fiscal.Municipality("bt-min");
        await Fiscal.Ok(municipality.PutAsJsonAsync("/api/v1/cantons/bt-min/voting-rules", new { votingAge = 18, minimumResidenceDays = 30 }));
        await Fiscal.Ok(_d.ResideAsync("bt-min", "thirty-days", _d.Today.AddDays(-30)));
        await Fiscal.Ok(_d.ResideAsync("bt-min", "twenty-nine-days", _d.Today.AddDays(-29)));
        var ballot = await _d.BallotAsync("bt-min");
        await Fiscal.Ok(municipality.PutAsJsonAsync("/api/v1/cantons/bt-min/voting-rules", new { votingAge = 18, minimumResidenceDays = 0 }));

        Assert.Null(await ReasonAsync("bt-min", ballot, "thirty-days"));
        Assert.Equal("residence-too-short", await ReasonAsync("bt-min", ballot, "twenty-nine-days"));
        var eligibility = await _d.EligibilityAsync("bt-min", ballot, "thirty-days");
        Assert.Equal(30, eligibility.GetProperty("minimumResidenceDays").GetInt32());
        Assert.Null(await ReasonAsync("bt-min", await _d.BallotAsync("bt-min"), "twenty-nine-days"));
    }

    [Fact]
    public async Task Votes_count_only_between_opening_and_closing_and_only_once()
    {
        await _d.Fiscal.CantonAsync("bt-window");
        await Fiscal.Ok(_d.ResideAsync("bt-window", "early", Long));
        await Fiscal.Ok(_d.ResideAsync("bt-window", "twice", Long));
        await Fiscal.Ok(_d.ResideAsync("bt-window", "late", Long));
        var now = _api.Clock.GetUtcNow();
        var future = await _d.BallotAsync("bt-window", opensAt: now.AddHours(1), closesAt: now.AddHours(2));
        await _api.AssertRefusedAsync(await _d.VoteAsync("bt-window", future, "early", "alpha-choice"), HttpStatusCode.Conflict, "ballot-not-open");

        var ballot = await _d.BallotAsync("bt-window");
        await _d.ReceiptAsync("bt-window", ballot, "twice", "alpha-choice");
        await _api.AssertRefusedAsync(await _d.VoteAsync("bt-window", ballot, "twice", "beta-choice"), HttpStatusCode.Conflict, "already-voted");

        _api.Clock.Advance(TimeSpan.FromHours(1));
        await _api.AssertRefusedAsync(await _d.VoteAsync("bt-window", ballot, "late", "alpha-choice"), HttpStatusCode.Conflict, "ballot-closed");
        var results = await _d.CloseAsync("bt-window", ballot);
        Assert.Equal(1, results.GetProperty("votes").GetInt64());
    }

    [Fact]
    public async Task The_reason_is_told_only_on_the_persons_own_eligibility_call()
    {
        await _d.Fiscal.CantonAsync("bt-reason");
        await Fiscal.Ok(_d.ResideAsync("bt-reason", "too-young", _d.Today.AddYears(-10), birth: _d.Today.AddYears(-10)));
        var ballot = await _d.BallotAsync("bt-reason");
        var refused = await _d.VoteAsync("bt-reason", ballot, "too-young", "alpha-choice");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.DoesNotContain("age", await refused.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);

        var path = $"/api/v1/cantons/bt-reason/ballots/{ballot}/eligibility";
        Assert.Equal(HttpStatusCode.Unauthorized, (await _api.CreateClient().GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _d.Fiscal.Municipality("bt-reason").GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _d.Fiscal.Admin.GetAsync(path)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _api.ClientAs(Roles.Auditor, "aud").GetAsync(path)).StatusCode);
        Assert.Equal("under-voting-age", await ReasonAsync("bt-reason", ballot, "too-young"));
    }

    [Fact]
    public async Task A_person_can_check_a_participation_is_recorded_in_their_name()
    {
        await _d.Fiscal.CantonAsync("bt-part");
        await Fiscal.Ok(_d.ResideAsync("bt-part", "voter", Long));
        await Fiscal.Ok(_d.ResideAsync("bt-part", "abstainer", Long));
        var ballot = await _d.BallotAsync("bt-part");
        await _d.ReceiptAsync("bt-part", ballot, "voter", "gamma-choice");

        async Task<bool> ParticipatedAsync(string person) =>
            (await _d.Fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/bt-part/ballots/{ballot}/participation"))
            .GetProperty("participated").GetBoolean();

        Assert.True(await ParticipatedAsync("voter"));
        Assert.False(await ParticipatedAsync("abstainer"));
        await _d.CloseAsync("bt-part", ballot);
        Assert.True(await ParticipatedAsync("voter"));
        Assert.Equal(HttpStatusCode.Forbidden,
            (await _d.Fiscal.Municipality("bt-part").GetAsync($"/api/v1/cantons/bt-part/ballots/{ballot}/participation")).StatusCode);
    }

    [Fact]
    public async Task The_roll_counted_at_close_is_exactly_the_people_eligibility_admits()
    {
        await _d.Fiscal.CantonAsync("bt-roll");
        await _d.Fiscal.CantonAsync("bt-roll-elsewhere");
        await Fiscal.Ok(_d.Fiscal.Municipality("bt-roll").PutAsJsonAsync("/api/v1/cantons/bt-roll/voting-rules",
            new { votingAge = 16, minimumResidenceDays = 10 }));
        var census = _d.Today.AddDays(-1);
        var people = new (string Id, DateOnly Since, DateOnly Birth)[]
        {
            ("r-ok", Long, new DateOnly(1970, 1, 1)),
            ("r-exact-age", Long, census.AddYears(-16)),
            ("r-young", Long, census.AddYears(-16).AddDays(1)),
            ("r-ten-days", census.AddDays(-10), new DateOnly(1970, 1, 1)),
            ("r-nine-days", census.AddDays(-9), new DateOnly(1970, 1, 1)),
            ("r-since-census", census, new DateOnly(1970, 1, 1)),
            ("r-arrives-today", _d.Today, new DateOnly(1970, 1, 1)),
        };
        foreach (var (id, since, birth) in people)
        {
            await Fiscal.Ok(_d.ResideAsync("bt-roll", id, since, birth));
        }

        await Fiscal.Ok(_d.ResideAsync("bt-roll", "r-moved-on-census", Long));
        await Fiscal.Ok(_d.ResideAsync("bt-roll-elsewhere", "r-moved-on-census", census));
        await Fiscal.Ok(_d.ResideAsync("bt-roll", "r-left-after", Long));
        await Fiscal.Ok(_d.DepartAsync("bt-roll", "r-left-after", _d.Today));

        var ballot = await _d.BallotAsync("bt-roll", censusDate: census);
        var admitted = 0;
        foreach (var id in people.Select(p => p.Id).Append("r-moved-on-census").Append("r-left-after"))
        {
            admitted += await ReasonAsync("bt-roll", ballot, id) is null ? 1 : 0;
        }

        var results = await _d.CloseAsync("bt-roll", ballot);
        Assert.Equal(admitted, results.GetProperty("eligible").GetInt64());
        Assert.Equal(4, admitted); // r-ok, r-exact-age, r-ten-days, r-left-after
    }

    [Fact]
    public async Task Born_on_29_February_comes_of_age_on_28_February_of_a_common_year_in_the_roll_and_the_count()
    {
        await _d.Fiscal.CantonAsync("bt-leap");
        await Fiscal.Ok(_d.Fiscal.Municipality("bt-leap").PutAsJsonAsync("/api/v1/cantons/bt-leap/voting-rules",
            new { votingAge = 17, minimumResidenceDays = 0 }));
        await Fiscal.Ok(_d.ResideAsync("bt-leap", "leapling", new DateOnly(2008, 2, 29), new DateOnly(2008, 2, 29)));
        await Fiscal.Ok(_d.ResideAsync("bt-leap", "march-first", new DateOnly(2008, 3, 1), new DateOnly(2008, 3, 1)));
        var ballot = await _d.BallotAsync("bt-leap", censusDate: new DateOnly(2025, 2, 28));

        Assert.Null(await ReasonAsync("bt-leap", ballot, "leapling"));
        Assert.Equal("under-voting-age", await ReasonAsync("bt-leap", ballot, "march-first"));
        Assert.Equal(1, (await _d.CloseAsync("bt-leap", ballot)).GetProperty("eligible").GetInt64());
    }
}
