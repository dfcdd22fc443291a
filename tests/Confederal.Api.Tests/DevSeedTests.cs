using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Cli;
using Confederal.Client;
using Confederal.Domain.Organizations;

namespace Confederal.Api.Tests;

/// <summary>An empty API seeded once with the demo confederation, as `dev seed` does it.</summary>
public sealed class SeededApi : IAsyncLifetime
{
    public ApiFactory Api { get; } = new();

    public DemoSummary Summary { get; private set; } = null!;

    public long Events { get; private set; }

    public async Task InitializeAsync()
    {
        await Api.InitializeAsync();
        Summary = await SeedAsync(Api);
        Events = await Api.CountEventsAsync();
        await Api.ProjectedAsync("budgets");
        await Api.ProjectedAsync("organizations");
        await Api.ProjectedAsync("cantons");
    }

    public static async Task<DemoSummary> SeedAsync(ApiFactory api, Action<string>? log = null, CancellationToken ct = default)
    {
        using var client = CliRunner.Client(api);
        return await new DemoConfederation(client, api.SigningKey, api.Clock, log ?? (_ => { })).SeedAsync(ct);
    }

    public Task DisposeAsync() => ((IAsyncLifetime)Api).DisposeAsync();
}

public sealed class DevSeedTests(SeededApi seeded) : IClassFixture<SeededApi>
{
    private readonly ApiFactory _api = seeded.Api;
    private readonly Fiscal _fiscal = new(seeded.Api);
    private readonly int _year = seeded.Api.Clock.GetUtcNow().Year;

    [Fact]
    public async Task The_demo_has_cantons_in_several_currencies_each_with_its_locale_and_time_zone()
    {
        var cantons = await _api.CreateClient().GetFromJsonAsync<JsonElement[]>("/api/v1/cantons");

        Assert.False(seeded.Summary.AlreadySeeded);
        Assert.True(cantons!.Length >= 3);
        Assert.Equivalent(new[] { "CHF", "EUR", "JPY" }, cantons.Select(c => c.GetProperty("currency").GetString()).Distinct().ToArray());
        Assert.All(cantons, c => Assert.Equal(
            DemoConfederation.Cantons.Single(d => d.Id == c.GetProperty("cantonId").GetString()) is var d ? (d.Locale, d.TimeZone) : default,
            (c.GetProperty("locale").GetString(), c.GetProperty("timeZone").GetString())));
    }

    [Fact]
    public async Task The_demo_has_organizations_of_every_kind_one_declining_redistribution_and_one_suspended()
    {
        var organizations = (await _api.CreateClient().GetFromJsonAsync<OrganizationRow[]>("/api/v1/organizations", CliContext.Json))!;

        Assert.Equivalent(Enum.GetValues<OrganizationKind>(), organizations.Select(o => o.Kind).Distinct().ToArray());
        Assert.Contains(organizations, o => !o.AcceptsRedistribution);
        Assert.Equal(DemoConfederation.SuspendedOrganization, Assert.Single(organizations, o => o.Suspended).OrganizationId);
    }

    [Fact]
    public async Task The_demo_budget_of_every_canton_keeps_the_budget_identity()
    {
        var years = DemoConfederation.Cantons.Select(c => (c.Id, _year))
            .Concat(DemoConfederation.Cantons.Where(c => c.PreviousRateBp is not null).Select(c => (c.Id, _year - 1)));
        foreach (var (canton, year) in years)
        {
            var budget = await _fiscal.BudgetAsync(canton, year);
            Assert.True(budget.Balances, $"{canton} {year}: {budget}");
            Assert.True(budget.Taxpayers >= 24 && budget.DesignatedMinor > 0, $"{canton} {year}: {budget}");
        }
    }

    [Fact]
    public async Task The_demo_pact_has_two_members_whose_contributions_equal_its_receipts()
    {
        var pact = await _api.CreateClient().GetFromJsonAsync<JsonElement>($"/api/v1/pacts/{DemoConfederation.Pact}");
        var members = pact.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("cantonId").GetString()!).ToList();
        var budgets = new List<Budget>();
        foreach (var member in members)
        {
            budgets.Add(await _fiscal.BudgetAsync(member, _year));
        }

        var contributed = budgets.SelectMany(b => b.Contributions).Where(c => c.PactId == DemoConfederation.Pact).Sum(c => c.AmountMinor);
        Assert.Equal(2, members.Count);
        Assert.True(contributed > 0);
        Assert.Equal(contributed, budgets.SelectMany(b => b.Receipts).Where(r => r.PactId == DemoConfederation.Pact).Sum(r => r.AmountMinor));
    }

    [Fact]
    public async Task The_demo_has_a_certified_ballot_with_counted_votes_and_a_ballot_open_for_a_month()
    {
        var canton = DemoConfederation.Cantons[0].Id;
        var ballots = (await _api.CreateClient().GetFromJsonAsync<JsonElement[]>($"/api/v1/cantons/{canton}/ballots"))!;

        var certified = ballots.First(b => b.GetProperty("status").GetString() == "certified");
        var results = await _api.CreateClient().GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/ballots/{certified.GetProperty("ballotId")}/results");
        Assert.True(results.GetProperty("votes").GetInt64() > 0);
        Assert.Equal(results.GetProperty("votes").GetInt64(), results.GetProperty("ballots").GetArrayLength());
        Assert.Contains(ballots, b => b.GetProperty("status").GetString() == "open"
                                      && b.GetProperty("closesAt").GetDateTimeOffset() > _api.Clock.GetUtcNow().AddDays(29));
    }

    [Fact]
    public async Task Seeding_a_seeded_api_again_writes_nothing()
    {
        var before = await _api.CountEventsAsync();

        var again = await SeededApi.SeedAsync(_api);

        Assert.True(again.AlreadySeeded);
        Assert.Empty(again.Writes);
        Assert.Equal(before, await _api.CountEventsAsync());
    }

    [Fact]
    public async Task A_seed_interrupted_and_run_again_records_what_one_uninterrupted_seed_records()
    {
        await using var api = await ApiFactory.StartAsync();
        using var interrupt = new CancellationTokenSource();
        var third = DemoConfederation.Cantons[2].Name;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SeededApi.SeedAsync(api, line =>
        {
            if (line.Contains(third, StringComparison.Ordinal))
            {
                interrupt.CancelAfter(TimeSpan.FromMilliseconds(300));
            }
        }, interrupt.Token));
        var resumed = await SeededApi.SeedAsync(api);

        Assert.False(resumed.AlreadySeeded);
        Assert.Equal(seeded.Events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task Dev_seed_against_an_unreachable_api_exits_with_a_usage_error_and_says_how_to_start_it()
    {
        var data = Directory.CreateTempSubdirectory("confederal-seed-");
        try
        {
            var (code, output) = await CliRunner.RunAsync(options =>
            {
                options.FirstRetryDelay = TimeSpan.FromMilliseconds(10); // the client tries again before the tool gives up
                return ConfederalClient.Create(options);
            }, data.FullName, "dev", "seed", "--api", "http://127.0.0.1:1");

            Assert.Equal(ExitCodes.Usage, code);
            Assert.Contains("The API at http://127.0.0.1:1/ cannot be reached", output, StringComparison.Ordinal);
            Assert.Contains("dotnet run --project src/Confederal.Api", output, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    private sealed record OrganizationRow(string OrganizationId, OrganizationKind Kind, bool AcceptsRedistribution, bool Suspended);
}
