using Confederal.Domain.Cantons;
using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.Domain.Pacts;
using FsCheck;
using FsCheck.Fluent;

namespace Confederal.Domain.Tests;

/// <summary>An event as the log holds it: in global order (its index), recorded at an instant.</summary>
public sealed record Recorded(object Event, DateTimeOffset At);

/// <summary>A random fiscal history, printed one event a line when a property fails.</summary>
public sealed class History(IReadOnlyList<Recorded> events)
{
    public IReadOnlyList<Recorded> Events { get; } = events;

    public Ledger Fold(int count)
    {
        var ledger = new Ledger();
        for (var i = 0; i < count; i++)
        {
            ledger.Apply(Events[i].Event, Events[i].At, i + 1);
        }

        ledger.SettlePacts();
        return ledger;
    }

    public override string ToString() =>
        $"{Events.Count} events:{Environment.NewLine}"
        + string.Join(Environment.NewLine, Events.Select((r, i) => $"{i + 1,4} {r.At:yyyy-MM-dd} {Describe(r.Event)}"));

    private static string Describe(object @event) => @event switch
    {
        DesignationChosen e => $"DesignationChosen {e.CantonId} {e.Taxpayer} {e.FiscalYear} "
            + $"[{string.Join(", ", e.Choices.Select(c => $"{c.OrganizationId} {c.ShareBp}"))}]{(e.Standing ? " standing" : "")}",
        FiscalPolicySet e => $"FiscalPolicySet {e.CantonId} {e.FiscalYear} {e.DesignationRateBp} bp {e.UnallocatedPolicy} until {e.Deadline:yyyy-MM-dd} "
            + $"eligible {(e.Eligibility == Eligibility.All ? "all" : $"[{string.Join(", ", e.EligibleOrganizations)}]")}",
        _ => @event.ToString() ?? "",
    };
}

/// <summary>
/// Random histories of 1–3 cantons (currencies drawn from two, so some share one), 1–2 fiscal years, 1–6
/// organizations (some declining redistributed money, suspended and reinstated at random instants), up to 6 persons
/// and up to 2 pacts (equal or per-resident, in either currency): policies, assessments with corrections, designations
/// and withdrawals, joins (rate changes), leaves, arrivals and departures interleaved in random order. Time advances by
/// whole days and deadlines fall on whole days, so events land exactly on deadlines often; arrivals and departures fall
/// around 1 January, where the census of per-resident pacts is taken. Memberships reach from the year before the books
/// to the year after them.
/// </summary>
internal static class RandomHistories
{
    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly string[] CantonIds = ["ge", "vd", "aosta"];
    private static readonly string[] OrganizationIds = ["linux", "arts-2", "oceans", "arts-10", "care", "zen"]; // ordinal: arts-10 < arts-2
    private static readonly string[] PersonIds = ["p1", "p2", "p3", "p4", "p5", "p6"];
    private static readonly string[] PactIds = ["rhine", "alps"];
    private static readonly DateOnly BirthDate = new(1990, 5, 17);
    private static readonly DateOnly[] ResidenceDays =
    [
        new(2024, 6, 1), new(2024, 12, 31), new(2025, 1, 1), new(2025, 1, 2), new(2025, 7, 1), new(2025, 12, 31), new(2026, 1, 1),
        new(2026, 1, 2), new(2026, 9, 30), new(2027, 1, 1),
    ];
    private const int FirstYear = 2025;

    private abstract record Op(int Days);

    private sealed record Recognize(int Days, int Organization, bool Accepts) : Op(Days);

    private sealed record Suspend(int Days, int Organization) : Op(Days);

    private sealed record Reinstate(int Days, int Organization) : Op(Days);

    private sealed record SetPolicy(int Days, int Canton, int Year, int RateBp, bool Proportional, int[]? Eligible, int DeadlineInDays) : Op(Days);

    private sealed record Assess(int Days, int Canton, int Person, int Year, long AmountMinor) : Op(Days);

    private sealed record Designate(int Days, int Canton, int Person, int Year, int[] Organizations, int[] Shares, bool Standing) : Op(Days);

    private sealed record Withdraw(int Days, int Canton, int Person, int Year) : Op(Days);

    /// <summary>Through the decision, or (Raw) appended as it is, whatever the currencies: the ledger must keep
    /// currencies apart even in a log no decision would write.</summary>
    private sealed record Join(int Days, int Canton, int Pact, int RateBp, int FromYear, bool Raw) : Op(Days);

    private sealed record Leave(int Days, int Canton, int Pact, int FromYear) : Op(Days);

    private sealed record Arrive(int Days, int Person, int Canton, int Day) : Op(Days);

    private sealed record Depart(int Days, int Person, int Day) : Op(Days);

    /// <summary><see cref="Taxing"/>: the cantons with policies and assessments, the first always; the others only have
    /// residents and memberships, as a member without a budget of its own.</summary>
    private sealed record Universe(
        string[] Currencies, int Years, int Organizations, bool[] Accepts, int Persons, (string Currency, PactDistribution Distribution)[] Pacts,
        int[] Taxing);

    public static readonly Arbitrary<History> Arbitrary = Arb.From(
        from cantons in Gen.Choose(1, CantonIds.Length)
        from currencies in Gen.ArrayOf(Gen.Elements("CHF", "EUR"), cantons)
        from years in Gen.Choose(1, 2)
        from organizations in Gen.Choose(1, OrganizationIds.Length)
        from accepts in Gen.ArrayOf(Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false))), organizations)
        from persons in Gen.Choose(1, PersonIds.Length)
        from pactCount in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Choose(1, PactIds.Length)))
        from pacts in Gen.ArrayOf(
            from currency in Gen.Frequency((3, Gen.Elements(currencies)), (1, Gen.Elements("CHF", "EUR")))
            from distribution in Gen.Elements(PactDistribution.Equal, PactDistribution.PerResident)
            select (currency, distribution),
            pactCount)
        from quiet in Gen.ArrayOf(Gen.Frequency((3, Gen.Constant(false)), (1, Gen.Constant(true))), cantons)
        let taxing = Enumerable.Range(0, cantons).Where(c => c == 0 || !quiet[c]).ToArray()
        let universe = new Universe(currencies, years, organizations, accepts, persons, pacts, taxing)
        from count in Gen.Choose(0, 70)
        from ops in Gen.ArrayOf(Ops(universe), count)
        from recognizedBefore in Gen.ArrayOf(Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Choose(0, count))), organizations)
        select Build(universe, ops, recognizedBefore),
        Shrink);

    private static string? OrganizationOf(object @event) => @event switch
    {
        OrganizationRecognized e => e.OrganizationId,
        OrganizationUpdated e => e.OrganizationId,
        OrganizationSuspended e => e.OrganizationId,
        OrganizationReinstated e => e.OrganizationId,
        _ => null,
    };

    /// <summary>Smaller histories for a failing one: runs of events taken out, halves first, as long as what is left is
    /// still a history the log could hold.</summary>
    private static IEnumerable<History> Shrink(History history)
    {
        var events = history.Events;
        for (var size = Math.Max(1, events.Count / 2); size >= 1; size /= 2)
        {
            for (var start = 0; start + size <= events.Count; start += size)
            {
                var smaller = events.Take(start).Concat(events.Skip(start + size)).ToList();
                if (CouldBeLogged(smaller))
                {
                    yield return new History(smaller);
                }
            }

            if (size == 1)
            {
                yield break;
            }
        }
    }

    /// <summary>Cantons registered and organizations recognized before they are mentioned, a year's policy changed
    /// only while the previous one was open, pacts founded before they are joined or left, and one residence at a time
    /// (a departure ends the residence it names, an arrival comes when the person lives nowhere).</summary>
    private static bool CouldBeLogged(List<Recorded> events)
    {
        var cantons = new HashSet<string>(StringComparer.Ordinal);
        var organizations = new HashSet<string>(StringComparer.Ordinal);
        var deadlines = new Dictionary<(string, int), DateTimeOffset>();
        var pacts = new HashSet<string>(StringComparer.Ordinal);
        var residences = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var (@event, at) in events)
        {
            switch (@event)
            {
                case PactFounded e:
                    pacts.Add(e.PactId);
                    break;
                case PactJoined e when !pacts.Contains(e.PactId):
                case PactLeft l when !pacts.Contains(l.PactId):
                case ResidentRegistered r when residences.GetValueOrDefault(r.Resident) is not null:
                case ResidentDeparted d when residences.GetValueOrDefault(d.Resident) != d.CantonId:
                    return false;
                case ResidentRegistered e:
                    residences[e.Resident] = e.CantonId;
                    break;
                case ResidentDeparted e:
                    residences[e.Resident] = null;
                    break;
            }

            var (canton, mentioned) = @event switch
            {
                OrganizationRecognized => (null, []),
                FiscalPolicySet e => (e.CantonId, []),
                TaxAssessed e => (e.CantonId, []),
                DesignationChosen e => (e.CantonId, e.Choices.Select(c => c.OrganizationId).ToArray()),
                DesignationWithdrawn e => (e.CantonId, []),
                _ => ((string?)null, OrganizationOf(@event) is { } id ? new[] { id } : []),
            };
            if ((canton is not null && !cantons.Contains(canton)) || !mentioned.All(organizations.Contains))
            {
                return false;
            }

            switch (@event)
            {
                case CantonRegistered e:
                    cantons.Add(e.CantonId);
                    break;
                case OrganizationRecognized e:
                    organizations.Add(e.OrganizationId);
                    break;
                case FiscalPolicySet e when deadlines.TryGetValue((e.CantonId, e.FiscalYear), out var previous) && at >= previous:
                    return false;
                case FiscalPolicySet e:
                    deadlines[(e.CantonId, e.FiscalYear)] = e.Deadline;
                    break;
            }
        }

        return true;
    }

    private static Gen<Op> Ops(Universe u)
    {
        var days = Gen.Frequency((3, Gen.Constant(0)), (4, Gen.Constant(1)), (2, Gen.Choose(2, 6)));
        var canton = Gen.Elements(u.Taxing);
        var anyCanton = Gen.Choose(0, u.Currencies.Length - 1);
        var year = Gen.Choose(0, u.Years - 1);
        var designationYear = Gen.Choose(-1, u.Years - 1); // a record the year before the books can carry into them
        var person = Gen.Choose(0, u.Persons - 1);
        var organization = Gen.Choose(0, u.Organizations - 1);
        var rate = Gen.Frequency((1, Gen.Elements(0, 10_000)), (2, Gen.Elements(70, 100, 800, 3_333)), (3, Gen.Choose(0, 10_000)));
        var pact = Gen.Choose(0, Math.Max(0, u.Pacts.Length - 1));
        var contributionRate = Gen.Frequency((1, Gen.Elements(1, 10_000)), (2, Gen.Elements(100, 2_500, 3_333)), (2, Gen.Choose(1, 10_000)));
        var memberYear = Gen.Choose(FirstYear - 1, FirstYear + u.Years);
        var residenceDay = Gen.Choose(0, ResidenceDays.Length - 1);
        var eligible = Gen.Frequency(
            (2, Gen.Constant<int[]?>(null)),
            (1, Gen.SubListOf(Enumerable.Range(0, u.Organizations)).Select(l => (int[]?)l.ToArray())));
        var amount = Gen.Frequency(
            (1, Gen.Elements(0L, 1_000_000_000_000L)),
            (3, Gen.Choose(0, 10_000).Select(i => (long)i)),
            (4, from high in Gen.Choose(0, 999) from low in Gen.Choose(0, 999_999_999) select high * 1_000_000_000L + low));

        return Gen.Frequency(
            (1, from d in days from o in organization from a in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false))) select (Op)new Recognize(d, o, a)),
            (2, from d in days from o in organization select (Op)new Suspend(d, o)),
            (2, from d in days from o in organization select (Op)new Reinstate(d, o)),
            (3, from d in days from c in canton from y in year from r in rate from p in Gen.Elements(true, false) from e in eligible
                from deadline in Gen.Choose(1, 30)
                select (Op)new SetPolicy(d, c, y, r, p, e, deadline)),
            (8, from d in days from c in canton from p in person from y in year from a in amount select (Op)new Assess(d, c, p, y, a)),
            (6, from d in days from c in canton from p in person from y in designationYear
                from k in Gen.Choose(1, Math.Min(3, u.Organizations))
                from orgs in Gen.Shuffle(Enumerable.Range(0, u.Organizations))
                from shares in Shares(k)
                from standing in Gen.Elements(true, false)
                select (Op)new Designate(d, c, p, y, orgs.Take(k).ToArray(), shares, standing)),
            (2, from d in days from c in canton from p in person from y in designationYear select (Op)new Withdraw(d, c, p, y)),
            (u.Pacts.Length == 0 ? 0 : 6, from d in days from c in anyCanton from p in pact from r in contributionRate from y in memberYear
                from raw in Gen.Frequency((9, Gen.Constant(false)), (1, Gen.Constant(true)))
                select (Op)new Join(d, c, p, r, y, raw)),
            (u.Pacts.Length == 0 ? 0 : 1, from d in days from c in anyCanton from p in pact from y in memberYear select (Op)new Leave(d, c, p, y)),
            (3, from d in days from p in person from c in anyCanton from day in residenceDay select (Op)new Arrive(d, p, c, day)),
            (1, from d in days from p in person from day in residenceDay select (Op)new Depart(d, p, day)));
    }

    /// <summary>k positive shares summing to 10000, with the tie-making ones often.</summary>
    private static Gen<int[]> Shares(int k) => k switch
    {
        1 => Gen.Constant<int[]>([10_000]),
        2 => Gen.Frequency(
            (1, Gen.Constant<int[]>([5_000, 5_000])),
            (3, Gen.Choose(1, 9_999).Select(a => new[] { a, 10_000 - a }))),
        _ => Gen.Frequency(
            (1, Gen.Elements<int[]>([3_333, 3_333, 3_334], [3_334, 3_333, 3_333], [2_500, 2_500, 5_000])),
            (3, from a in Gen.Choose(1, 9_998) from b in Gen.Choose(a + 1, 9_999) select new[] { a, b - a, 10_000 - b })),
    };

    /// <summary>Turns the random intentions into the events a log would hold: cantons registered first; organizations
    /// recognized, suspended and reinstated through their decisions; policies set through theirs (so a closed year's
    /// policy never changes, and a deadline is always later than the instant it is set). Assessments, designations and
    /// withdrawals are taken as they come (after the deadline too): the ledger folds whatever the log holds. Choices
    /// name only organizations recognized by then.</summary>
    private static History Build(Universe u, Op[] ops, int[] recognizedBefore)
    {
        var log = new List<Recorded>();
        var now = Start;
        var organizations = new Dictionary<string, Organization?>(StringComparer.Ordinal);
        var policies = new Dictionary<(string, int), FiscalPolicy?>();
        var pacts = new Dictionary<string, Pact?>(StringComparer.Ordinal);
        var residences = new Dictionary<string, Residence?>(StringComparer.Ordinal);

        void Record(IEnumerable<object> events)
        {
            foreach (var e in events)
            {
                log.Add(new Recorded(e, now));
                switch (e)
                {
                    case FiscalPolicySet p:
                        policies[(p.CantonId, p.FiscalYear)] = FiscalPolicy.Apply(null, p);
                        break;
                    case PactFounded or PactJoined or PactLeft:
                        var pactId = e switch { PactFounded f => f.PactId, PactJoined j => j.PactId, _ => ((PactLeft)e).PactId };
                        pacts[pactId] = Pact.Apply(pacts.GetValueOrDefault(pactId), e);
                        break;
                    case ResidentRegistered or ResidentDeparted:
                        var personId = e is ResidentRegistered r ? r.Resident : ((ResidentDeparted)e).Resident;
                        residences[personId] = Residence.Apply(residences.GetValueOrDefault(personId), e);
                        break;
                    default:
                        if (OrganizationOf(e) is { } id)
                        {
                            organizations[id] = Organization.Apply(organizations.GetValueOrDefault(id), e);
                        }

                        break;
                }
            }
        }

        // A decision refusing what was drawn records nothing, as the API would answer 409.
        void Decide(Func<IReadOnlyList<object>> decision)
        {
            try
            {
                Record(decision());
            }
            catch (DomainException)
            {
            }
        }

        Record(u.Currencies.Select((currency, i) => new CantonRegistered(CantonIds[i], CantonIds[i].ToUpperInvariant(), currency)));
        Record(u.Pacts.Select((p, i) => new PactFounded(PactIds[i], PactIds[i].ToUpperInvariant(), p.Currency, p.Distribution)));
        for (var i = 0; i < ops.Length; i++)
        {
            for (var o = 0; o < u.Organizations; o++)
            {
                if (recognizedBefore[o] == i)
                {
                    Record(Organization.Recognize(organizations.GetValueOrDefault(OrganizationIds[o]), OrganizationIds[o], OrganizationIds[o], OrganizationKind.Commons, u.Accepts[o]));
                }
            }

            now = now.AddDays(ops[i].Days);
            switch (ops[i])
            {
                case Recognize op:
                    var state = organizations.GetValueOrDefault(OrganizationIds[op.Organization]);
                    Record(Organization.Recognize(state, OrganizationIds[op.Organization], OrganizationIds[op.Organization], OrganizationKind.Commons, op.Accepts));
                    break;
                case Suspend op when organizations.GetValueOrDefault(OrganizationIds[op.Organization]) is { } known:
                    Record(Organization.Suspend(known, known.Id));
                    break;
                case Reinstate op when organizations.GetValueOrDefault(OrganizationIds[op.Organization]) is { } known:
                    Record(Organization.Reinstate(known, known.Id));
                    break;
                case SetPolicy op:
                    var asked = new FiscalPolicy(
                        op.RateBp, FiscalPolicy.DefaultMaxOrganizations, op.Proportional ? UnallocatedPolicy.Proportional : UnallocatedPolicy.Retain,
                        now.AddDays(op.DeadlineInDays), op.Eligible?.Select(o => OrganizationIds[o]).ToList()).ToEvent(CantonIds[op.Canton], FirstYear + op.Year);
                    try
                    {
                        Record(FiscalPolicy.Set(policies.GetValueOrDefault((asked.CantonId, asked.FiscalYear)), asked, now));
                    }
                    catch (DomainException e) when (e.Code == "fiscal-year-closed")
                    {
                    }

                    break;
                case Assess op:
                    Record([new TaxAssessed(CantonIds[op.Canton], PersonIds[op.Person], FirstYear + op.Year, op.AmountMinor)]);
                    break;
                case Designate op when op.Organizations.All(o => organizations.ContainsKey(OrganizationIds[o])):
                    var choices = op.Organizations.Select((o, k) => new Choice(OrganizationIds[o], op.Shares[k])).ToList();
                    Record([new DesignationChosen(CantonIds[op.Canton], PersonIds[op.Person], FirstYear + op.Year, choices, op.Standing)]);
                    break;
                case Withdraw op:
                    Record([new DesignationWithdrawn(CantonIds[op.Canton], PersonIds[op.Person], FirstYear + op.Year)]);
                    break;
                case Join op when op.Raw:
                    Record([new PactJoined(PactIds[op.Pact], CantonIds[op.Canton], op.RateBp, op.FromYear, Guid.Empty)]);
                    break;
                case Join op:
                    Decide(() => Pact.Join(pacts[PactIds[op.Pact]], PactIds[op.Pact], CantonIds[op.Canton], u.Currencies[op.Canton], op.RateBp, op.FromYear, Guid.Empty,
                        pacts.Values.OfType<Pact>()));
                    break;
                case Leave op:
                    Decide(() => Pact.Leave(pacts[PactIds[op.Pact]], PactIds[op.Pact], CantonIds[op.Canton], op.FromYear, Guid.Empty));
                    break;
                case Arrive op:
                    Decide(() => Residence.Register(
                        residences.GetValueOrDefault(PersonIds[op.Person]), People.Who(PersonIds[op.Person]), CantonIds[op.Canton], ResidenceDays[op.Day], BirthDate));
                    break;
                case Depart op when residences.GetValueOrDefault(PersonIds[op.Person])?.Current is { } current:
                    Decide(() => Residence.Depart(residences[PersonIds[op.Person]], People.Who(PersonIds[op.Person]), current.CantonId, ResidenceDays[op.Day]));
                    break;
            }
        }

        return new History(log);
    }
}
