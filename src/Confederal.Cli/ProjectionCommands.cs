using System.CommandLine;
using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Organizations;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.Configuration;
using Npgsql;
using Spectre.Console;

namespace Confederal.Cli;

/// <summary>`confederal projections rebuild`: empties read models and replays the log into them, in place.</summary>
public static class ProjectionCommands
{
    private static readonly string[] Names = ["budgets", "cantons", "organizations", "ballots", "all"];

    /// <summary>The API's async projections, as its host constructs them.</summary>
    public static IReadOnlyList<IProjection> Projections() => [new CantonDirectory(), new OrganizationDirectory(), new BudgetProjection(), new BallotDirectory()];

    public static Command Build(CliContext context)
    {
        var database = DatabaseOption();
        var name = new Option<string>("--name") { Description = "The read model to rebuild.", DefaultValueFactory = _ => "all" };
        name.AcceptOnlyFromAmong(Names);
        var rebuild = new Command("rebuild", "Empty read models and replay the whole log into them with the API's projections. A running API keeps serving meanwhile (each page commits with its checkpoint), from partial read models until the rebuild ends.")
        {
            database, name,
        };
        rebuild.SetAction(Cli.Guarded(context, (parse, ct) =>
            OnDatabaseAsync(context, parse.GetValue(database), (connectionString, c) => RebuildAsync(context, connectionString, parse.GetValue(name) ?? "all", c), ct)));
        return new Command("projections", "Read models.") { rebuild };
    }

    /// <summary>The platform's database, as the API picks it.</summary>
    internal static Option<string?> DatabaseOption() => new("--database")
    {
        Description = "A PostgreSQL connection string. Default: ConnectionStrings__Confederal, else the embedded database of the data folder, as the API picks it.",
    };

    /// <summary>Runs <paramref name="work"/> on the database given, else the configured one, else the API's embedded
    /// cluster: attached to if it runs (and then left running), else started and stopped again.</summary>
    internal static async Task<int> OnDatabaseAsync(
        CliContext context, string? given, Func<string, CancellationToken, Task<int>> work, CancellationToken ct)
    {
        var connectionString = given ?? context.Configuration.GetConnectionString(Database.ConnectionStringName);
        EmbeddedPostgres? started = null;
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            var directory = DataDirectory.Resolve(context.Configuration);
            var running = File.Exists(Path.Combine(directory, "postgres", "postmaster.pid"));
            var cluster = await EmbeddedPostgres.StartAsync(directory, ct: ct);
            started = running ? null : cluster;
            connectionString = cluster.ConnectionString("confederal");
        }

        try
        {
            return await work(connectionString, ct);
        }
        finally
        {
            if (started is not null)
            {
                await started.DisposeAsync();
            }
        }
    }

    /// <summary>A data source on a connection string given on the command line.</summary>
    internal static NpgsqlDataSource DataSource(string connectionString)
    {
        try
        {
            return NpgsqlDataSource.Create(connectionString);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--database is not a valid connection string: {e.Message}");
        }
    }

    private static async Task<int> RebuildAsync(CliContext context, string connectionString, string name, CancellationToken ct)
    {
        await using (var db = DataSource(connectionString))
        {
            var projections = Projections();
            using var store = new OpenStore(db, Events.Types(), projections);
            var (log, daemon) = (store.Log, store.Daemon);
            var selected = name == "all" ? [.. projections.Select(p => p.Name)] : new[] { name };
            long head;
            try
            {
                head = await log.ReadHeadAsync(ct);
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                throw new CliException($"The database could not be read: {e.Message}");
            }

            foreach (var projection in selected)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var through = await Cli.ProgressAsync(context.Console, projection, "events", async report =>
                {
                    var rebuilding = daemon.RebuildAsync(projection, ct);
                    while (await Task.WhenAny(rebuilding, Task.Delay(TimeSpan.FromMilliseconds(200), ct)) != rebuilding)
                    {
                        report(await daemon.ReadCheckpointAsync(projection, ct), head);
                    }

                    var checkpoint = await rebuilding;
                    report(checkpoint, Math.Max(head, checkpoint));
                    return checkpoint;
                });
                context.Console.MarkupLineInterpolated($"Rebuilt {projection} through position {through:N0} in {clock.Elapsed.TotalSeconds:0.0} s.");
            }

            return ExitCodes.Ok;
        }
    }
}
