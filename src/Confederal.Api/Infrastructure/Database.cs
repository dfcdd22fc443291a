using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Organizations;
using Confederal.EventStore;
using System.Collections.Frozen;
using Confederal.Domain;
using Npgsql;

namespace Confederal.Api.Infrastructure;

/// <summary>Where Confederal keeps its files: CONFEDERAL_DATA_DIR, else the user's data folder
/// (/var/lib/confederal for root, whose home the 'postgres' user cannot enter).</summary>
public static class DataDirectory
{
    public const string Setting = "CONFEDERAL_DATA_DIR";

    public static string Resolve(IConfiguration configuration)
    {
        var configured = configuration[Setting];
        var directory = !string.IsNullOrWhiteSpace(configured)
            ? configured
            : Environment.IsPrivilegedProcess
                ? "/var/lib/confederal"
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "confederal");
        Directory.CreateDirectory(directory);
        return Path.GetFullPath(directory);
    }
}

/// <summary>
/// The databases the API runs on. The directory (the confederation's facts, and the ledger of every canton not placed
/// elsewhere) is the server named by ConnectionStrings:Confederal, or, when none is configured, an embedded PostgreSQL
/// cluster in the data folder, started on first use and stopped with the application. Shards:Cantons:&lt;cantonId&gt;
/// names the database of one canton's ledger: a Marten tenant of its own, with its own log, seals and read models.
/// </summary>
public sealed class Database : IAsyncDisposable
{
    public const string ConnectionStringName = "Confederal";

    /// <summary>The configuration section whose keys are canton ids and values the connection strings of their databases.</summary>
    public const string ShardsSection = "Shards:Cantons";

    private readonly IConfiguration _configuration;
    private readonly ILogger _logger;
    private readonly Lazy<IReadOnlyList<LedgerDatabase>> _databases;
    private readonly FrozenDictionary<string, TaskCompletionSource> _migrated;
    private readonly List<NpgsqlDataSource> _owned = [];
    private readonly Dictionary<string, NpgsqlDataSource> _reads = new(StringComparer.Ordinal);
    private EmbeddedPostgres? _embedded;

    public Database(IConfiguration configuration, ILogger<Database> logger)
    {
        _configuration = configuration;
        _logger = logger;
        _databases = new Lazy<IReadOnlyList<LedgerDatabase>>(Open);
        Placed = ReadShards(configuration).Keys.ToFrozenSet(StringComparer.Ordinal);
        _migrated = Placed.Append(LedgerDatabase.DirectoryId).ToFrozenDictionary(id => id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), StringComparer.Ordinal);
    }

    public static bool IsEmbedded(IConfiguration configuration) =>
        string.IsNullOrWhiteSpace(configuration.GetConnectionString(ConnectionStringName));

    /// <summary>Every migration of our read models' tables the application runs at start, after Marten's.</summary>
    public static IReadOnlyList<Migration> Migrations { get; } = [.. CantonDirectory.Migrations, .. OrganizationDirectory.Migrations, .. BudgetProjection.Migrations,
        .. Features.Census.Residences.Migrations, .. Features.Ballots.BallotBox.Migrations, .. Features.Ballots.BallotDirectory.Migrations, .. Features.Audit.Notary.Migrations, .. Idempotency.Migrations,
        .. Features.Persons.PersonKeys.Migrations, .. Features.Fiscal.FiscalYearKeys.Migrations];

    /// <summary>The directory's data source.</summary>
    public NpgsqlDataSource DataSource => _databases.Value[0].DataSource;

    /// <summary>The directory first, then one database per placed canton (its id is the canton's).</summary>
    public IReadOnlyList<LedgerDatabase> Databases => _databases.Value;

    /// <summary>Where a database's public reads may be served: a streaming standby when its connection string names one
    /// (the answer then reflects the standby's replay, and says the position it reflects), else the database itself.</summary>
    public NpgsqlDataSource ReadsOf(string databaseId)
    {
        _ = _databases.Value; // built on first use, with the ledger's
        return _reads[databaseId];
    }

    /// <summary>The cantons whose ledger has a database of its own.</summary>
    public FrozenSet<string> Placed { get; }

    /// <summary>The id of the database that keeps <paramref name="cantonId"/>'s ledger.</summary>
    public string DatabaseOf(string cantonId) => Placed.Contains(cantonId) ? cantonId : LedgerDatabase.DirectoryId;

    /// <summary>Whether the database's schema has been migrated by this process, so that it can take requests.</summary>
    public bool IsMigrated(string databaseId) => _migrated[databaseId].Task.IsCompleted;

    /// <summary>Completes once the database's schema has been migrated by this process.</summary>
    public Task WhenMigratedAsync(string databaseId, CancellationToken ct) => _migrated[databaseId].Task.WaitAsync(ct);

    internal void Migrated(string databaseId) => _migrated[databaseId].TrySetResult();

    public async ValueTask DisposeAsync()
    {
        if (_databases.IsValueCreated)
        {
            foreach (var owned in _owned)
            {
                await owned.DisposeAsync();
            }
        }

        if (Interlocked.Exchange(ref _embedded, null) is { } embedded)
        {
            _logger.LogInformation("Stopping the embedded PostgreSQL");
            await embedded.DisposeAsync();
        }
    }

    /// <summary>The configured shards: canton id to connection string. A key that is no canton id, an empty value, or two
    /// cantons (or a canton and the directory) on one database are configuration errors: each canton's ledger is a log
    /// of its own, in a database of its own.</summary>
    public static IReadOnlyDictionary<string, string> ReadShards(IConfiguration configuration)
    {
        var shards = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in configuration.GetSection(ShardsSection).GetChildren())
        {
            if (!Identifiers.IsSlug(entry.Key))
            {
                throw new InvalidOperationException($"{ShardsSection}:{entry.Key}: '{entry.Key}' is not a canton id.");
            }

            if (string.IsNullOrWhiteSpace(entry.Value))
            {
                throw new InvalidOperationException($"{ShardsSection}:{entry.Key} has no connection string.");
            }

            shards[entry.Key] = entry.Value;
        }

        var directory = configuration.GetConnectionString(ConnectionStringName);
        var places = shards.Select(s => (Name: $"{ShardsSection}:{s.Key}", Place: Place(s.Value)))
            .Prepend((Name: $"ConnectionStrings:{ConnectionStringName}", Place: string.IsNullOrWhiteSpace(directory) ? "" : Place(directory)));
        if (places.Where(p => p.Place.Length > 0).GroupBy(p => p.Place).FirstOrDefault(g => g.Count() > 1) is { } shared)
        {
            throw new InvalidOperationException($"{string.Join(" and ", shared.Select(p => p.Name))} name the same database; each canton's ledger needs one of its own.");
        }

        return shards;
    }

    private static string Place(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{builder.Host}:{builder.Port}/{builder.Database}";
    }

    private IReadOnlyList<LedgerDatabase> Open()
    {
        var connectionString = _configuration.GetConnectionString(ConnectionStringName);
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            var directory = DataDirectory.Resolve(_configuration);
            _logger.LogInformation("No ConnectionStrings:Confederal configured: starting the embedded PostgreSQL in {Directory}", directory);
            _embedded = EmbeddedPostgres.StartAsync(directory).GetAwaiter().GetResult();
            _embedded.CreateDatabaseAsync("confederal").GetAwaiter().GetResult();
            connectionString = _embedded.ConnectionString("confederal");
            _logger.LogInformation("Embedded PostgreSQL listening on 127.0.0.1:{Port}", _embedded.Port);
        }

        return [Build(LedgerDatabase.DirectoryId, connectionString), .. ReadShards(_configuration).Select(s => Build(s.Key, s.Value))];
    }

    /// <summary>A database's data source; for a connection string that names several hosts (a primary and its streaming
    /// standbys, <c>Host=a:5432,b:5432</c>), the ledger's on whichever is the primary (Npgsql finds it, a promoted
    /// standby included) and the one of <see cref="ReadsOf"/> on a standby when one answers.</summary>
    private LedgerDatabase Build(string id, string connectionString)
    {
        var builder = Configure(connectionString);
        if (!builder.ConnectionStringBuilder.Host!.Contains(',', StringComparison.Ordinal))
        {
            var single = builder.Build();
            _owned.Add(single);
            _reads[id] = single;
            return new LedgerDatabase(id, single);
        }

        var hosts = builder.BuildMultiHost();
        _owned.Add(hosts);
        _reads[id] = hosts.WithTargetSession(TargetSessionAttributes.PreferStandby);
        return new LedgerDatabase(id, hosts.WithTargetSession(TargetSessionAttributes.ReadWrite));
    }

    private static NpgsqlDataSourceBuilder Configure(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
        // Every command borrows a pooled connection. Resetting its session on each return prepends the server-side reset
        // (SET SESSION AUTHORIZATION DEFAULT, RESET ALL, pg_advisory_unlock_all(), …) to the next command: it halved the
        // rate of single-row reads. Nothing here leaves session state behind (only SET LOCAL and transaction-scoped
        // advisory locks; the migration lock is released in a finally).
        builder.ConnectionStringBuilder.NoResetOnClose = true;
        builder.ConnectionStringBuilder.ApplicationName ??= "confederal-api";
        return builder;
    }
}

/// <summary>Migrates the schema of every database (Marten's, then ours) before Marten's daemon and the server start,
/// then runs the notaries that seal each log. The directory must answer; a canton's database that does not is migrated
/// when it does (its canton answers 503 until then, the others are served meanwhile).</summary>
internal sealed partial class EventStoreHost(
    Database database, IEnumerable<IProjection> projections, Features.Audit.Notaries notaries, Features.Persons.PersonKeys persons, Features.Fiscal.FiscalYearKeys years,
    ILogger<EventStoreHost> logger) : BackgroundService
{
    private readonly string[] _tables = [.. projections.SelectMany(p => p.Tables)];

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var ledger in database.Databases)
        {
            try
            {
                await MigrateAsync(ledger, cancellationToken);
            }
            catch (Exception e) when (ledger.Id != LedgerDatabase.DirectoryId && Backoff.IsUnavailable(e))
            {
                Unavailable(ledger.Id, e.Message);
            }
        }

        await base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(database.Databases.Select(async ledger =>
        {
            await MigratedAsync(ledger, stoppingToken);
            await notaries[ledger.Id].RunAsync(stoppingToken);
        }));

    private async Task MigrateAsync(LedgerDatabase ledger, CancellationToken ct)
    {
        await Schema.MigrateAsync(ledger.DataSource, Database.Migrations, _tables, ct);
        if (ledger.Id == LedgerDatabase.DirectoryId)
        {
            await persons.ImportRecordedInClearAsync(ct);
            await years.ImportRecordedBeforeAsync(ct);
        }

        database.Migrated(ledger.Id);
    }

    private async Task MigratedAsync(LedgerDatabase ledger, CancellationToken ct)
    {
        var backoff = new Backoff(logger, $"Migrating the database of '{ledger.Id}'");
        while (!database.IsMigrated(ledger.Id))
        {
            try
            {
                await MigrateAsync(ledger, ct);
                backoff.Succeeded();
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                await backoff.FailedAsync(e, ct);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The database of '{DatabaseId}' does not answer ({Reason}): its canton answers 503 until it does and its schema is migrated")]
    private partial void Unavailable(string databaseId, string reason);
}
