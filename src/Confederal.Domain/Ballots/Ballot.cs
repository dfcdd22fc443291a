using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;

namespace Confederal.Domain.Ballots;

public enum ProposalKind
{
    SetDesignationRate,
    JoinPact,
    LeavePact,
}

/// <summary>What a binding ballot changes when carried: <c>set-designation-rate</c> {fiscalYear, designationRateBp},
/// <c>join-pact</c> {pactId, contributionRateBp, fromFiscalYear}, <c>leave-pact</c> {pactId, fromFiscalYear}.</summary>
public sealed record Proposal(
    ProposalKind Kind, int? FiscalYear = null, int? DesignationRateBp = null, string? PactId = null, int? ContributionRateBp = null,
    int? FromFiscalYear = null)
{
    /// <summary>What is wrong with the proposal's fields for its kind (empty: nothing).</summary>
    public IEnumerable<string> Problems()
    {
        var (year, rate, pact, contribution, from) = (FiscalYear is not null, DesignationRateBp is not null, PactId is not null,
            ContributionRateBp is not null, FromFiscalYear is not null);
        var (wanted, forbidden) = Kind switch
        {
            ProposalKind.SetDesignationRate => (year && rate, pact || contribution || from),
            ProposalKind.JoinPact => (pact && contribution && from, year || rate),
            _ => (pact && from, year || rate || contribution),
        };
        if (!wanted || forbidden)
        {
            yield return Kind switch
            {
                ProposalKind.SetDesignationRate => "set-designation-rate takes exactly fiscalYear and designationRateBp",
                ProposalKind.JoinPact => "join-pact takes exactly pactId, contributionRateBp and fromFiscalYear",
                _ => "leave-pact takes exactly pactId and fromFiscalYear",
            };
            yield break;
        }

        if (FiscalYear is { } y && !Fiscal.FiscalPolicy.IsFiscalYear(y) || FromFiscalYear is { } f && !Fiscal.FiscalPolicy.IsFiscalYear(f))
        {
            yield return "a fiscal year is 2000..2100";
        }

        if (DesignationRateBp is < 0 or > Money.BasisPoints)
        {
            yield return "designationRateBp is 0..10000";
        }

        if (ContributionRateBp is < 1 or > Money.BasisPoints)
        {
            yield return "contributionRateBp is 1..10000";
        }

        if (PactId is not null && !Identifiers.IsSlug(PactId))
        {
            yield return "pactId is a slug ^[a-z0-9][a-z0-9-]{1,62}$";
        }
    }
}

/// <summary>A ballot is called with its question, options, census date and voting window, and the canton's voting rules
/// in force then (later changes of the rules do not change its roll).</summary>
public sealed record BallotCalled(
    Guid BallotId, string CantonId, string Question, IReadOnlyList<string> Options, DateOnly CensusDate, DateTimeOffset OpensAt,
    DateTimeOffset ClosesAt, Proposal? Proposal, int VotingAge, int MinimumResidenceDays);

/// <summary>One page of the ballot box as sealed at close: ballot i is the random receipt <c>Receipts[i]</c> with the
/// option of index <c>Options[i]</c>; nothing about who or when. In receipt order (random, so neither cast order nor
/// time). Two parallel arrays rather than one of objects: a page holds 10,000 ballots, and a close can seal a million.</summary>
public sealed record BallotsCounted(Guid BallotId, int Page, IReadOnlyList<string> Receipts, IReadOnlyList<int> Options);

/// <summary>One page of the participation register (who voted, never what): residence handles, in their order.</summary>
public sealed record ParticipationsRecorded(Guid BallotId, int Page, IReadOnlyList<string> Residents);

/// <summary>The certified result. <see cref="Carried"/>: for a ballot with a proposal, whether yes won (more yes than
/// no); <see cref="NotEnacted"/>: why a carried proposal could not be applied (null: it was, or nothing to apply).</summary>
public sealed record BallotCertified(
    Guid BallotId, string CantonId, long Eligible, long Votes, IReadOnlyList<long> Tallies, int Pages, bool? Carried, string? NotEnacted);

public sealed record Ballot(BallotCalled Called, BallotCertified? Certified)
{
    public const int MinOptions = 2;
    public const int MaxOptions = 10;
    public const int MaxQuestionLength = 1000;
    public const int MaxOptionLength = 200;
    public static readonly IReadOnlyList<string> YesNo = ["yes", "no"];

    public static string StreamId(Guid ballotId) => $"ballot-{ballotId:N}";

    /// <summary>The ballot box, sealed into the log at close.</summary>
    public static string BoxStreamId(Guid ballotId) => $"ballot-box-{ballotId:N}";

    /// <summary>The participation register, sealed into the log at close.</summary>
    public static string RollStreamId(Guid ballotId) => $"ballot-roll-{ballotId:N}";

    public Guid Id => Called.BallotId;

    public static Ballot? Apply(Ballot? state, object @event) => @event switch
    {
        BallotCalled e => new Ballot(e, null),
        BallotCertified e when state is not null => state with { Certified = e },
        _ => state,
    };

    /// <summary>What is wrong with a ballot as called (empty: nothing); the times as of <paramref name="now"/>.</summary>
    public static IEnumerable<string> Problems(
        string question, IReadOnlyList<string> options, DateOnly censusDate, DateTimeOffset opensAt, DateTimeOffset closesAt, Proposal? proposal,
        DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(question) || question.Length > MaxQuestionLength)
        {
            yield return $"the question is 1..{MaxQuestionLength} characters";
        }

        if (options.Count is < MinOptions or > MaxOptions)
        {
            yield return $"a ballot has {MinOptions}..{MaxOptions} options";
        }

        if (options.Any(o => string.IsNullOrWhiteSpace(o) || o.Length > MaxOptionLength || o.Trim() != o))
        {
            yield return $"every option is 1..{MaxOptionLength} characters, without surrounding spaces";
        }

        if (options.Distinct(StringComparer.OrdinalIgnoreCase).Count() != options.Count)
        {
            yield return "options must differ from each other";
        }

        if (proposal is not null && !options.SequenceEqual(YesNo, StringComparer.Ordinal))
        {
            yield return "a ballot with a proposal has exactly the options [\"yes\", \"no\"]";
        }

        if (opensAt >= closesAt)
        {
            yield return "opensAt must come before closesAt";
        }

        if (closesAt <= now)
        {
            yield return "closesAt must lie in the future";
        }

        if (censusDate > DateOnly.FromDateTime(opensAt.UtcDateTime))
        {
            yield return "the census date must not come after the day the ballot opens (the roll is known before voting starts)";
        }

        foreach (var problem in proposal?.Problems() ?? [])
        {
            yield return problem;
        }
    }

    public bool IsOpenAt(DateTimeOffset now) => Certified is null && Called.OpensAt <= now && now < Called.ClosesAt;

    /// <summary>Lets the person whose residences are <paramref name="residence"/> vote now: the ballot is open and they
    /// are on its roll.</summary>
    /// <exception cref="DomainException">ballot-not-open or ballot-closed.</exception>
    /// <exception cref="ForbiddenException">not-on-roll: the reason is only told on the person's own eligibility call.</exception>
    public void Admit(Residence? residence, DateTimeOffset now)
    {
        if (now < Called.OpensAt)
        {
            throw new DomainException("ballot-not-open", $"Voting opens at {Called.OpensAt:O}.");
        }

        if (Certified is not null || now >= Called.ClosesAt)
        {
            throw new DomainException("ballot-closed", $"Voting closed at {Called.ClosesAt:O}.");
        }

        if (Ineligible(residence) is not null)
        {
            throw new ForbiddenException("not-on-roll", "You are not on this ballot's roll; your eligibility for it says why.");
        }
    }

    /// <summary>Why the person is not on the roll, or null when they are.</summary>
    public string? Ineligible(Residence? residence) =>
        Residence.Ineligible(residence, Called.CantonId, Called.CensusDate, Called.VotingAge, Called.MinimumResidenceDays);

    /// <summary>For a proposal: carried when yes has more votes than no (a tie is not a majority).</summary>
    public bool? IsCarried(IReadOnlyList<long> tallies) => Called.Proposal is null ? null : tallies[0] > tallies[1];
}
