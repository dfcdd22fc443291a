using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>The secret ballot: nothing stored or logged links a person to a choice, the ballot box keeps neither order
/// nor time, and anyone can recount the published record.</summary>
public sealed class SecrecyTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private static readonly string[] Options = ["alpha-choice", "beta-choice", "gamma-choice"];
    private readonly Democracy _d = new(api);

    private NpgsqlDataSource Db => api.Services.GetRequiredService<NpgsqlDataSource>();

    /// <summary>Every row of every table in the database (the event log included), as text.</summary>
    private async Task<List<string>> EveryRowAsync()
    {
        var tables = new List<string>();
        await using (var command = Db.CreateCommand(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_schema IN ('public', 'es') AND table_type = 'BASE TABLE'"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        var rows = new List<string>();
        foreach (var table in tables)
        {
            await using var command = Db.CreateCommand($"SELECT t::text FROM {table} t");
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add($"{table}: {reader.GetString(0)}");
            }
        }

        return rows;
    }

    private static void AssertNothingLinks(IEnumerable<string> texts, Dictionary<string, (string Receipt, string Option)> votes)
    {
        foreach (var text in texts)
        {
            foreach (var (person, (receipt, _)) in votes)
            {
                if (text.Contains(person, StringComparison.Ordinal))
                {
                    Assert.False(text.Contains(receipt, StringComparison.Ordinal), $"Links {person} to a receipt: {text[..Math.Min(text.Length, 300)]}");
                    Assert.DoesNotContain(Options, o => text.Contains(o, StringComparison.Ordinal));
                }
            }
        }
    }

    private async Task<(Guid Ballot, Dictionary<string, (string Receipt, string Option)> Votes, List<string> CastOrder)> VoteAsync(string canton, int voters, int abstainers)
    {
        await _d.Fiscal.CantonAsync(canton);
        var random = new Random(canton.Length);
        for (var i = 0; i < voters + abstainers; i++)
        {
            await Fiscal.Ok(_d.ResideAsync(canton, $"{canton}-person-{i:D3}", new DateOnly(2010, 1, 1)));
        }

        var ballot = await _d.BallotAsync(canton);
        var votes = new Dictionary<string, (string, string)>();
        var castOrder = new List<string>();
        foreach (var i in Enumerable.Range(0, voters).OrderBy(_ => random.Next()))
        {
            var person = $"{canton}-person-{i:D3}";
            var option = Options[random.Next(Options.Length)];
            var receipt = await _d.ReceiptAsync(canton, ballot, person, option);
            votes[person] = (receipt, option);
            castOrder.Add(receipt);
        }

        return (ballot, votes, castOrder);
    }

    [Fact]
    public async Task No_table_event_or_log_line_links_a_person_to_a_choice_and_the_box_keeps_no_order_or_time()
    {
        var logsBefore = api.Logs.Lines.Count;
        var (ballot, votes, castOrder) = await VoteAsync("sec-a", voters: 12, abstainers: 3);
        var logs = api.Logs.Lines.Skip(logsBefore).ToList();

        AssertNothingLinks(await EveryRowAsync(), votes);
        AssertNothingLinks(logs, votes);
        Assert.DoesNotContain(logs, l => votes.Values.Any(v => l.Contains(v.Receipt, StringComparison.Ordinal)));

        await using (var command = Db.CreateCommand("""
            SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || coalesce(column_default, '') || is_identity FROM information_schema.columns
            WHERE table_name IN ('ballot_box', 'ballot_participations') ORDER BY table_name, ordinal_position
            """))
        {
            var columns = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                columns.Add(reader.GetString(0));
            }

            Assert.Equal(["ballot_box.ballot_id uuid NO", "ballot_box.receipt text NO", "ballot_box.option smallint NO",
                "ballot_participations.ballot_id uuid NO", "ballot_participations.resident text NO"], columns);
        }

        await _d.CloseAsync("sec-a", ballot);
        AssertNothingLinks(await EveryRowAsync(), votes);

        var published = (await _d.ResultsAsync("sec-a", ballot)).GetProperty("ballots").EnumerateArray()
            .Select(b => b.GetProperty("receipt").GetString()!).ToList();
        Assert.Equal(published.Order(StringComparer.Ordinal), published);
        Assert.NotEqual(castOrder, published);
        Assert.Equal(castOrder.Order(StringComparer.Ordinal), published);

        // Sealed in one transaction: the log's timestamps say nothing about when anyone voted.
        await using var sealedAt = Db.CreateCommand("SELECT count(DISTINCT timestamp) FROM marten.mt_events WHERE stream_id LIKE $1");
        sealedAt.Parameters.Add(new NpgsqlParameter { Value = $"ballot-%{ballot:N}" });
        Assert.Equal(2L, await sealedAt.ExecuteScalarAsync()); // the call, then the close
        await using var box = Db.CreateCommand("SELECT count(*) FROM ballot_box WHERE ballot_id = $1");
        box.Parameters.Add(new NpgsqlParameter { Value = ballot });
        Assert.Equal(0L, await box.ExecuteScalarAsync());
    }

    [Fact]
    public async Task Anyone_can_recount_the_published_ballots_and_find_their_receipt()
    {
        var (ballot, votes, _) = await VoteAsync("sec-count", voters: 25, abstainers: 5);
        await _d.CloseAsync("sec-count", ballot);
        var results = await _d.ResultsAsync("sec-count", ballot);

        var published = new List<(string Receipt, string Option)>();
        for (var page = 0; page < results.GetProperty("pages").GetInt32(); page++)
        {
            published.AddRange((await _d.ResultsAsync("sec-count", ballot, page)).GetProperty("ballots").EnumerateArray()
                .Select(b => (b.GetProperty("receipt").GetString()!, b.GetProperty("option").GetString()!)));
        }

        var recount = published.GroupBy(b => b.Option).ToDictionary(g => g.Key, g => (long)g.Count());
        foreach (var tally in results.GetProperty("tallies").EnumerateArray())
        {
            Assert.Equal(recount.GetValueOrDefault(tally.GetProperty("option").GetString()!), tally.GetProperty("votes").GetInt64());
        }

        Assert.Equal(published.Count, results.GetProperty("votes").GetInt64());
        Assert.Equal(30, results.GetProperty("eligible").GetInt64());
        Assert.Equal(25 * 10_000 / 30, results.GetProperty("turnoutBp").GetInt64());
        Assert.Equal(published.Count, published.Select(b => b.Receipt).Distinct().Count());
        foreach (var (receipt, option) in votes.Values)
        {
            Assert.Contains((receipt, option), published);
        }

        // Counted ballots = participations: the sealed register names exactly the voters.
        var roll = new List<string>();
        await using var command = Db.CreateCommand("SELECT data FROM marten.mt_events WHERE stream_id = $1 ORDER BY version");
        command.Parameters.Add(new NpgsqlParameter { Value = $"ballot-roll-{ballot:N}" });
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            using var page = JsonDocument.Parse(reader.GetString(0));
            roll.AddRange(page.RootElement.GetProperty("residents").EnumerateArray().Select(p => p.GetString()!));
        }

        Assert.Equal(roll.Order(StringComparer.Ordinal), roll); // in handle order: nothing of the casting order
        var voters = await api.Services.GetRequiredService<Features.Persons.PersonKeys>().ByResidentsAsync(roll, CancellationToken.None);
        Assert.Equal(votes.Keys.Order(StringComparer.Ordinal), roll.Select(r => voters[r].PersonId).Order(StringComparer.Ordinal));
    }
}
