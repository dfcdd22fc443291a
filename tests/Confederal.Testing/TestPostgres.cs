using System.Collections.Concurrent;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Testing;

/// <summary>
/// One throwaway PostgreSQL cluster per test run (per test assembly process), deleted at exit; an isolated database
/// per test class, copied from a template that is migrated once.
/// </summary>
public static class TestPostgres
{
    private static readonly Lazy<Task<EmbeddedPostgres>> Cluster = new(StartAsync);
    private static readonly ConcurrentDictionary<string, Lazy<Task<string>>> Templates = new(StringComparer.Ordinal);
    private static int _databases;

    /// <summary>A new, empty database migrated with <paramref name="migrations"/>; returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync(IReadOnlyList<Migration> migrations)
    {
        var cluster = await Cluster.Value;
        var key = string.Join("|", migrations.Select(m => m.Id));
        var template = await Templates.GetOrAdd(key, _ => new Lazy<Task<string>>(() => CreateTemplateAsync(cluster, migrations))).Value;
        var name = $"test_{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}";
        await cluster.CreateDatabaseAsync(name, template);
        return cluster.ConnectionString(name);
    }

    /// <summary>The cluster itself, for tests that need to act on the server.</summary>
    public static Task<EmbeddedPostgres> ClusterAsync() => Cluster.Value;

    private static async Task<string> CreateTemplateAsync(EmbeddedPostgres cluster, IReadOnlyList<Migration> migrations)
    {
        var name = $"template_{Templates.Count}_{Guid.NewGuid():N}";
        await cluster.CreateDatabaseAsync(name);
        var connectionString = new NpgsqlConnectionStringBuilder(cluster.ConnectionString(name)) { Pooling = false }.ConnectionString;
        await using (var dataSource = NpgsqlDataSource.Create(connectionString))
        {
            await Schema.MigrateAsync(dataSource, migrations);
        }

        return name;
    }

    /// <summary>A server of the test's own beside the shared one (another canton's, a directory): a new cluster on a
    /// loopback port of its own, with <paramref name="settings"/> over the throwaway ones, deleted when the test disposes
    /// it (or by the next run, if this process dies first).</summary>
    public static async Task<EmbeddedPostgres> StartServerAsync(IReadOnlyDictionary<string, string>? settings = null)
    {
        await Cluster.Value; // the abandoned clusters of earlier runs are removed first
        var all = new Dictionary<string, string>(ThrowawaySettings);
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            all[key] = value;
        }

        return await EmbeddedPostgres.StartAsync(NewClusterDirectory(), all, deleteOnDispose: true);
    }

    /// <summary>A streaming replica of <paramref name="primary"/> (<c>pg_basebackup -R</c>), connected as
    /// <paramref name="name"/>; deleted when the test disposes it.</summary>
    public static Task<EmbeddedPostgres> StartReplicaAsync(EmbeddedPostgres primary, string name) =>
        primary.StartReplicaAsync(NewClusterDirectory(), name, deleteOnDispose: true);

    /// <summary>A database migrated with <paramref name="migrations"/> on a server of the test's own; returns its
    /// connection string.</summary>
    public static async Task<string> CreateDatabaseAsync(EmbeddedPostgres server, string name, IReadOnlyList<Migration> migrations)
    {
        await server.CreateDatabaseAsync(name);
        var connectionString = server.ConnectionString(name);
        await using (var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString))
        {
            await Schema.MigrateAsync(dataSource, migrations);
        }

        return connectionString;
    }

    // Throwaway data: durability buys nothing here and costs seconds.
    private static readonly IReadOnlyDictionary<string, string> ThrowawaySettings = new Dictionary<string, string>
    {
        ["fsync"] = "off",
        ["synchronous_commit"] = "off",
        ["full_page_writes"] = "off",
    };

    private static string NewClusterDirectory() => Path.Combine(Path.GetTempPath(), $"confederal-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");

    private static async Task<EmbeddedPostgres> StartAsync()
    {
        await RemoveAbandonedClustersAsync();
        var cluster = await EmbeddedPostgres.StartAsync(NewClusterDirectory(), ThrowawaySettings, deleteOnDispose: true);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.DisposeAsync().AsTask().GetAwaiter().GetResult();
        return cluster;
    }

    /// <summary>Clusters whose test process died before cleaning up (its id is in the folder's name): stopped if still
    /// running, then deleted. Folders of live processes, such as a parallel test assembly's, are left alone. Test
    /// processes starting together would remove the same folder at once (one deleting what the other starts), so each
    /// first claims a folder by renaming it to a name of its own; the others no longer find it.</summary>
    private static async Task RemoveAbandonedClustersAsync()
    {
        foreach (var directory in Directory.GetDirectories(Path.GetTempPath(), "confederal-tests-*"))
        {
            var owner = Path.GetFileName(directory).Split('-') is [_, _, var pid, _] && int.TryParse(pid, out var id) ? id : 0;
            if (owner == 0 || IsAlive(owner))
            {
                continue;
            }

            var claimed = Path.Combine(Path.GetTempPath(), $"confederal-tests-{Environment.ProcessId}-{Guid.NewGuid():N}");
            try
            {
                Directory.Move(directory, claimed);
            }
            catch (IOException)
            {
                continue;
            }

            if (File.Exists(Path.Combine(claimed, "postgres", "PG_VERSION")))
            {
                await (await EmbeddedPostgres.StartAsync(claimed, deleteOnDispose: true)).DisposeAsync();
            }
            else
            {
                Directory.Delete(claimed, recursive: true);
            }
        }
    }

    private static bool IsAlive(int processId)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
