using System.Diagnostics;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.Benchmarks;
using Confederal.Cli;
using Confederal.EventStore;
using EventLog = Confederal.EventStore.EventLog;
using Confederal.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Xunit.Abstractions;

namespace Confederal.Api.Tests;

/// <summary>
/// The third fault: <c>confederal projections rebuild</c>, run as its own process, killed (SIGKILL) in the middle
/// of the budgets' replay; the API started on the database afterwards finishes it from the checkpoint, as it would in
/// production, and the read models must equal a clean rebuild of the same log row for row.
/// </summary>
public sealed class ProjectionRebuildKillTests(ITestOutputHelper output)
{
    // Enough for the budgets' replay (pages of 10,000) to take a few seconds here.
    private const int LogEvents = 200_000;
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task A_rebuild_killed_midway_is_finished_by_the_daemon_into_read_models_equal_to_a_clean_rebuild()
    {
        var connectionString = await TestPostgres.CreateDatabaseAsync(Database.Migrations);
        var data = Directory.CreateTempSubdirectory("confederal-rebuild-kill-").FullName;
        try
        {
            await using var db = NpgsqlDataSource.Create(connectionString);
            var clock = Stopwatch.StartNew();

            // The log, written with the event codes of the data folder's keys (the API's notary seals it later), and
            // its read models built from nothing: the clean rebuild.
            using var store = new OpenStore(
                db, Events.Types(), ProjectionCommands.Projections(), new EventAuthenticator(AuditKeys.LoadOrCreate(data).EventKey));
            await FiscalHistory.AppendAsync(store.Log, LogEvents);
            var daemon = store.Daemon;
            var head = await daemon.CatchUpAsync();
            var written = clock.Elapsed;
            foreach (var projection in ProjectionCommands.Projections())
            {
                await daemon.RebuildAsync(projection.Name);
            }

            var clean = await ReadModelsAsync(db);
            var built = clock.Elapsed - written;

            // The rebuild command, killed once the budgets' checkpoint is past 0 and short of the head.
            clock.Restart();
            var (killedAt, cliOutput) = await RebuildKilledMidwayAsync(db, connectionString, head);
            var killed = clock.Elapsed;
            var stored = await CheckpointAsync(db, BudgetProjection.ProjectionName);
            Assert.True(stored > 0 && stored < head, $"The checkpoint after the kill is {stored} of {head}.\n{cliOutput}");

            // The API on the same database and data folder: its daemon resumes from the checkpoints.
            clock.Restart();
            await using (var api = ApiFactory.On(connectionString, data))
            {
                var resumed = api.Services.GetRequiredService<ProjectionDaemon>();
                foreach (var projection in ProjectionCommands.Projections())
                {
                    await resumed.WaitForAsync(projection.Name, head).WaitAsync(Patience);
                }

                var finished = clock.Elapsed;
                var actual = await ReadModelsAsync(db);
                output.WriteLine($"{head:N0} events written in {written.TotalSeconds:0.0} s; clean rebuild {built.TotalSeconds:0.0} s; " +
                                 $"rebuild process killed {killed.TotalSeconds:0.0} s after its start with the budgets' checkpoint at {killedAt:N0} " +
                                 $"(stored {stored:N0}); the API's daemon finished it in {finished.TotalSeconds:0.0} s");
                output.WriteLine(string.Join(", ", clean.Select(t => $"{t.Key} {t.Value.Count:N0}")));

                Assert.Equal(clean.Keys, actual.Keys);
                foreach (var (table, rows) in clean)
                {
                    AssertSameRows(table, rows, actual[table]);
                }
            }
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    /// <summary>Runs <c>projections rebuild</c> from the CLI's own binary and kills it in the second half of the budgets'
    /// replay; returns the checkpoint seen just before the kill and what the process printed.</summary>
    private static async Task<(long Checkpoint, string Output)> RebuildKilledMidwayAsync(NpgsqlDataSource db, string connectionString, long head)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])[Path.Combine(AppContext.BaseDirectory, "confederal.dll"), "projections", "rebuild", "--database", connectionString])
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var waited = Stopwatch.StartNew();
        long checkpoint;
        // The clean rebuild left it at the head; the command resets it to 0, then moves it a page at a time: killed
        // past the middle, so that much of the read model is rebuilt and much is not.
        while (!((checkpoint = await CheckpointAsync(db, BudgetProjection.ProjectionName)) >= head / 2 && checkpoint < head)
               && !process.HasExited && waited.Elapsed < Patience)
        {
            await Task.Delay(10);
        }

        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // it had exited already: reported below
        }

        await process.WaitForExitAsync();
        var printed = $"exit {process.ExitCode}\n{await stdout}\n{await stderr}";
        Assert.True(checkpoint >= head / 2 && checkpoint < head,
            $"The rebuild was not caught midway (checkpoint {checkpoint} of {head}); a larger log would take it longer.\n{printed}");
        return (checkpoint, printed);
    }

    private static async Task<long> CheckpointAsync(NpgsqlDataSource db, string projection)
    {
        await using var command = db.CreateCommand("SELECT last_seq_id FROM marten.mt_event_progression WHERE name = $1");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"{projection}:All" });
        return await command.ExecuteScalarAsync() is long position ? position : 0;
    }

    /// <summary>Every table of the read models, each row as PostgreSQL prints it, in one stable order; and the
    /// checkpoints. The notary's tables are left out: the clean rebuild ran without a notary; so are the fiscal years' key
    /// tables, which the API fills at its first start (this log's years were recorded without it, so before year keys).</summary>
    private static async Task<SortedDictionary<string, List<string>>> ReadModelsAsync(NpgsqlDataSource db)
    {
        var tables = new List<string>();
        await using (var list = db.CreateCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'audit\\_%' AND tablename NOT IN ('fiscal_year_keys', 'designation_carries')"))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        var dump = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var table in tables)
        {
            dump[table] = await RowsAsync(db, $"SELECT t::text FROM public.\"{table}\" AS t ORDER BY t::text COLLATE \"C\"");
        }

        dump["marten.mt_event_progression"] = await RowsAsync(
            db, "SELECT name || ' ' || last_seq_id FROM marten.mt_event_progression WHERE name LIKE '%:All' ORDER BY name COLLATE \"C\"");
        return dump;
    }

    private static async Task<List<string>> RowsAsync(NpgsqlDataSource db, string sql)
    {
        var rows = new List<string>();
        await using var command = db.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    private static void AssertSameRows(string table, List<string> expected, List<string> actual)
    {
        var first = expected.Zip(actual).Select((pair, i) => (pair, i)).FirstOrDefault(x => x.pair.First != x.pair.Second);
        Assert.True(expected.Count == actual.Count && first.pair == default,
            $"{table}: {expected.Count} rows after a clean rebuild, {actual.Count} after the killed one was finished; " +
            (first.pair == default ? "" : $"row {first.i}: clean {first.pair.First} / finished {first.pair.Second}"));
    }
}
