using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Fiscal;
using Confederal.Domain.Ballots;
using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;

namespace Confederal.Api.Features.Audit;

/// <summary>A number found to differ: what it is about (a budget, a receipt, a ballot), the field, the value the replay
/// reached and the value the other side states (the API, or the log's own record of a ballot).</summary>
public sealed record AuditDifference(string What, string Field, string Replayed, string Served)
{
    public override string ToString() => $"{What}: {Field}: replayed {Replayed}, served {Served}";

    /// <summary>A value as differences show it: invariant culture, lowercase booleans, "null".</summary>
    public static string Text(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>One page of a certified ballot's counted ballots as recounted: how many, and the SHA-256 (lowercase hex) of
/// its ballots as <c>receipt TAB option LF</c> lines in page order, so a page can be compared without keeping it.</summary>
public sealed record CountedPage(int Page, long Ballots, string Digest)
{
    public static CountedPage Of(int page, IEnumerable<(string Receipt, string Option)> ballots)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var count = 0L;
        foreach (var (receipt, option) in ballots)
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{receipt}\t{option}\n"));
            count++;
        }

        return new CountedPage(page, count, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }
}

/// <summary>A certified ballot as the replay recounts it: the fields of <see cref="BallotResultsView"/> from the sealed
/// pages and the census, with its counted ballots as page digests.</summary>
public sealed record ReplayedBallot(
    Guid BallotId, string CantonId, string Question, DateOnly CensusDate, long Eligible, long Votes, long TurnoutBp, IReadOnlyList<TallyView> Tallies,
    Proposal? Proposal, bool? Carried, bool? Enacted, string? NotEnacted, int Pages, IReadOnlyList<CountedPage> CountedPages);

/// <summary>What a replay of the log recomputed, as of <see cref="LastPosition"/>, and what it found inconsistent in the
/// log itself (a ballot's certified numbers against its own sealed pages and the census). Its budgets and receipts name
/// no placed cantons' <c>Ledgers</c>: an export does not say which of its events are copies (each is in its own canton's
/// export under the same id).</summary>
public sealed record ReplayResult(
    long Events, long LastPosition, IReadOnlyList<BudgetView> Budgets, IReadOnlyList<ReceiptsView> Receipts, IReadOnlyList<ReplayedBallot> Ballots,
    IReadOnlyList<AuditDifference> Differences);

/// <summary>
/// Replays an audit trail in one streaming pass with the platform's own rules: each event is read with
/// <see cref="EventTypes.Read"/> (older stored versions upcast), budgets and receipts are folded by the domain
/// <see cref="Ledger"/> (pacts settled every <see cref="SettleEvery"/> events, as the projection settles each page:
/// settlement depends on the state alone), and each certified ballot is recounted from its sealed box pages, its
/// eligible count recomputed from the residences folded up to its certification with the ballot's copied voting rules,
/// its sealed participation roll checked against the same rules. Memory holds the state (books, taxpayer files,
/// residences, the roll of a ballot being certified), never the log: a page of counted ballots is kept as a digest.
/// </summary>
public sealed class AuditReplay(EventTypes types)
{
    public const int SettleEvery = 10_000;
    private const int PageSize = 1_000;
    private const int ReadAhead = 16;

    private readonly Ledger _ledger = new();
    private readonly Dictionary<string, Residence?> _residences = new(StringComparer.Ordinal);
    private readonly Dictionary<Guid, Count> _counting = [];
    private readonly HashSet<string> _erased = new(StringComparer.Ordinal);
    private readonly Dictionary<Guid, Certifying> _awaitingErasures = [];
    private readonly List<ReplayedBallot> _ballots = [];
    private readonly List<AuditDifference> _differences = [];
    private long _sinceSettled;

    public long Events { get; private set; }

    public long LastPosition { get; private set; }

    /// <summary>Replays every event of <paramref name="trail"/> (seals are skipped: verification checks them) and
    /// returns the result; <paramref name="progress"/> hears the count of events replayed.</summary>
    /// <exception cref="EventStoreException">An event's type is unknown or its payload unreadable.</exception>
    public async Task<ReplayResult> RunAsync(IAsyncEnumerable<AuditEntry> trail, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        // Reading the trail and deserializing payloads run ahead on another core while the fold applies what they read:
        // on two cores, 81,000 events/s in one loop became 160,000 (`--only replay`, a 1,000,000-event export).
        var pages = Channel.CreateBounded<List<(AuditEvent Event, object Data)>>(
            new BoundedChannelOptions(ReadAhead) { SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reading = Task.Run(() => ReadAsync(trail, pages.Writer, stop.Token), stop.Token);
        try
        {
            await foreach (var page in pages.Reader.ReadAllAsync(ct))
            {
                foreach (var (e, data) in page)
                {
                    Apply(e, data);
                }

                progress?.Report(Events);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await reading.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        await reading; // the reader's failure (an unreadable line or event), if any
        progress?.Report(Events);
        return Result();
    }

    private async Task ReadAsync(IAsyncEnumerable<AuditEntry> trail, ChannelWriter<List<(AuditEvent, object)>> pages, CancellationToken ct)
    {
        try
        {
            var page = new List<(AuditEvent, object)>(PageSize);
            await foreach (var entry in trail.WithCancellation(ct))
            {
                if (entry.Event is { } e)
                {
                    page.Add((e, types.Read(e.Type, e.TypeVersion, e.Data.GetRawText(), e.Position, e.StreamId)));
                    if (page.Count == PageSize)
                    {
                        await pages.WriteAsync(page, ct);
                        page = new List<(AuditEvent, object)>(PageSize);
                    }
                }
            }

            if (page.Count > 0)
            {
                await pages.WriteAsync(page, ct);
            }
        }
        finally
        {
            pages.Complete();
        }
    }

    private void Apply(AuditEvent e, object data)
    {
        _ledger.Apply(data, e.RecordedAt, e.Position);
        switch (data)
        {
            case ResidentRegistered r:
                if (e.Person?.Erased == true)
                {
                    _erased.Add(r.Resident);
                }

                _residences[r.Resident] = Residence.Apply(_residences.GetValueOrDefault(r.Resident), r.BirthDate is null ? r with { BirthDate = e.Person?.BirthDate } : r);
                break;
            case PersonErased erased:
                Erased(erased);
                break;
            case ResidentDeparted r:
                _residences[r.Resident] = Residence.Apply(_residences.GetValueOrDefault(r.Resident), r);
                break;
            case BallotCalled called:
                _counting[called.BallotId] = new Count(Ballot.Apply(null, called)!);
                break;
            case BallotsCounted page when _counting.TryGetValue(page.BallotId, out var count):
                Counted(count, page);
                break;
            case ParticipationsRecorded page when _counting.TryGetValue(page.BallotId, out var count):
                Recorded(count, page);
                break;
            case BallotCertified certified when _counting.Remove(certified.BallotId, out var count):
                Certify(count, certified);
                break;
        }

        Events++;
        LastPosition = e.Position;
        if (++_sinceSettled == SettleEvery)
        {
            Settle();
        }
    }

    /// <summary>Budgets of every registered canton for every year any canton has a book in (zero where it has none, as
    /// the API serves them), receipts of every recognized organization for those years, and the certified ballots.</summary>
    private ReplayResult Result()
    {
        Settle();
        foreach (var certifying in _awaitingErasures.Values.ToList())
        {
            certifying.Count.Differ(_differences, "eligible: erased residents whose roll no person-erased event states", 0, certifying.Undecided.Count);
            Certified(certifying);
        }

        _awaitingErasures.Clear();
        var years = _ledger.Books.Keys.Select(k => k.FiscalYear).Distinct().Order().ToList();
        var settled = _ledger.Books.ToDictionary(b => b.Key, b => b.Value.Settle());
        var budgets = new List<BudgetView>();
        foreach (var (canton, currency) in _ledger.Currencies.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            foreach (var year in years)
            {
                budgets.Add(_ledger.Books.TryGetValue((canton, year), out var book)
                    ? View(book, settled[(canton, year)])
                    : new BudgetView(canton, year, currency, 0, 0, 0, 0, [], 0, 0, 0, 0, [], [], 0, LastPosition, []));
            }
        }

        var receipts = new List<ReceiptsView>();
        foreach (var organization in _ledger.Organizations.Keys.Order(StringComparer.Ordinal))
        {
            foreach (var year in years)
            {
                var lines = settled
                    .Where(b => b.Key.FiscalYear == year)
                    .OrderBy(b => b.Key.CantonId, StringComparer.Ordinal)
                    .SelectMany(b => b.Value.Designations.Where(l => l.OrganizationId == organization).Select(l =>
                        new ReceiptView(b.Key.CantonId, _ledger.Books[b.Key].Currency, l.AmountMinor, l.RedistributedMinor, l.Taxpayers)))
                    .ToList();
                var totals = lines.GroupBy(l => l.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
                    .Select(g => new CurrencyTotalView(g.Key, g.Sum(l => l.AmountMinor))).ToList();
                receipts.Add(new ReceiptsView(organization, year, lines, totals, LastPosition, []));
            }
        }

        return new ReplayResult(Events, LastPosition, budgets, receipts, [.. _ballots], [.. _differences]);
    }

    private BudgetView View(BudgetBook book, BudgetResult settled) => new(
        book.CantonId, book.FiscalYear, book.Currency, settled.RevenueMinor, settled.Taxpayers, book.Policy?.DesignationRateBp ?? 0,
        settled.DesignablePoolMinor, [.. settled.Designations.Select(l => new BudgetDesignationView(l.OrganizationId, l.AmountMinor, l.RedistributedMinor, l.Taxpayers))],
        settled.UnallocatedMinor, settled.RedistributedMinor, settled.RetainedMinor, settled.DesignatedMinor,
        [.. settled.Pacts.Select(p => new PactLineView(p.PactId, p.ContributionMinor))], [.. settled.Pacts.Select(p => new PactLineView(p.PactId, p.ReceiptMinor))],
        settled.NetBudgetMinor, LastPosition, []);

    // What the ledger notes for a projection's writes is of no use here: dropped as it goes, it keeps memory flat.
    private void Settle()
    {
        _ledger.SettlePacts();
        _ledger.ChangedBooks.Clear();
        _ledger.ChangedFileYears.Clear();
        _ledger.ChangedCantons.Clear();
        _ledger.ChangedOrganizations.Clear();
        _ledger.ChangedPacts.Clear();
        _ledger.ChangedMemberships.Clear();
        _ledger.ChangedPactYears.Clear();
        _ledger.CensusChanges.Clear();
        _ledger.RemovedBooks.Clear();
        _sinceSettled = 0;
    }

    private void Counted(Count count, BallotsCounted page)
    {
        var options = count.Ballot.Called.Options;
        if (page.Page != count.Pages.Count)
        {
            count.Differ(_differences, "box page", count.Pages.Count, page.Page);
        }

        if (page.Receipts.Count != page.Options.Count)
        {
            count.Differ(_differences, $"box page {page.Page}: options per receipt", page.Receipts.Count, page.Options.Count);
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var ballots = Math.Min(page.Receipts.Count, page.Options.Count);
        for (var i = 0; i < ballots; i++)
        {
            var (receipt, option) = (page.Receipts[i], page.Options[i]);
            if (count.LastReceipt is not null && string.CompareOrdinal(receipt, count.LastReceipt) <= 0 && !count.Disordered)
            {
                count.Disordered = true;
                _differences.Add(new AuditDifference(count.What, "box: receipts in strictly increasing order", "each receipt once, in order",
                    $"'{receipt}' after '{count.LastReceipt}'"));
            }

            count.LastReceipt = receipt;
            if (option < 0 || option >= options.Count)
            {
                count.Differ(_differences, $"box page {page.Page}: option index of '{receipt}'", $"0..{options.Count - 1}", option);
                continue;
            }

            count.Tallies[option]++;
            count.Votes++;
            hash.AppendData(Encoding.UTF8.GetBytes($"{receipt}\t{options[option]}\n"));
        }

        count.Pages.Add(new CountedPage(page.Page, ballots, Convert.ToHexStringLower(hash.GetHashAndReset())));
    }

    private void Recorded(Count count, ParticipationsRecorded page)
    {
        foreach (var person in page.Residents)
        {
            if (!count.Roll.Add(person) && !count.Repeated)
            {
                count.Repeated = true;
                _differences.Add(new AuditDifference(count.What, "participation roll: each person once", "once", $"'{person}' again"));
            }
        }
    }

    /// <summary>A ballot being certified whose roll depends on erased residents: their birth dates are gone, and the
    /// erasure events (later in the log) say which certified rolls each was on.</summary>
    private sealed record Certifying(Count Count, BallotCertified Certified, HashSet<string> Undecided)
    {
        public long Eligible { get; set; }

        public long OffRoll { get; set; }
    }

    private void Certify(Count count, BallotCertified certified)
    {
        var ballot = count.Ballot;
        var certifying = new Certifying(count, certified, new HashSet<string>(StringComparer.Ordinal));
        foreach (var (resident, residence) in _residences)
        {
            if (_erased.Contains(resident) && residence is not null && ballot.Ineligible(residence with { BirthDate = DateOnly.MinValue }) is null)
            {
                certifying.Undecided.Add(resident); // resident and long enough: of age or not, only its erasure says
            }
            else if (ballot.Ineligible(residence) is null)
            {
                certifying.Eligible++;
            }
        }

        certifying.OffRoll = count.Roll.Count(person => !certifying.Undecided.Contains(person) && ballot.Ineligible(_residences.GetValueOrDefault(person)) is not null);
        if (certifying.Undecided.Count == 0)
        {
            Certified(certifying);
        }
        else
        {
            _awaitingErasures[certified.BallotId] = certifying;
        }
    }

    private void Erased(PersonErased erased)
    {
        foreach (var (ballotId, certifying) in _awaitingErasures.ToList())
        {
            if (certifying.Undecided.Remove(erased.Resident))
            {
                if (erased.EligibleIn.Contains(ballotId))
                {
                    certifying.Eligible++;
                }
                else if (certifying.Count.Roll.Contains(erased.Resident))
                {
                    certifying.OffRoll++;
                }

                if (certifying.Undecided.Count == 0)
                {
                    _awaitingErasures.Remove(ballotId);
                    Certified(certifying);
                }
            }
        }
    }

    private void Certified(Certifying certifying)
    {
        var (count, certified, eligible, offRoll) = (certifying.Count, certifying.Certified, certifying.Eligible, certifying.OffRoll);
        var ballot = count.Ballot;
        if (offRoll > 0)
        {
            count.Differ(_differences, "participation roll: persons not eligible on the census date", 0, offRoll);
        }

        if (count.Roll.Count != count.Votes)
        {
            count.Differ(_differences, "participation roll: persons (one per vote)", count.Votes, count.Roll.Count);
        }

        var carried = ballot.IsCarried(count.Tallies);
        var record = $"{count.What} as certified in the log";
        Compare(record, "eligible", eligible, certified.Eligible);
        Compare(record, "votes", count.Votes, certified.Votes);
        for (var i = 0; i < count.Tallies.Length; i++)
        {
            Compare(record, $"tallies[{ballot.Called.Options[i]}]", count.Tallies[i], i < certified.Tallies.Count ? certified.Tallies[i] : (object?)null);
        }

        Compare(record, "pages", count.Pages.Count, certified.Pages);
        Compare(record, "carried", carried, certified.Carried);

        var called = ballot.Called;
        _ballots.Add(new ReplayedBallot(
            called.BallotId, called.CantonId, called.Question, called.CensusDate, eligible, count.Votes,
            eligible == 0 ? 0 : count.Votes * 10_000 / eligible,
            [.. called.Options.Select((o, i) => new TallyView(o, count.Tallies[i]))],
            called.Proposal, carried, carried is true ? certified.NotEnacted is null : null, certified.NotEnacted, count.Pages.Count, [.. count.Pages]));
    }

    private void Compare(string what, string field, object? replayed, object? stated)
    {
        if (!Equals(replayed, stated))
        {
            _differences.Add(new AuditDifference(what, field, AuditDifference.Text(replayed), AuditDifference.Text(stated)));
        }
    }

    private sealed class Count(Ballot ballot)
    {
        public Ballot Ballot { get; } = ballot;
        public long[] Tallies { get; } = new long[ballot.Called.Options.Count];
        public long Votes { get; set; }
        public List<CountedPage> Pages { get; } = [];
        public string? LastReceipt { get; set; }
        public bool Disordered { get; set; }
        public HashSet<string> Roll { get; } = new(StringComparer.Ordinal);
        public bool Repeated { get; set; }

        public string What => $"ballot {Ballot.Called.CantonId}/{Ballot.Id:D}";

        public void Differ(List<AuditDifference> differences, string field, object expected, object found) =>
            differences.Add(new AuditDifference(What, field, AuditDifference.Text(expected), AuditDifference.Text(found)));
    }
}
