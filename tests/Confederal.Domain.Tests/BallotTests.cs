using Confederal.Domain.Ballots;
using Confederal.Domain.Census;

namespace Confederal.Domain.Tests;

public sealed class BallotTests
{
    private static readonly DateTimeOffset Now = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly Census = new(2026, 3, 1);
    private static readonly string[] Abc = ["a", "b", "c"];

    private static Ballot Open(Proposal? proposal = null) => new(new BallotCalled(
        Guid.NewGuid(), "ge", "Q?", proposal is null ? Abc : Ballot.YesNo, Census, Now.AddHours(-1), Now.AddHours(1), proposal, 16, 0), null);

    private static Residence Resident(string canton) =>
        new(new DateOnly(1980, 1, 1), [new ResidencePeriod(canton, new DateOnly(2010, 1, 1), null)]);

    private static IEnumerable<string> Problems(string[]? options = null, Proposal? proposal = null, DateOnly? census = null,
        DateTimeOffset? opens = null, DateTimeOffset? closes = null) =>
        Ballot.Problems("Q?", options ?? Abc, census ?? Census, opens ?? Now, closes ?? Now.AddDays(1), proposal, Now);

    [Fact]
    public void A_well_formed_ballot_has_no_problems() => Assert.Empty(Problems());

    [Fact]
    public void A_binding_ballot_has_exactly_yes_and_no()
    {
        var proposal = new Proposal(ProposalKind.SetDesignationRate, FiscalYear: 2026, DesignationRateBp: 100);
        Assert.NotEmpty(Problems(options: Abc, proposal: proposal));
        Assert.NotEmpty(Problems(options: ["no", "yes"], proposal: proposal));
        Assert.Empty(Problems(options: ["yes", "no"], proposal: proposal));
    }

    [Fact]
    public void The_roll_is_known_before_voting_starts_and_voting_ends_in_the_future()
    {
        Assert.NotEmpty(Problems(census: Census.AddDays(1)));
        Assert.NotEmpty(Problems(closes: Now));
        Assert.NotEmpty(Problems(opens: Now.AddDays(2)));
    }

    [Theory]
    [InlineData(ProposalKind.SetDesignationRate, 2026, 100, null, null, null, true)]
    [InlineData(ProposalKind.SetDesignationRate, 2026, null, null, null, null, false)]
    [InlineData(ProposalKind.SetDesignationRate, 2026, 100, "alps", null, null, false)]
    [InlineData(ProposalKind.JoinPact, null, null, "alps", 150, 2027, true)]
    [InlineData(ProposalKind.JoinPact, null, null, "alps", 0, 2027, false)]
    [InlineData(ProposalKind.LeavePact, null, null, "alps", null, 2027, true)]
    [InlineData(ProposalKind.LeavePact, null, null, "alps", 150, 2027, false)]
    [InlineData(ProposalKind.LeavePact, null, null, "alps", null, 1999, false)]
    public void A_proposal_takes_exactly_the_fields_of_its_kind(ProposalKind kind, int? year, int? rate, string? pact, int? contribution, int? from, bool valid) =>
        Assert.Equal(valid, !new Proposal(kind, year, rate, pact, contribution, from).Problems().Any());

    [Fact]
    public void Votes_only_between_opening_and_closing_and_only_from_the_roll()
    {
        var ballot = Open();
        ballot.Admit(Resident("ge"), Now);
        Assert.Equal("ballot-not-open", Assert.Throws<DomainException>(() => ballot.Admit(Resident("ge"), Now.AddHours(-2))).Code);
        Assert.Equal("ballot-closed", Assert.Throws<DomainException>(() => ballot.Admit(Resident("ge"), Now.AddHours(1))).Code);
        Assert.Equal("not-on-roll", Assert.Throws<ForbiddenException>(() => ballot.Admit(Resident("vd"), Now)).Code);
    }

    [Theory]
    [InlineData(3, 2, true)]
    [InlineData(2, 2, false)]
    [InlineData(1, 2, false)]
    public void A_proposal_carries_with_more_yes_than_no(long yes, long no, bool carried) =>
        Assert.Equal(carried, Open(new Proposal(ProposalKind.SetDesignationRate, 2026, 100)).IsCarried([yes, no]));

    [Fact]
    public void A_ballot_without_proposal_carries_nothing() => Assert.Null(Open().IsCarried([1, 2, 3]));
}
