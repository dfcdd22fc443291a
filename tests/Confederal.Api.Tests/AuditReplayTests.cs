using Confederal.Api.Features.Persons;
using System.Text.Json.Nodes;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.Cli;
using Confederal.Cli.Audit;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Auditors replay the log and reach the same numbers as the API, to the minor unit; whatever differs, in the
/// read models or in the log's own record of a ballot, is listed with its field.</summary>
public sealed class AuditReplayTests(AuditHistory history) : IClassFixture<AuditHistory>
{
    private ApiFactory Api => history.Api;

    private async Task<(ReplayResult Replay, ComparisonReport Served)> ReplayAsync(string path)
    {
        var replay = await new AuditReplay(Events.Types()).RunAsync(AuditExportFile.ReadAsync(path));
        using var client = CliRunner.Client(Api);
        using var auditor = CliRunner.Auditor(Api);
        return (replay, await ServedComparison.CompareAsync(replay, client, auditor, TimeSpan.FromSeconds(10)));
    }

    /// <summary>A copy of the history's export with the events <paramref name="match"/> picks changed by <paramref name="change"/>.</summary>
    private Task<string> TamperedAsync(Func<JsonObject, bool> match, Action<JsonObject> change) =>
        TamperedEventAsync(match, e => change((JsonObject)e["data"]!));

    /// <summary>The export with the first event <paramref name="match"/> picks changed by <paramref name="change"/>.</summary>
    private async Task<string> TamperedEventAsync(Func<JsonObject, bool> match, Action<JsonObject> change)
    {
        var path = history.NewPath("tampered");
        var changed = 0;
        var lines = (await File.ReadAllLinesAsync(history.Export)).Select(line =>
        {
            if (JsonNode.Parse(line) is JsonObject o && o["event"] is JsonObject e && changed == 0 && match(e))
            {
                change(e);
                changed++;
                return o.ToJsonString();
            }

            return line;
        }).ToList();
        Assert.Equal(1, changed);
        await File.WriteAllLinesAsync(path, lines);
        return path;
    }

    private async Task<string> PositionsAsync() => string.Join(",", (await File.ReadAllLinesAsync(history.Export)).Skip(1)
        .Select(l => JsonNode.Parse(l)!["event"]?["position"]?.GetValue<long>()).Where(p => p is not null));

    [Fact]
    public async Task Replaying_an_export_offline_reproduces_every_served_budget_receipt_and_ballot_to_the_minor_unit()
    {
        var (replay, served) = await ReplayAsync(history.Export);

        Assert.Empty(replay.Differences);
        Assert.Empty(served.Differences);
        Assert.Equal(await Api.CountEventsAsync(), replay.Events);
        Assert.Equal(AuditHistory.Cantons * AuditHistory.Years, served.Budgets);
        Assert.Equal(AuditHistory.Organizations * AuditHistory.Years, served.Receipts);
        Assert.Equal(2, served.Ballots);
        Assert.Equal(2, served.ResultPages);
        // Not vacuous: the history reaches every part of the rules.
        Assert.Contains(replay.Budgets, b => b.Contributions.Count > 0 && b.Receipts.Any(r => r.AmountMinor > 0));
        Assert.Contains(replay.Budgets, b => b.RedistributedMinor > 0);
        Assert.Contains(replay.Budgets, b => b.RetainedMinor > 0);
        Assert.Contains(replay.Budgets, b => b.Currency == "EUR" && b.DesignatedMinor > 0);
        Assert.Contains(replay.Budgets, b => b is { CantonId: "au-ge", FiscalYear: 2027, DesignationRateBp: 120 });
        Assert.Contains(replay.Ballots, b => b.Carried == true && b.Enacted == true && b.Eligible == 4 && b.Votes == 4);
        Assert.Contains(replay.Receipts, r => r.Totals.Count == 2);

        var (code, output) = await CliRunner.RunAsync(Api, "audit", "replay", "--file", history.Export, "--api", "http://localhost",
            "--token", CliRunner.AuditorToken(Api));
        Assert.True(code == ExitCodes.Ok, output);
        Assert.Contains("No differences", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_tampered_budget_row_is_listed_with_its_field_and_projections_rebuild_restores_the_replayed_budget()
    {
        await Api.ProjectedAsync("budgets");
        await using (var tamper = Api.Services.GetRequiredService<NpgsqlDataSource>()
                         .CreateCommand("UPDATE budgets SET net_minor = net_minor + 1 WHERE canton_id = 'au-ge' AND year = 2026"))
        {
            Assert.Equal(1, await tamper.ExecuteNonQueryAsync());
        }

        var (_, served) = await ReplayAsync(history.Export);
        var difference = Assert.Single(served.Differences);
        Assert.Equal(("budget au-ge/2026", "netBudgetMinor"), (difference.What, difference.Field));
        Assert.Equal(long.Parse(difference.Replayed, System.Globalization.CultureInfo.InvariantCulture) + 1,
            long.Parse(difference.Served, System.Globalization.CultureInfo.InvariantCulture));

        var (code, output) = await CliRunner.RunAsync(Api, "projections", "rebuild", "--database", CliRunner.ConnectionString(Api), "--name", "budgets");
        Assert.True(code == ExitCodes.Ok, output);
        Assert.Contains("Rebuilt budgets through position", output, StringComparison.Ordinal);
        Assert.Empty((await ReplayAsync(history.Export)).Served.Differences);
    }

    [Fact]
    public async Task A_replay_of_an_export_cut_short_differs_from_the_api_and_exits_1()
    {
        var lines = await File.ReadAllLinesAsync(history.Export);
        var lastEvent = Array.FindLastIndex(lines, l => l.StartsWith("{\"event\":", StringComparison.Ordinal));
        var cut = history.NewPath("cut");
        await File.WriteAllLinesAsync(cut, lines[..lastEvent]); // without the last assessment (au-ge 2027) and the last seal

        var (code, output) = await CliRunner.RunAsync(Api, "audit", "replay", "--file", cut, "--api", "http://localhost");

        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains("budget au-ge/2027", output, StringComparison.Ordinal);
        Assert.Contains("revenueMinor", output, StringComparison.Ordinal);
        Assert.Contains("after the replay's last event", output, StringComparison.Ordinal);
        Assert.Contains("Organization receipts were not compared", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Counted_ballots_that_do_not_add_up_to_the_certified_tallies_are_listed()
    {
        var path = await TamperedAsync(e => (string?)e["type"] == "ballots-counted", data =>
        {
            var options = data["options"]!.AsArray();
            options[0] = 1 - options[0]!.GetValue<int>(); // the binding ballot: yes ↔ no
        });

        var (replay, served) = await ReplayAsync(path);

        var record = replay.Differences.Where(d => d.What.EndsWith("as certified in the log", StringComparison.Ordinal)).Select(d => d.Field).ToList();
        Assert.Contains("tallies[yes]", record);
        Assert.Contains("tallies[no]", record);
        Assert.Contains(served.Differences, d => d.What.StartsWith("ballot au-ge/", StringComparison.Ordinal) && d.Field == "tallies[yes]");
        Assert.Contains(served.Differences, d => d.Field == "ballots page 0: receipts and options (SHA-256)");
    }

    [Fact]
    public async Task A_sealed_box_or_roll_out_of_order_out_of_range_or_repeated_is_listed()
    {
        static bool Box(JsonObject e) => (string?)e["type"] == "ballots-counted";
        static bool Roll(JsonObject e) => (string?)e["type"] == "participations-recorded";

        async Task<List<string>> FieldsAsync(Func<JsonObject, bool> match, Action<JsonObject> change) =>
            [.. (await ReplayAsync(await TamperedAsync(match, change))).Replay.Differences.Select(d => d.Field)];

        Assert.Contains("box: receipts in strictly increasing order", await FieldsAsync(Box, data =>
        {
            var (receipts, options) = (data["receipts"]!.AsArray(), data["options"]!.AsArray());
            (receipts[0], receipts[1]) = (receipts[1]!.DeepClone(), receipts[0]!.DeepClone());
            (options[0], options[1]) = (options[1]!.DeepClone(), options[0]!.DeepClone());
        }));
        var outOfRange = await FieldsAsync(Box, data => data["options"]!.AsArray()[0] = 7);
        Assert.Contains(outOfRange, f => f.StartsWith("box page 0: option index of", StringComparison.Ordinal));
        Assert.Contains("votes", outOfRange);
        Assert.Contains("box page", await FieldsAsync(Box, data => data["page"] = 5));
        var repeated = await FieldsAsync(Roll, data =>
        {
            var persons = data["residents"]!.AsArray();
            persons[1] = persons[0]!.DeepClone();
        });
        Assert.Contains("participation roll: each person once", repeated);
        Assert.Contains("participation roll: persons (one per vote)", repeated);
    }

    [Fact]
    public async Task A_read_model_behind_the_replay_or_missing_from_the_api_is_a_difference()
    {
        var replay = await new AuditReplay(Events.Types()).RunAsync(AuditExportFile.ReadAsync(history.Export));
        var ahead = replay with
        {
            LastPosition = replay.LastPosition + 1_000,
            Budgets = [replay.Budgets[0] with { CantonId = "au-nowhere" }, replay.Budgets[1]],
            Receipts = [],
            Ballots = [replay.Ballots[0] with { BallotId = Guid.NewGuid() }],
        };
        using var client = CliRunner.Client(Api);

        var served = await ServedComparison.CompareAsync(ahead, client, null, TimeSpan.FromMilliseconds(200));

        Assert.Contains(served.Differences, d => d is { What: "budget au-nowhere/2026", Field: "exists", Served: "absent (404)" });
        Assert.Contains(served.Differences, d => d.What == $"budget {replay.Budgets[1].CantonId}/{replay.Budgets[1].FiscalYear}"
                                                 && d.Field.StartsWith("position", StringComparison.Ordinal));
        Assert.Contains(served.Differences, d => d.What.StartsWith("ballot au-", StringComparison.Ordinal) && d is { Field: "results", Served: "absent (404)" });
        Assert.Equal(0, served.Budgets + served.Ballots);
    }

    [Fact]
    public async Task An_eligible_count_and_a_roll_the_census_does_not_support_are_listed()
    {
        // The birth date reaches the auditor opened beside the event (it is sealed in it): the replay counts what it is told.
        var voter = (await Api.Services.GetRequiredService<PersonKeys>().FindAsync("zq-v1", CancellationToken.None))!.Resident;
        var path = await TamperedEventAsync(e => (string?)e["type"] == "resident-registered" && (string?)e["data"]!["resident"] == voter,
            e => e["person"]!["birthDate"] = "2020-01-01");

        var (replay, _) = await ReplayAsync(path);

        Assert.Contains(replay.Differences, d => d.What.EndsWith("as certified in the log", StringComparison.Ordinal)
                                                 && d is { Field: "eligible", Replayed: "3", Served: "4" });
        Assert.Contains(replay.Differences, d => d is { Field: "participation roll: persons not eligible on the census date", Served: "1" });
    }

    [Fact]
    public async Task Replaying_and_verifying_the_database_with_the_platform_keys_match_too()
    {
        var cs = CliRunner.ConnectionString(Api);
        var (code, output) = await CliRunner.RunAsync(Api, "audit", "replay", "--database", cs, "--api", "http://localhost", "--token", CliRunner.AuditorToken(Api));
        Assert.True(code == ExitCodes.Ok, output);
        Assert.Contains("No differences", output, StringComparison.Ordinal);

        (code, output) = await CliRunner.RunAsync(Api, "audit", "verify", "--database", cs);
        Assert.True(code == ExitCodes.Ok, output);
        Assert.Contains("The trail holds", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_pseudonymized_export_holds_no_person_id_of_the_history()
    {
        var text = await File.ReadAllTextAsync(history.Export);

        Assert.True(history.Persons.Count > 60);
        Assert.All(history.Persons, person => Assert.DoesNotContain(person, text, StringComparison.Ordinal));
        Assert.DoesNotContain("zq-", text, StringComparison.Ordinal);
        // People are named by their handles, the pseudonyms of events recorded since handles.
        var alice = (await Api.Services.GetRequiredService<PersonKeys>().FindAsync("zq-alice", CancellationToken.None))!.Taxpayer;
        var years = await Api.Services.GetRequiredService<Features.Fiscal.FiscalYearKeys>().LinkedAsync(null, CancellationToken.None);
        Assert.Contains(years, y => text.Contains(y.Of(alice), StringComparison.Ordinal));
        Assert.NotEmpty(await PositionsAsync());
    }
}
