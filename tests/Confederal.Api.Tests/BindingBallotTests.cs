using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Closing certifies once, and a carried binding proposal changes policy exactly once, caused by the ballot.</summary>
public sealed class BindingBallotTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Democracy _d = new(api);

    private NpgsqlDataSource Db => api.Services.GetRequiredService<NpgsqlDataSource>();

    private async Task<List<(string Type, string Data, string? Causation, Guid Id)>> StreamAsync(string stream)
    {
        var events = new List<(string, string, string?, Guid)>();
        await using var command = Db.CreateCommand("SELECT regexp_replace(type, '\\.v[0-9]+$', ''), data::text, causation_id, id FROM marten.mt_events WHERE stream_id = $1 ORDER BY version");
        command.Parameters.Add(new NpgsqlParameter { Value = stream });
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            events.Add((reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetGuid(3)));
        }

        return events;
    }

    private async Task<Guid> VotedAsync(string canton, object proposal, int yes, int no)
    {
        for (var i = 0; i < yes + no; i++)
        {
            await Fiscal.Ok(_d.ResideAsync(canton, $"{canton}-v{i}", new DateOnly(2012, 1, 1)));
        }

        var ballot = await _d.BallotAsync(canton, proposal: proposal);
        for (var i = 0; i < yes + no; i++)
        {
            await _d.ReceiptAsync(canton, ballot, $"{canton}-v{i}", i < yes ? "yes" : "no");
        }

        return ballot;
    }

    private async Task<int> RateAsync(string canton, int year) =>
        (await _d.Fiscal.Municipality(canton).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/{year}/policy"))
        .GetProperty("designationRateBp").GetInt32();

    [Fact]
    public async Task Concurrent_and_retried_closes_certify_once_and_enact_the_carried_rate_once_caused_by_the_ballot()
    {
        await _d.Fiscal.CantonAsync("bb-rate");
        await _d.Fiscal.PolicyAsync("bb-rate", 2026, rateBp: 70, deadline: api.Clock.GetUtcNow().AddDays(30));
        var ballot = await VotedAsync("bb-rate", new { kind = "set-designation-rate", fiscalYear = 2026, designationRateBp = 120 }, yes: 3, no: 2);
        api.Clock.Advance(TimeSpan.FromHours(2));

        var municipality = _d.Fiscal.Municipality("bb-rate");
        var closes = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => municipality.PostAsync($"/api/v1/cantons/bb-rate/ballots/{ballot}/close", null)));
        var bodies = await Task.WhenAll(closes.Select(async r =>
        {
            Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
            return await r.Content.ReadAsStringAsync();
        }));
        Assert.Single(bodies.Distinct());
        var events = await api.CountEventsAsync();
        Assert.Equal(bodies[0], await (await municipality.PostAsync($"/api/v1/cantons/bb-rate/ballots/{ballot}/close", null)).Content.ReadAsStringAsync());
        Assert.Equal(events, await api.CountEventsAsync());

        var certified = Assert.Single(await StreamAsync($"ballot-{ballot:N}"), e => e.Type == "ballot-certified");
        var policy = await StreamAsync("fiscal-policy-bb-rate-2026");
        Assert.Equal(2, policy.Count);
        Assert.Equal(certified.Id.ToString(), policy[1].Causation);
        Assert.Equal(120, await RateAsync("bb-rate", 2026));

        using var results = JsonDocument.Parse(bodies[0]);
        Assert.True(results.RootElement.GetProperty("carried").GetBoolean());
        Assert.True(results.RootElement.GetProperty("enacted").GetBoolean());
    }

    [Fact]
    public async Task A_tie_or_a_no_changes_nothing()
    {
        await _d.Fiscal.CantonAsync("bb-tie");
        await _d.Fiscal.PolicyAsync("bb-tie", 2026, rateBp: 70, deadline: api.Clock.GetUtcNow().AddDays(30));
        var ballot = await VotedAsync("bb-tie", new { kind = "set-designation-rate", fiscalYear = 2026, designationRateBp = 120 }, yes: 2, no: 2);
        var results = await _d.CloseAsync("bb-tie", ballot);

        Assert.False(results.GetProperty("carried").GetBoolean());
        Assert.Equal(JsonValueKind.Null, results.GetProperty("enacted").ValueKind);
        Assert.Single(await StreamAsync("fiscal-policy-bb-tie-2026"));
        Assert.Equal(70, await RateAsync("bb-tie", 2026));
    }

    [Fact]
    public async Task A_carried_proposal_the_rules_refuse_is_certified_with_the_reason_it_was_not_enacted()
    {
        await _d.Fiscal.CantonAsync("bb-late");
        await _d.Fiscal.PolicyAsync("bb-late", 2026, rateBp: 70, deadline: api.Clock.GetUtcNow().AddMinutes(90));
        var ballot = await VotedAsync("bb-late", new { kind = "set-designation-rate", fiscalYear = 2026, designationRateBp = 120 }, yes: 2, no: 1);
        var results = await _d.CloseAsync("bb-late", ballot); // two hours later: the 2026 deadline has passed

        Assert.True(results.GetProperty("carried").GetBoolean());
        Assert.False(results.GetProperty("enacted").GetBoolean());
        Assert.Equal("fiscal-year-closed", results.GetProperty("notEnacted").GetString());
        Assert.Equal(70, await RateAsync("bb-late", 2026));
    }

    [Fact]
    public async Task A_carried_join_records_the_membership_with_the_ballot()
    {
        await _d.Fiscal.CantonAsync("bb-join");
        await _d.Fiscal.PactAsync("bb-alps");
        var ballot = await VotedAsync("bb-join", new { kind = "join-pact", pactId = "bb-alps", contributionRateBp = 150, fromFiscalYear = 2027 }, yes: 2, no: 0);
        var results = await _d.CloseAsync("bb-join", ballot);

        Assert.True(results.GetProperty("enacted").GetBoolean());
        var joined = (await StreamAsync("memberships-bb-join"))[^1]; // in the canton's own log
        Assert.Equal("pact-joined", joined.Type);
        using var data = JsonDocument.Parse(joined.Data);
        Assert.Equal(ballot, data.RootElement.GetProperty("ballotId").GetGuid());
        Assert.Equal(150, data.RootElement.GetProperty("contributionRateBp").GetInt32());
    }

    [Fact]
    public async Task Cantons_join_and_leave_a_pact_only_through_their_own_carried_ballots_and_budgets_follow()
    {
        await _d.Fiscal.PactAsync("bb-lakes");
        foreach (var (canton, revenue) in new[] { ("bb-l1", 1_000_000L), ("bb-l2", 300_001L) })
        {
            await _d.Fiscal.CantonAsync(canton);
            await _d.Fiscal.PolicyAsync(canton, 2027, rateBp: 100, deadline: api.Clock.GetUtcNow().AddDays(60));
            await _d.Fiscal.AssessAsync(canton, $"{canton}-taxpayer", 2027, revenue);
        }

        var joins = new Dictionary<string, Guid>
        {
            ["bb-l1"] = await VotedAsync("bb-l1", new { kind = "join-pact", pactId = "bb-lakes", contributionRateBp = 1_000, fromFiscalYear = 2027 }, yes: 2, no: 1),
            ["bb-l2"] = await VotedAsync("bb-l2", new { kind = "join-pact", pactId = "bb-lakes", contributionRateBp = 2_500, fromFiscalYear = 2027 }, yes: 1, no: 0),
        };
        api.Clock.Advance(TimeSpan.FromHours(2));
        foreach (var (canton, ballot) in joins)
        {
            await Fiscal.Ok(_d.Fiscal.Municipality(canton).PostAsync($"/api/v1/cantons/{canton}/ballots/{ballot}/close", null));
        }

        // Bases (revenue − 1 % designated, all retained: nobody designated): 1,000,000 and 300,001. Contributions 10 %
        // of 1,000,000 = 100,000 and 25 % of 300,001 = 75,000 (floor); the pool of 175,000 split equally, 87,500 each.
        var l1 = await _d.Fiscal.BudgetAsync("bb-l1", 2027);
        var l2 = await _d.Fiscal.BudgetAsync("bb-l2", 2027);
        Assert.Equal([new PactLine("bb-lakes", 100_000)], l1.Contributions);
        Assert.Equal([new PactLine("bb-lakes", 75_000)], l2.Contributions);
        Assert.Equal([new PactLine("bb-lakes", 87_500)], l1.Receipts);
        Assert.Equal([new PactLine("bb-lakes", 87_500)], l2.Receipts);
        foreach (var b in new[] { l1, l2 })
        {
            Assert.Equal(b.RevenueMinor - b.DesignatedMinor - b.Contributions.Sum(c => c.AmountMinor) + b.Receipts.Sum(r => r.AmountMinor), b.NetBudgetMinor);
        }

        var leave = await VotedAsync("bb-l2", new { kind = "leave-pact", pactId = "bb-lakes", fromFiscalYear = 2027 }, yes: 1, no: 0);
        await _d.CloseAsync("bb-l2", leave);
        l1 = await _d.Fiscal.BudgetAsync("bb-l1", 2027);
        Assert.Empty((await _d.Fiscal.BudgetAsync("bb-l2", 2027)).Contributions);
        Assert.Equal([new PactLine("bb-lakes", 100_000)], l1.Receipts); // alone in the pact: its contribution comes back
        var left = (await StreamAsync("memberships-bb-l2"))[^1];
        Assert.Equal("pact-left", left.Type);
        Assert.Equal((await StreamAsync($"ballot-{leave:N}")).Single(e => e.Type == "ballot-certified").Id.ToString(), left.Causation);
    }

    [Fact]
    public async Task A_canton_cannot_commit_more_than_its_whole_budget_to_pacts()
    {
        await _d.Fiscal.CantonAsync("bb-much");
        await _d.Fiscal.PactAsync("bb-first");
        await _d.Fiscal.PactAsync("bb-second");
        var first = await VotedAsync("bb-much", new { kind = "join-pact", pactId = "bb-first", contributionRateBp = 6_000, fromFiscalYear = 2027 }, yes: 1, no: 0);
        var second = await _d.BallotAsync("bb-much", proposal: new { kind = "join-pact", pactId = "bb-second", contributionRateBp = 4_000, fromFiscalYear = 2027 });
        await _d.ReceiptAsync("bb-much", second, "bb-much-v0", "yes");
        await _d.CloseAsync("bb-much", first);
        await api.ProjectedAsync("budgets");

        var refused = await _d.CallAsync("bb-much", proposal: new { kind = "join-pact", pactId = "bb-second", contributionRateBp = 4_001, fromFiscalYear = 2027 });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("contributions-exceed-budget", await Fiscal.CodeAsync(refused));

        // Called when it still fitted; at its close the first pact already takes 60 %: 40 % more still fits exactly.
        var results = await Fiscal.Ok(_d.Fiscal.Municipality("bb-much").PostAsync($"/api/v1/cantons/bb-much/ballots/{second}/close", null));
        Assert.True((await results.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("enacted").GetBoolean());
    }

    [Fact]
    public async Task A_join_that_no_longer_fits_at_close_is_certified_not_enacted()
    {
        await _d.Fiscal.CantonAsync("bb-over");
        await _d.Fiscal.PactAsync("bb-over-a");
        await _d.Fiscal.PactAsync("bb-over-b");
        var a = await VotedAsync("bb-over", new { kind = "join-pact", pactId = "bb-over-a", contributionRateBp = 7_000, fromFiscalYear = 2027 }, yes: 1, no: 0);
        var b = await _d.BallotAsync("bb-over", proposal: new { kind = "join-pact", pactId = "bb-over-b", contributionRateBp = 5_000, fromFiscalYear = 2027 });
        await _d.ReceiptAsync("bb-over", b, "bb-over-v0", "yes");
        await _d.CloseAsync("bb-over", a);
        await api.ProjectedAsync("budgets");

        var results = await Fiscal.Ok(_d.Fiscal.Municipality("bb-over").PostAsync($"/api/v1/cantons/bb-over/ballots/{b}/close", null));
        var body = await results.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(body.GetProperty("carried").GetBoolean());
        Assert.Equal("contributions-exceed-budget", body.GetProperty("notEnacted").GetString());
        Assert.DoesNotContain(await StreamAsync("memberships-bb-over"), e => e.Data.Contains("\"bb-over-b\"", StringComparison.Ordinal));
        Assert.Single(await StreamAsync("memberships-bb-over"));
    }

    [Fact]
    public async Task A_canton_of_another_currency_cannot_even_call_a_ballot_to_join()
    {
        await _d.Fiscal.CantonAsync("bb-euro", "EUR");
        await _d.Fiscal.PactAsync("bb-franc", "CHF");
        var events = await api.CountEventsAsync();

        var refused = await _d.CallAsync("bb-euro", proposal: new { kind = "join-pact", pactId = "bb-franc", contributionRateBp = 100, fromFiscalYear = 2027 });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("pact-currency-mismatch", await Fiscal.CodeAsync(refused));
        var unknown = await _d.CallAsync("bb-euro", proposal: new { kind = "leave-pact", pactId = "bb-nowhere", fromFiscalYear = 2027 });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task Bad_ballots_are_problems_and_record_nothing()
    {
        await _d.Fiscal.CantonAsync("bb-bad");
        var now = api.Clock.GetUtcNow();
        var today = _d.Today;
        var municipality = _d.Fiscal.Municipality("bb-bad");
        var events = await api.CountEventsAsync();
        object Body(object? question = null, object? options = null, object? census = null, object? opens = null, object? closes = null, object? proposal = null) => new
        {
            question = question ?? "Q?",
            options = options ?? new[] { "a", "b" },
            censusDate = census ?? today,
            opensAt = opens ?? now,
            closesAt = closes ?? now.AddHours(1),
            proposal,
        };
        object[] bodies =
        [
            Body(question: ""),
            Body(question: new string('q', 1001)),
            Body(options: new[] { "only" }),
            Body(options: Enumerable.Range(0, 11).Select(i => $"o{i}").ToArray()),
            Body(options: new[] { "same", "Same" }),
            Body(options: new[] { "a", " b" }),
            Body(options: new[] { "a", null }),
            Body(closes: now.AddMinutes(-1), opens: now.AddMinutes(-2)),
            Body(opens: now.AddHours(2)),
            Body(census: today.AddDays(1)),
            Body(proposal: new { kind = "set-designation-rate", fiscalYear = 2026, designationRateBp = 100 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "set-designation-rate", fiscalYear = 2026 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "set-designation-rate", fiscalYear = 2026, designationRateBp = 10001 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "set-designation-rate", fiscalYear = 1999, designationRateBp = 100 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "join-pact", pactId = "p", contributionRateBp = 100, fromFiscalYear = 2027 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "join-pact", pactId = "pact-x", contributionRateBp = 0, fromFiscalYear = 2027 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "leave-pact", pactId = "pact-x", fromFiscalYear = 2027, designationRateBp = 5 }),
            Body(options: new[] { "yes", "no" }, proposal: new { kind = "abolish-taxes" }),
            Body(options: new[] { "yes", "no" }, proposal: new { fiscalYear = 2026, designationRateBp = 100 }),
            new { question = "Q?", options = new[] { "a", "b" } },
        ];
        foreach (var body in bodies)
        {
            var response = await municipality.PostAsJsonAsync("/api/v1/cantons/bb-bad/ballots", body);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{JsonSerializer.Serialize(body)} → {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        var ballot = await _d.BallotAsync("bb-bad");
        events = await api.CountEventsAsync();
        await Fiscal.Ok(_d.ResideAsync("bb-bad", "bb-voter", new DateOnly(2010, 1, 1)));
        events = await api.CountEventsAsync();
        var person = _d.Fiscal.Person("bb-voter");
        foreach (var body in new object[] { new { option = "c" }, new { option = "" }, new { }, new { option = "a", extra = 1 } })
        {
            Assert.Equal(HttpStatusCode.BadRequest, (await person.PostAsJsonAsync($"/api/v1/cantons/bb-bad/ballots/{ballot}/votes", body)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await person.PostAsJsonAsync($"/api/v1/cantons/bb-bad/ballots/{Guid.NewGuid()}/votes", new { option = "a" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await person.PostAsJsonAsync($"/api/v1/cantons/other/ballots/{ballot}/votes", new { option = "a" })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await municipality.PostAsync($"/api/v1/cantons/bb-bad/ballots/{ballot}/close", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await api.CreateClient().GetAsync($"/api/v1/cantons/bb-bad/ballots/{ballot}/results")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _d.Fiscal.Municipality("bb-bad").PostAsJsonAsync($"/api/v1/cantons/bb-bad/ballots/{ballot}/votes", new { option = "a" })).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());
        await using var box = Db.CreateCommand("SELECT count(*) FROM ballot_box WHERE ballot_id = $1");
        box.Parameters.Add(new NpgsqlParameter { Value = ballot });
        Assert.Equal(0L, await box.ExecuteScalarAsync());

        await _d.CloseAsync("bb-bad", ballot);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.CreateClient().GetAsync($"/api/v1/cantons/bb-bad/ballots/{ballot}/results?page=1")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await api.CreateClient().GetAsync($"/api/v1/cantons/bb-bad/ballots/{ballot}/results?page=-1")).StatusCode);
    }
}
