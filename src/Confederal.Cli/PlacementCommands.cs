using System.CommandLine;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.Configuration;
using Npgsql;
using Spectre.Console;

namespace Confederal.Cli;

/// <summary>`confederal placement move`: gives a canton whose ledger is in the directory a database of its own.</summary>
public static class PlacementCommands
{
    public static Command Build(CliContext context)
    {
        var canton = new Option<string>("--canton") { Description = "The canton to move.", Required = true };
        var target = new Option<string>("--to") { Description = "The connection string of the canton's new database (created beforehand, empty or a resumed move's).", Required = true };
        var directory = new Option<string?>("--directory")
        {
            Description = "The directory's connection string. Default: ConnectionStrings__Confederal.",
        };
        var move = new Command("move",
            "Copy a canton's ledger from the directory into a database of its own, with the directory's facts it decides with, its ballots' " +
            "working rows and the recorded Idempotency-Key answers. Run it with every API stopped, then start them with " +
            "Shards__Cantons__<cantonId> set to the new database. Run again after an interruption: nothing is copied twice.")
        {
            canton, target, directory,
        };
        move.SetAction(Cli.Guarded(context, async (parse, ct) =>
        {
            var id = parse.GetValue(canton)!;
            if (!Domain.Identifiers.IsSlug(id))
            {
                throw new CliException($"--canton: '{id}' is not a canton id.");
            }

            var directoryConnection = parse.GetValue(directory) ?? context.Configuration.GetConnectionString(Database.ConnectionStringName)
                ?? throw new CliException("Give --directory, or set ConnectionStrings__Confederal.");
            var moved = await MoveAsync(id, Open(directoryConnection, "--directory"), Open(parse.GetValue(target)!, "--to"), ct);
            context.Console.MarkupLineInterpolated(
                $"Moved canton {id}: {moved.Events:N0} events, {moved.WorkingRows:N0} ballot rows and {moved.Keys:N0} idempotency keys are in its database. Start the API with Shards__Cantons__{id} set to it.");
            return ExitCodes.Ok;
        }));
        return new Command("placement", "Where cantons' ledgers are kept.") { move };
    }

    public sealed record Moved(long Events, long WorkingRows, long Keys);

    /// <summary>Copies, verbatim (<see cref="StreamCopy"/>), the directory's streams the canton's database holds once the
    /// canton is placed: the canton's own (every stream whose events name it, and its ballots' boxes and rolls) and the
    /// confederation's facts it decides with (<see cref="DirectoryCopies.ToCanton"/>). Their versions are the directory's,
    /// so the directory's later copies of the canton's log continue them.</summary>
    public static async Task<Moved> MoveAsync(string cantonId, NpgsqlDataSource directory, NpgsqlDataSource target, CancellationToken ct)
    {
        await using (directory)
        await using (target)
        {
            await Schema.MigrateAsync(target, Database.Migrations, [.. ProjectionCommands.Projections().SelectMany(p => p.Tables)], ct);
            using var store = new OpenStore(
                [new LedgerDatabase(LedgerDatabase.DirectoryId, directory), new LedgerDatabase(cantonId, target)], Api.Infrastructure.Events.Types(), []);
            var (source, canton) = (store.Shards.Directory, store.Shards[cantonId]);
            await source.Daemon.CatchUpAsync(ct); // with every API stopped: the high-water mark reaches the last event

            var ballots = new HashSet<Guid>();
            var owned = Owned(cantonId, ballots);
            var before = await canton.Log.ReadLastCommittedAsync(ct);
            await new StreamCopy(source.Log, canton.Log, e => DirectoryCopies.ToCanton(e) || owned(e)).CopyAsync(ct);
            var events = await canton.Log.ReadLastCommittedAsync(ct) - before;

            // A ballot's votes and participations before its close are rows, not events yet; and a retried keyed request
            // must find the answer recorded before the move.
            long rows = 0;
            foreach (var table in new[] { "ballot_box", "ballot_participations" })
            {
                rows += await CopyRowsAsync(directory, target, $"SELECT * FROM {table} WHERE ballot_id = ANY($1)", table, [.. ballots], ct);
            }

            var keys = await CopyRowsAsync(directory, target, "SELECT * FROM idempotency_keys", "idempotency_keys", null, ct);
            return new Moved(events, rows, keys);
        }
    }

    // The events of the canton's own streams name it (cantonId), but for its ballots' boxes and rolls, which name the
    // ballot; a ballot is called before its box and roll are written, so its id is known by then.
    private static Func<StoredEvent, bool> Owned(string cantonId, HashSet<Guid> ballots) => e =>
    {
        if (DirectoryCopies.IsShared(e.StreamId))
        {
            return false;
        }

        using var document = JsonDocument.Parse(e.Json);
        var data = document.RootElement;
        var ballot = data.TryGetProperty("ballotId", out var b) && b.TryGetGuid(out var g) ? g : (Guid?)null;
        if (data.TryGetProperty("cantonId", out var c) && c.ValueEquals(cantonId))
        {
            if (ballot is { } called)
            {
                ballots.Add(called);
            }

            return true;
        }

        return ballot is { } counted && ballots.Contains(counted);
    };

    /// <summary>Copies the rows <paramref name="select"/> reads into the same table of the target (rows it has are left).</summary>
    private static async Task<long> CopyRowsAsync(
        NpgsqlDataSource source, NpgsqlDataSource target, string select, string table, Guid[]? ballots, CancellationToken ct)
    {
        await using var read = source.CreateCommand($"SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') FROM ({select}) t");
        if (ballots is not null)
        {
            read.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = ballots });
        }

        var json = (string)(await read.ExecuteScalarAsync(ct))!;
        await using var write = target.CreateCommand(
            $"INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb) ON CONFLICT DO NOTHING");
        write.Parameters.Add(new NpgsqlParameter<string> { TypedValue = json });
        return await write.ExecuteNonQueryAsync(ct);
    }

    private static NpgsqlDataSource Open(string connectionString, string option)
    {
        try
        {
            return NpgsqlDataSource.Create(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"{option} is not a valid connection string: {e.Message}");
        }
    }
}
