using Confederal.Domain.Cantons;
using Confederal.Domain.Census;
using Confederal.Domain.Organizations;
using Confederal.Domain.Pacts;

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

/// <summary>What a canton puts into one pact for the year and what it gets back from it.</summary>
public sealed record BudgetPactLine(string PactId, long ContributionMinor, long ReceiptMinor);

/// <summary>A canton's budget for one year, settled to the minor unit. <see cref="Pacts"/> in pactId ordinal order.</summary>
public sealed record BudgetResult(
    long RevenueMinor,
    long Taxpayers,
    long DesignablePoolMinor,
    IReadOnlyList<BudgetLine> Designations,
    long UnallocatedMinor,
    long RedistributedMinor,
    long RetainedMinor)
{
    public IReadOnlyList<BudgetPactLine> Pacts { get; init; } = [];

    public long DesignatedMinor => DesignablePoolMinor - RetainedMinor;

    public long ContributionsMinor => Pacts.Aggregate(0L, (sum, p) => checked(sum + p.ContributionMinor));

    public long ReceiptsMinor => Pacts.Aggregate(0L, (sum, p) => checked(sum + p.ReceiptMinor));

    /// <summary>DESIGN.md's budget identity: revenue − designated − Σ contributions + Σ receipts.</summary>
    public long NetBudgetMinor => checked(RevenueMinor - DesignatedMinor - ContributionsMinor + ReceiptsMinor);
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

    /// <summary>What the canton puts into and gets from each pact this year, as <see cref="Ledger.SettlePacts"/> left it.</summary>
    public SortedDictionary<string, BudgetPactLine> Pacts { get; } = new(StringComparer.Ordinal);

    /// <summary>The last event that changed this canton's own accounts. Pact lines follow the books of other cantons and
    /// are settled a page at a time, so they do not move it: a replay paged differently must reach the same rows.</summary>
    public long Position { get; set; }

    /// <summary>Whether the canton keeps accounts of its own for the year (a policy or an assessment). A book without
    /// them only carries the pact lines of a member canton that has no budget for the year.</summary>
    public bool HasOwnAccounts => Policy is not null || Taxpayers > 0;

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

        return new BudgetResult(RevenueMinor, Taxpayers, PoolMinor, lines, unallocated, unallocated - retained, retained)
        {
            Pacts = Pacts.Count == 0 ? [] : [.. Pacts.Values],
        };
    }
}

/// <summary>One person's assessments and designation records in one canton, every year.</summary>
public sealed class TaxpayerFile
{
    public SortedList<int, long> Taxes { get; } = [];

    /// <summary>Designation records by the year they were made for; null is a withdrawal.</summary>
    public SortedList<int, Designation?> Records { get; } = [];
}

/// <summary>What settling the pacts reads beyond what changed: the books of the members of each pact-year to settle
/// (<see cref="Books"/>), every book of a member from a year on (<see cref="BooksFrom"/>: a membership or a census
/// changed from then on), and the census of the members of per-resident pacts (<see cref="Census"/>).</summary>
public sealed record PactScope(
    IReadOnlySet<(string CantonId, int FiscalYear)> Books, IReadOnlyDictionary<string, int> BooksFrom, IReadOnlySet<string> Census)
{
    public bool IsEmpty => Books.Count == 0 && BooksFrom.Count == 0;

    /// <summary>The earliest fiscal year a settlement will look at (null: none).</summary>
    public int? FirstYear => Books.Select(b => b.FiscalYear).Concat(BooksFrom.Values).Cast<int?>().Min();
}

/// <summary>
/// The fiscal ledger: folds events into budget books, incrementally. A change to a taxpayer takes out their old
/// contribution and puts in the new one, so the cost of an event does not grow with the size of the canton. It can hold
/// the whole confederation (a replay) or only the part a batch of events touches (the projection loads that part).
/// <para>
/// Pacts are settled by <see cref="SettlePacts"/>, not on every event: a pact-year depends on the books of all its
/// members, so a batch of events is settled once. Settling makes every pact-year that any event since the last
/// settlement may have changed a function of the state alone (memberships, the members' books, the census), never of
/// the order in which pages cut the log, so a replay in any page size reaches the same lines. A pact-year is settled
/// when at least one member (in the pact's currency) has a budget of its own for the year; then every member gets its
/// lines, and a member without a budget gets a book of zero revenue to carry them, which goes again when its lines do.
/// </para>
/// </summary>
public sealed class Ledger
{
    public Dictionary<string, string> Currencies { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, OrganizationStanding> Organizations { get; } = new(StringComparer.Ordinal);

    public Dictionary<(string CantonId, int FiscalYear), BudgetBook> Books { get; } = [];

    public Dictionary<(string CantonId, string Taxpayer), TaxpayerFile> Files { get; } = [];

    public HashSet<string> ChangedCantons { get; } = new(StringComparer.Ordinal);

    public HashSet<string> ChangedOrganizations { get; } = new(StringComparer.Ordinal);

    public HashSet<(string CantonId, int FiscalYear)> ChangedBooks { get; } = [];

    /// <summary>The (canton, person, year) entries of taxpayer files that changed: an assessment or a designation record.</summary>
    public HashSet<(string CantonId, string Taxpayer, int FiscalYear)> ChangedFileYears { get; } = [];

    public Dictionary<string, Pact> Pacts { get; } = new(StringComparer.Ordinal);

    /// <summary>Arrivals (+1) and departures (−1) per canton and day: the residents on a day are the sum up to that day.</summary>
    public Dictionary<string, SortedDictionary<DateOnly, long>> Census { get; } = new(StringComparer.Ordinal);

    /// <summary>The settled lines of every pact-year with a budget among its members, in cantonId ordinal order.</summary>
    public Dictionary<(string PactId, int FiscalYear), IReadOnlyList<PactLine>> PactYears { get; } = [];

    /// <summary>Pacts founded or renamed.</summary>
    public HashSet<string> ChangedPacts { get; } = new(StringComparer.Ordinal);

    /// <summary>Membership timelines that changed.</summary>
    public HashSet<(string PactId, string CantonId)> ChangedMemberships { get; } = [];

    /// <summary>What the census changed, per canton and day, since this ledger was created.</summary>
    public Dictionary<(string CantonId, DateOnly Day), long> CensusChanges { get; } = [];

    /// <summary>Pact-years settled again (their lines may be the same, or none).</summary>
    public HashSet<(string PactId, int FiscalYear)> ChangedPactYears { get; } = [];

    /// <summary>Books that only carried pact lines and no longer carry any.</summary>
    public HashSet<(string CantonId, int FiscalYear)> RemovedBooks { get; } = [];

    // What changed since the last settlement of the pacts: books, and pacts from a year on.
    private readonly HashSet<(string CantonId, int FiscalYear)> _unsettledBooks = [];
    private readonly Dictionary<string, int> _unsettledPacts = new(StringComparer.Ordinal);

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
                Designate(e.CantonId, e.Taxpayer, e.FiscalYear, Designation.Create(e.Choices, e.Standing), position);
                break;
            case DesignationWithdrawn e:
                Designate(e.CantonId, e.Taxpayer, e.FiscalYear, null, position);
                break;
            case PactFounded e:
                SetPact(e.PactId, e);
                break;
            case PactRenamed e:
                SetPact(e.PactId, e);
                break;
            case PactJoined e:
                SetMembership(e.PactId, e.CantonId, e.FromFiscalYear, e);
                break;
            case PactLeft e:
                SetMembership(e.PactId, e.CantonId, e.FromFiscalYear, e);
                break;
            case ResidentRegistered e:
                CountResident(e.CantonId, e.ResidentSince, +1);
                break;
            case ResidentDeparted e:
                CountResident(e.CantonId, e.LeftOn, -1);
                break;
        }
    }

    /// <summary>Residents of the canton on <paramref name="day"/>. A count below zero (a departure the log holds without
    /// its arrival, which no decision records) counts as none.</summary>
    public long ResidentsOn(string cantonId, DateOnly day)
    {
        if (!Census.TryGetValue(cantonId, out var days))
        {
            return 0;
        }

        var residents = 0L;
        foreach (var (d, delta) in days)
        {
            if (d > day)
            {
                break;
            }

            residents += delta;
        }

        return Math.Max(0, residents);
    }

    /// <summary>What <see cref="SettlePacts"/> will read; a ledger holding only part of the confederation loads it
    /// first (books it already holds are newer than stored ones).</summary>
    public PactScope PactScope()
    {
        var books = new HashSet<(string, int)>();
        var from = new Dictionary<string, int>(StringComparer.Ordinal);
        var census = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (cantonId, year) in _unsettledBooks)
        {
            foreach (var pact in PactsOf(cantonId))
            {
                foreach (var member in pact.Members.Keys)
                {
                    books.Add((member, year));
                }

                if (pact.Distribution == PactDistribution.PerResident)
                {
                    census.UnionWith(pact.Members.Keys);
                }
            }
        }

        foreach (var (pactId, year) in _unsettledPacts)
        {
            var pact = Pacts[pactId];
            foreach (var member in pact.Members.Keys)
            {
                from[member] = Math.Min(year, from.GetValueOrDefault(member, int.MaxValue));
            }

            if (pact.Distribution == PactDistribution.PerResident)
            {
                census.UnionWith(pact.Members.Keys);
            }
        }

        return new PactScope(books, from, census);
    }

    /// <summary>Settles again every pact-year that changed since the last settlement, and puts its lines in the books
    /// of its members.</summary>
    public void SettlePacts()
    {
        var pactYears = new HashSet<(string PactId, int FiscalYear)>();
        foreach (var (cantonId, year) in _unsettledBooks)
        {
            foreach (var pact in PactsOf(cantonId))
            {
                pactYears.Add((pact.Id, year));
            }
        }

        // Only years where a member has a book can hold lines, or need them.
        foreach (var (pactId, from) in _unsettledPacts)
        {
            foreach (var member in Pacts[pactId].Members.Keys)
            {
                for (var year = from; year <= FiscalPolicy.MaxYear; year++)
                {
                    if (Books.ContainsKey((member, year)))
                    {
                        pactYears.Add((pactId, year));
                    }
                }
            }
        }

        _unsettledBooks.Clear();
        _unsettledPacts.Clear();
        foreach (var (pactId, year) in pactYears)
        {
            SettlePactYear(Pacts[pactId], year);
        }
    }

    private void SettlePactYear(Pact pact, int year)
    {
        // Amounts of different currencies are never added: a member keeping its books in another currency (which no
        // decision lets join) takes no part.
        var members = pact.MembersIn(year)
            .Where(m => Currencies.TryGetValue(m.CantonId, out var currency) && currency == pact.Currency)
            .ToList();
        IReadOnlyList<PactLine> lines = members.Any(m => Books.TryGetValue((m.CantonId, year), out var book) && book.HasOwnAccounts)
            ? PactSettlement.Settle(pact.Distribution, members.Select(m => Accounts(m.CantonId, m.ContributionRateBp, year)))
            : [];

        var byCanton = lines.ToDictionary(l => l.CantonId, StringComparer.Ordinal);
        foreach (var cantonId in pact.Members.Keys)
        {
            var key = (cantonId, year);
            if (byCanton.TryGetValue(cantonId, out var line))
            {
                var book = Book(cantonId, year);
                var settled = new BudgetPactLine(pact.Id, line.ContributionMinor, line.ReceiptMinor);
                if (!book.Pacts.TryGetValue(pact.Id, out var previous) || previous != settled)
                {
                    book.Pacts[pact.Id] = settled;
                    ChangedBooks.Add(key);
                }
            }
            else if (Books.TryGetValue(key, out var book) && book.Pacts.Remove(pact.Id))
            {
                if (!book.HasOwnAccounts && book.Pacts.Count == 0)
                {
                    Books.Remove(key);
                    ChangedBooks.Remove(key);
                    RemovedBooks.Add(key);
                }
                else
                {
                    ChangedBooks.Add(key);
                }
            }
        }

        if (lines.Count > 0)
        {
            PactYears[(pact.Id, year)] = lines;
        }
        else
        {
            PactYears.Remove((pact.Id, year));
        }

        ChangedPactYears.Add((pact.Id, year));
    }

    private PactMemberAccounts Accounts(string cantonId, int rateBp, int year)
    {
        var budget = Books.TryGetValue((cantonId, year), out var book) ? book.Settle() : null;
        return new PactMemberAccounts(
            cantonId, rateBp, budget?.RevenueMinor ?? 0, budget?.DesignatedMinor ?? 0, ResidentsOn(cantonId, new DateOnly(year, 1, 1)));
    }

    private IEnumerable<Pact> PactsOf(string cantonId) => Pacts.Values.Where(p => p.Members.ContainsKey(cantonId));

    private void SetPact(string pactId, object @event)
    {
        if (Pact.Apply(Pacts.GetValueOrDefault(pactId), @event) is { } pact)
        {
            Pacts[pactId] = pact;
            ChangedPacts.Add(pactId);
        }
    }

    private void SetMembership(string pactId, string cantonId, int fromYear, object @event)
    {
        if (!Pacts.TryGetValue(pactId, out var pact))
        {
            return;
        }

        Pacts[pactId] = Pact.Apply(pact, @event)!;
        ChangedMemberships.Add((pactId, cantonId));
        Unsettle(pactId, fromYear);
    }

    private void CountResident(string cantonId, DateOnly day, long delta)
    {
        if (!Census.TryGetValue(cantonId, out var days))
        {
            Census[cantonId] = days = [];
        }

        days[day] = days.GetValueOrDefault(day) + delta;
        CensusChanges[(cantonId, day)] = CensusChanges.GetValueOrDefault((cantonId, day)) + delta;

        // Weights are residents on 1 January: a change counts from the first 1 January on or after its day.
        var firstYear = day.Month == 1 && day.Day == 1 ? day.Year : day.Year + 1;
        foreach (var pact in PactsOf(cantonId))
        {
            if (pact.Distribution == PactDistribution.PerResident)
            {
                Unsettle(pact.Id, firstYear);
            }
        }
    }

    private void Unsettle(string pactId, int fromYear)
    {
        if (fromYear <= FiscalPolicy.MaxYear)
        {
            _unsettledPacts[pactId] = Math.Min(Math.Max(fromYear, FiscalPolicy.MinYear), _unsettledPacts.GetValueOrDefault(pactId, int.MaxValue));
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
        RemovedBooks.Remove((cantonId, fiscalYear));
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
                // A book carrying only pact lines exists or not depending on where settlements fell: its position
                // must not depend on it. Its standings are always the current ones, whenever it was opened.
                if (book.HasOwnAccounts)
                {
                    book.Position = position;
                }

                Changed(key);
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
        var file = File(e.CantonId, e.Taxpayer);
        var book = Book(e.CantonId, e.FiscalYear);
        Contribute(book, file, -1);
        file.Taxes[e.FiscalYear] = e.AmountMinor;
        Contribute(book, file, +1);
        ChangedFileYears.Add((e.CantonId, e.Taxpayer, e.FiscalYear));
        Touch(book, position);
    }

    // A record for one year also changes every later assessed year it carries into (or stops carrying into).
    private void Designate(string cantonId, string taxpayer, int fiscalYear, Designation? designation, long position)
    {
        var file = File(cantonId, taxpayer);
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

        ChangedFileYears.Add((cantonId, taxpayer, fiscalYear));
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

    private TaxpayerFile File(string cantonId, string taxpayer)
    {
        if (!Files.TryGetValue((cantonId, taxpayer), out var file))
        {
            Files[(cantonId, taxpayer)] = file = new TaxpayerFile();
        }

        return file;
    }

    private void Touch(BudgetBook book, long position)
    {
        book.Position = position;
        Changed((book.CantonId, book.FiscalYear));
    }

    private void Changed((string CantonId, int FiscalYear) key)
    {
        ChangedBooks.Add(key);
        if (Pacts.Count > 0)
        {
            _unsettledBooks.Add(key);
        }
    }
}
