using System.Globalization;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Fiscal;
using Confederal.Client;
using Microsoft.Kiota.Abstractions;

namespace Confederal.Cli.Audit;

/// <summary>What a comparison covered and found: every difference (empty: everything matches to the minor unit), how
/// many budgets, organization receipts and certified ballots (and pages of counted ballots) were compared, and notes.</summary>
public sealed record ComparisonReport(
    IReadOnlyList<AuditDifference> Differences, int Budgets, int Receipts, int Ballots, int ResultPages, IReadOnlyList<string> Notes);

/// <summary>
/// Compares a replay with what the API serves over HTTP: every replayed budget with GET budget, every organization's
/// receipts with GET receipts (with an auditor's token; skipped without one), every certified ballot with GET results,
/// all pages. Fields are compared by name (lines by organization, pact, canton or currency), so an entry on one side
/// only is a difference too.
/// <para>
/// The read model lags the log by milliseconds: a budget or receipt served at a <c>position</c> (the last event the read
/// model applied) before the replay's last position is asked again every 50 ms until it catches up or the wait runs out
/// (then the lag itself is the difference). Served at a later position, it may include events the replay has not seen:
/// compared all the same, with a note, since an export ends at the last sealed event while the API goes on.
/// </para>
/// <para>
/// What the API serves is read as served and into the records the replay computes (<see cref="BudgetView"/>…), with the
/// API's own JSON settings, so that both sides are compared field by field, never through another model.
/// </para>
/// </summary>
public static class ServedComparison
{
    public static async Task<ComparisonReport> CompareAsync(
        ReplayResult replay, ConfederalClient api, ConfederalClient? auditor, TimeSpan wait, Action<long, long>? progress = null,
        CancellationToken ct = default)
    {
        var v1 = api.Api.Api.V1;
        var differences = new List<AuditDifference>();
        var notes = new List<string>();
        var total = replay.Budgets.Count + (auditor is null ? 0 : replay.Receipts.Count) + replay.Ballots.Count;
        long done = 0, ahead = 0;
        int budgets = 0, receipts = 0, ballots = 0, pages = 0;

        foreach (var budget in replay.Budgets)
        {
            var what = $"budget {budget.CantonId}/{budget.FiscalYear}";
            var served = await ServedAsync<BudgetView>(api, v1.Cantons[budget.CantonId].Budgets[budget.FiscalYear].ToGetRequestInformation(),
                v => v.Position, replay.LastPosition, wait, ct);
            if (Comparable(what, served, served?.Position, replay.LastPosition, differences, ref ahead))
            {
                Compare(what, Fields(budget), Fields(served!), differences);
                budgets++;
            }

            progress?.Invoke(++done, total);
        }

        if (auditor is null)
        {
            notes.Add("Organization receipts were not compared: they need an auditor's token (--token).");
        }
        else
        {
            foreach (var receipt in replay.Receipts)
            {
                var what = $"receipts {receipt.OrganizationId}/{receipt.FiscalYear}";
                var served = await ServedAsync<ReceiptsView>(auditor,
                    v1.Organizations[receipt.OrganizationId].Receipts[receipt.FiscalYear].ToGetRequestInformation(), v => v.Position,
                    replay.LastPosition, wait, ct);
                if (Comparable(what, served, served?.Position, replay.LastPosition, differences, ref ahead))
                {
                    Compare(what, Fields(receipt), Fields(served!), differences);
                    receipts++;
                }

                progress?.Invoke(++done, total);
            }
        }

        foreach (var ballot in replay.Ballots)
        {
            var what = $"ballot {ballot.CantonId}/{ballot.BallotId:D}";
            var results = v1.Cantons[ballot.CantonId].Ballots[ballot.BallotId].Results;
            var first = await ReadAsync<BallotResultsView>(api, results.ToGetRequestInformation(), ct).OrNotFoundAsync();
            if (first is null)
            {
                differences.Add(new AuditDifference(what, "results", "certified", "absent (404)"));
            }
            else
            {
                var served = new List<CountedPage> { CountedPage.Of(0, first.Ballots.Select(b => (b.Receipt, b.Option))) };
                for (var page = 1; page < first.Pages; page++)
                {
                    var next = await ReadAsync<BallotResultsView>(api, results.ToGetRequestInformation(c => c.QueryParameters.Page = page), ct);
                    served.Add(CountedPage.Of(page, next.Ballots.Select(b => (b.Receipt, b.Option))));
                }

                Compare(what, Fields(ballot), Fields(first, first.Pages == 0 ? [] : served), differences);
                ballots++;
                pages += first.Pages;
            }

            progress?.Invoke(++done, total);
        }

        if (ahead > replay.LastPosition)
        {
            notes.Add($"The API serves read models at position {ahead}, after the replay's last event ({replay.LastPosition}): " +
                      "differences may come from the events in between. Export again (or replay the database) to compare the same history.");
        }

        return new ComparisonReport(differences, budgets, receipts, ballots, pages, notes);
    }

    private static async Task<T?> ServedAsync<T>(
        ConfederalClient client, RequestInformation request, Func<T, long> position, long last, TimeSpan wait, CancellationToken ct)
        where T : class
    {
        var deadline = DateTimeOffset.UtcNow + wait;
        while (true)
        {
            var served = await ReadAsync<T>(client, request, ct).OrNotFoundAsync();
            if (served is null || position(served) >= last || DateTimeOffset.UtcNow >= deadline)
            {
                return served;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), ct);
        }
    }

    /// <summary>What the API serves at <paramref name="request"/>, read as served into <typeparamref name="T"/>.</summary>
    private static async Task<T> ReadAsync<T>(ConfederalClient client, RequestInformation request, CancellationToken ct)
    {
        using var served = await client.GetJsonAsync(request, ct);
        return served.RootElement.Deserialize<T>(CliContext.Json)
               ?? throw new CliException($"{request.HttpMethod} {request.URI.PathAndQuery}: the API answered an empty body.");
    }

    private static bool Comparable(string what, object? served, long? position, long last, List<AuditDifference> differences, ref long ahead)
    {
        if (served is null)
        {
            differences.Add(new AuditDifference(what, "exists", "yes", "absent (404)"));
            return false;
        }

        if (position < last)
        {
            differences.Add(new AuditDifference(what, "position (the read model has not applied the replayed events)", $"≥ {last}", Text(position)));
            return false;
        }

        ahead = Math.Max(ahead, position ?? 0);
        return true;
    }

    private static void Compare(string what, SortedDictionary<string, string> replayed, SortedDictionary<string, string> served, List<AuditDifference> differences)
    {
        foreach (var field in replayed.Keys.Union(served.Keys).Order(StringComparer.Ordinal))
        {
            var r = replayed.GetValueOrDefault(field, "absent");
            var s = served.GetValueOrDefault(field, "absent");
            if (r != s)
            {
                differences.Add(new AuditDifference(what, field, r, s));
            }
        }
    }

    private static SortedDictionary<string, string> Fields(BudgetView b)
    {
        var fields = Map(
            ("cantonId", b.CantonId), ("fiscalYear", b.FiscalYear), ("currency", b.Currency), ("revenueMinor", b.RevenueMinor), ("taxpayers", b.Taxpayers),
            ("designationRateBp", b.DesignationRateBp), ("designablePoolMinor", b.DesignablePoolMinor), ("unallocatedMinor", b.UnallocatedMinor),
            ("redistributedMinor", b.RedistributedMinor), ("retainedMinor", b.RetainedMinor), ("designatedMinor", b.DesignatedMinor),
            ("netBudgetMinor", b.NetBudgetMinor));
        foreach (var d in b.Designations)
        {
            fields[$"designations[{d.OrganizationId}].amountMinor"] = Text(d.AmountMinor);
            fields[$"designations[{d.OrganizationId}].redistributedMinor"] = Text(d.RedistributedMinor);
            fields[$"designations[{d.OrganizationId}].taxpayers"] = Text(d.Taxpayers);
        }

        foreach (var c in b.Contributions)
        {
            fields[$"contributions[{c.PactId}].amountMinor"] = Text(c.AmountMinor);
        }

        foreach (var r in b.Receipts)
        {
            fields[$"receipts[{r.PactId}].amountMinor"] = Text(r.AmountMinor);
        }

        return fields;
    }

    private static SortedDictionary<string, string> Fields(ReceiptsView v)
    {
        var fields = Map(("organizationId", v.OrganizationId), ("fiscalYear", v.FiscalYear));
        foreach (var r in v.Receipts)
        {
            fields[$"receipts[{r.CantonId}].currency"] = r.Currency;
            fields[$"receipts[{r.CantonId}].amountMinor"] = Text(r.AmountMinor);
            fields[$"receipts[{r.CantonId}].redistributedMinor"] = Text(r.RedistributedMinor);
            fields[$"receipts[{r.CantonId}].taxpayers"] = Text(r.Taxpayers);
        }

        foreach (var t in v.Totals)
        {
            fields[$"totals[{t.Currency}].amountMinor"] = Text(t.AmountMinor);
        }

        return fields;
    }

    private static SortedDictionary<string, string> Fields(ReplayedBallot b) =>
        Ballot(b.CantonId, b.Question, b.CensusDate, b.Eligible, b.Votes, b.TurnoutBp, b.Tallies, b.Proposal, b.Carried, b.Enacted, b.NotEnacted, b.Pages, b.CountedPages);

    private static SortedDictionary<string, string> Fields(BallotResultsView b, IReadOnlyList<CountedPage> pages) =>
        Ballot(b.CantonId, b.Question, b.CensusDate, b.Eligible, b.Votes, b.TurnoutBp, b.Tallies, b.Proposal, b.Carried, b.Enacted, b.NotEnacted, b.Pages, pages);

    private static SortedDictionary<string, string> Ballot(
        string canton, string question, DateOnly censusDate, long eligible, long votes, long turnoutBp, IReadOnlyList<TallyView> tallies,
        Domain.Ballots.Proposal? proposal, bool? carried, bool? enacted, string? notEnacted, int pageCount, IReadOnlyList<CountedPage> pages)
    {
        var fields = Map(
            ("cantonId", canton), ("question", question), ("censusDate", censusDate.ToString("O", CultureInfo.InvariantCulture)), ("eligible", eligible),
            ("votes", votes), ("turnoutBp", turnoutBp), ("proposal", JsonSerializer.Serialize(proposal, CliContext.Json)), ("carried", carried),
            ("enacted", enacted), ("notEnacted", notEnacted), ("pages", pageCount));
        foreach (var t in tallies)
        {
            fields[$"tallies[{t.Option}]"] = Text(t.Votes);
        }

        foreach (var p in pages)
        {
            fields[$"ballots page {p.Page}: count"] = Text(p.Ballots);
            fields[$"ballots page {p.Page}: receipts and options (SHA-256)"] = p.Digest;
        }

        return fields;
    }

    private static SortedDictionary<string, string> Map(params (string Field, object? Value)[] values)
    {
        var fields = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (field, value) in values)
        {
            fields[field] = Text(value);
        }

        return fields;
    }

    private static string Text(object? value) => AuditDifference.Text(value);
}
