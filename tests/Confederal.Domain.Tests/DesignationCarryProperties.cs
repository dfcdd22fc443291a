using Confederal.Domain.Fiscal;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Domain.Tests;

/// <summary>
/// Restating standing designations year by year (taxpayer handles are per year) must give every year exactly what one
/// fold over the person's own records gave when a handle was the same every year: the latest record at or before the
/// year, if it is for that year or standing. From any state the carrier may find (restatements stale, missing, or out
/// of date), one plan brings every year there, and a second plan has nothing left to do.
/// </summary>
public sealed class DesignationCarryProperties
{
    private const int FirstYear = 2020;

    /// <summary>Linked years (a random subset of ten), the person's own records in some of them (null: a withdrawal), and
    /// stale restatements in years after the first (said to come from the year before, linked or not).</summary>
    public sealed record Person(int[] Years, SortedList<int, Designation?> Own, Dictionary<int, Designation?> Stale)
    {
        public override string ToString() =>
            $"years [{string.Join(", ", Years)}], own {{{string.Join("; ", Own.Select(o => $"{o.Key}: {Show(o.Value)}"))}}}, " +
            $"stale {{{string.Join("; ", Stale.Select(s => $"{s.Key}: {Show(s.Value)}"))}}}";

        private static string Show(Designation? d) =>
            d is null ? "withdrawn" : string.Join("+", d.Choices.Select(c => $"{c.OrganizationId}:{c.ShareBp}")) + (d.Standing ? " standing" : "");
    }

    private static readonly Gen<Designation?> Records = Gen.Frequency(
        (1, Gen.Constant<Designation?>(null)),
        (4, from organization in Gen.Elements("org-a", "org-b", "org-c")
            from split in Gen.Elements(false, true)
            from standing in Gen.Elements(false, true)
            select (Designation?)Designation.Create(
                split ? [new Choice(organization, 6000), new Choice(organization + "-two", 4000)] : [new Choice(organization, 10000)], standing)));

    // What the carrier restates: a standing choice, or a withdrawal.
    private static readonly Gen<Designation?> StaleRecords = Records.Select(r => r is null ? null : (Designation?)Designation.Create(r.Choices, standing: true));

    public static Arbitrary<Person> Cases { get; } = Arb.From(
        from mask in Gen.Choose(1, 1023)
        let years = Enumerable.Range(0, 10).Where(i => (mask & (1 << i)) != 0).Select(i => FirstYear + i).ToArray()
        from own in Gen.ArrayOf(Gen.Frequency((2, Gen.Constant(false)), (1, Gen.Constant(true))), years.Length)
        from ownRecords in Gen.ArrayOf(Records, years.Length)
        from stale in Gen.ArrayOf(Gen.Frequency((2, Gen.Constant(false)), (1, Gen.Constant(true))), years.Length)
        from staleRecords in Gen.ArrayOf(StaleRecords, years.Length)
        select new Person(
            years,
            new SortedList<int, Designation?>(years.Select((y, i) => (y, i)).Where(x => own[x.i]).ToDictionary(x => x.y, x => (Designation?)ownRecords[x.i])),
            // A stale restatement in the first year would be taken for one carried from a year no longer linked.
            years.Select((y, i) => (y, i)).Where(x => x.i > 0 && !own[x.i] && stale[x.i]).ToDictionary(x => x.y, x => (Designation?)staleRecords[x.i])));

    [Property(MaxTest = 1000, Arbitrary = [typeof(DesignationCarryProperties)])]
    public void Every_year_gets_what_a_fold_over_the_persons_own_records_gives_and_a_second_plan_does_nothing(Person person)
    {
        var histories = person.Years.ToDictionary(y => y, y => new DesignationHistory());
        foreach (var (year, record) in person.Stale)
        {
            Apply(histories[year], year, record, carriedFrom: year - 1);
        }

        foreach (var (year, record) in person.Own)
        {
            Apply(histories[year], year, record, carriedFrom: null);
        }

        var (restatements, carrying) = DesignationCarry.Plan(Years(person, histories));
        foreach (var restatement in restatements)
        {
            Assert.False(histories[restatement.FiscalYear].IsOwn(restatement.FiscalYear), $"{person}: a restatement over the person's own record of {restatement.FiscalYear}");
            Assert.True(restatement.FromYear < restatement.FiscalYear, $"{person}: {restatement} carried from a later year");
            Apply(histories[restatement.FiscalYear], restatement.FiscalYear, restatement.Designation, restatement.FromYear);
        }

        foreach (var year in person.Years)
        {
            var expected = Designation.EffectiveFor(person.Own, year).Designation;
            var actual = histories[year].EffectiveFor(year).Designation;
            Assert.True(Equals(expected, actual), $"{person}: {year} holds {actual?.Choices.Count.ToString() ?? "nothing"}, a fold gives {expected?.Choices.Count.ToString() ?? "nothing"}");
        }

        Assert.Equal(Designation.EffectiveFor(person.Own, person.Years[^1]).Designation?.Standing == true, carrying);
        Assert.Empty(DesignationCarry.Plan(Years(person, histories)).Restatements);
    }

    [Fact]
    public void What_the_first_linked_year_was_carried_is_carried_on_when_the_year_it_came_from_is_unlinked()
    {
        var oceans = Designation.Create([new Choice("oceans", 10000)], standing: true);
        var first = new DesignationHistory();
        Apply(first, 2031, oceans, carriedFrom: 2024); // 2024's key is gone
        var (restatements, carrying) = DesignationCarry.Plan([new(2031, false, first), new(2032, false, new DesignationHistory())]);

        var restatement = Assert.Single(restatements);
        Assert.Equal(new DesignationCarry.Restatement(2032, oceans, 2024), restatement);
        Assert.True(carrying);
    }

    [Fact]
    public void A_year_recorded_before_per_year_handles_carries_by_its_own_fold_into_the_years_after()
    {
        var legacy = new DesignationHistory();
        Apply(legacy, 2024, Designation.Create([new Choice("linux", 10000)], standing: true), carriedFrom: null);
        var (restatements, _) = DesignationCarry.Plan([new(2024, true, legacy), new(2025, true, legacy), new(2026, false, new DesignationHistory())]);

        // 2025 shares 2024's stream: the fold carries it there; 2026 has a handle of its own and gets it restated.
        Assert.Equal([2026], restatements.Select(r => r.FiscalYear));
        Assert.Equal(2024, restatements[0].FromYear);
    }

    private static List<DesignationCarry.Year> Years(Person person, Dictionary<int, DesignationHistory> histories) =>
        [.. person.Years.Select(y => new DesignationCarry.Year(y, false, histories[y]))];

    private static void Apply(DesignationHistory history, int year, Designation? record, int? carriedFrom) =>
        DesignationHistory.Apply(history, record is null
            ? new DesignationWithdrawn("ge", "y~handle", year, carriedFrom)
            : new DesignationChosen("ge", "y~handle", year, record.Choices, record.Standing, carriedFrom));
}
