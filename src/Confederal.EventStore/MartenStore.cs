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

    /// <summary>The store's options. Marten's schema is created and migrated by <see cref="EventStore.Schema.MigrateAsync"/>
    /// (<paramref name="autoCreate"/> there); a running store does not look at it again.</summary>
    public static StoreOptions Options(
        NpgsqlDataSource dataSource, EventTypes types, IEnumerable<IProjection> projections, AutoCreate autoCreate = AutoCreate.None)
    {
        var options = new StoreOptions();
        options.Connection(dataSource);
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

/// <summary>Marten's document store with our layer over it, for a process without dependency injection (the
/// command-line tool, benchmarks, tests); disposing it disposes the document store.</summary>
public sealed class OpenStore : IDisposable
{
    public OpenStore(NpgsqlDataSource dataSource, EventTypes types, IReadOnlyList<IProjection> projections, EventAuthenticator? authenticator = null)
    {
        var options = MartenStore.Options(dataSource, types, projections);
        options.Projections.AsyncMode = JasperFx.Events.Daemon.DaemonMode.Solo; // its daemon is built on demand, not hosted
        Marten = new DocumentStore(options);
        Log = new EventLog(Marten, dataSource, types, authenticator);
        Daemon = new ProjectionDaemon(Marten, dataSource, projections);
    }

    public DocumentStore Marten { get; }

    public EventLog Log { get; }

    public ProjectionDaemon Daemon { get; }

    public void Dispose() => Marten.Dispose();
}

public static class ConfederalStoreServices
{
    /// <summary>Marten's document store on the registered <see cref="NpgsqlDataSource"/>, with the registered
    /// <see cref="IProjection"/>s run by Marten's hosted async daemon (hot/cold: one process of those on the database runs
    /// them, another takes over when it stops; its health check restarts what an outage stopped), and our layer over it:
    /// <see cref="EventLog"/> (its events authenticated with the key <paramref name="eventKey"/> gives) and
    /// <see cref="ProjectionDaemon"/>. Register what must run before the daemon starts (the schema's migration) first.</summary>
    public static IServiceCollection AddConfederalStore(this IServiceCollection services, EventTypes types, Func<IServiceProvider, byte[]> eventKey)
    {
        services.AddSingleton(types);
        services.AddMarten(sp => MartenStore.Options(sp.GetRequiredService<NpgsqlDataSource>(), types, sp.GetServices<IProjection>()))
            .AddAsyncDaemon(JasperFx.Events.Daemon.DaemonMode.HotCold);
        services.AddSingleton(sp => new EventLog(
            sp.GetRequiredService<IDocumentStore>(), sp.GetRequiredService<NpgsqlDataSource>(), types, new EventAuthenticator(eventKey(sp))));
        services.AddSingleton(sp => new ProjectionDaemon(
            sp.GetRequiredService<IDocumentStore>(), sp.GetRequiredService<NpgsqlDataSource>(), sp.GetServices<IProjection>()));
        return services;
    }
}
