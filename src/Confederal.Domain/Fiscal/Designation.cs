namespace Confederal.Domain.Fiscal;

public sealed record Choice(string OrganizationId, int ShareBp);

/// <summary>A taxpayer chose how their designable amount for one canton and year is shared. Choices are stored in
/// organizationId order, the order of ties in the split. <see cref="Taxpayer"/> is the person's taxpayer handle (see
/// <see cref="TaxAssessed"/>), never their person id. <see cref="CarriedFrom"/> is set when the platform restated a
/// standing designation made for that earlier year (see <see cref="DesignationCarry"/>); a person's own choice has none.</summary>
public sealed record DesignationChosen(
    string CantonId, string Taxpayer, int FiscalYear, IReadOnlyList<Choice> Choices, bool Standing, int? CarriedFrom = null);

/// <summary>A taxpayer withdrew their designation for one canton and year; a standing one stops carrying over. With
/// <see cref="CarriedFrom"/>, the platform withdrew a restated designation because the person's own record of that
/// year no longer carries it.</summary>
public sealed record DesignationWithdrawn(string CantonId, string Taxpayer, int FiscalYear, int? CarriedFrom = null);

/// <summary>One person's choices for one year: shares, not amounts.</summary>
public sealed class Designation : IEquatable<Designation>
{
    private Designation(IReadOnlyList<Choice> choices, bool standing)
    {
        Choices = choices;
        Standing = standing;
    }

    public IReadOnlyList<Choice> Choices { get; }

    /// <summary>A standing designation carries over to later years until the person changes or withdraws it.</summary>
    public bool Standing { get; }

    public static string StreamId(string cantonId, string taxpayer) => $"designations-{cantonId}-{taxpayer}";

    /// <summary>The rules a set of choices must meet whatever the canton's policy; empty when it meets them.</summary>
    public static IReadOnlyList<Problem> Problems(IReadOnlyList<Choice>? choices)
    {
        if (choices is null || choices.Count == 0)
        {
            return [new Problem("no-choice", "choose at least one organization (to designate nothing, withdraw instead)")];
        }

        var problems = new List<Problem>();
        if (choices.Count > FiscalPolicy.MaxOrganizationsLimit)
        {
            problems.Add(new Problem("too-many-choices", $"at most {FiscalPolicy.MaxOrganizationsLimit} organizations can be chosen"));
        }

        if (choices.Any(c => !Identifiers.IsSlug(c.OrganizationId)))
        {
            problems.Add(new Problem("invalid-organization-id", "every organizationId must be a slug"));
        }

        if (choices.Any(c => c.ShareBp is < 1 or > Money.BasisPoints))
        {
            problems.Add(new Problem("invalid-share", "every shareBp must be from 1 to 10000"));
        }
        else if (choices.Sum(c => (long)c.ShareBp) != Money.BasisPoints)
        {
            problems.Add(new Problem("shares-not-whole", $"the shares must sum to exactly 10000 bp, not {choices.Sum(c => (long)c.ShareBp)}"));
        }

        if (choices.Select(c => c.OrganizationId).Distinct(StringComparer.Ordinal).Count() != choices.Count)
        {
            problems.Add(new Problem("organization-chosen-twice", "an organization can be chosen only once"));
        }

        return problems;
    }

    public static Designation Create(IReadOnlyList<Choice> choices, bool standing)
    {
        var problems = Problems(choices);
        if (problems.Count > 0)
        {
            throw new DomainException("invalid-choices", string.Join("; ", problems.Select(p => p.Message)) + ".");
        }

        return new Designation(choices.OrderBy(c => c.OrganizationId, StringComparer.Ordinal).ToList(), standing);
    }

    /// <summary>What each choice receives of <paramref name="designableMinor"/>, in <see cref="Choices"/> order: the split
    /// by largest remainder on the shares that the budgets and the person's own view both use.</summary>
    public long[] Amounts(long designableMinor) => Money.SplitByLargestRemainder(designableMinor, [.. Choices.Select(c => (long)c.ShareBp)]);

    /// <summary>Which record applies to <paramref name="year"/>: the latest one at or before it, if it is for that very
    /// year or standing. A withdrawal is recorded as null and ends any carry-over.</summary>
    public static (Designation? Designation, int? FromYear) EffectiveFor(SortedList<int, Designation?> records, int year)
    {
        var keys = records.Keys;
        var lo = 0;
        var hi = keys.Count - 1;
        var found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (keys[mid] <= year)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        if (found < 0)
        {
            return (null, null);
        }

        var record = records.Values[found];
        return record is not null && (keys[found] == year || record.Standing) ? (record, keys[found]) : (null, null);
    }

    public bool Equals(Designation? other) =>
        other is not null && Standing == other.Standing && Choices.SequenceEqual(other.Choices);

    public override bool Equals(object? obj) => Equals(obj as Designation);

    public override int GetHashCode() => HashCode.Combine(Standing, Choices.Count, Choices.Count > 0 ? Choices[0] : null);
}

/// <summary>The designations of one person in one canton, for the years its stream holds (one year a stream since
/// taxpayer handles are per year; every year in the stream of a person recorded before): the state behind a decision.</summary>
public sealed class DesignationHistory
{
    public SortedList<int, Designation?> Records { get; } = [];

    /// <summary>The years whose record the platform restated, and the year each was carried from.</summary>
    public Dictionary<int, int> CarriedFrom { get; } = [];

    /// <summary>Whether the person made the record of <paramref name="year"/> themselves (not restated).</summary>
    public bool IsOwn(int year) => Records.ContainsKey(year) && !CarriedFrom.ContainsKey(year);

    public static DesignationHistory Apply(DesignationHistory? state, object @event)
    {
        state ??= new DesignationHistory();
        switch (@event)
        {
            case DesignationChosen e:
                state.Records[e.FiscalYear] = Designation.Create(e.Choices, e.Standing);
                state.Carried(e.FiscalYear, e.CarriedFrom);
                break;
            case DesignationWithdrawn e:
                state.Records[e.FiscalYear] = null;
                state.Carried(e.FiscalYear, e.CarriedFrom);
                break;
        }

        return state;
    }

    private void Carried(int year, int? from)
    {
        if (from is { } f)
        {
            CarriedFrom[year] = f;
        }
        else
        {
            CarriedFrom.Remove(year);
        }
    }

    public (Designation? Designation, int? FromYear) EffectiveFor(int year) => Designation.EffectiveFor(Records, year);

    /// <summary>
    /// Chooses for one year. The policy must exist and its deadline not have passed; at most its maxOrganizations
    /// choices, each a recognized, active and eligible organization. Choosing exactly what the person recorded for the
    /// year records nothing (a retried PUT); choosing what was carried into it makes it their own.
    /// </summary>
    public IReadOnlyList<object> Choose(
        string cantonId, string taxpayer, int fiscalYear, IReadOnlyList<Choice> choices, bool standing,
        FiscalPolicy? policy, IReadOnlyDictionary<string, Organizations.Organization?> organizations, DateTimeOffset now)
    {
        var designation = Designation.Create(choices, standing);
        var open = Open(cantonId, fiscalYear, policy, now);
        if (designation.Choices.Count > open.MaxOrganizations)
        {
            throw new DomainException("too-many-choices",
                $"Canton '{cantonId}' allows at most {open.MaxOrganizations} organizations in {fiscalYear}; {designation.Choices.Count} were chosen.");
        }

        foreach (var choice in designation.Choices)
        {
            var organization = organizations.GetValueOrDefault(choice.OrganizationId);
            if (organization is null)
            {
                throw new DomainException("organization-unknown", $"Organization '{choice.OrganizationId}' is not recognized by the confederation.");
            }

            if (organization.Suspended)
            {
                throw new DomainException("organization-suspended", $"Organization '{choice.OrganizationId}' is suspended and cannot be chosen.");
            }

            if (!open.IsEligible(choice.OrganizationId))
            {
                throw new DomainException("organization-not-eligible",
                    $"Organization '{choice.OrganizationId}' is not eligible in canton '{cantonId}' for {fiscalYear}.");
            }
        }

        return IsOwn(fiscalYear) && designation.Equals(Records[fiscalYear])
            ? []
            : [new DesignationChosen(cantonId, taxpayer, fiscalYear, designation.Choices, standing)];
    }

    /// <summary>Withdraws what applies to the year (its own choice or a standing one carried over); nothing to withdraw
    /// records nothing.</summary>
    public IReadOnlyList<object> Withdraw(string cantonId, string taxpayer, int fiscalYear, FiscalPolicy? policy, DateTimeOffset now)
    {
        Open(cantonId, fiscalYear, policy, now);
        return EffectiveFor(fiscalYear).Designation is null ? [] : [new DesignationWithdrawn(cantonId, taxpayer, fiscalYear)];
    }

    private static FiscalPolicy Open(string cantonId, int fiscalYear, FiscalPolicy? policy, DateTimeOffset now)
    {
        if (policy is null)
        {
            throw new DomainException("no-fiscal-policy", $"Canton '{cantonId}' has set no policy for {fiscalYear}: designations open when it does.");
        }

        if (!policy.IsOpenAt(now))
        {
            throw new DomainException("deadline-passed",
                $"Designations for {fiscalYear} in canton '{cantonId}' closed at {policy.Deadline:O}; they can no longer change.");
        }

        return policy;
    }
}

/// <summary>
/// How a standing designation carries over once taxpayer handles are per canton and year. A year's records are linked
/// to the person only while the year's key exists, so a carry-over cannot be a fold across years: the platform restates
/// the standing choice in each later year it applies to, as that year's own event under that year's handle. The person's
/// records in the years still linked are read in order; each year without a record of the person's own should hold
/// what the last one before it carries (a standing choice, or nothing), and <see cref="Plan"/> says what to append so
/// that it does.
/// </summary>
public static class DesignationCarry
{
    /// <summary>One linked year of a person in a canton: its stream's history; <paramref name="Legacy"/> when the year was
    /// recorded before per-year handles (its stream, shared by those years, carries over by fold).</summary>
    public sealed record Year(int FiscalYear, bool Legacy, DesignationHistory History);

    /// <summary>What to restate in a year: the standing designation carried from <paramref name="FromYear"/>, or its
    /// withdrawal (null) when that year's record no longer carries one.</summary>
    public sealed record Restatement(int FiscalYear, Designation? Designation, int FromYear);

    /// <summary>The restatements that bring every year into line (in year order) and whether the last year still carries
    /// a standing choice (which later years will then need).</summary>
    public static (IReadOnlyList<Restatement> Restatements, bool Carrying) Plan(IReadOnlyList<Year> years)
    {
        var restatements = new List<Restatement>();
        Designation? carry = null;
        var source = 0;
        var known = false; // whether a record before says what the years carry
        foreach (var (year, legacy, history) in years)
        {
            if (history.IsOwn(year) || legacy)
            {
                var (effective, from) = history.EffectiveFor(year);
                (carry, source, known) = effective is { Standing: true } ? (effective, from!.Value, true) : (null, year, true);
                continue;
            }

            var recorded = history.Records.TryGetValue(year, out var record);
            if (!known && recorded && history.CarriedFrom[year] < years[0].FiscalYear)
            {
                // Restated from a year no longer linked (its key is gone): what it carried is all that is known of it.
                (carry, source, known) = (record, history.CarriedFrom[year], true);
                continue;
            }

            if (recorded ? !Equals(record, carry) : carry is not null)
            {
                restatements.Add(new Restatement(year, carry, source));
            }
        }

        return (restatements, carry is not null);
    }
}
