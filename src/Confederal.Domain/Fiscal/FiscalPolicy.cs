namespace Confederal.Domain.Fiscal;

public enum UnallocatedPolicy
{
    Retain,
    Proportional,
}

/// <summary>Which organizations a year's designations may go to: every recognized one, or those listed.</summary>
public enum Eligibility
{
    All,
    Listed,
}

/// <summary>A canton's designation rules for one fiscal year (fiscal-policy-set v2). <see cref="Eligibility"/> says
/// whether every recognized organization is eligible (<see cref="EligibleOrganizations"/> then empty) or only those
/// listed, in ordinal order. Version 1 had no <see cref="Eligibility"/> and wrote "every organization" as a null list.</summary>
public sealed record FiscalPolicySet(
    string CantonId,
    int FiscalYear,
    int DesignationRateBp,
    int MaxOrganizations,
    UnallocatedPolicy UnallocatedPolicy,
    DateTimeOffset Deadline,
    Eligibility Eligibility,
    IReadOnlyList<string> EligibleOrganizations);

public sealed record FiscalPolicy(
    int DesignationRateBp,
    int MaxOrganizations,
    UnallocatedPolicy UnallocatedPolicy,
    DateTimeOffset Deadline,
    IReadOnlyList<string>? EligibleOrganizations)
{
    public const int MinYear = 2000;
    public const int MaxYear = 2100;
    public const int DefaultMaxOrganizations = 3;
    public const int MaxOrganizationsLimit = 10;

    public static string StreamId(string cantonId, int fiscalYear) => $"fiscal-policy-{cantonId}-{fiscalYear}";

    public static bool IsFiscalYear(int year) => year is >= MinYear and <= MaxYear;

    public bool IsEligible(string organizationId) =>
        EligibleOrganizations is null || EligibleOrganizations.Contains(organizationId, StringComparer.Ordinal);

    /// <summary>Designations can change until the deadline, then they are locked.</summary>
    public bool IsOpenAt(DateTimeOffset instant) => instant < Deadline;

    public static FiscalPolicy? Apply(FiscalPolicy? state, object @event) => @event switch
    {
        FiscalPolicySet e => From(e),
        _ => state,
    };

    public static FiscalPolicy From(FiscalPolicySet e) =>
        new(e.DesignationRateBp, e.MaxOrganizations, e.UnallocatedPolicy, e.Deadline, e.Eligibility == Eligibility.All ? null : e.EligibleOrganizations);

    /// <summary>The event that sets this policy for a canton's year.</summary>
    public FiscalPolicySet ToEvent(string cantonId, int fiscalYear) => new(
        cantonId, fiscalYear, DesignationRateBp, MaxOrganizations, UnallocatedPolicy, Deadline,
        EligibleOrganizations is null ? Eligibility.All : Eligibility.Listed, EligibleOrganizations ?? []);

    /// <summary>Sets the policy, or records nothing when it already stands as asked. Once its deadline has passed the
    /// year is closed: its policy no longer changes. A deadline must lie in the future.</summary>
    public static IReadOnlyList<object> Set(FiscalPolicy? state, FiscalPolicySet asked, DateTimeOffset now)
    {
        if (asked.DesignationRateBp is < 0 or > Money.BasisPoints
            || asked.MaxOrganizations is < 1 or > MaxOrganizationsLimit
            || !IsFiscalYear(asked.FiscalYear))
        {
            throw new DomainException("invalid-policy", "The rate must be 0..10000 bp, maxOrganizations 1..10 and the year 2000..2100.");
        }

        if (asked.Eligibility == Eligibility.All && asked.EligibleOrganizations.Count > 0)
        {
            throw new DomainException("invalid-policy", "A policy under which every organization is eligible lists none.");
        }

        if (state is not null && !state.IsOpenAt(now))
        {
            throw new DomainException("fiscal-year-closed",
                $"The {asked.FiscalYear} deadline of canton '{asked.CantonId}' passed at {state.Deadline:O}; its policy can no longer change.");
        }

        // A deadline in the past would close the year retroactively: designations and organization changes already
        // recorded as made while it was open would fall after its end.
        if (asked.Deadline <= now)
        {
            throw new DomainException("deadline-in-the-past",
                $"The deadline {asked.Deadline:O} has already passed; a policy's deadline must be later than now ({now:O}).");
        }

        var normalized = asked.Eligibility == Eligibility.All
            ? asked
            : asked with { EligibleOrganizations = [.. asked.EligibleOrganizations.Order(StringComparer.Ordinal)] };
        return state is not null && state.Same(From(normalized)) ? [] : [normalized];
    }

    private bool Same(FiscalPolicy other) =>
        DesignationRateBp == other.DesignationRateBp
        && MaxOrganizations == other.MaxOrganizations
        && UnallocatedPolicy == other.UnallocatedPolicy
        && Deadline == other.Deadline
        && (EligibleOrganizations is null
            ? other.EligibleOrganizations is null
            : other.EligibleOrganizations is not null && EligibleOrganizations.SequenceEqual(other.EligibleOrganizations, StringComparer.Ordinal));
}
