using JasperFx;
using JasperFx.Events;
using JasperFx.Events.Projections;
using Marten;
using Marten.Events.Projections;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// Marten, configured in one place: events in schema <see cref="Schema"/> under string stream keys and our versioned
/// type names, appended with Quick append, with correlation id, causation id, actor (Marten's user name) and headers
/// (the authentication code) recorded beside each one; our projections run by Marten's async daemon.
/// </summary>
public static class MartenStore
{
    public const string Schema = "marten";

    /// <summary>Events per page of a projection that does not ask for another size.</summary>
    public const int PageSize = 2_000;

    /// <summary>The header that holds an event's authentication code (base64).</summary>
    public const string CodeHeader = "mac";

    /// <summary>The headers of a copy (<see cref="StreamCopy"/>): the database whose log the event was recorded in, and its
    /// position there. Not covered by the authentication code, which is the original's.</summary>
    public const string SourceLedgerHeader = "sourceLedger", SourcePositionHeader = "sourcePosition";

    /// <summary>The options of a store on one database, Marten's default tenant.</summary>
    public static StoreOptions Options(
        NpgsqlDataSource dataSource, EventTypes types, IEnumerable<IProjection> projections, AutoCreate autoCreate = AutoCreate.None) =>
        Options([new LedgerDatabase(LedgerDatabase.DirectoryId, dataSource)], types, projections, autoCreate);

    /// <summary>The store's options: Marten's database per tenant, one tenant per database of <paramref name="databases"/>,
    /// the first also Marten's default tenant. Each database holds a log of its own (its own global order, progress and
    /// daemon). Marten's schema is created and migrated by <see cref="EventStore.Schema.MigrateAsync"/> (<paramref name="autoCreate"/>
    /// there); a running store does not look at it again.</summary>
    public static StoreOptions Options(
        IReadOnlyList<LedgerDatabase> databases, EventTypes types, IEnumerable<IProjection> projections, AutoCreate autoCreate = AutoCreate.None)
    {
        if (databases.Count == 0 || databases.Select(d => d.Id).Distinct(StringComparer.Ordinal).Count() != databases.Count)
        {
            throw new ArgumentException("A store needs at least one database, each with an id of its own.", nameof(databases));
        }

        var options = new StoreOptions();
        // Connection(dataSource) is what tells Marten the data sources are the caller's to dispose; the factory and the
        // tenancy that follow replace what it sets up.
        options.Connection(databases[0].DataSource);
        options.DataSourceFactory(new GivenDataSources(databases));
        options.MultiTenantedDatabases(tenancy =>
        {
            foreach (var database in databases)
            {
                tenancy.AddSingleTenantDatabase(GivenDataSources.Key(database), database.Id);
            }
        });
        options.Advanced.DefaultTenantUsageEnabled = true; // a session without a tenant is the directory's
        options.DatabaseSchemaName = Schema;
        options.AutoCreateSchemaObjects = autoCreate;
        options.Events.StreamIdentity = StreamIdentity.AsString;
        options.Events.AppendMode = EventAppendMode.Quick;
        options.Events.MetadataConfig.CorrelationIdEnabled = true;
        options.Events.MetadataConfig.CausationIdEnabled = true;
        options.Events.MetadataConfig.UserNameEnabled = true;
        options.Events.MetadataConfig.HeadersEnabled = true;
        // No NOTIFY on appends: PostgreSQL commits a transaction that notified under one lock for the whole database, so
        // concurrent appends would commit one at a time (8 writers: 468 against 888 events/s). The daemon polls instead.
        options.Events.UseListenNotifyForEventAppends = false;
        // A span per session's connection (under the request's trace, when the API exports traces; nothing is made when
        // nobody listens), and no event per command: what a command wrote is Npgsql's span, without its parameters.
        options.OpenTelemetry.TrackConnections = JasperFx.OpenTelemetry.TrackLevel.Normal;
        options.Projections.FastPollingTime = TimeSpan.FromMilliseconds(50);
        options.Projections.SlowPollingTime = TimeSpan.FromMilliseconds(250);
        options.UseSystemTextJsonForSerialization(configure: types.CopySerializerOptionsTo);
        // No retries inside Marten: a request the database failed answers 503 with Retry-After at once (the caller retries,
        // with its Idempotency-Key), and the daemon's health check restarts what an outage stopped.
        options.ConfigurePolly(_ => { });
        types.MapInto(options.Events);

        // Never skip: a gap in the sequence is waited out while a transaction that may still fill it is alive
        // (Marten's transaction evidence), and skipped only once no such transaction remains: then the number was
        // taken by a transaction that rolled back. No time limit makes the daemon skip a live one.
        options.Projections.UseTransactionEvidenceForGapSkipping = true;
        options.Projections.SkipStaleGapsDespiteLiveTransactionsAfter = null;
        options.Projections.StaleSequenceThreshold = TimeSpan.FromMilliseconds(500);
        // After an outage, Marten's watchdog restarts high-water detection that stopped cycling or advancing.
        options.Projections.HealthCheckPollingTime = TimeSpan.FromSeconds(1);
        options.Projections.LeadershipPollingTime = 500;
        options.Projections.HighWaterStalenessThreshold = TimeSpan.FromSeconds(5);
        options.Projections.HighWaterProgressStallThreshold = TimeSpan.FromSeconds(5);
        // An event a projection cannot apply stops that projection (it is retried, never passed over).
        options.Projections.Errors.SkipApplyErrors = false;
        options.Projections.Errors.SkipSerializationErrors = false;
        options.Projections.Errors.SkipUnknownEvents = false;
        options.Projections.RebuildErrors.SkipApplyErrors = false;
        options.Projections.RebuildErrors.SkipSerializationErrors = false;
        options.Projections.RebuildErrors.SkipUnknownEvents = false;

        foreach (var projection in projections)
        {
            var wrapper = new ProjectionWrapper<IDocumentOperations, IQuerySession>(new DaemonProjection(projection), ProjectionLifecycle.Async)
            {
                Name = projection.Name,
            };
            foreach (var type in projection.EventsRead ?? [])
            {
                wrapper.IncludeType(type);
            }

            wrapper.Options.BatchSize = projection.PageSize ?? PageSize;
            foreach (var table in projection.Tables)
            {
                wrapper.Options.DeleteDataInTableOnTeardown(table);
            }

            options.Projections.Add(wrapper, ProjectionLifecycle.Async);
        }

        return options;
    }
}

/// <summary>One database of the ledger: a Marten tenant (<see cref="Id"/>) whose events, progress and read models live on
/// <see cref="DataSource"/>.</summary>
public sealed record LedgerDatabase(string Id, NpgsqlDataSource DataSource)
{
    /// <summary>The directory's tenant id: Marten's default tenant, the tenant of every stream written before cantons
    /// were placed; not a slug, so that no canton can be given it.</summary>
    public const string DirectoryId = "*DEFAULT*";
}

/// <summary>Gives Marten the data sources we built (with our pooling settings) instead of building its own; they stay
/// ours to dispose.</summary>
internal sealed class GivenDataSources(IReadOnlyList<LedgerDatabase> databases) : Weasel.Postgresql.Connections.INpgsqlDataSourceFactory
{
    private readonly Dictionary<string, NpgsqlDataSource> _byKey = databases.ToDictionary(Key, d => d.DataSource, StringComparer.Ordinal);

    /// <summary>What Marten is given as the tenant's connection string: the data source's own, tagged with the tenant so
    /// that two tenants on one server and database name still differ.</summary>
    public static string Key(LedgerDatabase database) =>
        new NpgsqlConnectionStringBuilder(database.DataSource.ConnectionString) { ApplicationName = $"tenant:{database.Id}" }.ConnectionString;

    public NpgsqlDataSource Create(string connectionString) =>
        _byKey.TryGetValue(connectionString, out var dataSource)
            ? dataSource
            : throw new InvalidOperationException("Marten asked for a database that is not one of the ledger's.");

    public bool OwnsDataSource(NpgsqlDataSource dataSource) => false;
}

/// <summary>One database of the store with our layer over it: its log and its daemon.</summary>
public sealed record Shard(LedgerDatabase Database, EventLog Log, ProjectionDaemon Daemon)
{
    public string Id => Database.Id;

    public NpgsqlDataSource DataSource => Database.DataSource;
}

/// <summary>The store's databases, in the order the store was given them: the first is the directory, Marten's default
/// tenant.</summary>
public sealed class Shards : IReadOnlyList<Shard>
{
    private readonly IReadOnlyList<Shard> _shards;
    private readonly Dictionary<string, Shard> _byId;

    public Shards(IDocumentStore store, IReadOnlyList<LedgerDatabase> databases, EventTypes types, IReadOnlyList<IProjection> projections, EventAuthenticator? authenticator)
    {
        _shards = [.. databases.Select(d => new Shard(d, new EventLog(store, d, types, authenticator), new ProjectionDaemon(store, d, projections)))];
        _byId = _shards.ToDictionary(s => s.Id, StringComparer.Ordinal);
    }

    public Shard Directory => _shards[0];

    public Shard this[string id] => _byId.TryGetValue(id, out var shard) ? shard : throw new ArgumentException($"No database '{id}' in the store.", nameof(id));

    public Shard this[int index] => _shards[index];

    public int Count => _shards.Count;

    public IEnumerator<Shard> GetEnumerator() => _shards.GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>Marten's document store with our layer over it, for a process without dependency injection (the
/// command-line tool, benchmarks, tests); disposing it disposes the document store.</summary>
public sealed class OpenStore : IDisposable
{
    public OpenStore(NpgsqlDataSource dataSource, EventTypes types, IReadOnlyList<IProjection> projections, EventAuthenticator? authenticator = null)
        : this([new LedgerDatabase(LedgerDatabase.DirectoryId, dataSource)], types, projections, authenticator)
    {
    }

    public OpenStore(IReadOnlyList<LedgerDatabase> databases, EventTypes types, IReadOnlyList<IProjection> projections, EventAuthenticator? authenticator = null)
    {
        var options = MartenStore.Options(databases, types, projections);
        options.Projections.AsyncMode = JasperFx.Events.Daemon.DaemonMode.Solo; // its daemon is built on demand, not hosted
        Marten = new DocumentStore(options);
        Shards = new Shards(Marten, databases, types, projections, authenticator);
    }

    public DocumentStore Marten { get; }

    public Shards Shards { get; }

    /// <summary>The first database's log.</summary>
    public EventLog Log => Shards.Directory.Log;

    /// <summary>The first database's daemon.</summary>
    public ProjectionDaemon Daemon => Shards.Directory.Daemon;

    public void Dispose() => Marten.Dispose();
}

public static class ConfederalStoreServices
{
    /// <summary>Marten's document store on the databases <paramref name="databases"/> gives (a tenant each, the first the
    /// directory), with the registered <see cref="IProjection"/>s run on each by Marten's hosted async daemon (hot/cold:
    /// one process of those on a database runs them, another takes over when it stops; its health check restarts what an
    /// outage stopped), and our layer over it: <see cref="Shards"/>, each database's <see cref="EventLog"/> (its events
    /// authenticated with the key <paramref name="eventKey"/> gives) and <see cref="ProjectionDaemon"/>; the directory's
    /// are also registered on their own. Register what must run before the daemon starts (the schema's migration) first.</summary>
    public static IServiceCollection AddConfederalStore(
        this IServiceCollection services, EventTypes types, Func<IServiceProvider, IReadOnlyList<LedgerDatabase>> databases, Func<IServiceProvider, byte[]> eventKey)
    {
        services.AddSingleton(types);
        services.AddMarten(sp => MartenStore.Options(databases(sp), types, sp.GetServices<IProjection>()))
            .AddAsyncDaemon(JasperFx.Events.Daemon.DaemonMode.HotCold);
        services.AddSingleton(sp => new Shards(
            sp.GetRequiredService<IDocumentStore>(), databases(sp), types, [.. sp.GetServices<IProjection>()], new EventAuthenticator(eventKey(sp))));
        services.AddSingleton(sp => sp.GetRequiredService<Shards>().Directory.Log);
        services.AddSingleton(sp => sp.GetRequiredService<Shards>().Directory.Daemon);
        return services;
    }
}
