using Confederal.Domain.Fiscal;

namespace Confederal.Domain.Tests;

public sealed class FiscalPolicyTests
{
    private static readonly DateTimeOffset Deadline = new(2026, 3, 31, 22, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset BeforeDeadline = Deadline.AddDays(-30);

    private static FiscalPolicySet Asked(int rateBp = 70, int max = 3, IReadOnlyList<string>? eligible = null) =>
        new("ge", 2025, rateBp, max, UnallocatedPolicy.Retain, Deadline, eligible is null ? Eligibility.All : Eligibility.Listed, eligible ?? []);

    private static FiscalPolicy Standing(FiscalPolicySet set) => FiscalPolicy.Apply(null, set)!;

    [Fact]
    public void A_first_policy_is_set()
    {
        var decided = FiscalPolicy.Set(null, Asked(), BeforeDeadline);

        Assert.Equal([Asked()], decided);
        Assert.Equal(new FiscalPolicy(70, 3, UnallocatedPolicy.Retain, Deadline, null), decided.Aggregate((FiscalPolicy?)null, FiscalPolicy.Apply));
    }

    [Fact]
    public void The_eligible_list_is_recorded_in_ordinal_order()
    {
        var decided = FiscalPolicy.Set(null, Asked(eligible: ["oceans", "linux", "arts"]), BeforeDeadline);

        var set = Assert.IsType<FiscalPolicySet>(Assert.Single(decided));
        Assert.Equal(["arts", "linux", "oceans"], set.EligibleOrganizations!);
    }

    [Fact]
    public void Setting_the_policy_as_it_stands_decides_nothing()
    {
        Assert.Empty(FiscalPolicy.Set(Standing(Asked()), Asked(), BeforeDeadline));

        var listed = Standing(FiscalPolicy.Set(null, Asked(eligible: ["linux", "arts"]), BeforeDeadline).OfType<FiscalPolicySet>().Single());
        Assert.Empty(FiscalPolicy.Set(listed, Asked(eligible: ["arts", "linux"]), BeforeDeadline));
    }

    [Fact]
    public void The_policy_changes_until_the_deadline()
    {
        Assert.Equal([Asked(rateBp: 80)], FiscalPolicy.Set(Standing(Asked()), Asked(rateBp: 80), Deadline.AddTicks(-1)));
        Assert.Single(FiscalPolicy.Set(Standing(Asked()), Asked(eligible: ["linux"]), BeforeDeadline));
        Assert.Single(FiscalPolicy.Set(Standing(Asked(eligible: ["linux"])), Asked(), BeforeDeadline));
    }

    [Fact]
    public void The_policy_of_a_closed_year_cannot_change()
    {
        var atDeadline = Assert.Throws<DomainException>(() => FiscalPolicy.Set(Standing(Asked()), Asked(rateBp: 80), Deadline));
        var after = Assert.Throws<DomainException>(() => FiscalPolicy.Set(Standing(Asked()), Asked(rateBp: 80), Deadline.AddYears(1)));

        Assert.Equal("fiscal-year-closed", atDeadline.Code);
        Assert.Equal("fiscal-year-closed", after.Code);
    }

    [Fact]
    public void A_deadline_cannot_be_set_in_the_past_which_would_close_a_year_retroactively()
    {
        var first = Assert.Throws<DomainException>(() => FiscalPolicy.Set(null, Asked(), Deadline));
        var moved = Assert.Throws<DomainException>(() =>
            FiscalPolicy.Set(Standing(Asked()), Asked() with { Deadline = BeforeDeadline.AddDays(-1) }, BeforeDeadline));

        Assert.Equal("deadline-in-the-past", first.Code);
        Assert.Equal("deadline-in-the-past", moved.Code);
    }

    [Theory]
    [InlineData(-1, 3, 2025)]
    [InlineData(10_001, 3, 2025)]
    [InlineData(70, 0, 2025)]
    [InlineData(70, 11, 2025)]
    [InlineData(70, 3, 1999)]
    [InlineData(70, 3, 2101)]
    public void A_policy_out_of_range_is_invalid(int rateBp, int max, int year)
    {
        var error = Assert.Throws<DomainException>(() => FiscalPolicy.Set(null, Asked(rateBp, max) with { FiscalYear = year }, BeforeDeadline));

        Assert.Equal("invalid-policy", error.Code);
    }

    [Theory]
    [InlineData(0, 1, 2000)]
    [InlineData(10_000, 10, 2100)]
    public void A_policy_at_the_limits_is_valid(int rateBp, int max, int year) =>
        Assert.Single(FiscalPolicy.Set(null, Asked(rateBp, max) with { FiscalYear = year }, BeforeDeadline));

    [Fact]
    public void Without_a_list_every_organization_is_eligible()
    {
        Assert.True(Standing(Asked()).IsEligible("anything"));
        Assert.True(Standing(Asked(eligible: ["linux"])).IsEligible("linux"));
        Assert.False(Standing(Asked(eligible: ["linux"])).IsEligible("oceans"));
        Assert.False(Standing(Asked(eligible: ["linux"])).IsEligible("Linux"));
    }

    [Fact]
    public void Eligibility_is_recorded_explicitly_all_with_no_list_or_listed_with_the_list()
    {
        var all = Assert.IsType<FiscalPolicySet>(Assert.Single(FiscalPolicy.Set(null, Asked(), BeforeDeadline)));
        var listed = Assert.IsType<FiscalPolicySet>(Assert.Single(FiscalPolicy.Set(null, Asked(eligible: ["linux"]), BeforeDeadline)));

        Assert.Equal((Eligibility.All, 0), (all.Eligibility, all.EligibleOrganizations.Count));
        Assert.Equal(Eligibility.Listed, listed.Eligibility);
        Assert.Equal(["linux"], listed.EligibleOrganizations);
        Assert.Null(Standing(all).EligibleOrganizations);
        Assert.Equal(Standing(all).ToEvent("ge", 2025), all);
        Assert.Equal(["linux"], Standing(listed).ToEvent("ge", 2025).EligibleOrganizations);
        Assert.Equal(Eligibility.Listed, Standing(listed).ToEvent("ge", 2025).Eligibility);
    }

    [Fact]
    public void A_listed_policy_with_an_empty_list_makes_no_organization_eligible()
    {
        var nobody = Asked() with { Eligibility = Eligibility.Listed };

        Assert.False(Standing(Assert.IsType<FiscalPolicySet>(Assert.Single(FiscalPolicy.Set(null, nobody, BeforeDeadline)))).IsEligible("linux"));
    }

    [Fact]
    public void A_policy_where_every_organization_is_eligible_but_some_are_listed_is_invalid()
    {
        var contradictory = Asked(eligible: ["linux"]) with { Eligibility = Eligibility.All };

        Assert.Equal("invalid-policy", Assert.Throws<DomainException>(() => FiscalPolicy.Set(null, contradictory, BeforeDeadline)).Code);
    }
}
