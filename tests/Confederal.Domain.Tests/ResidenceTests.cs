using Confederal.Domain.Census;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Domain.Tests;

public sealed class ResidenceTests
{
    private static readonly DateOnly Born = new(1990, 4, 2);
    private static readonly DateOnly Jan2020 = new(2020, 1, 1);

    private static Residence? Fold(Residence? state, IEnumerable<object> events) => events.Aggregate(state, Residence.Apply);

    private static Residence Resident(string canton, DateOnly since) => Fold(null, Residence.Register(null, People.Who("p"), canton, since, Born))!;

    [Fact]
    public void An_arrival_ends_the_residence_in_the_other_canton_on_the_same_day()
    {
        var moved = new DateOnly(2023, 6, 1);
        var decided = Residence.Register(Resident("a", Jan2020), People.Who("p"), "b", moved, Born);

        Assert.Equal([new ResidentDeparted("p", "a", moved), People.Who("p").Registered("b", moved, Born)], decided);
        var after = Fold(Resident("a", Jan2020), decided)!;
        Assert.Equal([new ResidencePeriod("a", Jan2020, moved), new ResidencePeriod("b", moved, null)], after.Periods);
    }

    [Fact]
    public void A_retried_arrival_or_departure_decides_nothing()
    {
        Assert.Empty(Residence.Register(Resident("a", Jan2020), People.Who("p"), "a", Jan2020, Born));
        var left = Fold(Resident("a", Jan2020), [new ResidentDeparted("p", "a", new DateOnly(2021, 1, 1))]);
        Assert.Empty(Residence.Depart(left, People.Who("p"), "a", new DateOnly(2021, 1, 1)));
    }

    [Theory]
    [InlineData("2019-12-31", "residence-out-of-order")]
    [InlineData("2020-01-01", "residence-out-of-order")]
    public void History_is_not_rewritten(string since, string code) =>
        Assert.Equal(code, Assert.Throws<DomainException>(() => Residence.Register(Resident("a", Jan2020), People.Who("p"), "b", DateOnly.Parse(since), Born)).Code);

    [Fact]
    public void Nothing_but_residence_is_recorded()
    {
        var properties = typeof(ResidentRegistered).GetProperties().Select(p => p.Name).Order();
        Assert.Equal(["BirthDate", "CantonId", "Resident", "ResidentSince", "SealedBirthDate"], properties);
    }

    [Theory]
    [InlineData("2008-02-29", "2024-02-28", 16, false)]
    [InlineData("2008-02-29", "2024-02-29", 16, true)]
    [InlineData("2008-02-29", "2025-02-28", 17, true)]
    [InlineData("2008-03-01", "2025-02-28", 17, false)]
    [InlineData("2010-06-15", "2010-06-15", 0, true)]
    public void Comes_of_age_on_the_birthday_and_on_28_February_for_29_February(string born, string day, int years, bool ofAge) =>
        Assert.Equal(ofAge, Residence.IsOfAge(DateOnly.Parse(born), DateOnly.Parse(day), years));

    [Fact]
    public void Eligible_is_resident_on_the_census_date_of_age_and_long_enough_and_nothing_else()
    {
        var census = new DateOnly(2024, 5, 1);
        var resident = Resident("a", census.AddDays(-30));
        Assert.Null(Residence.Ineligible(resident, "a", census, 16, 30));
        Assert.Equal(Ineligibility.ResidenceTooShort, Residence.Ineligible(resident, "a", census, 16, 31));
        Assert.Equal(Ineligibility.UnderVotingAge, Residence.Ineligible(resident, "a", census, 35, 0));
        Assert.Equal(Ineligibility.NotResident, Residence.Ineligible(resident, "b", census, 16, 0));
        Assert.Equal(Ineligibility.NotResident, Residence.Ineligible(null, "a", census, 16, 0));
        var emigrant = Fold(resident, Residence.Register(resident, People.Who("p"), "b", census, Born));
        Assert.Equal(Ineligibility.NotResident, Residence.Ineligible(emigrant, "a", census, 16, 0));
        Assert.Null(Residence.Ineligible(emigrant, "b", census, 16, 0));
    }

    /// <summary>Arrivals and departures asked of one person, in any order, drawn for <see cref="One_residence_at_a_time_whatever_is_asked"/>.</summary>
    public static Arbitrary<List<(bool Departure, string Canton, DateOnly Day)>> Asks { get; } = Gen.ListOf(
        from departure in Gen.Elements(false, false, true)
        from canton in Gen.Elements("a", "b", "c")
        from day in Gen.Choose(0, 3_000)
        select (departure, canton, Day: Jan2020.AddDays(day))).ToArbitrary();

    /// <summary>Whatever arrivals and departures are asked, in any order, what is recorded is one residence at a time:
    /// periods in order, each ending where the next begins or before, at most the last one open.</summary>
    [Property(MaxTest = 100, Arbitrary = [typeof(ResidenceTests)])]
    public bool One_residence_at_a_time_whatever_is_asked(List<(bool Departure, string Canton, DateOnly Day)> asks)
    {
        Residence? state = null;
        foreach (var (departure, canton, day) in asks)
        {
            try
            {
                state = Fold(state, departure ? Residence.Depart(state, People.Who("p"), canton, day) : Residence.Register(state, People.Who("p"), canton, day, Born));
            }
            catch (DomainException)
            {
                // refused: nothing recorded
            }
        }

        var periods = state?.Periods ?? [];
        return periods.Zip(periods.Skip(1)).All(p => p.First.Until is { } until && until <= p.Second.Since && p.First.Since < until)
               && periods.Take(Math.Max(0, periods.Count - 1)).All(p => p.Until is not null)
               && Enumerable.Range(0, 3_100).Select(d => Jan2020.AddDays(d)).All(d => periods.Count(p => p.Covers(d)) <= 1);
    }
}
