using Confederal.Domain.Cantons;
using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.Domain.Pacts;

namespace Confederal.Domain.Tests;

/// <summary>Pact lines settled from events, every number worked out by hand in the comments.</summary>
public sealed class PactLedgerTests
{
    private static readonly DateTimeOffset In2025 = new(2025, 2, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Deadline = new(2027, 4, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly Guid Ballot = Guid.NewGuid();

    private sealed class Log
    {
        private long position;

        public Ledger Ledger { get; } = new();

        /// <summary>Folds the events, then settles the pacts, as the projection does at the end of a page.</summary>
        public Log Then(params object[] events)
        {
            foreach (var @event in events)
            {
                Ledger.Apply(@event, In2025, ++position);
            }

            Ledger.SettlePacts();
            return this;
        }

        public BudgetResult Budget(string cantonId, int year = 2025) => Ledger.Books[(cantonId, year)].Settle();

        public (long In, long Out) Line(string cantonId, string pactId = "alps", int year = 2025) =>
            Ledger.Books[(cantonId, year)].Pacts[pactId] is var l ? (l.ContributionMinor, l.ReceiptMinor) : default;
    }

    /// <summary>Genève, Vaud and Ticino keep CHF, Aosta EUR. At 1 % in 2025 and 2026, retained:
    /// Genève: alice 1,000,000 each year; in 2025 she designates her 10,000 to Linux: revenue − designated = 990,000.
    /// Vaud: bob 500,001 each year, no choice (5,000 retained): revenue − designated = 500,001.
    /// Ticino and Aosta have no budget.</summary>
    private static Log Confederation(PactDistribution distribution = PactDistribution.Equal) => new Log().Then(
        new CantonRegistered("ge", "Genève", "CHF"),
        new CantonRegistered("vd", "Vaud", "CHF"),
        new CantonRegistered("ti", "Ticino", "CHF"),
        new CantonRegistered("aosta", "Aosta", "EUR"),
        new OrganizationRecognized("linux", "Linux", OrganizationKind.Commons, AcceptsRedistribution: true),
        Policy("ge", 2025), Policy("ge", 2026), Policy("vd", 2025), Policy("vd", 2026),
        new TaxAssessed("ge", "alice", 2025, 1_000_000), new TaxAssessed("ge", "alice", 2026, 1_000_000),
        new TaxAssessed("vd", "bob", 2025, 500_001), new TaxAssessed("vd", "bob", 2026, 500_001),
        new DesignationChosen("ge", "alice", 2025, [new Choice("linux", 10_000)], Standing: false),
        new PactFounded("alps", "Alps", "CHF", distribution));

    private static FiscalPolicySet Policy(string cantonId, int year) => new(cantonId, year, 100, 3, UnallocatedPolicy.Retain, Deadline, Eligibility.All, []);

    private static PactJoined Join(string cantonId, int rateBp, int from = 2025) => new("alps", cantonId, rateBp, from, Ballot);

    private static void AssertIdentity(Log log, params string[] cantonIds)
    {
        foreach (var cantonId in cantonIds)
        {
            var b = log.Budget(cantonId);
            Assert.Equal(b.RevenueMinor - b.DesignatedMinor - b.ContributionsMinor + b.ReceiptsMinor, b.NetBudgetMinor);
        }

        var lines = log.Ledger.PactYears[("alps", 2025)];
        Assert.Equal(lines.Sum(l => l.ContributionMinor), lines.Sum(l => l.ReceiptMinor));
    }

    [Fact]
    public void An_equal_pact_splits_its_pool_in_equal_parts_the_units_left_to_the_first_cantons_and_a_member_without_a_budget_receives()
    {
        var log = Confederation().Then(Join("ge", 1_000), Join("vd", 334), Join("ti", 500));

        // ge: floor(990,000 × 10 %) = 99,000; vd: floor(500,001 × 3.34 %) = floor(16,700.0334) = 16,700; ti: no budget, 0.
        // Pool 115,700 / 3 = 38,566 rest 2: the two units go to the first cantons in ordinal order, ge and ti.
        Assert.Equal((99_000, 38_567), log.Line("ge"));
        Assert.Equal((0, 38_567), log.Line("ti"));
        Assert.Equal((16_700, 38_566), log.Line("vd"));
        Assert.Equal(1_000_000 - 10_000 - 99_000 + 38_567, log.Budget("ge").NetBudgetMinor);
        Assert.Equal(500_001 - 16_700 + 38_566, log.Budget("vd").NetBudgetMinor);
        Assert.Equal(38_567, log.Budget("ti").NetBudgetMinor);
        Assert.False(log.Ledger.Books[("ti", 2025)].HasOwnAccounts);
        AssertIdentity(log, "ge", "vd", "ti");

        // bob now designates his 5,000: vd contributes floor(495,001 × 3.34 %) = floor(16,533.0334) = 16,533, and
        // everybody receives less: 99,000 + 16,533 = 115,533 = 3 × 38,511.
        log.Then(new DesignationChosen("vd", "bob", 2025, [new Choice("linux", 10_000)], Standing: false));

        Assert.Equal((99_000, 38_511), log.Line("ge"));
        Assert.Equal((0, 38_511), log.Line("ti"));
        Assert.Equal((16_533, 38_511), log.Line("vd"));
        AssertIdentity(log, "ge", "vd", "ti");
    }

    [Fact]
    public void A_per_resident_pact_splits_by_residents_on_1_January_and_follows_the_census()
    {
        var log = Confederation(PactDistribution.PerResident).Then(
            new ResidentRegistered("p1", "ge", new DateOnly(2020, 1, 1), null) { BirthDate = new DateOnly(1980, 1, 1) },
            new ResidentRegistered("p2", "ge", new DateOnly(2024, 12, 31), null) { BirthDate = new DateOnly(1980, 1, 1) },
            new ResidentRegistered("p3", "ge", new DateOnly(2025, 1, 1), null) { BirthDate = new DateOnly(1980, 1, 1) }, // arrived that day: counts
            new ResidentRegistered("p4", "ge", new DateOnly(2025, 1, 2), null) { BirthDate = new DateOnly(1980, 1, 1) }, // a day late
            new ResidentRegistered("p5", "ge", new DateOnly(2019, 1, 1), null) { BirthDate = new DateOnly(1980, 1, 1) },
            new ResidentDeparted("p5", "ge", new DateOnly(2025, 1, 1)), // gone that day: not in ge…
            new ResidentRegistered("p5", "vd", new DateOnly(2025, 1, 1), null) { BirthDate = new DateOnly(1980, 1, 1) }, // …but in vd
            new ResidentRegistered("p6", "vd", new DateOnly(2020, 1, 1), null) { BirthDate = new DateOnly(1980, 1, 1) },
            new ResidentRegistered("p7", "ti", new DateOnly(2024, 7, 1), null) { BirthDate = new DateOnly(1980, 1, 1) },
            new ResidentRegistered("p8", "ti", new DateOnly(2024, 7, 1), null) { BirthDate = new DateOnly(1980, 1, 1) },
            new ResidentDeparted("p8", "ti", new DateOnly(2024, 12, 31)),
            Join("ge", 1_000), Join("vd", 334), Join("ti", 500));

        // Residents on 1 January 2025: ge 3 (p1, p2, p3), ti 1 (p7), vd 2 (p5, p6); pool 115,700 as in the equal pact.
        // ge 115,700 × 3/6 = 57,850 exactly; ti 115,700 / 6 = 19,283 rest 2; vd 115,700 × 2/6 = 38,566 rest 4: the unit
        // left goes to vd, the larger remainder.
        Assert.Equal((99_000, 57_850), log.Line("ge"));
        Assert.Equal((0, 19_283), log.Line("ti"));
        Assert.Equal((16_700, 38_567), log.Line("vd"));
        Assert.Equal(1_000_000 - 10_000 - 99_000 + 57_850, log.Budget("ge").NetBudgetMinor);
        AssertIdentity(log, "ge", "vd", "ti");

        // A resident of Ticino since November 2024 registered late: weights 3, 2, 2. 115,700 × 3/7 = 49,585 rest 5,
        // × 2/7 = 33,057 rest 1 (twice); the unit left goes to ge.
        log.Then(new ResidentRegistered("p9", "ti", new DateOnly(2024, 11, 1), null) { BirthDate = new DateOnly(1980, 1, 1) });

        Assert.Equal((99_000, 49_586), log.Line("ge"));
        Assert.Equal((0, 33_057), log.Line("ti"));
        Assert.Equal((16_700, 33_057), log.Line("vd"));
        AssertIdentity(log, "ge", "vd", "ti");
    }

    [Fact]
    public void A_per_resident_pact_whose_members_have_no_residents_splits_equally()
    {
        var log = Confederation(PactDistribution.PerResident).Then(Join("ge", 1_000), Join("vd", 334), Join("ti", 500));

        Assert.Equal((99_000, 38_567), log.Line("ge"));
        Assert.Equal((0, 38_567), log.Line("ti"));
        Assert.Equal((16_700, 38_566), log.Line("vd"));
    }

    [Fact]
    public void A_canton_that_leaves_from_a_year_is_settled_up_to_the_year_before()
    {
        var log = Confederation().Then(Join("ge", 1_000), Join("vd", 334), Join("ti", 500));
        Assert.True(log.Ledger.Books.ContainsKey(("ti", 2025)));

        log.Then(new PactLeft("alps", "vd", 2026, Ballot), new PactLeft("alps", "ti", 2025, Ballot));

        // 2025, ge and vd: 99,000 + 16,700 = 115,700, 57,850 each. Ticino left from 2025 on: no line, and no book, since
        // it only carried the pact's lines.
        Assert.Equal((99_000, 57_850), log.Line("ge"));
        Assert.Equal((16_700, 57_850), log.Line("vd"));
        Assert.False(log.Ledger.Books.ContainsKey(("ti", 2025)));
        Assert.Contains(("ti", 2025), log.Ledger.RemovedBooks);
        Assert.Equal(500_001 - 16_700 + 57_850, log.Budget("vd").NetBudgetMinor);
        AssertIdentity(log, "ge", "vd");

        // 2026, ge alone (alice designated nothing that year): floor(1,000,000 × 10 %) = 100,000, all of it back.
        Assert.Equal((100_000, 100_000), log.Line("ge", year: 2026));
        Assert.Equal(1_000_000, log.Budget("ge", 2026).NetBudgetMinor);
        Assert.Empty(log.Budget("vd", 2026).Pacts);
        Assert.Equal(500_001, log.Budget("vd", 2026).NetBudgetMinor);
    }

    [Fact]
    public void A_new_rate_from_a_year_changes_that_year_and_the_later_ones_only()
    {
        var log = Confederation().Then(Join("ge", 1_000), Join("vd", 334), Join("ge", 2_000, from: 2026));

        // 2025 as before: 115,700 / 2. 2026: ge 1,000,000 × 20 % = 200,000, vd 16,700; 216,700 / 2 = 108,350.
        Assert.Equal((99_000, 57_850), log.Line("ge"));
        Assert.Equal((16_700, 57_850), log.Line("vd"));
        Assert.Equal((200_000, 108_350), log.Line("ge", year: 2026));
        Assert.Equal((16_700, 108_350), log.Line("vd", year: 2026));
        Assert.Equal(1_000_000 - 200_000 + 108_350, log.Budget("ge", 2026).NetBudgetMinor);
        Assert.Equal(500_001 - 16_700 + 108_350, log.Budget("vd", 2026).NetBudgetMinor);
    }

    [Fact]
    public void A_pact_year_in_which_no_member_has_a_budget_has_no_lines()
    {
        var log = Confederation().Then(Join("ti", 500), Join("vd", 334, from: 2027));

        Assert.Empty(log.Ledger.PactYears);
        Assert.False(log.Ledger.Books.ContainsKey(("ti", 2025)));
        Assert.Empty(log.Budget("vd").Pacts);
    }

    [Fact]
    public void A_canton_of_another_currency_cannot_join_and_takes_no_part_even_if_the_log_says_it_did()
    {
        var log = Confederation();
        var alps = Pact.Apply(null, new PactFounded("alps", "Alps", "CHF", PactDistribution.Equal));

        var refused = Assert.Throws<DomainException>(() => Pact.Join(alps, "alps", "aosta", "EUR", 500, 2025, Ballot, []));
        Assert.Equal("pact-currency-mismatch", refused.Code);

        log.Then(new PactJoined("alps", "aosta", 500, 2025, Ballot), Join("ge", 1_000), Join("vd", 334),
            Policy("aosta", 2025), new TaxAssessed("aosta", "carla", 2025, 7_000_000));

        Assert.Equal(["ge", "vd"], log.Ledger.PactYears[("alps", 2025)].Select(l => l.CantonId));
        Assert.Empty(log.Budget("aosta").Pacts);
        Assert.Equal(7_000_000, log.Budget("aosta").NetBudgetMinor);
    }
}
