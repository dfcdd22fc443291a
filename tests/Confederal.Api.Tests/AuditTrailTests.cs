using System.Net.Http.Json;
using Confederal.Api.Features.Audit;

namespace Confederal.Api.Tests;

public sealed class AuditTrailTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly ApiFactory _api = api;

    private async Task HistoryAsync()
    {
        var fiscal = new Fiscal(_api);
        await fiscal.CantonAsync("ge");
        await fiscal.OrganizationAsync("linux");
        await fiscal.OrganizationAsync("oceans");
        await fiscal.PolicyAsync("ge", 2026, 70);
        await fiscal.AssessAsync("ge", "alice", 2026, 1_000_000);
        await fiscal.AssessAsync("ge", "bob", 2026, 500_000);
        await Fiscal.Ok(fiscal.DesignateAsync("ge", 2026, "alice", false, ("linux", 6000), ("oceans", 4000)));
        await Fiscal.Ok(fiscal.DesignateAsync("ge", 2026, "alice", true, ("linux", 10000)));
        await fiscal.ResidentAsync("carol", "ge", new DateOnly(2020, 1, 1));
    }

    [Fact]
    public async Task The_sealed_log_verifies_from_the_database_and_from_the_feed()
    {
        await HistoryAsync();
        var sealedThrough = await _api.SealedAsync();
        Assert.Equal(await _api.CountEventsAsync(), sealedThrough);

        var audit = new Audit(_api);
        var report = await audit.VerifyDatabaseAsync();
        Assert.True(report.Passed, report.Failure?.ToString());
        Assert.Equal(sealedThrough, report.Events);
        Assert.Equal(sealedThrough, report.SealedThrough);

        var page = await audit.Auditor.GetFromJsonAsync<AuditEventsPage>("/api/v1/audit/events?limit=1000");
        Assert.Equal(sealedThrough, page!.Events.Count);
        var fromFeed = await audit.VerifyFeedAsync();
        Assert.True(fromFeed.Passed, fromFeed.Failure?.ToString());
    }
}
