using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;

namespace Confederal.Domain.Tests;

/// <summary>Budgets settled from events, every number worked out by hand in the comments (rate 100 bp = 1 %).</summary>
public sealed class LedgerTests
{
    private static readonly DateTimeOffset Deadline2024 = new(2025, 4, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Deadline2025 = new(2026, 4, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset In2024 = new(2024, 2, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset In2025 = new(2025, 2, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Early2026 = new(2026, 2, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly BudgetLine[] NoLines = [];

    private sealed class Log
    {
        private long position;

        public Ledger Ledger { get; } = new();

        public Log At(DateTimeOffset recordedAt, params object[] events)
        {
            foreach (var @event in events)
            {
                Ledger.Apply(@event, recordedAt, ++position);
            }

            return this;
        }

        public BudgetResult Settle(int year = 2025, string cantonId = "ge") => Ledger.Books[(cantonId, year)].Settle();
    }

    /// <summary>Genève (CHF), and Linux, Oceans (accepting redistributed money) and Church (declining it).</summary>
    private static Log Confederation() => new Log().At(In2024,
        new CantonRegistered("ge", "Genève", "CHF"),
        new OrganizationRecognized("church", "Church", OrganizationKind.Community, AcceptsRedistribution: false),
        new OrganizationRecognized("linux", "Linux", OrganizationKind.Commons, AcceptsRedistribution: true),
        new OrganizationRecognized("oceans", "Oceans", OrganizationKind.Commons, AcceptsRedistribution: true));

    private static FiscalPolicySet Policy(
        UnallocatedPolicy unallocated, int year = 2025, int rateBp = 100, IReadOnlyList<string>? eligible = null, string cantonId = "ge") =>
        new(cantonId, year, rateBp, 3, unallocated, year == 2024 ? Deadline2024 : Deadline2025,
            eligible is null ? Eligibility.All : Eligibility.Listed, eligible ?? []);

    private static TaxAssessed Tax(string personId, long amountMinor, int year = 2025, string cantonId = "ge") =>
        new(cantonId, personId, year, amountMinor);

    private static DesignationChosen Chose(string personId, int year, bool standing, params Choice[] choices) =>
        new("ge", personId, year, choices, standing);

    private static DesignationChosen Chose(string personId, params Choice[] choices) => Chose(personId, 2025, false, choices);

    private static void AssertBudget(BudgetResult expected, BudgetResult actual)
    {
        Assert.Equal(expected.Designations, actual.Designations);
        Assert.Equal(expected with { Designations = NoLines }, actual with { Designations = NoLines });
    }

    [Fact]
    public void Under_retain_the_canton_keeps_what_nobody_designated()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Retain),
            Tax("alice", 123_456), // designable floor(1234.56) = 1234
            Tax("bob", 10_001), // designable floor(100.01) = 100
            Tax("carol", 50_000), // designable 500, no choice
            Chose("alice", new Choice("linux", 5_000), new Choice("oceans", 5_000)), // 617 + 617
            Chose("bob", new Choice("oceans", 6_667), new Choice("linux", 3_333))); // 33.33 → 33, 66.67 → 66, the unit left → oceans: 33 + 67

        var budget = log.Settle();

        AssertBudget(new BudgetResult(
            RevenueMinor: 183_457, // 123 456 + 10 001 + 50 000
            Taxpayers: 3,
            DesignablePoolMinor: 1_834, // 1234 + 100 + 500
            Designations: [new BudgetLine("linux", 650, 0, 2), new BudgetLine("oceans", 684, 0, 2)], // 617 + 33, 617 + 67
            UnallocatedMinor: 500,
            RedistributedMinor: 0,
            RetainedMinor: 500), budget);
        Assert.Equal(1_334, budget.DesignatedMinor);
        Assert.Equal(182_123, budget.NetBudgetMinor); // 183 457 − 1334
    }

    [Fact]
    public void Under_proportional_the_unallocated_follows_the_choices_except_to_organizations_declining_it()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Proportional),
            Tax("alice", 100_000), // 1000
            Tax("bob", 100_000), // 1000
            Tax("dan", 30_000), // 300
            Tax("carol", 70_100), // 701, no choice: unallocated
            Chose("alice", new Choice("linux", 10_000)), // linux 1000
            Chose("bob", new Choice("oceans", 5_000), new Choice("church", 5_000)), // church 500, oceans 500
            Chose("dan", new Choice("linux", 2_000), new Choice("oceans", 8_000))); // linux 60, oceans 240

        // Weights: church declines (0), linux 10000 + 2000 = 12000, oceans 5000 + 8000 = 13000, of 25000.
        // 701 × 12000 / 25000 = 336.48 → 336, 701 × 13000 / 25000 = 364.52 → 364; the unit left goes to the larger
        // remainder: oceans 365.
        AssertBudget(new BudgetResult(
            RevenueMinor: 300_100,
            Taxpayers: 4,
            DesignablePoolMinor: 3_001, // 1000 + 1000 + 300 + 701
            Designations:
            [
                new BudgetLine("church", 500, 0, 1),
                new BudgetLine("linux", 1_396, 336, 2), // 1000 + 60 + 336
                new BudgetLine("oceans", 1_105, 365, 2), // 500 + 240 + 365
            ],
            UnallocatedMinor: 701,
            RedistributedMinor: 701,
            RetainedMinor: 0), log.Settle());
        Assert.Equal(297_099, log.Settle().NetBudgetMinor); // 300 100 − 3001
    }

    [Fact]
    public void Under_proportional_with_no_choice_at_all_the_canton_keeps_everything()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Proportional),
            Tax("alice", 100_000), // 1000
            Tax("bob", 55_555)); // floor(555.55) = 555

        var budget = log.Settle();

        AssertBudget(new BudgetResult(155_555, 2, 1_555, NoLines, 1_555, 0, 1_555), budget);
        Assert.Equal(0, budget.DesignatedMinor);
        Assert.Equal(155_555, budget.NetBudgetMinor);
    }

    [Fact]
    public void Under_proportional_the_canton_keeps_what_only_declining_organizations_could_receive()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Proportional),
            Tax("alice", 100_000), // 1000, no choice
            Tax("bob", 50_000), // 500
            Chose("bob", new Choice("church", 10_000)));

        AssertBudget(new BudgetResult(150_000, 2, 1_500, [new BudgetLine("church", 500, 0, 1)], 1_000, 0, 1_000), log.Settle());
    }

    [Fact]
    public void A_corrected_assessment_moves_the_designated_amounts()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Retain),
            Tax("alice", 100_000), // 1000
            Chose("alice", new Choice("linux", 6_000), new Choice("oceans", 4_000))); // 600 + 400

        AssertBudget(new BudgetResult(100_000, 1, 1_000, [new BudgetLine("linux", 600, 0, 1), new BudgetLine("oceans", 400, 0, 1)], 0, 0, 0), log.Settle());

        // The correction replaces the assessment: 33 333 → 333; 333 × 0.6 = 199.8 → 199 (remainder 8000),
        // 333 × 0.4 = 133.2 → 133 (remainder 2000); the unit left goes to linux: 200 + 133.
        log.At(Early2026, Tax("alice", 33_333));

        AssertBudget(new BudgetResult(33_333, 1, 333, [new BudgetLine("linux", 200, 0, 1), new BudgetLine("oceans", 133, 0, 1)], 0, 0, 0), log.Settle());
    }

    [Fact]
    public void A_withdrawn_designation_becomes_unallocated()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Retain),
            Tax("alice", 100_000),
            Chose("alice", new Choice("linux", 10_000)),
            new DesignationWithdrawn("ge", "alice", 2025));

        AssertBudget(new BudgetResult(100_000, 1, 1_000, NoLines, 1_000, 0, 1_000), log.Settle());
    }

    /// <summary>Alice's standing choice of 2024 (linux, oceans: half each) carries into 2025; she pays 100 000 both years,
    /// so each year 1000 is designable: 500 + 500.</summary>
    private static Log StandingChoiceOverTwoYears(UnallocatedPolicy unallocated = UnallocatedPolicy.Retain, IReadOnlyList<string>? eligible2025 = null) =>
        Confederation()
            .At(In2024, Policy(UnallocatedPolicy.Retain, 2024), Chose("alice", 2024, true, new Choice("linux", 5_000), new Choice("oceans", 5_000)))
            .At(In2025, Policy(unallocated, 2025, eligible: eligible2025), Tax("alice", 100_000, 2024), Tax("alice", 100_000, 2025));

    private static readonly BudgetResult BothReceive =
        new(100_000, 1, 1_000, [new BudgetLine("linux", 500, 0, 1), new BudgetLine("oceans", 500, 0, 1)], 0, 0, 0);

    [Fact]
    public void A_standing_designation_is_counted_in_the_years_it_carries_into()
    {
        var log = StandingChoiceOverTwoYears();

        AssertBudget(BothReceive, log.Settle(2024));
        AssertBudget(BothReceive, log.Settle(2025));
    }

    [Fact]
    public void An_organization_suspended_while_the_year_is_open_receives_nothing_for_it_but_keeps_closed_years()
    {
        // Suspended exactly at the 2024 deadline: 2024 is closed (recordedAt ≥ deadline), 2025 is open.
        var log = StandingChoiceOverTwoYears().At(Deadline2024, new OrganizationSuspended("oceans"));

        AssertBudget(BothReceive, log.Settle(2024));
        // 2025: oceans's 500 is unallocated, and retained.
        AssertBudget(new BudgetResult(100_000, 1, 1_000, [new BudgetLine("linux", 500, 0, 1)], 500, 0, 500), log.Settle(2025));

        // Reinstated after the 2025 deadline: 2025 is closed too, and stays as it was.
        log.At(Deadline2025.AddDays(10), new OrganizationReinstated("oceans"));
        AssertBudget(BothReceive, log.Settle(2024));
        AssertBudget(new BudgetResult(100_000, 1, 1_000, [new BudgetLine("linux", 500, 0, 1)], 500, 0, 500), log.Settle(2025));
    }

    [Fact]
    public void An_organization_reinstated_before_the_deadline_receives_again()
    {
        var log = StandingChoiceOverTwoYears()
            .At(In2025.AddDays(1), new OrganizationSuspended("oceans"))
            .At(Deadline2025.AddTicks(-1), new OrganizationReinstated("oceans"));

        AssertBudget(BothReceive, log.Settle(2025));
    }

    [Fact]
    public void The_share_of_a_suspended_organization_is_redistributed_under_proportional()
    {
        var log = StandingChoiceOverTwoYears(UnallocatedPolicy.Proportional).At(In2025.AddDays(1), new OrganizationSuspended("oceans"));

        // oceans's 500 is unallocated; the only receiving weight is linux's 5000: linux gets 500 + 500.
        AssertBudget(new BudgetResult(100_000, 1, 1_000, [new BudgetLine("linux", 1_000, 500, 1)], 500, 500, 0), log.Settle(2025));
    }

    [Fact]
    public void An_organization_declining_after_the_deadline_keeps_its_redistribution_for_the_closed_year()
    {
        var log = Confederation().At(In2025,
                Policy(UnallocatedPolicy.Proportional),
                Tax("alice", 100_000), // 1000, no choice
                Tax("bob", 100_000),
                Chose("bob", new Choice("linux", 10_000)))
            .At(Deadline2025, new OrganizationUpdated("linux", "Linux", OrganizationKind.Commons, AcceptsRedistribution: false));

        AssertBudget(new BudgetResult(200_000, 2, 2_000, [new BudgetLine("linux", 2_000, 1_000, 1)], 1_000, 1_000, 0), log.Settle());
    }

    [Fact]
    public void An_organization_outside_the_eligible_list_receives_nothing()
    {
        // 2025 lists linux only: oceans's carried 500 is unallocated, and under proportional goes to linux, the only
        // eligible weight (5000). Oceans gets no line at all, not even redistributed money.
        var log = StandingChoiceOverTwoYears(UnallocatedPolicy.Proportional, eligible2025: ["linux"]);

        AssertBudget(new BudgetResult(100_000, 1, 1_000, [new BudgetLine("linux", 1_000, 500, 1)], 500, 500, 0), log.Settle(2025));
        AssertBudget(BothReceive, log.Settle(2024));
    }

    [Fact]
    public void A_new_rate_recomputes_the_designable_pool()
    {
        var log = Confederation().At(In2025,
            Policy(UnallocatedPolicy.Retain, rateBp: 100),
            Tax("alice", 100_000), // 1000
            Tax("bob", 10_001), // floor(100.01) = 100, no choice
            Chose("alice", new Choice("linux", 10_000)));
        AssertBudget(new BudgetResult(110_001, 2, 1_100, [new BudgetLine("linux", 1_000, 0, 1)], 100, 0, 100), log.Settle());

        // 0.5 %: alice 500, bob floor(50.005) = 50.
        log.At(In2025.AddDays(1), Policy(UnallocatedPolicy.Retain, rateBp: 50));

        AssertBudget(new BudgetResult(110_001, 2, 550, [new BudgetLine("linux", 500, 0, 1)], 50, 0, 50), log.Settle());
        Assert.Equal(109_501, log.Settle().NetBudgetMinor); // 110 001 − 500
    }

    [Fact]
    public void Assessments_filed_before_the_policy_are_counted_when_it_is_set()
    {
        var log = Confederation().At(In2025, Tax("alice", 100_000), Chose("alice", new Choice("linux", 10_000)));
        AssertBudget(new BudgetResult(100_000, 1, 0, [new BudgetLine("linux", 0, 0, 1)], 0, 0, 0), log.Settle());

        log.At(In2025.AddDays(1), Policy(UnallocatedPolicy.Retain));

        AssertBudget(new BudgetResult(100_000, 1, 1_000, [new BudgetLine("linux", 1_000, 0, 1)], 0, 0, 0), log.Settle());
    }

    [Fact]
    public void Books_keep_their_cantons_currency_and_are_never_summed_across_currencies()
    {
        var log = Confederation().At(In2025,
            new CantonRegistered("aosta", "Aosta", "EUR"),
            new CantonRegistered("vd", "Vaud", "CHF"),
            Policy(UnallocatedPolicy.Retain),
            Policy(UnallocatedPolicy.Retain, cantonId: "aosta"),
            Policy(UnallocatedPolicy.Retain, cantonId: "vd"),
            Tax("alice", 100_000), // 1000 CHF
            Tax("bob", 250_000, cantonId: "aosta"), // 2500 EUR
            Tax("carol", 40_000, cantonId: "vd"), // 400 CHF
            Chose("alice", new Choice("linux", 10_000)),
            new DesignationChosen("aosta", "bob", 2025, [new Choice("linux", 10_000)], false),
            new DesignationChosen("vd", "carol", 2025, [new Choice("linux", 10_000)], false));

        var books = log.Ledger.Books.Values;
        Assert.Equal(("CHF", "EUR", "CHF"), (log.Ledger.Books[("ge", 2025)].Currency, log.Ledger.Books[("aosta", 2025)].Currency, log.Ledger.Books[("vd", 2025)].Currency));

        var linuxByCurrency = books
            .GroupBy(b => b.Currency, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Sum(b => b.Settle().Designations.Single().AmountMinor), StringComparer.Ordinal);
        Assert.Equal(new Dictionary<string, long>(StringComparer.Ordinal) { ["CHF"] = 1_400, ["EUR"] = 2_500 }, linuxByCurrency);
    }

    [Fact]
    public void A_canton_must_be_registered_before_its_books()
    {
        var log = new Log();

        Assert.Throws<InvalidOperationException>(() => log.At(In2025, Policy(UnallocatedPolicy.Retain)));
    }
}
