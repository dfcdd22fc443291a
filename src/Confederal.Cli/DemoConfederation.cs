using System.Net;
using Confederal.Api.Infrastructure;
using Confederal.Client;
using Confederal.Client.Generated.Api.V1;
using Confederal.Client.Generated.Models;
using Microsoft.IdentityModel.Tokens;
using Microsoft.Kiota.Abstractions;
using Request = System.Action<Microsoft.Kiota.Abstractions.RequestConfiguration<Microsoft.Kiota.Abstractions.DefaultQueryParameters>>;

namespace Confederal.Cli;

/// <summary>A canton of the demo: how it is registered, its policy for the current year (and the previous one when
/// <see cref="PreviousRateBp"/> is set), its voting rules, its typical tax in major units, and its rate in the demo
/// pact when it joins it.</summary>
public sealed record DemoCanton(
    string Id, string Name, string Currency, string Locale, string TimeZone, int RateBp, int MaxOrganizations, UnallocatedPolicy Unallocated,
    int VotingAge, int MinimumResidenceDays, long TaxMajor, int? PreviousRateBp = null, int? PactRateBp = null);

/// <summary>An organization of the demo, recognized by the confederation admin.</summary>
public sealed record DemoOrganization(string Id, string Name, OrganizationKind Kind, bool AcceptsRedistribution);

/// <summary>What a seed did: its writes by kind (a rerun counts the recorded answers it was given back again) and
/// persons to sign in as on the web pages.</summary>
public sealed record DemoSummary(
    bool AlreadySeeded, IReadOnlyList<KeyValuePair<string, int>> Writes, IReadOnlyList<KeyValuePair<string, string>> Examples);

/// <summary>
/// `dev seed`: a small believable confederation written into a running API over its REST endpoints (through
/// <see cref="ConfederalClient"/>, which retries what the API could not take at once), with development tokens of each
/// role, so every rule of the real handlers applies. The people follow a few rules of their index (who is young, who
/// designates what, who votes how) so the data stays the same from run to run. Every write carries an Idempotency-Key
/// derived from its item (and, for what depends on the hour, from its instant), so a rerun after a failure is given the
/// recorded answers back instead of writing twice. The suspension of <see cref="SuspendedOrganization"/> is the last
/// write: finding it means the confederation is already seeded. The client has no token of its own: each write carries
/// its caller's.
/// </summary>
public sealed class DemoConfederation(ConfederalClient api, SecurityKey key, TimeProvider clock, Action<string> log)
{
    public const string Pact = "alpine-solidarity";
    public const string SuspendedOrganization = "night-school";
    public const int PersonsPerCanton = 36;
    private const int Residents = 32;
    private const int SingleAssessments = 10;
    private const int Voters = 24;

    /// <summary>How long the ballots that are closed during the seed, and the previous year's designations, stay open.</summary>
    private static readonly TimeSpan VotingTime = TimeSpan.FromSeconds(10);

    public static readonly IReadOnlyList<DemoCanton> Cantons =
    [
        new("ge", "Genève", "CHF", "fr-CH", "Europe/Zurich", 70, 3, UnallocatedPolicy.Retain, 16, 0, 9_000, PreviousRateBp: 60, PactRateBp: 500),
        new("vd", "Vaud", "CHF", "fr-CH", "Europe/Zurich", 100, 3, UnallocatedPolicy.Proportional, 16, 0, 8_000, PactRateBp: 250),
        new("mi", "Milano", "EUR", "it-IT", "Europe/Rome", 80, 2, UnallocatedPolicy.Proportional, 16, 0, 7_000),
        new("bcn", "Barcelona", "EUR", "ca-ES", "Europe/Madrid", 70, 3, UnallocatedPolicy.Retain, 16, 90, 6_500),
        new("kyo", "Kyōto", "JPY", "ja-JP", "Asia/Tokyo", 50, 1, UnallocatedPolicy.Proportional, 18, 0, 1_200_000),
    ];

    public static readonly IReadOnlyList<DemoOrganization> Organizations =
    [
        new("kernel-commons", "Kernel Commons", OrganizationKind.Commons, true),
        new("ocean-care", "Ocean Care", OrganizationKind.Commons, true),
        new("open-maps", "Open Maps", OrganizationKind.Commons, true),
        new("folk-archive", "Folk Music Archive", OrganizationKind.Cultural, true),
        new("andean-diaspora", "Andean Diaspora Association", OrganizationKind.Origin, true),
        new("valdesi", "Valdesi", OrganizationKind.Community, false),
        new(SuspendedOrganization, "Night School Cooperative", OrganizationKind.Community, true),
    ];

    // What people choose, by their index; a canton offers those that fit its maxOrganizations.
    private static readonly (string Organization, int ShareBp)[][] Choices =
    [
        [("kernel-commons", 10000)],
        [("ocean-care", 6000), ("folk-archive", 4000)],
        [("kernel-commons", 5000), ("ocean-care", 3000), ("andean-diaspora", 2000)],
        [("valdesi", 10000)],
        [(SuspendedOrganization, 7000), ("open-maps", 3000)],
        [("andean-diaspora", 3334), ("folk-archive", 3333), ("open-maps", 3333)],
    ];

    // In the previous year: who left (To null) or moved to another canton, on which day.
    private static readonly (string From, int Person, string? To, int Month, int Day)[] Departures =
    [
        ("ge", 31, null, 10, 31),
        ("mi", 31, null, 6, 30),
        ("ge", 32, "vd", 11, 15),
    ];

    private static readonly DemoBallot Library = new("library-hours", "How should the canton's libraries open next year?",
        ["Sunday afternoons", "Longer evenings", "As they are"]);

    private static readonly DemoBallot Project = new("first-project", "Which project should the canton fund first?",
        ["Night trams", "River baths", "Public library"]);

    private readonly Dictionary<Caller, string> _tokens = [];
    private readonly OrderedDictionary<string, int> _writes = [];

    public static string Person(DemoCanton canton, int index) => $"{canton.Id}-{index:0000}";

    public async Task<DemoSummary> SeedAsync(CancellationToken ct)
    {
        var last = await V1.Organizations[SuspendedOrganization].GetAsync(cancellationToken: ct).OrNotFoundAsync();
        if (last is { Suspended: true })
        {
            return new DemoSummary(true, [], Examples());
        }

        var year = clock.GetUtcNow().Year;
        log("Cantons, organizations, the pact and this year's policies…");
        await FoundationsAsync(year, ct);
        foreach (var canton in Cantons)
        {
            log($"Residents, assessments and designations of {canton.Name}…");
            await PeopleAsync(canton, year, ct);
        }

        foreach (var (from, person, to, month, day) in Departures)
        {
            var canton = Canton(from);
            var on = new DateOnly(year - 1, month, day);
            if (to is null)
            {
                await WriteAsync("departures", Office(canton), $"departure:{Person(canton, person)}", r =>
                    V1.Cantons[from].Residents[Person(canton, person)].Departure.PostAsync(new RecordDepartureBody { LeftOn = on }, r, ct));
            }
            else
            {
                await RegisterAsync(Canton(to), Person(canton, person), on, Birth(year, person), "moves", ct);
            }
        }

        await BallotsAsync(year, ct);
        await WriteAsync("suspensions", Admin, "suspension", r => V1.Organizations[SuspendedOrganization].Suspension.PostAsync(r, ct));
        return new DemoSummary(false, [.. _writes], Examples());
    }

    private V1RequestBuilder V1 => api.Api.Api.V1;

    private async Task FoundationsAsync(int year, CancellationToken ct)
    {
        foreach (var c in Cantons)
        {
            await WriteAsync("cantons", Admin, $"canton:{c.Id}", r => V1.Cantons[c.Id].PutAsync(
                new RegisterCantonBody { Name = c.Name, Currency = c.Currency, Locale = c.Locale, TimeZone = c.TimeZone }, r, ct));
            await WriteAsync("voting rules", Office(c), $"voting-rules:{c.Id}", r => V1.Cantons[c.Id].VotingRules.PutAsync(
                new SetVotingRulesBody { VotingAge = c.VotingAge, MinimumResidenceDays = c.MinimumResidenceDays }, r, ct));
            await SetPolicyAsync(c, year, c.RateBp, new DateTimeOffset(year + 1, 3, 31, 22, 0, 0, TimeSpan.Zero), ct);
        }

        foreach (var o in Organizations)
        {
            await WriteAsync("organizations", Admin, $"organization:{o.Id}", r => V1.Organizations[o.Id].PutAsync(
                new RecognizeOrganizationBody { Name = o.Name, Kind = o.Kind, AcceptsRedistribution = o.AcceptsRedistribution }, r, ct));
        }

        await WriteAsync("pacts", Admin, $"pact:{Pact}", r => V1.Pacts[Pact].PutAsync(new FoundPactBody
        {
            Name = "Alpine Solidarity Pact",
            Currency = Cantons.First(c => c.PactRateBp is not null).Currency,
            Distribution = PactDistribution.PerResident,
        }, r, ct));
    }

    private async Task PeopleAsync(DemoCanton c, int year, CancellationToken ct)
    {
        for (var i = 1; i <= Residents; i++)
        {
            await RegisterAsync(c, Person(c, i), Since(year, i), Birth(year, i), "residents", ct);
        }

        for (var i = 1; i <= SingleAssessments; i++)
        {
            await AssessAsync(c, i, year, Tax(c, i, year), "", ct);
        }

        await AssessAsync(c, 1, year, Tax(c, 1, year) * 21 / 20, ":corrected", ct);
        await ImportAsync(c, year, SingleAssessments + 1, ct);
        if (c.PreviousRateBp is not null)
        {
            await ImportAsync(c, year - 1, 1, ct);
        }

        for (var i = 1; i <= PersonsPerCanton; i++)
        {
            if (Designation(c, i) is not { } choices)
            {
                continue;
            }

            await DesignateAsync(c, year, i, choices, standing: i % 4 == 1, ct);
            if (i % 7 == 3)
            {
                var person = Person(c, i);
                await WriteAsync("withdrawals", new Caller(Roles.Person, person), $"withdrawal:{c.Id}:{year}", r =>
                    V1.Cantons[c.Id].FiscalYears[year].Designations[person].DeleteAsync(r, ct));
            }
        }
    }

    /// <summary>An open ballot in every canton for 30 days; then, open for <see cref="VotingTime"/>: the previous
    /// year's designations, a ballot on a project and the binding ballots by which cantons join the pact, voted on,
    /// waited for and closed. What an earlier run already called is found by its question and carried on.</summary>
    private async Task BallotsAsync(int year, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        now = now.AddTicks(-(now.Ticks % TimeSpan.TicksPerSecond));
        var closesAt = now + VotingTime;
        log("Ballots, and the previous year's designations before its deadline…");
        foreach (var c in Cantons)
        {
            await FindOrCallAsync(c, Library, now, now.AddDays(30), ct);
        }

        var ends = new List<DateTimeOffset?>();
        foreach (var c in Cantons.Where(c => c.PreviousRateBp is not null))
        {
            var policy = await V1.Cantons[c.Id].FiscalYears[year - 1].Policy.GetAsync(cancellationToken: ct).OrNotFoundAsync()
                         ?? await SetPolicyAsync(c, year - 1, c.PreviousRateBp!.Value, closesAt, ct);
            for (var i = 1; policy.Open is true && i <= PersonsPerCanton; i++)
            {
                if (PreviousDesignation(c, i) is { } choices)
                {
                    await DesignateAsync(c, year - 1, i, choices, standing: i % 6 == 0, ct);
                }
            }

            ends.Add(policy.Deadline);
        }

        var closing = new List<(DemoCanton Canton, BallotView Ballot)> { (Cantons[0], await FindOrCallAsync(Cantons[0], Project, now, closesAt, ct)) };
        foreach (var c in Cantons.Where(c => c.PactRateBp is not null))
        {
            var join = new DemoBallot($"join-{Pact}", $"Shall {c.Name} join the Alpine Solidarity Pact from {year}?", ["yes", "no"],
                new CallBallotProposalBody { Kind = ProposalKind.JoinPact, PactId = Pact, ContributionRateBp = c.PactRateBp, FromFiscalYear = year });
            closing.Add((c, await FindOrCallAsync(c, join, now, closesAt, ct)));
        }

        foreach (var (c, ballot) in closing.Where(b => b.Ballot.Status == "open"))
        {
            for (var i = 1; i <= Voters; i++)
            {
                if (!Minor(i) && Vote(ballot.Options ?? [], i) is { } option)
                {
                    await WriteAsync("votes", new Caller(Roles.Person, Person(c, i)), $"vote:{ballot.BallotId}", r =>
                        V1.Cantons[c.Id].Ballots[ballot.BallotId!.Value].Votes.PostAsync(new CastVoteBody { Option = option }, r, ct));
                }
            }
        }

        var end = closing.Select(b => b.Ballot.ClosesAt).Concat(ends).Max();
        log($"Waiting for voting to end at {end:HH:mm:ss} UTC…");
        if (end - clock.GetUtcNow() + TimeSpan.FromMilliseconds(300) is { Ticks: > 0 } wait)
        {
            await Task.Delay(wait, clock, ct);
        }

        foreach (var (c, ballot) in closing.Where(b => b.Ballot.Status != "certified"))
        {
            await WriteAsync("ballots closed", Office(c), $"close:{ballot.BallotId}", r =>
                V1.Cantons[c.Id].Ballots[ballot.BallotId!.Value].Close.PostAsync(r, ct));
        }
    }

    private async Task<BallotView> FindOrCallAsync(DemoCanton c, DemoBallot ballot, DateTimeOffset opensAt, DateTimeOffset closesAt, CancellationToken ct)
    {
        var called = await V1.Cantons[c.Id].Ballots.GetAsync(cancellationToken: ct) ?? [];
        return called.FirstOrDefault(b => b.Question == ballot.Question)
               ?? await WrittenAsync("ballots", Office(c), $"ballot:{c.Id}:{ballot.Slug}:{opensAt.ToUnixTimeSeconds()}", r =>
                   V1.Cantons[c.Id].Ballots.PostAsync(new CallBallotBody
                   {
                       Question = ballot.Question,
                       Options = [.. ballot.Options],
                       CensusDate = DateOnly.FromDateTime(opensAt.UtcDateTime),
                       OpensAt = opensAt,
                       ClosesAt = closesAt,
                       Proposal = ballot.Proposal,
                   }, r, ct));
    }

    private Task<FiscalPolicyView> SetPolicyAsync(DemoCanton c, int year, int rateBp, DateTimeOffset deadline, CancellationToken ct) =>
        WrittenAsync("fiscal policies", Office(c), $"policy:{c.Id}:{year}:{deadline.ToUnixTimeSeconds()}", r =>
            V1.Cantons[c.Id].FiscalYears[year].Policy.PutAsync(new SetFiscalPolicyBody
            {
                DesignationRateBp = rateBp,
                MaxOrganizations = c.MaxOrganizations,
                UnallocatedPolicy = c.Unallocated,
                Deadline = deadline,
                EligibleOrganizations = new SetFiscalPolicyBody.SetFiscalPolicyBody_eligibleOrganizations { SetFiscalPolicyBodyEligibleOrganizationsString = "all" },
            }, r, ct));

    private Task RegisterAsync(DemoCanton c, string person, DateOnly since, DateOnly birthDate, string what, CancellationToken ct) =>
        WriteAsync(what, Office(c), $"resident:{c.Id}:{person}", r => V1.Cantons[c.Id].Residents.PostAsync(
            new RegisterResidentBody { PersonId = person, ResidentSince = since, BirthDate = birthDate }, r, ct));

    private Task AssessAsync(DemoCanton c, int index, int year, long amountMinor, string suffix, CancellationToken ct) =>
        WriteAsync("assessments one by one", Office(c), $"assessment:{Person(c, index)}:{year}{suffix}", r => V1.Cantons[c.Id].TaxAssessments.PostAsync(
            new AssessTaxBody { PersonId = Person(c, index), FiscalYear = year, AmountMinor = amountMinor }, r, ct));

    /// <summary>The assessments of persons <paramref name="from"/> to the last in one bulk import, streamed by the client
    /// (and enumerated again, the same, if it has to send them again).</summary>
    private Task ImportAsync(DemoCanton c, int year, int from, CancellationToken ct)
    {
        var assessments = Enumerable.Range(from, PersonsPerCanton - from + 1)
            .Select(i => new AssessTaxBody { PersonId = Person(c, i), FiscalYear = year, AmountMinor = Tax(c, i, year) })
            .ToAsyncEnumerable();
        return WriteAsync("bulk imports", Office(c), $"import:{c.Id}:{year}", r => api.ImportAssessmentsAsync(c.Id, assessments, r, ct));
    }

    private Task DesignateAsync(DemoCanton c, int year, int index, (string Organization, int ShareBp)[] choices, bool standing, CancellationToken ct) =>
        WriteAsync("designations", new Caller(Roles.Person, Person(c, index)), $"designation:{c.Id}:{year}", r =>
            V1.Cantons[c.Id].FiscalYears[year].Designations[Person(c, index)].PutAsync(new DesignateBody
            {
                Choices = [.. choices.Select(x => new Choice { OrganizationId = x.Organization, ShareBp = x.ShareBp })],
                Standing = standing,
            }, r, ct));

    /// <summary>One write as <paramref name="caller"/>, with its token and the Idempotency-Key of its item (a rerun is
    /// given the recorded answer back), counted as <paramref name="what"/>.</summary>
    private async Task WriteAsync(string what, Caller caller, string key, Func<Request, Task> write)
    {
        try
        {
            await write(r =>
            {
                ConfederalClient.WithKey<DefaultQueryParameters>($"dev-seed:{key}")(r);
                r.Headers.Add("Authorization", $"Bearer {Token(caller)}");
            });
        }
        catch (ApiException e) when (e.ResponseStatusCode == (int)HttpStatusCode.Unauthorized)
        {
            throw new CliException($"{RefusedRequest.Of(e)}: 401: the API does not accept this machine's development tokens. " +
                                   "dev seed needs the API running in Development (or on its embedded database) with the same data folder (CONFEDERAL_DATA_DIR).");
        }

        _writes[what] = _writes.GetValueOrDefault(what) + 1;
    }

    /// <summary>A write whose answer the seed goes on with: what was written, as the API recorded it.</summary>
    private async Task<T> WrittenAsync<T>(string what, Caller caller, string key, Func<Request, Task<T?>> write)
        where T : class
    {
        T? answer = null;
        Func<Request, Task> send = async r => answer = await write(r);
        await WriteAsync(what, caller, key, send);
        return answer ?? throw new CliException($"dev seed, {what} ({key}): the API answered an empty body.");
    }

    private string Token(Caller caller)
    {
        if (!_tokens.TryGetValue(caller, out var token))
        {
            token = DevTokens.Issue(key, caller.Role, caller.Subject, caller.Canton);
            _tokens[caller] = token;
        }

        return token;
    }

    private static Caller Admin => new(Roles.Admin, "demo-admin");

    private static Caller Office(DemoCanton c) => new(Roles.Municipality, $"{c.Id}-office", c.Id);

    private static DemoCanton Canton(string id) => Cantons.Single(c => c.Id == id);

    private static bool Minor(int index) => index % 12 == 6;

    private static DateOnly Birth(int year, int index) => new(year - (Minor(index) ? 13 : 18 + index * 7 % 60), 1 + index % 12, 1 + index % 28);

    private static DateOnly Since(int year, int index)
    {
        var arrived = new DateOnly(year - 1 - index % 12, 1 + index * 5 % 12, 1);
        var birth = Birth(year, index);
        return arrived > birth ? arrived : birth;
    }

    /// <summary>Tax between 0.4 and 2 times the canton's typical tax, with some minor units where the currency has them.</summary>
    private static long Tax(DemoCanton c, int index, int year)
    {
        var minorPerMajor = (long)Math.Pow(10, Domain.Currencies.MinorUnitDigits(c.Currency));
        return c.TaxMajor * (40 + (index * 37 + year) % 160) / 100 * minorPerMajor + index * 7919 % minorPerMajor;
    }

    private static List<(string Organization, int ShareBp)[]> Offered(DemoCanton c) => [.. Choices.Where(x => x.Length <= c.MaxOrganizations)];

    /// <summary>This year's choice of a person; every sixth chooses nothing.</summary>
    private static (string Organization, int ShareBp)[]? Designation(DemoCanton c, int index) =>
        index % 6 == 5 ? null : Offered(c)[index % Offered(c).Count];

    /// <summary>The previous year's choice, where there is one: every third person.</summary>
    private static (string Organization, int ShareBp)[]? PreviousDesignation(DemoCanton c, int index) =>
        c.PreviousRateBp is null || index % 3 != 0 ? null : Offered(c)[index / 3 % Offered(c).Count];

    /// <summary>About two thirds vote: on yes/no, mostly yes.</summary>
    private static string? Vote(List<string> options, int index) => options.Count == 2
        ? index % 4 == 0 ? null : index % 4 == 3 ? "no" : "yes"
        : index % 5 == 0 ? null : options[index % options.Count];

    private static List<KeyValuePair<string, string>> Examples()
    {
        var ge = Cantons[0];
        string First(Func<int, bool> rule) => Person(ge, Enumerable.Range(1, PersonsPerCanton).First(rule));
        var moved = Departures.First(d => d.To is not null);
        return
        [
            new(First(i => Designation(ge, i)?.Length == 3 && i % 7 != 3), "a three-way split this year"),
            new(First(i => Designation(ge, i) is null && PreviousDesignation(ge, i) is null), "assessed, nothing designated yet"),
            new(First(i => PreviousDesignation(ge, i) is not null), "designated last year, whose deadline has passed (read-only)"),
            new(First(i => i <= Voters && !Minor(i)), "may vote on the open ballot (and voted in the closed ones)"),
            new(First(Minor), "a resident too young to vote"),
            new(Person(Canton(moved.From), moved.Person), $"moved from {Canton(moved.From).Name} to {Canton(moved.To!).Name}"),
        ];
    }

    private sealed record Caller(string Role, string? Subject = null, string? Canton = null);

    private sealed record DemoBallot(string Slug, string Question, string[] Options, CallBallotProposalBody? Proposal = null);
}
