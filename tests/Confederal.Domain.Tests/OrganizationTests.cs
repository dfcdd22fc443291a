using Confederal.Domain.Organizations;

namespace Confederal.Domain.Tests;

public sealed class OrganizationTests
{
    private static readonly Organization Linux = Organization.Apply(null, new OrganizationRecognized("linux", "Linux", OrganizationKind.Commons, true))!;

    private static Organization? Fold(Organization? state, IEnumerable<object> events) => events.Aggregate(state, Organization.Apply);

    [Fact]
    public void A_new_organization_is_recognized()
    {
        var decided = Organization.Recognize(null, "linux", "Linux", OrganizationKind.Commons, acceptsRedistribution: true);

        Assert.Equal([new OrganizationRecognized("linux", "Linux", OrganizationKind.Commons, true)], decided);
        Assert.Equal(new Organization("linux", "Linux", OrganizationKind.Commons, true, Suspended: false), Fold(null, decided));
    }

    [Fact]
    public void Recognizing_again_as_it_stands_decides_nothing() =>
        Assert.Empty(Organization.Recognize(Linux, "linux", "Linux", OrganizationKind.Commons, acceptsRedistribution: true));

    [Fact]
    public void Recognizing_again_with_other_terms_updates()
    {
        var decided = Organization.Recognize(Linux, "linux", "Linux Foundation", OrganizationKind.Commons, acceptsRedistribution: false);

        Assert.Equal([new OrganizationUpdated("linux", "Linux Foundation", OrganizationKind.Commons, false)], decided);
        Assert.Equal(Linux with { Name = "Linux Foundation", AcceptsRedistribution = false }, Fold(Linux, decided));
    }

    [Fact]
    public void Updating_a_suspended_organization_keeps_it_suspended()
    {
        var suspended = Linux with { Suspended = true };

        var decided = Organization.Recognize(suspended, "linux", "Linux", OrganizationKind.Community, acceptsRedistribution: true);

        Assert.True(Fold(suspended, decided)!.Suspended);
    }

    [Fact]
    public void Suspending_is_idempotent()
    {
        var decided = Organization.Suspend(Linux, "linux");
        Assert.Equal([new OrganizationSuspended("linux")], decided);

        var suspended = Fold(Linux, decided);
        Assert.True(suspended!.Suspended);
        Assert.Empty(Organization.Suspend(suspended, "linux"));
    }

    [Fact]
    public void Reinstating_is_idempotent()
    {
        Assert.Empty(Organization.Reinstate(Linux, "linux"));

        var suspended = Linux with { Suspended = true };
        var decided = Organization.Reinstate(suspended, "linux");
        Assert.Equal([new OrganizationReinstated("linux")], decided);
        Assert.Equal(Linux, Fold(suspended, decided));
    }

    [Fact]
    public void An_unknown_organization_cannot_be_suspended_or_reinstated()
    {
        Assert.Equal("Organization", Assert.Throws<NotFoundException>(() => Organization.Suspend(null, "ghost")).What);
        Assert.Equal("Organization", Assert.Throws<NotFoundException>(() => Organization.Reinstate(null, "ghost")).What);
    }

    [Fact]
    public void Events_about_an_unknown_organization_build_nothing()
    {
        Assert.Null(Organization.Apply(null, new OrganizationSuspended("ghost")));
        Assert.Null(Organization.Apply(null, new OrganizationUpdated("ghost", "Ghost", OrganizationKind.Origin, true)));
    }
}
