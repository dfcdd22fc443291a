using System.CommandLine;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Census;
using Confederal.EventStore;
using Npgsql;
using Spectre.Console;

namespace Confederal.Cli;

/// <summary>`confederal persons forget-erased`: after a restore, erases again everyone the log says was erased.</summary>
public static class PersonCommands
{
    public static Command Build(CliContext context)
    {
        var database = ProjectionCommands.DatabaseOption();
        var forget = new Command("forget-erased",
            "Erase again everyone a person-erased event of the log names: their key row and their birth date in the census register. " +
            "For a key table restored from a backup older than the log (keep the two backed up apart): an erasure must not come back with it. " +
            "Run it on the directory's database (where people are erased); it changes nothing when nothing came back.")
        {
            database,
        };
        forget.SetAction(Cli.Guarded(context, (parse, ct) =>
            ProjectionCommands.OnDatabaseAsync(context, parse.GetValue(database), (connectionString, c) => ForgetAsync(context, connectionString, c), ct)));
        return new Command("persons", "People's keys.") { forget };
    }

    private static async Task<int> ForgetAsync(CliContext context, string connectionString, CancellationToken ct)
    {
        await using var db = ProjectionCommands.DataSource(connectionString);
        var erased = await Sql.ListAsync(db,
            $"SELECT data ->> 'resident' FROM {EventLog.Table} WHERE type = ANY($1)", r => r.GetString(0), ct,
            (object)Events.Types().AliasesOf(typeof(PersonErased)).ToArray());
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        await ExecuteAsync("DELETE FROM designation_carries WHERE lookup IN (SELECT lookup FROM person_keys WHERE resident = ANY($1))");
        var keys = await ExecuteAsync("DELETE FROM person_keys WHERE resident = ANY($1)");
        var birthDates = await ExecuteAsync("UPDATE residences SET birth_date = NULL WHERE resident = ANY($1) AND birth_date IS NOT NULL");
        await tx.CommitAsync(ct);
        context.Console.MarkupLineInterpolated($"{erased.Count:N0} erasures in the log: {keys:N0} key rows and {birthDates:N0} register birth dates forgotten again.");
        return ExitCodes.Ok;

        async Task<int> ExecuteAsync(string sql)
        {
            await using var command = new NpgsqlCommand(sql, connection, tx);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. erased] });
            return await command.ExecuteNonQueryAsync(ct);
        }
    }
}
