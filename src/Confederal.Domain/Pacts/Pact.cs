using System.Collections.Immutable;
using Confederal.Domain.Fiscal;

namespace Confederal.Domain.Pacts;

/// <summary>How a pact's pool is split among its members: equally, or in proportion to their residents.</summary>
public enum PactDistribution
{
    Equal,
    PerResident,
}

public sealed record PactFounded(string PactId, string Name, string Currency, PactDistribution Distribution);

public sealed record PactRenamed(string PactId, string Name);

/// <summary>A canton contributes to the pact from <see cref="FromFiscalYear"/> on at its own rate, as its certified
/// ballot <see cref="BallotId"/> decided. A later join changes the rate from its own year on.</summary>
public sealed record PactJoined(string PactId, string CantonId, int ContributionRateBp, int FromFiscalYear, Guid BallotId);

/// <summary>A canton leaves the pact from <see cref="FromFiscalYear"/> on, as its certified ballot decided.</summary>
public sealed record PactLeft(string PactId, string CantonId, int FromFiscalYear, Guid BallotId);

/// <summary>From <see cref="FromFiscalYear"/> on, the canton contributes at <see cref="ContributionRateBp"/>, or is
/// not a member (null).</summary>
public sealed record Membership(int FromFiscalYear, int? ContributionRateBp);

/// <summary>A supraterritorial pact: one currency, a distribution rule, and each member canton's own rate by year.</summary>
public sealed record Pact(
    string Id, string Name, string Currency, PactDistribution Distribution, ImmutableSortedDictionary<string, ImmutableList<Membership>> Members)
{
    public static string StreamId(string pactId) => $"pact-{pactId}";

    /// <summary>The stream of a canton's joins and departures, every pact's: in the canton's own log, so that its
    /// ballot enacts them in its own transaction wherever its ledger is kept, and its commitments across pacts are
    /// decided on one stream. (Memberships recorded before, in the pact's stream, count the same.)</summary>
    public static string MembershipsStreamId(string cantonId) => $"memberships-{cantonId}";

    public static Pact? Apply(Pact? state, object @event) => @event switch
    {
        PactFounded e => new Pact(e.PactId, e.Name, e.Currency, e.Distribution, ImmutableSortedDictionary.Create<string, ImmutableList<Membership>>(StringComparer.Ordinal)),
        PactRenamed e when state is not null => state with { Name = e.Name },
        PactJoined e when state is not null => state.Decide(e.CantonId, new Membership(e.FromFiscalYear, e.ContributionRateBp)),
        PactLeft e when state is not null => state.Decide(e.CantonId, new Membership(e.FromFiscalYear, null)),
        _ => state,
    };

    /// <summary>The canton's contribution rate in <paramref name="fiscalYear"/>, or null when it is not a member then.</summary>
    public int? RateFor(string cantonId, int fiscalYear) =>
        Members.TryGetValue(cantonId, out var timeline) ? timeline.LastOrDefault(m => m.FromFiscalYear <= fiscalYear)?.ContributionRateBp : null;

    /// <summary>The cantons that are members in <paramref name="fiscalYear"/>, with their rates.</summary>
    public IEnumerable<(string CantonId, int ContributionRateBp)> MembersIn(int fiscalYear) =>
        Members.Keys.Select(c => (c, RateFor(c, fiscalYear))).Where(m => m.Item2 is not null).Select(m => (m.c, m.Item2!.Value));

    // A later decision replaces whatever earlier ones said about its year and the years after it.
    private Pact Decide(string cantonId, Membership membership)
    {
        var timeline = Members.TryGetValue(cantonId, out var existing) ? existing : [];
        return this with { Members = Members.SetItem(cantonId, timeline.RemoveAll(m => m.FromFiscalYear >= membership.FromFiscalYear).Add(membership)) };
    }

    /// <summary>Founds the pact, renames it, or records nothing when it already stands as asked. Its currency and
    /// distribution are fixed: members joined on those terms.</summary>
    public static IReadOnlyList<object> Found(Pact? state, string id, string name, string currency, PactDistribution distribution)
    {
        if (state is null)
        {
            return [new PactFounded(id, name, currency, distribution)];
        }

        if (state.Currency != currency || state.Distribution != distribution)
        {
            throw new DomainException("pact-terms-fixed",
                $"Pact '{id}' pools {state.Currency} with distribution {state.Distribution}; its members joined on those terms, which cannot change.");
        }

        return state.Name == name ? [] : [new PactRenamed(id, name)];
    }

    /// <summary>The canton joins (or changes its rate) from <paramref name="fromFiscalYear"/> on; only a canton keeping
    /// its accounts in the pact's currency can, and only within what its other pacts leave of its budget. Records
    /// nothing when that is already so.</summary>
    public static IReadOnlyList<object> Join(
        Pact? state, string pactId, string cantonId, string cantonCurrency, int contributionRateBp, int fromFiscalYear, Guid ballotId,
        IEnumerable<Pact> otherPacts)
    {
        var pact = Known(state, pactId);
        CheckCurrency(pact, cantonId, cantonCurrency);
        if (contributionRateBp is < 1 or > Money.BasisPoints || !FiscalPolicy.IsFiscalYear(fromFiscalYear))
        {
            throw new DomainException("invalid-membership", "A contribution rate is 1..10000 bp and a fiscal year 2000..2100.");
        }

        CheckCommitments([.. otherPacts.Where(p => p.Id != pactId)], cantonId, contributionRateBp, fromFiscalYear);

        return pact.Members.TryGetValue(cantonId, out var timeline) && timeline.Count > 0 && timeline[^1] == new Membership(fromFiscalYear, contributionRateBp)
            ? []
            : [new PactJoined(pactId, cantonId, contributionRateBp, fromFiscalYear, ballotId)];
    }

    /// <summary>The canton leaves from <paramref name="fromFiscalYear"/> on; it must be a member in that year or later.</summary>
    public static IReadOnlyList<object> Leave(Pact? state, string pactId, string cantonId, int fromFiscalYear, Guid ballotId)
    {
        var pact = Known(state, pactId);
        var member = pact.RateFor(cantonId, fromFiscalYear) is not null
            || (pact.Members.TryGetValue(cantonId, out var timeline) && timeline.Any(m => m.FromFiscalYear > fromFiscalYear && m.ContributionRateBp is not null));
        if (!member)
        {
            throw new DomainException("not-a-member", $"Canton '{cantonId}' is not a member of pact '{pactId}' in {fromFiscalYear} or later.");
        }

        return [new PactLeft(pactId, cantonId, fromFiscalYear, ballotId)];
    }

    /// <summary>Every pact takes its rate of the same base (revenue − designated): in no year may a canton's rates add up
    /// to more than the whole of it, or its net budget would go below zero.</summary>
    public static void CheckCommitments(IReadOnlyList<Pact> otherPacts, string cantonId, int contributionRateBp, int fromFiscalYear)
    {
        var years = otherPacts
            .SelectMany(p => p.Members.TryGetValue(cantonId, out var timeline) ? timeline.Select(m => m.FromFiscalYear) : [])
            .Where(y => y > fromFiscalYear)
            .Append(fromFiscalYear);
        foreach (var year in years)
        {
            var committed = otherPacts.Sum(p => p.RateFor(cantonId, year) ?? 0);
            if (committed + contributionRateBp > Money.BasisPoints)
            {
                throw new DomainException("contributions-exceed-budget",
                    $"In {year} canton '{cantonId}' already contributes {committed} bp of its budget to other pacts; " +
                    $"{contributionRateBp} bp more would exceed the whole of it (10000 bp).");
            }
        }
    }

    /// <summary>Only cantons keeping their accounts in the pact's currency can join it.</summary>
    public static void CheckCurrency(Pact pact, string cantonId, string cantonCurrency)
    {
        if (pact.Currency != cantonCurrency)
        {
            throw new DomainException("pact-currency-mismatch",
                $"Pact '{pact.Id}' pools {pact.Currency}; canton '{cantonId}' keeps its accounts in {cantonCurrency} and cannot join it.");
        }
    }

    public static Pact Known(Pact? state, string pactId) => state ?? throw new NotFoundException("Pact", pactId);
}
