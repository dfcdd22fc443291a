using Confederal.Domain.Cantons;
using Confederal.Domain.Organizations;

namespace Confederal.Domain.Fiscal;

/// <summary>What the taxpayers who chose one organization send it in one canton and year, before any
/// redistribution: the sum of their parts, of their shares (its weight), and how many they are.</summary>
public sealed class OrganizationTally
{
    public long ChosenMinor { get; set; }

    public long WeightBp { get; set; }

    public long Taxpayers { get; set; }
}

/// <summary>What the ledger knows about an organization: enough to settle open years.</summary>
public sealed record OrganizationStanding(bool Suspended, bool AcceptsRedistribution);

public sealed record BudgetLine(string OrganizationId, long AmountMinor, long RedistributedMinor, long Taxpayers);

/// <summary>A canton's budget for one year, settled to the minor unit. Pact lines arrive with pacts.</summary>
public sealed record BudgetResult(
    long RevenueMinor,
    long Taxpayers,
    long DesignablePoolMinor,
    IReadOnlyList<BudgetLine> Designations,
    long UnallocatedMinor,
    long RedistributedMinor,
    long RetainedMinor)
{
    public long DesignatedMinor => DesignablePoolMinor - RetainedMinor;

    public long NetBudgetMinor => RevenueMinor - DesignatedMinor;
}

/// <summary>
/// The running sums of one canton's year. Every taxpayer's designable amount is split among all their chosen
/// organizations (<see cref="Tallies"/>); which of those parts an organization actually receives is settled by
/// <see cref="Settle"/> from the policy and the organizations excluded or declining while the year was open.
/// </summary>
public sealed class BudgetBook(string cantonId, int fiscalYear, string currency)
{
    public string CantonId { get; } = cantonId;

    public int FiscalYear { get; } = fiscalYear;

    public string Currency { get; } = currency;

    public FiscalPolicy? Policy { get; set; }

    public long RevenueMinor { get; set; }

    public long Taxpayers { get; set; }

    public long PoolMinor { get; set; }

    /// <summary>Designable amounts of taxpayers with no designation for the year.</summary>
    public long UndesignatedMinor { get; set; }

    public Dictionary<string, OrganizationTally> Tallies { get; } = new(StringComparer.Ordinal);

    /// <summary>Organizations suspended while the year was open: they receive nothing for it.</summary>
    public HashSet<string> Excluded { get; } = new(StringComparer.Ordinal);

    /// <summary>Organizations that declined redistributed money while the year was open.</summary>
    public HashSet<string> Declining { get; } = new(StringComparer.Ordinal);

    /// <summary>The last event that changed this book.</summary>
    public long Position { get; set; }

    /// <summary>A year stays open to changes of organizations until its deadline (always, before it has a policy).</summary>
    public bool IsOpenAt(DateTimeOffset instant) => Policy is null || Policy.IsOpenAt(instant);

    public bool Receives(string organizationId) =>
        !Excluded.Contains(organizationId) && (Policy is null || Policy.IsEligible(organizationId));

    public BudgetResult Settle()
    {
        var organizations = Tallies.Keys.Order(StringComparer.Ordinal).ToList();
        var unallocated = UndesignatedMinor;
        foreach (var id in organizations)
        {
            if (!Receives(id))
            {
                unallocated += Tallies[id].ChosenMinor;
            }
        }

        var redistributed = new long[organizations.Count];
        var weights = organizations
            .Select(id => Receives(id) && !Declining.Contains(id) ? Tallies[id].WeightBp : 0)
            .ToArray();
        var retained = unallocated;
        if (Policy?.UnallocatedPolicy == UnallocatedPolicy.Proportional && unallocated > 0 && weights.Any(w => w > 0))
        {
            redistributed = Money.SplitByLargestRemainder(unallocated, weights);
            retained = 0;
        }

        var lines = new List<BudgetLine>(organizations.Count);
        for (var i = 0; i < organizations.Count; i++)
        {
            var id = organizations[i];
            if (Receives(id))
            {
                var tally = Tallies[id];
                lines.Add(new BudgetLine(id, tally.ChosenMinor + redistributed[i], redistributed[i], tally.Taxpayers));
            }
        }

        return new BudgetResult(RevenueMinor, Taxpayers, PoolMinor, lines, unallocated, unallocated - retained, retained);
    }
}

/// <summary>One person's assessments and designation records in one canton, every year.</summary>
public sealed class TaxpayerFile
{
    public SortedList<int, long> Taxes { get; } = [];

    /// <summary>Designation records by the year they were made for; null is a withdrawal.</summary>
    public SortedList<int, Designation?> Records { get; } = [];
}

/// <summary>
/// The fiscal ledger: folds events into budget books, incrementally. A change to a taxpayer takes out their old
/// contribution and puts in the new one, so the cost of an event does not grow with the size of the canton. It can hold
/// the whole confederation (a replay) or only the part a batch of events touches (the projection loads that part).
/// </summary>
public sealed class Ledger
{
    public Dictionary<string, string> Currencies { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, OrganizationStanding> Organizations { get; } = new(StringComparer.Ordinal);

    public Dictionary<(string CantonId, int FiscalYear), BudgetBook> Books { get; } = [];

    public Dictionary<(string CantonId, string PersonId), TaxpayerFile> Files { get; } = [];

    public HashSet<string> ChangedCantons { get; } = new(StringComparer.Ordinal);

    public HashSet<string> ChangedOrganizations { get; } = new(StringComparer.Ordinal);

    public HashSet<(string CantonId, int FiscalYear)> ChangedBooks { get; } = [];

    /// <summary>The (canton, person, year) entries of taxpayer files that changed: an assessment or a designation record.</summary>
    public HashSet<(string CantonId, string PersonId, int FiscalYear)> ChangedFileYears { get; } = [];

    /// <summary>Folds one event, recorded at <paramref name="recordedAt"/> with global <paramref name="position"/>.</summary>
    public void Apply(object @event, DateTimeOffset recordedAt, long position)
    {
        switch (@event)
        {
            case CantonRegistered e:
                Currencies[e.CantonId] = e.Currency;
                ChangedCantons.Add(e.CantonId);
                break;
            case OrganizationRecognized e:
                SetStanding(e.OrganizationId, new OrganizationStanding(false, e.AcceptsRedistribution), recordedAt, position);
                break;
            case OrganizationUpdated e:
                SetStanding(e.OrganizationId, Standing(e.OrganizationId) with { AcceptsRedistribution = e.AcceptsRedistribution }, recordedAt, position);
                break;
            case OrganizationSuspended e:
                SetStanding(e.OrganizationId, Standing(e.OrganizationId) with { Suspended = true }, recordedAt, position);
                break;
            case OrganizationReinstated e:
                SetStanding(e.OrganizationId, Standing(e.OrganizationId) with { Suspended = false }, recordedAt, position);
                break;
            case FiscalPolicySet e:
                SetPolicy(e, position);
                break;
            case TaxAssessed e:
                Assess(e, position);
                break;
            case DesignationChosen e:
                Designate(e.CantonId, e.PersonId, e.FiscalYear, Designation.Create(e.Choices, e.Standing), position);
                break;
            case DesignationWithdrawn e:
                Designate(e.CantonId, e.PersonId, e.FiscalYear, null, position);
                break;
        }
    }

    public BudgetBook Book(string cantonId, int fiscalYear)
    {
        if (Books.TryGetValue((cantonId, fiscalYear), out var book))
        {
            return book;
        }

        if (!Currencies.TryGetValue(cantonId, out var currency))
        {
            throw new InvalidOperationException($"Canton '{cantonId}' is not in the ledger.");
        }

        book = new BudgetBook(cantonId, fiscalYear, currency);
        foreach (var (id, standing) in Organizations)
        {
            if (standing.Suspended)
            {
                book.Excluded.Add(id);
            }

            if (!standing.AcceptsRedistribution)
            {
                book.Declining.Add(id);
            }
        }

        Books[(cantonId, fiscalYear)] = book;
        return book;
    }

    private OrganizationStanding Standing(string organizationId) =>
        Organizations.TryGetValue(organizationId, out var standing)
            ? standing
            : throw new InvalidOperationException($"Organization '{organizationId}' is not in the ledger.");

    // Only years still open when the organization changed follow the change; closed years keep what they had.
    private void SetStanding(string organizationId, OrganizationStanding standing, DateTimeOffset at, long position)
    {
        Organizations[organizationId] = standing;
        ChangedOrganizations.Add(organizationId);
        foreach (var (key, book) in Books)
        {
            if (!book.IsOpenAt(at))
            {
                continue;
            }

            var changed = standing.Suspended ? book.Excluded.Add(organizationId) : book.Excluded.Remove(organizationId);
            changed |= standing.AcceptsRedistribution ? book.Declining.Remove(organizationId) : book.Declining.Add(organizationId);
            if (changed)
            {
                book.Position = position;
                ChangedBooks.Add(key);
            }
        }
    }

    private void SetPolicy(FiscalPolicySet e, long position)
    {
        var book = Book(e.CantonId, e.FiscalYear);
        var rateChanged = (book.Policy?.DesignationRateBp ?? 0) != e.DesignationRateBp;
        book.Policy = FiscalPolicy.From(e);
        if (rateChanged && book.Taxpayers > 0)
        {
            // Every designable amount changes: count the year again from its taxpayers.
            book.RevenueMinor = book.Taxpayers = book.PoolMinor = book.UndesignatedMinor = 0;
            book.Tallies.Clear();
            foreach (var ((cantonId, _), file) in Files)
            {
                if (cantonId == e.CantonId)
                {
                    Contribute(book, file, +1);
                }
            }
        }

        Touch(book, position);
    }

    private void Assess(TaxAssessed e, long position)
    {
        var file = File(e.CantonId, e.PersonId);
        var book = Book(e.CantonId, e.FiscalYear);
        Contribute(book, file, -1);
        file.Taxes[e.FiscalYear] = e.AmountMinor;
        Contribute(book, file, +1);
        ChangedFileYears.Add((e.CantonId, e.PersonId, e.FiscalYear));
        Touch(book, position);
    }

    // A record for one year also changes every later assessed year it carries into (or stops carrying into).
    private void Designate(string cantonId, string personId, int fiscalYear, Designation? designation, long position)
    {
        var file = File(cantonId, personId);
        var years = file.Taxes.Keys.Where(y => y >= fiscalYear).ToList();
        foreach (var year in years)
        {
            Contribute(Book(cantonId, year), file, -1, year);
        }

        file.Records[fiscalYear] = designation;
        foreach (var year in years)
        {
            var book = Book(cantonId, year);
            Contribute(book, file, +1, year);
            Touch(book, position);
        }

        ChangedFileYears.Add((cantonId, personId, fiscalYear));
    }

    private static void Contribute(BudgetBook book, TaxpayerFile file, int sign) => Contribute(book, file, sign, book.FiscalYear);

    private static void Contribute(BudgetBook book, TaxpayerFile file, int sign, int year)
    {
        if (!file.Taxes.TryGetValue(year, out var tax))
        {
            return;
        }

        var designable = Money.Designable(tax, book.Policy?.DesignationRateBp ?? 0);
        book.RevenueMinor = checked(book.RevenueMinor + sign * tax);
        book.Taxpayers += sign;
        book.PoolMinor = checked(book.PoolMinor + sign * designable);
        var (designation, _) = Designation.EffectiveFor(file.Records, year);
        if (designation is null)
        {
            book.UndesignatedMinor = checked(book.UndesignatedMinor + sign * designable);
            return;
        }

        var choices = designation.Choices;
        Span<long> shares = stackalloc long[choices.Count];
        for (var i = 0; i < choices.Count; i++)
        {
            shares[i] = choices[i].ShareBp;
        }

        var parts = Money.SplitByLargestRemainder(designable, shares);
        for (var i = 0; i < choices.Count; i++)
        {
            var id = choices[i].OrganizationId;
            if (!book.Tallies.TryGetValue(id, out var tally))
            {
                book.Tallies[id] = tally = new OrganizationTally();
            }

            tally.ChosenMinor = checked(tally.ChosenMinor + sign * parts[i]);
            tally.WeightBp += sign * choices[i].ShareBp;
            tally.Taxpayers += sign;
            if (tally.Taxpayers == 0)
            {
                book.Tallies.Remove(id);
            }
        }
    }

    private TaxpayerFile File(string cantonId, string personId)
    {
        if (!Files.TryGetValue((cantonId, personId), out var file))
        {
            Files[(cantonId, personId)] = file = new TaxpayerFile();
        }

        return file;
    }

    private void Touch(BudgetBook book, long position)
    {
        book.Position = position;
        ChangedBooks.Add((book.CantonId, book.FiscalYear));
    }
}
