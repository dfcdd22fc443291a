using Confederal.Domain.Fiscal;
using FsCheck;
using FsCheck.Fluent;

namespace Confederal.Domain.Tests;

/// <summary>Random histories folded event by event: after every event, every book must balance and must equal the
/// budget computed from scratch by <see cref="ReferenceBudgets"/>.</summary>
public sealed class LedgerProperties
{
    private static readonly Config Runs = Config.QuickThrowOnFailure.WithMaxTest(500).WithQuietOnSuccess(true);

    [Fact]
    public void Budgets_balance_at_every_moment_for_every_canton_year_and_currency()
    {
        Check.One(Runs, Prop.ForAll(RandomHistories.Arbitrary, history =>
        {
            var ledger = new Ledger();
            for (var i = 0; i < history.Events.Count; i++)
            {
                ledger.Apply(history.Events[i].Event, history.Events[i].At, i + 1);

                var receipts = new Dictionary<string, long>(StringComparer.Ordinal);
                var designated = new Dictionary<string, long>(StringComparer.Ordinal);
                foreach (var (key, book) in ledger.Books)
                {
                    var budget = book.Settle();
                    var where = $"book {key} after event {i + 1}";
                    AssertEqual(budget.DesignablePoolMinor, budget.Designations.Sum(l => l.AmountMinor) + budget.RetainedMinor, $"{where}: pool = Σ lines + retained");
                    AssertEqual(budget.UnallocatedMinor, budget.RedistributedMinor + budget.RetainedMinor, $"{where}: unallocated = redistributed + retained");
                    AssertEqual(budget.RedistributedMinor, budget.Designations.Sum(l => l.RedistributedMinor), $"{where}: redistributed = Σ line redistributed");
                    AssertEqual(budget.NetBudgetMinor, budget.RevenueMinor - budget.DesignatedMinor, $"{where}: net = revenue − designated");
                    Assert.True(
                        budget is { RevenueMinor: >= 0, Taxpayers: >= 0, DesignablePoolMinor: >= 0, UnallocatedMinor: >= 0, RedistributedMinor: >= 0, RetainedMinor: >= 0, NetBudgetMinor: >= 0 }
                        && budget.DesignablePoolMinor <= budget.RevenueMinor
                        && budget.Designations.All(l => l is { RedistributedMinor: >= 0, Taxpayers: > 0 } && l.AmountMinor >= l.RedistributedMinor),
                        $"{where}: no amount is negative, nor more designated than levied: {Describe(budget)}");

                    receipts[book.Currency] = receipts.GetValueOrDefault(book.Currency) + budget.Designations.Sum(l => l.AmountMinor);
                    designated[book.Currency] = designated.GetValueOrDefault(book.Currency) + budget.DesignatedMinor;
                }

                Assert.Equal(designated, receipts); // per currency: Σ organization receipts = Σ canton designations
            }
        }));
    }

    [Fact]
    public void The_incremental_ledger_equals_budgets_computed_from_scratch_after_every_event()
    {
        Check.One(Runs, Prop.ForAll(RandomHistories.Arbitrary, history =>
        {
            var ledger = new Ledger();
            for (var i = 0; i < history.Events.Count; i++)
            {
                ledger.Apply(history.Events[i].Event, history.Events[i].At, i + 1);

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
        }));
    }

    /// <summary>Every field of a budget, lines included, in one comparable line.</summary>
    private static string Describe(BudgetResult b) =>
        $"revenue {b.RevenueMinor}, taxpayers {b.Taxpayers}, pool {b.DesignablePoolMinor}, unallocated {b.UnallocatedMinor}, "
        + $"redistributed {b.RedistributedMinor}, retained {b.RetainedMinor}, lines ["
        + string.Join("; ", b.Designations.Select(l => $"{l.OrganizationId} {l.AmountMinor} (redistributed {l.RedistributedMinor}, {l.Taxpayers} taxpayers)"))
        + "]";

    private static void AssertEqual(long expected, long actual, string rule)
    {
        if (expected != actual)
        {
            Assert.Fail($"{rule}: {expected} ≠ {actual}");
        }
    }
}
