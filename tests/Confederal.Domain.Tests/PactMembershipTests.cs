using Confederal.Domain.Pacts;

namespace Confederal.Domain.Tests;

public sealed class PactMembershipTests
{
    private static readonly Guid Ballot = Guid.NewGuid();

    private static Pact Founded(string id, string currency = "CHF") =>
        Pact.Apply(null, new PactFounded(id, id, currency, PactDistribution.Equal))!;

    private static Pact With(Pact pact, params object[] events) => events.Aggregate(pact, (p, e) => Pact.Apply(p, e)!);

    [Fact]
    public void A_later_decision_replaces_the_years_from_its_own_on()
    {
        var pact = With(Founded("alps"),
            new PactJoined("alps", "ge", 500, 2026, Ballot), new PactJoined("alps", "ge", 800, 2030, Ballot), new PactLeft("alps", "ge", 2028, Ballot));

        Assert.Equal([500, 500, null, null, null], Enumerable.Range(2026, 5).Select(y => pact.RateFor("ge", y)));
        Assert.Null(pact.RateFor("ge", 2025));
    }

    [Fact]
    public void A_canton_cannot_commit_more_than_its_whole_budget_across_pacts_in_any_year()
    {
        var alps = With(Founded("alps"), new PactJoined("alps", "ge", 6_000, 2026, Ballot));
        var lakes = With(Founded("lakes"), new PactJoined("lakes", "ge", 3_000, 2029, Ballot));

        Assert.NotEmpty(Pact.Join(Founded("rivers"), "rivers", "ge", "CHF", 4_000, 2026, Ballot, [alps]));
        var refused = Assert.Throws<DomainException>(() => Pact.Join(Founded("rivers"), "rivers", "ge", "CHF", 4_001, 2026, Ballot, [alps]));
        Assert.Equal("contributions-exceed-budget", refused.Code);
        // 1,500 fits with alps alone, but from 2029 lakes takes 3,000 more.
        Assert.Equal("contributions-exceed-budget",
            Assert.Throws<DomainException>(() => Pact.Join(Founded("rivers"), "rivers", "ge", "CHF", 1_500, 2027, Ballot, [alps, lakes])).Code);
        Assert.NotEmpty(Pact.Join(Founded("rivers"), "rivers", "ge", "CHF", 1_000, 2027, Ballot, [alps, lakes]));
    }

    [Fact]
    public void Changing_the_rate_in_a_pact_does_not_count_the_old_rate_of_that_pact()
    {
        var alps = With(Founded("alps"), new PactJoined("alps", "ge", 6_000, 2026, Ballot));

        Assert.NotEmpty(Pact.Join(alps, "alps", "ge", "CHF", 10_000, 2027, Ballot, [alps]));
    }

    [Fact]
    public void Leaving_needs_a_membership_in_that_year_or_later()
    {
        var alps = With(Founded("alps"), new PactJoined("alps", "ge", 500, 2030, Ballot));

        Assert.NotEmpty(Pact.Leave(alps, "alps", "ge", 2027, Ballot));
        Assert.Equal("not-a-member", Assert.Throws<DomainException>(() => Pact.Leave(alps, "alps", "vd", 2027, Ballot)).Code);
        Assert.Equal("not-a-member", Assert.Throws<DomainException>(() =>
            Pact.Leave(With(alps, new PactLeft("alps", "ge", 2031, Ballot)), "alps", "ge", 2032, Ballot)).Code);
    }

    [Fact]
    public void A_pacts_terms_are_fixed_and_a_retry_decides_nothing()
    {
        Assert.Empty(Pact.Found(Founded("alps"), "alps", "alps", "CHF", PactDistribution.Equal));
        Assert.Equal([new PactRenamed("alps", "Alpine")], Pact.Found(Founded("alps"), "alps", "Alpine", "CHF", PactDistribution.Equal));
        Assert.Equal("pact-terms-fixed",
            Assert.Throws<DomainException>(() => Pact.Found(Founded("alps"), "alps", "alps", "CHF", PactDistribution.PerResident)).Code);
        Assert.Empty(Founded("alps").Members);
    }
}
