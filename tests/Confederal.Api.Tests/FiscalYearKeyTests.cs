using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Cli.Audit;
using Confederal.Domain.Fiscal;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>
/// Taxpayer handles are per canton and year, derived under the year's key: a standing designation is restated in each
/// later year it carries into, and once a closed year is past its canton's retention its key is deleted, after which
/// its records lead to nobody while every total stays (DESIGN.md, Erasure). Each test uses its own canton.
/// </summary>
public sealed class FiscalYearKeyTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private readonly Fiscal _fiscal = new(api);

    private async Task CantonAsync(string canton, int retentionYears, params string[] organizations)
    {
        await Fiscal.Ok(_fiscal.Admin.PutAsJsonAsync($"/api/v1/cantons/{canton}", new { name = canton.ToUpperInvariant(), currency = "CHF", taxRetentionYears = retentionYears }));
        foreach (var organization in organizations)
        {
            await _fiscal.OrganizationAsync(organization);
        }
    }

    private Task<JsonElement> DesignationAsync(string canton, int year, string person) =>
        _fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/{canton}/fiscal-years/{year}/designations/{person}");

    /// <summary>The person's designation for the year as "organization:share …", and " from {year}" when carried.</summary>
    private async Task<string> ChoicesAsync(string canton, int year, string person)
    {
        var view = await DesignationAsync(canton, year, person);
        var carried = view.GetProperty("carriedFromYear");
        return string.Join(" ", view.GetProperty("choices").EnumerateArray().Select(c => $"{c.GetProperty("organizationId").GetString()}:{c.GetProperty("shareBp").GetInt32()}"))
               + (carried.ValueKind == JsonValueKind.Null ? "" : $" from {carried.GetInt32()}");
    }

    /// <summary>A replay of a fresh export finds the served numbers and no difference.</summary>
    private async Task ReplayMatchesServedAsync()
    {
        await api.SealedAsync();
        await api.ProjectedAsync(BudgetProjection.ProjectionName);
        var export = Path.Combine(Path.GetTempPath(), $"confederal-year-keys-{Guid.NewGuid():N}.ndjson");
        try
        {
            await CliRunner.ExportAsync(api, export);
            var replay = await new AuditReplay(Events.Types()).RunAsync(AuditExportFile.ReadAsync(export));
            Assert.Empty(replay.Differences);
            using var anyone = CliRunner.Client(api);
            using var courtOfAudit = CliRunner.Auditor(api);
            var comparison = await ServedComparison.CompareAsync(replay, anyone, courtOfAudit, TimeSpan.FromSeconds(10));
            Assert.Empty(comparison.Differences);
        }
        finally
        {
            File.Delete(export);
        }
    }

    [Fact]
    public async Task A_standing_designation_is_restated_in_every_later_year_and_follows_the_persons_changes()
    {
        const string canton = "yk-carry";
        await CantonAsync(canton, 10, "yk-oceans", "yk-linux");
        foreach (var year in new[] { 2026, 2027, 2028 })
        {
            await _fiscal.PolicyAsync(canton, year, 70, deadline: api.Clock.GetUtcNow().AddDays(30));
        }

        await _fiscal.AssessAsync(canton, "yk-ana", 2026, 1_000_000);
        await _fiscal.AssessAsync(canton, "yk-ana", 2027, 2_000_000); // 2027 has its key before the choice

        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "yk-ana", true, ("yk-oceans", 10_000)));
        Assert.Equal("yk-oceans:10000 from 2026", await ChoicesAsync(canton, 2027, "yk-ana"));

        // A year that gets its key later has it restated as it opens.
        await _fiscal.AssessAsync(canton, "yk-ana", 2028, 3_000_000);
        Assert.Equal("yk-oceans:10000 from 2026", await ChoicesAsync(canton, 2028, "yk-ana"));
        await api.ProjectedAsync(BudgetProjection.ProjectionName);
        Assert.Equal(Money.Designable(3_000_000, 70), (await _fiscal.BudgetAsync(canton, 2028)).AmountOf("yk-oceans"));

        // No longer standing: the later years lose it; standing again, they get it back.
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "yk-ana", false, ("yk-linux", 10_000)));
        Assert.Equal("", await ChoicesAsync(canton, 2027, "yk-ana"));
        Assert.Equal("", await ChoicesAsync(canton, 2028, "yk-ana"));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "yk-ana", true, ("yk-linux", 10_000)));
        Assert.Equal("yk-linux:10000 from 2026", await ChoicesAsync(canton, 2028, "yk-ana"));

        // The person's own choice for a year is theirs: a later change of the standing one stops before it.
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2028, "yk-ana", false, ("yk-oceans", 10_000)));
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, "yk-ana", true, ("yk-linux", 5_000), ("yk-oceans", 5_000)));
        Assert.Equal("yk-linux:5000 yk-oceans:5000 from 2026", await ChoicesAsync(canton, 2027, "yk-ana"));
        Assert.Equal("yk-oceans:10000", await ChoicesAsync(canton, 2028, "yk-ana"));

        // Choosing for 2027 what it was carried makes it the person's own; withdrawing 2026 then leaves 2027 alone.
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2027, "yk-ana", true, ("yk-linux", 5_000), ("yk-oceans", 5_000)));
        Assert.Equal(HttpStatusCode.NoContent, (await _fiscal.Person("yk-ana").DeleteAsync($"/api/v1/cantons/{canton}/fiscal-years/2026/designations/yk-ana")).StatusCode);
        Assert.Equal("yk-linux:5000 yk-oceans:5000", await ChoicesAsync(canton, 2027, "yk-ana"));
        Assert.Equal("yk-oceans:10000", await ChoicesAsync(canton, 2028, "yk-ana"));

        // The log alone gives what is served: every restatement is an event of its year.
        await ReplayMatchesServedAsync();
    }

    [Fact]
    public async Task Past_the_retention_a_closed_years_records_lead_to_nobody_and_its_totals_stay()
    {
        const string canton = "yk-short";
        await CantonAsync(canton, 0, "yk-care", "yk-tools"); // tax records kept until the end of their own year
        var year = api.Clock.GetUtcNow().Year - 1;
        await _fiscal.PolicyAsync(canton, year, 70, deadline: api.Clock.GetUtcNow().AddDays(1));
        await _fiscal.PolicyAsync(canton, year + 1, 70, deadline: api.Clock.GetUtcNow().AddDays(60));
        await _fiscal.AssessAsync(canton, "yk-bea", year, 1_000_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, year, "yk-bea", true, ("yk-care", 6_000), ("yk-tools", 4_000)));
        await _fiscal.AssessAsync(canton, "yk-cy", year, 500_000);
        await Fiscal.Ok(_fiscal.DesignateAsync(canton, year, "yk-cy", false, ("yk-tools", 10_000)));
        await _fiscal.AssessAsync(canton, "yk-bea", year + 1, 2_000_000);

        var keys = api.Services.GetRequiredService<FiscalYearKeys>();
        var bea = (await api.Services.GetRequiredService<PersonKeys>().FindAsync("yk-bea", CancellationToken.None))!.Taxpayer;
        var handle = (await keys.FindAsync(canton, year, CancellationToken.None))!.Of(bea);
        Assert.Equal("yk-care:6000 yk-tools:4000", await ChoicesAsync(canton, year, "yk-bea")); // hers while the year is open
        api.Clock.Advance(TimeSpan.FromDays(2)); // the year closes, and its retention is past
        try
        {
            await api.ProjectedAsync(BudgetProjection.ProjectionName);
            var budget = await api.CreateClient().GetStringAsync($"/api/v1/cantons/{canton}/budgets/{year}");

            // The host's keeper makes a pass at start, concurrently with this test: it may be the one that unlinks the
            // year (its pass can read the clock after the move). Whoever does, the year ends unlinked, and only it.
            var placement = api.Services.GetRequiredService<Placement>();
            var unlinked = await keys.UnlinkExpiredAsync(placement, CancellationToken.None);
            Assert.DoesNotContain((canton, year + 1), unlinked); // open, and kept until the end of next year
            Assert.DoesNotContain(await keys.UnlinkExpiredAsync(placement, CancellationToken.None), y => y.CantonId == canton);
            Assert.NotNull(await keys.FindAsync(canton, year + 1, CancellationToken.None));

            // The year's key is gone: nothing derives the handle its events name the person by.
            Assert.Null(await keys.FindAsync(canton, year, CancellationToken.None));
            var db = api.Services.GetRequiredService<NpgsqlDataSource>();
            var kept = await Sql.ListAsync(db, "SELECT key IS NULL, unlinked_at IS NOT NULL FROM fiscal_year_keys WHERE canton_id = $1 AND year = $2",
                r => (r.GetBoolean(0), r.GetBoolean(1)), CancellationToken.None, canton, year);
            Assert.Equal([(true, true)], kept);
            var named = await Sql.ListAsync(db, $"SELECT count(*) FROM {EventStore.EventLog.Table} WHERE data ->> 'taxpayer' = $1",
                r => r.GetInt64(0), CancellationToken.None, handle);
            Assert.Equal(2, named.Single()); // her assessment and her choice stay in the log
            foreach (var linked in await keys.LinkedAsync(null, CancellationToken.None))
            {
                Assert.NotEqual(handle, linked.Of(bea));
            }

            // The person no longer finds it hers; the totals are as before, and the log still gives them.
            Assert.Equal("", await ChoicesAsync(canton, year, "yk-bea"));
            Assert.Equal(JsonValueKind.Null, (await DesignationAsync(canton, year, "yk-bea")).GetProperty("assessedTaxMinor").ValueKind);
            Assert.Equal(budget, await api.CreateClient().GetStringAsync($"/api/v1/cantons/{canton}/budgets/{year}"));
            await ReplayMatchesServedAsync();

            // The year can no longer change; the years after it keep what it carried, and pass it on.
            var events = await api.CountEventsAsync();
            var late = await _fiscal.Municipality(canton).PostAsJsonAsync($"/api/v1/cantons/{canton}/tax-assessments",
                new { personId = "yk-bea", fiscalYear = year, amountMinor = 1 });
            await api.AssertRefusedAsync(late, HttpStatusCode.Conflict, "fiscal-year-unlinked", events);
            Assert.Equal($"yk-care:6000 yk-tools:4000 from {year}", await ChoicesAsync(canton, year + 1, "yk-bea"));
            await _fiscal.AssessAsync(canton, "yk-bea", year + 2, 3_000_000);
            Assert.Equal($"yk-care:6000 yk-tools:4000 from {year}", await ChoicesAsync(canton, year + 2, "yk-bea"));
            await ReplayMatchesServedAsync();
        }
        finally
        {
            api.Clock.Advance(TimeSpan.FromDays(-2));
        }
    }
}
