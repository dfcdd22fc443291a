using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;

namespace Confederal.Domain.Tests;

public sealed class DesignationTests
{
    private static readonly DateTimeOffset Deadline = new(2026, 3, 31, 22, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = Deadline.AddDays(-30);

    private static readonly FiscalPolicy Policy = new(70, 3, UnallocatedPolicy.Retain, Deadline, EligibleOrganizations: null);

    private static readonly Dictionary<string, Organization?> Organizations = new(StringComparer.Ordinal)
    {
        ["arts"] = new Organization("arts", "Arts", OrganizationKind.Cultural, true, Suspended: false),
        ["linux"] = new Organization("linux", "Linux", OrganizationKind.Commons, true, Suspended: false),
        ["oceans"] = new Organization("oceans", "Oceans", OrganizationKind.Commons, false, Suspended: false),
        ["zen"] = new Organization("zen", "Zen", OrganizationKind.Community, true, Suspended: false),
        ["banned"] = new Organization("banned", "Banned", OrganizationKind.Origin, true, Suspended: true),
    };

    private static IReadOnlyList<object> Choose(
        DesignationHistory history, IReadOnlyList<Choice> choices, int year = 2025, bool standing = false,
        FiscalPolicy? policy = null, DateTimeOffset? now = null) =>
        history.Choose("ge", "p-1", year, choices, standing, policy ?? Policy, Organizations, now ?? Now);

    private static DesignationHistory History(params object[] events) =>
        events.Aggregate(new DesignationHistory(), DesignationHistory.Apply);

    private static string Code(Func<object> decide) => Assert.Throws<DomainException>(decide).Code;

    [Fact]
    public void A_designation_is_recorded_in_organization_order()
    {
        var decided = Choose(new DesignationHistory(), [new("oceans", 3_000), new("linux", 7_000)]);

        var chosen = Assert.IsType<DesignationChosen>(Assert.Single(decided));
        Assert.Equal([new Choice("linux", 7_000), new Choice("oceans", 3_000)], chosen.Choices);
        Assert.Equal(("ge", "p-1", 2025, false), (chosen.CantonId, chosen.Taxpayer, chosen.FiscalYear, chosen.Standing));
    }

    [Fact]
    public void Designation_without_a_fiscal_policy_is_rejected()
    {
        var history = new DesignationHistory();

        Assert.Equal("no-fiscal-policy", Code(() => history.Choose("ge", "p-1", 2025, [new("linux", 10_000)], false, null, Organizations, Now)));
        Assert.Equal("no-fiscal-policy", Code(() => history.Withdraw("ge", "p-1", 2025, null, Now)));
    }

    [Fact]
    public void Designation_until_just_before_the_deadline_is_accepted() =>
        Assert.Single(Choose(new DesignationHistory(), [new("linux", 10_000)], now: Deadline.AddTicks(-1)));

    [Fact]
    public void Designation_at_or_after_the_deadline_is_rejected()
    {
        Assert.Equal("deadline-passed", Code(() => Choose(new DesignationHistory(), [new("linux", 10_000)], now: Deadline)));
        Assert.Equal("deadline-passed", Code(() => Choose(new DesignationHistory(), [new("linux", 10_000)], now: Deadline.AddDays(1))));
    }

    [Fact]
    public void Withdrawal_at_or_after_the_deadline_is_rejected()
    {
        var history = History(new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], false));

        Assert.Equal("deadline-passed", Code(() => history.Withdraw("ge", "p-1", 2025, Policy, Deadline)));
        Assert.Equal("deadline-passed", Code(() => history.Withdraw("ge", "p-1", 2025, Policy, Deadline.AddMonths(2))));
    }

    [Fact]
    public void More_choices_than_the_policy_allows_are_rejected()
    {
        var two = Policy with { MaxOrganizations = 2 };

        Assert.Equal("too-many-choices", Code(() => Choose(new DesignationHistory(), [new("arts", 3_000), new("linux", 3_000), new("zen", 4_000)], policy: two)));
        Assert.Single(Choose(new DesignationHistory(), [new("arts", 5_000), new("linux", 5_000)], policy: two));
    }

    [Fact]
    public void An_unknown_organization_cannot_be_chosen() =>
        Assert.Equal("organization-unknown", Code(() => Choose(new DesignationHistory(), [new("linux", 5_000), new("ghost", 5_000)])));

    [Fact]
    public void A_suspended_organization_cannot_be_chosen() =>
        Assert.Equal("organization-suspended", Code(() => Choose(new DesignationHistory(), [new("banned", 5_000), new("linux", 5_000)])));

    [Fact]
    public void An_organization_outside_the_eligible_list_cannot_be_chosen()
    {
        var listed = Policy with { EligibleOrganizations = ["linux", "oceans"] };

        Assert.Equal("organization-not-eligible", Code(() => Choose(new DesignationHistory(), [new("arts", 5_000), new("linux", 5_000)], policy: listed)));
        Assert.Single(Choose(new DesignationHistory(), [new("oceans", 5_000), new("linux", 5_000)], policy: listed));
    }

    public static TheoryData<Choice[]> InvalidChoices => new()
    {
        Array.Empty<Choice>(),
        new Choice[] { new("linux", 9_999) },
        new Choice[] { new("linux", 5_000), new("oceans", 5_001) },
        new Choice[] { new("linux", 5_000), new("linux", 5_000) },
        new Choice[] { new("linux", 10_000), new("oceans", 0) },
        new Choice[] { new("linux", 11_000), new("oceans", -1_000) },
        new Choice[] { new("Linux", 10_000) },
        Enumerable.Range(0, 11).Select(i => new Choice($"org-{i}", i == 0 ? 9_000 : 100)).ToArray(),
    };

    [Theory]
    [MemberData(nameof(InvalidChoices))]
    public void Shares_must_be_positive_on_distinct_organizations_and_sum_to_10000(Choice[] choices)
    {
        Assert.NotEmpty(Designation.Problems(choices));
        Assert.Equal("invalid-choices", Code(() => Choose(new DesignationHistory(), choices)));
    }

    [Fact]
    public void Invalid_choices_are_rejected_before_anything_else() =>
        Assert.Equal("invalid-choices", Code(() => new DesignationHistory().Choose("ge", "p-1", 2025, [], false, null, Organizations, Now)));

    [Fact]
    public void Choosing_again_what_is_recorded_decides_nothing()
    {
        var history = History(Choose(new DesignationHistory(), [new("oceans", 3_000), new("linux", 7_000)]).ToArray());

        Assert.Empty(Choose(history, [new("oceans", 3_000), new("linux", 7_000)]));
        Assert.Empty(Choose(history, [new("linux", 7_000), new("oceans", 3_000)]));
    }

    [Fact]
    public void Choosing_other_shares_or_making_it_standing_is_recorded()
    {
        var history = History(new DesignationChosen("ge", "p-1", 2025, [new("linux", 7_000), new("oceans", 3_000)], false));

        Assert.Single(Choose(history, [new("linux", 6_000), new("oceans", 4_000)]));
        Assert.Single(Choose(history, [new("linux", 7_000), new("oceans", 3_000)], standing: true));
    }

    [Fact]
    public void Choosing_again_after_a_withdrawal_is_recorded()
    {
        var history = History(
            new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], false),
            new DesignationWithdrawn("ge", "p-1", 2025));

        Assert.Single(Choose(history, [new("linux", 10_000)]));
    }

    [Fact]
    public void Withdrawing_nothing_decides_nothing()
    {
        Assert.Empty(new DesignationHistory().Withdraw("ge", "p-1", 2025, Policy, Now));

        var withdrawn = History(
            new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], false),
            new DesignationWithdrawn("ge", "p-1", 2025));
        Assert.Empty(withdrawn.Withdraw("ge", "p-1", 2025, Policy, Now));

        var lastYearOnly = History(new DesignationChosen("ge", "p-1", 2024, [new("linux", 10_000)], Standing: false));
        Assert.Empty(lastYearOnly.Withdraw("ge", "p-1", 2025, Policy, Now));
    }

    [Fact]
    public void A_designation_is_withdrawn()
    {
        var history = History(new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], false));

        var decided = history.Withdraw("ge", "p-1", 2025, Policy, Now);

        Assert.Equal([new DesignationWithdrawn("ge", "p-1", 2025)], decided);
        Assert.Null(decided.Aggregate(history, DesignationHistory.Apply).EffectiveFor(2025).Designation);
    }

    [Fact]
    public void A_standing_designation_carries_over_to_later_years()
    {
        var history = History(new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], Standing: true));

        var (designation, fromYear) = history.EffectiveFor(2030);

        Assert.Equal([new Choice("linux", 10_000)], designation!.Choices);
        Assert.Equal(2025, fromYear);
        Assert.Equal(2025, history.EffectiveFor(2025).FromYear);
        Assert.Equal((null, null), history.EffectiveFor(2024));
    }

    [Fact]
    public void A_designation_that_is_not_standing_applies_to_its_year_only()
    {
        var history = History(new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], Standing: false));

        Assert.Equal(2025, history.EffectiveFor(2025).FromYear);
        Assert.Equal((null, null), history.EffectiveFor(2026));
    }

    [Fact]
    public void A_standing_designation_carries_over_until_changed()
    {
        var history = History(
            new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], Standing: true),
            new DesignationChosen("ge", "p-1", 2028, [new("oceans", 10_000)], Standing: false));

        Assert.Equal(("linux", 2025), Applied(history, 2027));
        Assert.Equal(("oceans", 2028), Applied(history, 2028));
        Assert.Equal((null, null), history.EffectiveFor(2029)); // the change was for 2028 only, and ended the carry-over
    }

    [Fact]
    public void A_standing_designation_carries_over_until_withdrawn()
    {
        var history = History(
            new DesignationChosen("ge", "p-1", 2025, [new("linux", 10_000)], Standing: true),
            new DesignationWithdrawn("ge", "p-1", 2027));

        Assert.Equal(("linux", 2025), Applied(history, 2026));
        Assert.Equal((null, null), history.EffectiveFor(2027));
        Assert.Equal((null, null), history.EffectiveFor(2040));
    }

    [Fact]
    public void Withdrawing_in_a_later_year_stops_a_standing_designation_carrying_over()
    {
        var history = History(new DesignationChosen("ge", "p-1", 2024, [new("linux", 10_000)], Standing: true));

        var decided = history.Withdraw("ge", "p-1", 2025, Policy, Now);

        Assert.Equal([new DesignationWithdrawn("ge", "p-1", 2025)], decided);
        var after = decided.Aggregate(history, DesignationHistory.Apply);
        Assert.Equal(("linux", 2024), Applied(after, 2024));
        Assert.Equal((null, null), after.EffectiveFor(2026));
    }

    private static (string? OrganizationId, int? FromYear) Applied(DesignationHistory history, int year)
    {
        var (designation, fromYear) = history.EffectiveFor(year);
        return (designation?.Choices.Single().OrganizationId, fromYear);
    }
}
