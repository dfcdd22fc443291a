using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Organizations;
using Confederal.EventStore;
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
/// The database the API runs on: the server named by ConnectionStrings:Confederal, or, when none is configured, an
/// embedded PostgreSQL cluster in the data folder, started on first use and stopped with the application.
/// </summary>
public sealed class Database : IAsyncDisposable
{
    public const string ConnectionStringName = "Confederal";
    private readonly IConfiguration _configuration;
    private readonly ILogger _logger;
    private readonly Lazy<NpgsqlDataSource> _dataSource;
    private EmbeddedPostgres? _embedded;

    public Database(IConfiguration configuration, ILogger<Database> logger)
    {
        _configuration = configuration;
        _logger = logger;
        _dataSource = new Lazy<NpgsqlDataSource>(Open);
    }

    public static bool IsEmbedded(IConfiguration configuration) =>
        string.IsNullOrWhiteSpace(configuration.GetConnectionString(ConnectionStringName));

    /// <summary>Every migration of our read models' tables the application runs at start, after Marten's.</summary>
    public static IReadOnlyList<Migration> Migrations { get; } = [.. CantonDirectory.Migrations, .. OrganizationDirectory.Migrations, .. BudgetProjection.Migrations,
        .. Features.Census.Residences.Migrations, .. Features.Ballots.BallotBox.Migrations, .. Features.Ballots.BallotDirectory.Migrations, .. Features.Audit.Notary.Migrations, .. Idempotency.Migrations];

    public NpgsqlDataSource DataSource => _dataSource.Value;

    /// <summary>The databases of the store: the directory, Marten's default tenant.</summary>
    public IReadOnlyList<LedgerDatabase> Databases => [new LedgerDatabase(LedgerDatabase.DirectoryId, DataSource)];

    public async ValueTask DisposeAsync()
    {
        if (_dataSource.IsValueCreated)
        {
            await _dataSource.Value.DisposeAsync();
        }

        if (Interlocked.Exchange(ref _embedded, null) is { } embedded)
        {
            _logger.LogInformation("Stopping the embedded PostgreSQL");
            await embedded.DisposeAsync();
        }
    }

    private NpgsqlDataSource Open()
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

        var builder = new NpgsqlDataSourceBuilder(connectionString);
        builder.ConnectionStringBuilder.MaxAutoPrepare = 32;
        // Every command borrows a pooled connection. Resetting its session on each return prepends the server-side reset
        // (SET SESSION AUTHORIZATION DEFAULT, RESET ALL, pg_advisory_unlock_all(), …) to the next command: it halved the
        // rate of single-row reads. Nothing here leaves session state behind (only SET LOCAL and transaction-scoped
        // advisory locks; the migration lock is released in a finally).
        builder.ConnectionStringBuilder.NoResetOnClose = true;
        builder.ConnectionStringBuilder.ApplicationName ??= "confederal-api";
        return builder.Build();
    }
}

/// <summary>Migrates the schema of every database (Marten's, then ours) before Marten's daemon and the server start,
/// then runs the notaries that seal each log.</summary>
internal sealed class EventStoreHost(Database database, IEnumerable<IProjection> projections, Features.Audit.Notaries notaries) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var ledger in database.Databases)
        {
            await Schema.MigrateAsync(ledger.DataSource, Database.Migrations, [.. projections.SelectMany(p => p.Tables)], cancellationToken);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(notaries.All.Select(n => n.RunAsync(stoppingToken)));
}
