using Confederal.Domain.Fiscal;
using Confederal.Domain.Pacts;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Domain.Tests;

/// <summary>Random histories folded event by event, pacts settled after each: after every event, every book must balance
/// and must equal the budget computed from scratch by <see cref="ReferenceBudgets"/>; settled in pages of any size, the
/// ledger must reach the same books.</summary>
public sealed class LedgerProperties
{
    private const int Runs = 500;

    /// <summary>The histories drawn for a <see cref="History"/> parameter.</summary>
    public static Arbitrary<History> Histories => RandomHistories.Arbitrary;

    /// <summary>A history with, after each event, whether the paged ledger settles its pacts there.</summary>
    public static Arbitrary<(History History, bool[] Cuts)> PagedHistories { get; } = Arb.From(
        from history in RandomHistories.Arbitrary.Generator
        from cuts in Gen.ArrayOf(Gen.Frequency((1, Gen.Constant(true)), (3, Gen.Constant(false))), history.Events.Count)
        select (history, cuts));

    [Property(MaxTest = Runs, Arbitrary = [typeof(LedgerProperties)])]
    public void Budgets_balance_at_every_moment_for_every_canton_year_and_currency(History history)
    {
        var ledger = new Ledger();
        for (var i = 0; i < history.Events.Count; i++)
        {
            ledger.Apply(history.Events[i].Event, history.Events[i].At, i + 1);
            ledger.SettlePacts();

            var receipts = new Dictionary<string, long>(StringComparer.Ordinal);
            var designated = new Dictionary<string, long>(StringComparer.Ordinal);
            var pactsIn = new Dictionary<string, long>(StringComparer.Ordinal);
            var pactsOut = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var (key, book) in ledger.Books)
            {
                var budget = book.Settle();
                var where = $"book {key} after event {i + 1}";
                AssertEqual(budget.DesignablePoolMinor, budget.Designations.Sum(l => l.AmountMinor) + budget.RetainedMinor, $"{where}: pool = Σ lines + retained");
                AssertEqual(budget.UnallocatedMinor, budget.RedistributedMinor + budget.RetainedMinor, $"{where}: unallocated = redistributed + retained");
                AssertEqual(budget.RedistributedMinor, budget.Designations.Sum(l => l.RedistributedMinor), $"{where}: redistributed = Σ line redistributed");
                AssertEqual(budget.NetBudgetMinor,
                    budget.RevenueMinor - budget.DesignatedMinor - budget.Pacts.Sum(p => p.ContributionMinor) + budget.Pacts.Sum(p => p.ReceiptMinor),
                    $"{where}: net = revenue − designated − Σ contributions + Σ receipts");
                foreach (var line in budget.Pacts)
                {
                    Assert.True(ledger.Pacts[line.PactId].Currency == book.Currency && line is { ContributionMinor: >= 0, ReceiptMinor: >= 0 },
                        $"{where}: pact {line.PactId} pools {ledger.Pacts[line.PactId].Currency}, never {book.Currency}: {line}");
                    pactsIn[line.PactId + " " + key.FiscalYear] = pactsIn.GetValueOrDefault(line.PactId + " " + key.FiscalYear) + line.ContributionMinor;
                    pactsOut[line.PactId + " " + key.FiscalYear] = pactsOut.GetValueOrDefault(line.PactId + " " + key.FiscalYear) + line.ReceiptMinor;
                }

                Assert.True(
                    budget is { RevenueMinor: >= 0, Taxpayers: >= 0, DesignablePoolMinor: >= 0, UnallocatedMinor: >= 0, RedistributedMinor: >= 0, RetainedMinor: >= 0 }
                    // Each pact takes its rate of the same base, so only several pacts together can take more than it.
                    && (budget.NetBudgetMinor >= 0 || budget.Pacts.Count > 1)
                    && budget.Pacts.All(p => p.ContributionMinor <= budget.RevenueMinor - budget.DesignatedMinor)
                    && budget.DesignablePoolMinor <= budget.RevenueMinor
                    && budget.Designations.All(l => l is { RedistributedMinor: >= 0, Taxpayers: > 0 } && l.AmountMinor >= l.RedistributedMinor),
                    $"{where}: no amount is negative, nor more designated than levied: {Describe(budget)}");

                receipts[book.Currency] = receipts.GetValueOrDefault(book.Currency) + budget.Designations.Sum(l => l.AmountMinor);
                designated[book.Currency] = designated.GetValueOrDefault(book.Currency) + budget.DesignatedMinor;
            }

            Assert.Equal(designated, receipts); // per currency: Σ organization receipts = Σ canton designations
            Assert.Equal(pactsIn, pactsOut); // per pact and year: Σ contributions = Σ receipts
            foreach (var ((pactId, year), lines) in ledger.PactYears)
            {
                Assert.Equal(lines.Select(l => (l.CantonId, l.ContributionMinor, l.ReceiptMinor)),
                    lines.Select(l => (l.CantonId, ledger.Books[(l.CantonId, year)].Pacts[pactId].ContributionMinor, ledger.Books[(l.CantonId, year)].Pacts[pactId].ReceiptMinor)));
            }
        }
    }

    [Property(MaxTest = Runs, Arbitrary = [typeof(LedgerProperties)])]
    public void Settling_pacts_after_every_event_or_a_page_at_a_time_reaches_the_same_books((History History, bool[] Cuts) c)
    {
        var everyEvent = new Ledger();
        var paged = new Ledger();
        for (var i = 0; i < c.History.Events.Count; i++)
        {
            everyEvent.Apply(c.History.Events[i].Event, c.History.Events[i].At, i + 1);
            everyEvent.SettlePacts();
            paged.Apply(c.History.Events[i].Event, c.History.Events[i].At, i + 1);
            if (c.Cuts[i])
            {
                paged.SettlePacts();
            }
        }

        paged.SettlePacts();
        Assert.Equal(Snapshot(everyEvent), Snapshot(paged));
    }

    private static string Snapshot(Ledger ledger) =>
        string.Join(Environment.NewLine, ledger.Books.OrderBy(b => b.Key.CantonId, StringComparer.Ordinal).ThenBy(b => b.Key.FiscalYear)
            .Select(b => $"{b.Key} {b.Value.Currency} position {b.Value.Position} {Describe(b.Value.Settle())}")
            .Concat(ledger.PactYears.OrderBy(p => p.Key.PactId, StringComparer.Ordinal).ThenBy(p => p.Key.FiscalYear)
                .Select(p => $"{p.Key}: {string.Join(", ", p.Value)}")));

    [Property(MaxTest = Runs, Arbitrary = [typeof(LedgerProperties)])]
    public void The_incremental_ledger_equals_budgets_computed_from_scratch_after_every_event(History history)
    {
        var ledger = new Ledger();
        for (var i = 0; i < history.Events.Count; i++)
        {
            ledger.Apply(history.Events[i].Event, history.Events[i].At, i + 1);
            ledger.SettlePacts();

            var expected = ReferenceBudgets.Settle(history.Events.Take(i + 1));
            Assert.Equal(expected.Keys.Order().ToList(), ledger.Books.Keys.Order().ToList());
            foreach (var (key, (currency, budget)) in expected)
            {
                var book = ledger.Books[key];
                var settled = book.Settle();
                if (book.Currency != currency || Describe(settled) != Describe(budget))
                {
                    Assert.Fail($"book {key} after event {i + 1}:{Environment.NewLine}  from scratch {currency} {Describe(budget)}"
                        + $"{Environment.NewLine}  ledger       {book.Currency} {Describe(settled)}");
                }
            }
        }
    }

    /// <summary>Every field of a budget, lines included, in one comparable line.</summary>
    private static string Describe(BudgetResult b) =>
        $"revenue {b.RevenueMinor}, taxpayers {b.Taxpayers}, pool {b.DesignablePoolMinor}, unallocated {b.UnallocatedMinor}, "
        + $"redistributed {b.RedistributedMinor}, retained {b.RetainedMinor}, lines ["
        + string.Join("; ", b.Designations.Select(l => $"{l.OrganizationId} {l.AmountMinor} (redistributed {l.RedistributedMinor}, {l.Taxpayers} taxpayers)"))
        + "], pacts ["
        + string.Join("; ", b.Pacts.Select(p => $"{p.PactId} in {p.ContributionMinor} out {p.ReceiptMinor}"))
        + $"], net {b.NetBudgetMinor}";

    private static void AssertEqual(long expected, long actual, string rule)
    {
        if (expected != actual)
        {
            Assert.Fail($"{rule}: {expected} ≠ {actual}");
        }
    }
}
