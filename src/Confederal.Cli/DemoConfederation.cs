using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Cli;

/// <summary>A canton of the demo: how it is registered, its policy for the current year (and the previous one when
/// <see cref="PreviousRateBp"/> is set), its voting rules, its typical tax in major units, and its rate in the demo
/// pact when it joins it.</summary>
public sealed record DemoCanton(
    string Id, string Name, string Currency, string Locale, string TimeZone, int RateBp, int MaxOrganizations, string Unallocated,
    int VotingAge, int MinimumResidenceDays, long TaxMajor, int? PreviousRateBp = null, int? PactRateBp = null);

/// <summary>An organization of the demo, recognized by the confederation admin.</summary>
public sealed record DemoOrganization(string Id, string Name, string Kind, bool AcceptsRedistribution);

/// <summary>What a seed did: its writes by kind (a rerun counts the recorded answers it was given back again) and
/// persons to sign in as on the web pages.</summary>
public sealed record DemoSummary(
    bool AlreadySeeded, IReadOnlyList<KeyValuePair<string, int>> Writes, IReadOnlyList<KeyValuePair<string, string>> Examples);

/// <summary>
/// `dev seed`: a small believable confederation written into a running API over its REST endpoints, with development
/// tokens of each role, so every rule of the real handlers applies. The people follow a few rules of their index (who
/// is young, who designates what, who votes how) so the data stays the same from run to run. Every write carries an
/// Idempotency-Key derived from its item (and, for what depends on the hour, from its instant), so a rerun after a
/// failure is given the recorded answers back instead of writing twice. The suspension of
/// <see cref="SuspendedOrganization"/> is the last write: finding it means the confederation is already seeded.
/// </summary>
public sealed class DemoConfederation(HttpClient api, SecurityKey key, TimeProvider clock, Action<string> log)
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
        new("ge", "Genève", "CHF", "fr-CH", "Europe/Zurich", 70, 3, "retain", 16, 0, 9_000, PreviousRateBp: 60, PactRateBp: 500),
        new("vd", "Vaud", "CHF", "fr-CH", "Europe/Zurich", 100, 3, "proportional", 16, 0, 8_000, PactRateBp: 250),
        new("mi", "Milano", "EUR", "it-IT", "Europe/Rome", 80, 2, "proportional", 16, 0, 7_000),
        new("bcn", "Barcelona", "EUR", "ca-ES", "Europe/Madrid", 70, 3, "retain", 16, 90, 6_500),
        new("kyo", "Kyōto", "JPY", "ja-JP", "Asia/Tokyo", 50, 1, "proportional", 18, 0, 1_200_000),
    ];

    public static readonly IReadOnlyList<DemoOrganization> Organizations =
    [
        new("kernel-commons", "Kernel Commons", "commons", true),
        new("ocean-care", "Ocean Care", "commons", true),
        new("open-maps", "Open Maps", "commons", true),
        new("folk-archive", "Folk Music Archive", "cultural", true),
        new("andean-diaspora", "Andean Diaspora Association", "origin", true),
        new("valdesi", "Valdesi", "community", false),
        new(SuspendedOrganization, "Night School Cooperative", "community", true),
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
        var last = await ApiRequests.GetAsync<OrganizationRead>(api, $"/api/v1/organizations/{SuspendedOrganization}", ct, missingIsNull: true);
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
            await (to is null
                ? WriteAsync("departures", HttpMethod.Post, $"/api/v1/cantons/{from}/residents/{Person(canton, person)}/departure", Office(canton),
                    $"departure:{Person(canton, person)}", Json(new { leftOn = on }), ct)
                : RegisterAsync(Canton(to), Person(canton, person), on, Birth(year, person), "moves", ct));
        }

        await BallotsAsync(year, ct);
        await WriteAsync("suspensions", HttpMethod.Post, $"/api/v1/organizations/{SuspendedOrganization}/suspension", Admin, "suspension", null, ct);
        return new DemoSummary(false, [.. _writes], Examples());
    }

    private async Task FoundationsAsync(int year, CancellationToken ct)
    {
        foreach (var c in Cantons)
        {
            await WriteAsync("cantons", HttpMethod.Put, $"/api/v1/cantons/{c.Id}", Admin, $"canton:{c.Id}",
                Json(new { name = c.Name, currency = c.Currency, locale = c.Locale, timeZone = c.TimeZone }), ct);
            await WriteAsync("voting rules", HttpMethod.Put, $"/api/v1/cantons/{c.Id}/voting-rules", Office(c), $"voting-rules:{c.Id}",
                Json(new { votingAge = c.VotingAge, minimumResidenceDays = c.MinimumResidenceDays }), ct);
            await SetPolicyAsync(c, year, c.RateBp, new DateTimeOffset(year + 1, 3, 31, 22, 0, 0, TimeSpan.Zero), ct);
        }

        foreach (var o in Organizations)
        {
            await WriteAsync("organizations", HttpMethod.Put, $"/api/v1/organizations/{o.Id}", Admin, $"organization:{o.Id}",
                Json(new { name = o.Name, kind = o.Kind, acceptsRedistribution = o.AcceptsRedistribution }), ct);
        }

        await WriteAsync("pacts", HttpMethod.Put, $"/api/v1/pacts/{Pact}", Admin, $"pact:{Pact}",
            Json(new { name = "Alpine Solidarity Pact", currency = Cantons.First(c => c.PactRateBp is not null).Currency, distribution = "per-resident" }), ct);
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
                await WriteAsync("withdrawals", HttpMethod.Delete, DesignationPath(c, year, Person(c, i)), new Caller(Roles.Person, Person(c, i)),
                    $"withdrawal:{c.Id}:{year}", null, ct);
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

        var ends = new List<DateTimeOffset>();
        foreach (var c in Cantons.Where(c => c.PreviousRateBp is not null))
        {
            var policy = await ApiRequests.GetAsync<PolicyRead>(api, PolicyPath(c, year - 1), ct, missingIsNull: true)
                         ?? await SetPolicyAsync(c, year - 1, c.PreviousRateBp!.Value, closesAt, ct);
            for (var i = 1; policy.Open && i <= PersonsPerCanton; i++)
            {
                if (PreviousDesignation(c, i) is { } choices)
                {
                    await DesignateAsync(c, year - 1, i, choices, standing: i % 6 == 0, ct);
                }
            }

            ends.Add(policy.Deadline);
        }

        var closing = new List<(DemoCanton Canton, BallotRead Ballot)> { (Cantons[0], await FindOrCallAsync(Cantons[0], Project, now, closesAt, ct)) };
        foreach (var c in Cantons.Where(c => c.PactRateBp is not null))
        {
            var join = new DemoBallot($"join-{Pact}", $"Shall {c.Name} join the Alpine Solidarity Pact from {year}?", ["yes", "no"],
                new { kind = "join-pact", pactId = Pact, contributionRateBp = c.PactRateBp, fromFiscalYear = year });
            closing.Add((c, await FindOrCallAsync(c, join, now, closesAt, ct)));
        }

        foreach (var (c, ballot) in closing.Where(b => b.Ballot.Status == "open"))
        {
            for (var i = 1; i <= Voters; i++)
            {
                if (!Minor(i) && Vote(ballot.Options, i) is { } option)
                {
                    await WriteAsync("votes", HttpMethod.Post, $"/api/v1/cantons/{c.Id}/ballots/{ballot.BallotId}/votes",
                        new Caller(Roles.Person, Person(c, i)), $"vote:{ballot.BallotId}", Json(new { option }), ct);
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
            await WriteAsync("ballots closed", HttpMethod.Post, $"/api/v1/cantons/{c.Id}/ballots/{ballot.BallotId}/close", Office(c),
                $"close:{ballot.BallotId}", null, ct);
        }
    }

    private async Task<BallotRead> FindOrCallAsync(DemoCanton c, DemoBallot ballot, DateTimeOffset opensAt, DateTimeOffset closesAt, CancellationToken ct)
    {
        var called = await ApiRequests.GetAsync<List<BallotRead>>(api, $"/api/v1/cantons/{c.Id}/ballots", ct);
        return called!.FirstOrDefault(b => b.Question == ballot.Question)
               ?? (await WriteAsync("ballots", HttpMethod.Post, $"/api/v1/cantons/{c.Id}/ballots", Office(c),
                   $"ballot:{c.Id}:{ballot.Slug}:{opensAt.ToUnixTimeSeconds()}", Json(new
                   {
                       question = ballot.Question,
                       options = ballot.Options,
                       censusDate = DateOnly.FromDateTime(opensAt.UtcDateTime),
                       opensAt,
                       closesAt,
                       proposal = ballot.Proposal,
                   }), ct)).Deserialize<BallotRead>(CliContext.Json)!;
    }

    private async Task<PolicyRead> SetPolicyAsync(DemoCanton c, int year, int rateBp, DateTimeOffset deadline, CancellationToken ct) =>
        (await WriteAsync("fiscal policies", HttpMethod.Put, PolicyPath(c, year), Office(c), $"policy:{c.Id}:{year}:{deadline.ToUnixTimeSeconds()}", Json(new
        {
            designationRateBp = rateBp,
            maxOrganizations = c.MaxOrganizations,
            unallocatedPolicy = c.Unallocated,
            deadline,
            eligibleOrganizations = "all",
        }), ct)).Deserialize<PolicyRead>(CliContext.Json)!;

    private async Task RegisterAsync(DemoCanton c, string person, DateOnly since, DateOnly birthDate, string what, CancellationToken ct) =>
        await WriteAsync(what, HttpMethod.Post, $"/api/v1/cantons/{c.Id}/residents", Office(c), $"resident:{c.Id}:{person}",
            Json(new { personId = person, residentSince = since, birthDate }), ct);

    private async Task AssessAsync(DemoCanton c, int index, int year, long amountMinor, string suffix, CancellationToken ct) =>
        await WriteAsync("assessments one by one", HttpMethod.Post, $"/api/v1/cantons/{c.Id}/tax-assessments", Office(c),
            $"assessment:{Person(c, index)}:{year}{suffix}", Json(new { personId = Person(c, index), fiscalYear = year, amountMinor }), ct);

    private async Task ImportAsync(DemoCanton c, int year, int from, CancellationToken ct)
    {
        var lines = Enumerable.Range(from, PersonsPerCanton - from + 1).Select(i =>
            JsonSerializer.Serialize(new { personId = Person(c, i), fiscalYear = year, amountMinor = Tax(c, i, year) }, CliContext.Json));
        await WriteAsync("bulk imports", HttpMethod.Post, $"/api/v1/cantons/{c.Id}/tax-assessments/batch", Office(c), $"import:{c.Id}:{year}",
            () => new StringContent(string.Join('\n', lines) + "\n", Encoding.UTF8, "application/x-ndjson"), ct);
    }

    private async Task DesignateAsync(DemoCanton c, int year, int index, (string Organization, int ShareBp)[] choices, bool standing, CancellationToken ct) =>
        await WriteAsync("designations", HttpMethod.Put, DesignationPath(c, year, Person(c, index)), new Caller(Roles.Person, Person(c, index)),
            $"designation:{c.Id}:{year}", Json(new { choices = choices.Select(x => new { organizationId = x.Organization, shareBp = x.ShareBp }), standing }), ct);

    private async Task<JsonElement> WriteAsync(
        string what, HttpMethod method, string path, Caller caller, string idempotencyKey, Func<HttpContent>? content, CancellationToken ct)
    {
        while (true)
        {
            using var request = new HttpRequestMessage(method, path) { Content = content?.Invoke() };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token(caller));
            request.Headers.Add(Idempotency.Header, $"dev-seed:{idempotencyKey}");
            using var response = await api.SendAsync(request, ct);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1), clock, ct);
                continue;
            }

            if (response.StatusCode == HttpStatusCode.Unauthorized)
            {
                throw new CliException($"{method} {path}: 401: the API does not accept this machine's development tokens. " +
                                       "dev seed needs the API running in Development (or on its embedded database) with the same data folder (CONFEDERAL_DATA_DIR).");
            }

            await ApiRequests.EnsureSuccessAsync(response, ct);
            _writes[what] = _writes.GetValueOrDefault(what) + 1;
            var body = await response.Content.ReadAsStringAsync(ct);
            return body.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(body);
        }
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

    private static Func<HttpContent> Json(object body) => () => JsonContent.Create(body, options: CliContext.Json);

    private static Caller Admin => new(Roles.Admin, "demo-admin");

    private static Caller Office(DemoCanton c) => new(Roles.Municipality, $"{c.Id}-office", c.Id);

    private static DemoCanton Canton(string id) => Cantons.Single(c => c.Id == id);

    private static string PolicyPath(DemoCanton c, int year) => $"/api/v1/cantons/{c.Id}/fiscal-years/{year}/policy";

    private static string DesignationPath(DemoCanton c, int year, string person) => $"/api/v1/cantons/{c.Id}/fiscal-years/{year}/designations/{person}";

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
    private static string? Vote(string[] options, int index) => options.Length == 2
        ? index % 4 == 0 ? null : index % 4 == 3 ? "no" : "yes"
        : index % 5 == 0 ? null : options[index % options.Length];

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

    private sealed record DemoBallot(string Slug, string Question, string[] Options, object? Proposal = null);

    private sealed record BallotRead(Guid BallotId, string Question, string[] Options, DateTimeOffset ClosesAt, string Status);

    private sealed record OrganizationRead(bool Suspended);

    private sealed record PolicyRead(DateTimeOffset Deadline, bool Open);
}
