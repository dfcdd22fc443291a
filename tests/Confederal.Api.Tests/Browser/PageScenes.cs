using System.Net.Http.Json;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests.Browser;

/// <summary>What the page scenarios set up through the REST API before a browser looks: cantons, organizations and
/// policies, with every projection caught up.</summary>
public sealed class PageScenes(BrowserSite site)
{
    private readonly Fiscal _fiscal = new(site.Api);

    public static string Suffix() => Guid.NewGuid().ToString("N")[..8];

    public async Task ProjectedAsync()
    {
        foreach (var projection in site.Api.Services.GetServices<IProjection>())
        {
            await site.Api.ProjectedAsync(projection.Name);
        }
    }

    /// <summary>A canton that formats like Geneva (CHF, fr-CH, Europe/Zurich), three organizations of different kinds,
    /// and this year's policy of 0.7 % with up to three choices.</summary>
    public async Task GenevaLikeCantonAsync(string canton, TimeSpan deadlineIn, string unallocated = "retain")
    {
        await Fiscal.Ok(_fiscal.Admin.PutAsJsonAsync($"/api/v1/cantons/{canton}",
            new { name = $"Canton {canton}", currency = "CHF", locale = "fr-CH", timeZone = "Europe/Zurich" }));
        await _fiscal.OrganizationAsync($"{canton}-oceans", "commons");
        await _fiscal.OrganizationAsync($"{canton}-linux", "commons");
        await _fiscal.OrganizationAsync($"{canton}-culture", "cultural");
        var now = site.Api.Clock.GetUtcNow();
        await _fiscal.PolicyAsync(canton, now.Year, 70, unallocated, deadline: now + deadlineIn);
    }
}
