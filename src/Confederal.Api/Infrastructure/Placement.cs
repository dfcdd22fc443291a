using Confederal.EventStore;

namespace Confederal.Api.Infrastructure;

/// <summary>
/// Which database keeps each canton's ledger (<see cref="Database"/>), and which one a request's writes go to: a route
/// under <c>/api/v1/cantons/{cantonId}/</c> is that canton's ledger; the canton's own registration, organizations and
/// pacts are the directory's, and so is a person's residence history (one residence at a time across the
/// confederation is decided on one stream).
/// </summary>
public sealed class Placement(Database database, Shards shards)
{
    private const string CantonRoutes = "/api/v1/cantons/{cantonId}/";
    private const string ResidenceRoutes = "/api/v1/cantons/{cantonId}/residents";

    public Shard Directory => shards.Directory;

    public IReadOnlyList<Shard> All => shards;

    /// <summary>The database of the canton's ledger, for a request: refused (503) while it has not been migrated (it did
    /// not answer at start).</summary>
    public Shard Of(string cantonId)
    {
        var id = database.DatabaseOf(cantonId);
        return database.IsMigrated(id) ? shards[id] : throw new DatabaseUnavailableException(cantonId);
    }

    /// <summary>The audit feed's description of its <c>ledger</c> parameter.</summary>
    public const string LedgerParameter = "The log to read: the one that keeps this canton's ledger (its own database when it is placed, " +
        "else the directory's). Each keeps its own positions, hash chain and seals. Absent: the directory's, which also holds verbatim " +
        "copies of every placed canton's log.";

    /// <summary>The log that keeps <paramref name="cantonId"/>'s ledger; the directory's for null.</summary>
    public Shard LogOf(string? cantonId) => cantonId is null ? Directory : Of(cantonId);

    /// <summary>The database of the canton's ledger, whether it can take requests yet or not.</summary>
    public Shard Home(string cantonId) => shards[database.DatabaseOf(cantonId)];

    /// <summary>The canton's log and the data source of its read models.</summary>
    public (EventLog Log, Npgsql.NpgsqlDataSource Db) Ledger(string cantonId)
    {
        var shard = Of(cantonId);
        return (shard.Log, shard.DataSource);
    }

    /// <summary>The database a request writes to.</summary>
    public Shard Of(HttpContext http) =>
        http.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } pattern }
        && pattern.StartsWith(CantonRoutes, StringComparison.Ordinal)
        && !pattern.StartsWith(ResidenceRoutes, StringComparison.Ordinal)
        && http.GetRouteValue("cantonId") is string cantonId
            ? Of(cantonId)
            : Directory;
}

/// <summary>
/// Keeps the directory and each placed canton's database in step, with verbatim copies (<see cref="StreamCopy"/>):
/// the canton's database gets the confederation's facts its ledger decides with (cantons, organizations and pacts;
/// not residences: the census register, rolls and census counts are the directory's, where one residence at a time
/// is decided on one stream);
/// the directory gets every stream of the canton's own log (its fiscal policies, filings, designations, voting rules,
/// ballots and pact memberships), so that what crosses cantons (organization receipts, pact pools and their
/// settlement, the confederation's identity) is projected there from every canton's log, in each log's order, to the
/// position each copy has read to. The two sets of streams are disjoint: each stream is written in one database only.
/// </summary>
public sealed class DirectoryCopies(Placement placement, Database database, ILogger<DirectoryCopies> logger) : BackgroundService
{
    private static readonly string[] Shared = ["canton-", "organization-", "pact-", "residence-"];

    /// <summary>Whether a directory stream is one of the confederation's facts, which only the directory writes.</summary>
    public static bool IsShared(string streamId) => Shared.Any(p => streamId.StartsWith(p, StringComparison.Ordinal));

    /// <summary>The streams a placed canton's database copies from the directory, selected on the directory's server (it
    /// also holds every placed canton's log, which no canton's copy reads).</summary>
    public static readonly IReadOnlyList<string> ToCantonStreams = ["canton-", "organization-", "pact-"];

    /// <summary>The directory's events a placed canton's database copies.</summary>
    public static bool ToCanton(StoredEvent e) => IsShared(e.StreamId) && !e.StreamId.StartsWith("residence-", StringComparison.Ordinal);

    /// <summary>The canton database's events the directory copies: those of its own log, not the copies it holds.</summary>
    public static bool ToDirectory(StoredEvent e) => !IsShared(e.StreamId);

    /// <summary>The copy of a placed canton's own log in the directory, whose progress is the canton's log position
    /// the directory's cross-canton numbers include.</summary>
    public StreamCopy FromCanton(string cantonId) => new(placement.Home(cantonId).Log, placement.Directory.Log, ToDirectory);

    /// <summary>The copy of the directory's facts in a placed canton's database.</summary>
    public StreamCopy ToCantonCopy(string cantonId) =>
        new(placement.Directory.Log, placement.Home(cantonId).Log, ToCanton) { StreamPrefixes = ToCantonStreams };

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(database.Placed.Select(async cantonId =>
        {
            await database.WhenMigratedAsync(cantonId, stoppingToken);
            await Task.WhenAll(
                ToCantonCopy(cantonId).RunAsync(new Backoff(logger, $"Copying the directory's facts to '{cantonId}'"), stoppingToken),
                FromCanton(cantonId).RunAsync(new Backoff(logger, $"Copying the log of '{cantonId}' to the directory"), stoppingToken));
        }));
}
