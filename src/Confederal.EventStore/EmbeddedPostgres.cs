using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// A private PostgreSQL cluster run from the installed server binaries: initdb on first use, started on a free
/// loopback port, stopped on dispose, reused by the next start. As root, the server runs as the 'postgres' user
/// (initdb and postgres refuse root).
/// </summary>
public sealed class EmbeddedPostgres : IAsyncDisposable
{
    private const string SuperUser = "confederal";
    private readonly string _binDirectory;
    private readonly string _clusterDirectory;
    private readonly bool _asPostgresUser;
    private readonly bool _deleteOnDispose;

    private EmbeddedPostgres(string binDirectory, string clusterDirectory, bool deleteOnDispose)
    {
        _binDirectory = binDirectory;
        _clusterDirectory = clusterDirectory;
        _deleteOnDispose = deleteOnDispose;
        _asPostgresUser = Environment.IsPrivilegedProcess;
    }

    /// <summary>Connection string to the 'postgres' maintenance database as the cluster's superuser.</summary>
    public string AdminConnectionString { get; private set; } = "";

    public int Port { get; private set; }

    /// <summary>The server's log (its standard error, as <c>pg_ctl start -l</c> writes it).</summary>
    public string ServerLog => Path.Combine(_clusterDirectory, "server.log");

    /// <summary>Connection string to <paramref name="database"/>.</summary>
    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = database }.ConnectionString;

    /// <summary>Starts the cluster in <paramref name="dataDirectory"/>/postgres (creating it on first use), or attaches to
    /// it if it is already running.</summary>
    /// <param name="settings">Server settings written at initdb (e.g. fsync=off for throwaway test clusters).</param>
    /// <param name="deleteOnDispose">Delete the cluster's files when disposed (tests).</param>
    public static async Task<EmbeddedPostgres> StartAsync(
        string dataDirectory,
        IReadOnlyDictionary<string, string>? settings = null,
        bool deleteOnDispose = false,
        CancellationToken ct = default)
    {
        var cluster = new EmbeddedPostgres(FindBinDirectory(), Path.Combine(Path.GetFullPath(dataDirectory), "postgres"), deleteOnDispose);
        await cluster.StartAsync(settings ?? new Dictionary<string, string>(), ct);
        return cluster;
    }

    /// <summary>Creates <paramref name="database"/> unless it exists, optionally as a copy of <paramref name="template"/>.</summary>
    public async Task CreateDatabaseAsync(string database, string? template = null, CancellationToken ct = default)
    {
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync(ct);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", connection);
        exists.Parameters.Add(new NpgsqlParameter<string> { TypedValue = database });
        if (await exists.ExecuteScalarAsync(ct) is not null)
        {
            return;
        }

        var quoted = QuoteIdentifier(database);
        await using var create = new NpgsqlCommand(
            template is null ? $"CREATE DATABASE {quoted}" : $"CREATE DATABASE {quoted} TEMPLATE {QuoteIdentifier(template)}", connection);
        await create.ExecuteNonQueryAsync(ct);
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await RunAsync("pg_ctl", ["stop", "-D", _clusterDirectory, "-m", "fast", "-w", "-t", "60"], CancellationToken.None, throwOnError: false);
        if (_deleteOnDispose)
        {
            Directory.Delete(Path.GetDirectoryName(_clusterDirectory)!, recursive: true);
        }
    }

    private string PasswordFile => _clusterDirectory + ".password";

    private async Task StartAsync(IReadOnlyDictionary<string, string> settings, CancellationToken ct)
    {
        if (!File.Exists(Path.Combine(_clusterDirectory, "PG_VERSION")))
        {
            await InitAsync(settings, ct);
        }

        var password = (await File.ReadAllTextAsync(PasswordFile, ct)).Trim();
        var status = await RunAsync("pg_ctl", ["status", "-D", _clusterDirectory], ct, throwOnError: false);
        if (status.ExitCode == 0)
        {
            Port = ReadRunningPort();
        }
        else
        {
            Port = FreeLoopbackPort();
            await StartServerAsync(ct);
        }

        AdminConnectionString = new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Username = SuperUser,
            Password = password,
            Database = "postgres",
        }.ConnectionString;
    }

    /// <summary>Stops the server, leaving the cluster in place for <see cref="StartAgainAsync"/>: fast (sessions are
    /// told to end, transactions in flight roll back) or immediate (the server quits at once, as in a crash, and
    /// recovers from its log at the next start).</summary>
    public async Task StopAsync(bool immediate = false, CancellationToken ct = default)
    {
        await RunAsync("pg_ctl", ["stop", "-D", _clusterDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60"], ct);
    }

    /// <summary>
    /// Starts a streaming replica of this server in <paramref name="dataDirectory"/>/postgres: a base backup taken with
    /// <c>pg_basebackup -R</c> (which makes it a standby of this server), started on a port of its own, connected under
    /// <paramref name="name"/> (its <c>application_name</c>, what <c>synchronous_standby_names</c> names). Returns once it
    /// streams this server's log.
    /// </summary>
    public async Task<EmbeddedPostgres> StartReplicaAsync(string dataDirectory, string name, bool deleteOnDispose = false, CancellationToken ct = default)
    {
        var replica = new EmbeddedPostgres(_binDirectory, Path.Combine(Path.GetFullPath(dataDirectory), "postgres"), deleteOnDispose);
        var password = (await File.ReadAllTextAsync(PasswordFile, ct)).Trim();
        Directory.CreateDirectory(Path.GetDirectoryName(replica._clusterDirectory)!);
        await File.WriteAllTextAsync(replica.PasswordFile, password, ct);
        OwnerOnly(replica.PasswordFile);
        if (_asPostgresUser)
        {
            await RunAsync("chown", ["postgres:postgres", Path.GetDirectoryName(replica._clusterDirectory)!], ct, useServerUser: false);
        }

        var primary = $"host=127.0.0.1 port={Port} user={SuperUser} password={password} application_name={name}";
        await RunAsync("pg_basebackup", ["-d", primary, "-D", replica._clusterDirectory, "-R", "-X", "stream", "-c", "fast"], ct);
        replica.Port = FreeLoopbackPort();
        replica.AdminConnectionString = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Port = replica.Port }.ConnectionString;
        await replica.StartServerAsync(ct);
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync(ct);
        await using var streaming = new NpgsqlCommand("SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", connection);
        streaming.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        while ((long)(await streaming.ExecuteScalarAsync(ct))! == 0)
        {
            await Task.Delay(50, ct);
        }

        return replica;
    }

    /// <summary>Makes the standby <paramref name="name"/> synchronous: from now on a commit returns only once that standby
    /// has the commit's log on disk (<c>synchronous_commit = on</c>), so its promotion loses no acknowledged commit.</summary>
    public async Task RequireSynchronousStandbyAsync(string name, CancellationToken ct = default)
    {
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync(ct);
        await using var set = new NpgsqlCommand(
            $"ALTER SYSTEM SET synchronous_standby_names = '{name.Replace("'", "''", StringComparison.Ordinal)}'; " +
            "ALTER SYSTEM SET synchronous_commit = 'on'; SELECT pg_reload_conf();", connection);
        await set.ExecuteNonQueryAsync(ct);
        await using var sync = new NpgsqlCommand("SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND sync_state = 'sync'", connection);
        sync.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        while ((long)(await sync.ExecuteScalarAsync(ct))! == 0)
        {
            await Task.Delay(50, ct);
        }
    }

    /// <summary>Promotes this standby to a primary (<c>pg_ctl promote</c>), returning once it accepts writes.</summary>
    public async Task PromoteAsync(CancellationToken ct = default) =>
        await RunAsync("pg_ctl", ["promote", "-D", _clusterDirectory, "-w", "-t", "60"], ct);

    /// <summary>Starts a stopped server again on the same port, so that clients find it where it was.</summary>
    public Task StartAgainAsync(CancellationToken ct = default) => StartServerAsync(ct);

    private async Task StartServerAsync(CancellationToken ct) =>
        await RunAsync("pg_ctl",
            ["start", "-D", _clusterDirectory, "-w", "-t", "60", "-l", ServerLog,
             "-o", $"-p {Port}"],
            ct);

    private async Task InitAsync(IReadOnlyDictionary<string, string> settings, CancellationToken ct)
    {
        Directory.CreateDirectory(_clusterDirectory);
        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        await File.WriteAllTextAsync(PasswordFile, password, ct);
        OwnerOnly(PasswordFile);

        // initdb reads the password from a file the server's user can read; it is removed right after.
        var initPasswordFile = Path.Combine(_clusterDirectory, "..", $".initdb-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(initPasswordFile, password, ct);
        OwnerOnly(initPasswordFile);
        try
        {
            if (_asPostgresUser)
            {
                await RunAsync("chown", ["postgres:postgres", _clusterDirectory, initPasswordFile], ct, useServerUser: false);
                var reachable = await RunAsync("test", ["-w", _clusterDirectory], ct, throwOnError: false);
                if (reachable.ExitCode != 0)
                {
                    throw new InvalidOperationException(
                        $"The PostgreSQL server runs as the 'postgres' user, which cannot reach {_clusterDirectory}. " +
                        "Choose a data folder outside a private home folder with CONFEDERAL_DATA_DIR, " +
                        "or set ConnectionStrings__Confederal to use an existing server.");
                }
            }

            await RunAsync("initdb",
                ["-D", _clusterDirectory, "-U", SuperUser, "--pwfile", initPasswordFile, "--auth-host=scram-sha-256",
                 "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-instructions"],
                ct);
        }
        finally
        {
            File.Delete(initPasswordFile);
        }

        var conf = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["listen_addresses"] = "'127.0.0.1'",
            ["unix_socket_directories"] = "''",
            ["max_connections"] = "200",
            // Statements logged (log_statement, log_min_duration_statement) are logged without their parameters: the
            // census register's writes carry birth dates, which an erasure must be able to forget.
            ["log_parameter_max_length"] = "0",
        };
        foreach (var (key, value) in settings)
        {
            conf[key] = value;
        }

        var lines = conf.Select(kv => $"{kv.Key} = {kv.Value}");
        await File.AppendAllLinesAsync(Path.Combine(_clusterDirectory, "postgresql.conf"), ["", "# Confederal embedded cluster", .. lines], ct);
    }

    private int ReadRunningPort()
    {
        // postmaster.pid: line 4 is the port (PostgreSQL's documented layout).
        var lines = File.ReadAllLines(Path.Combine(_clusterDirectory, "postmaster.pid"));
        return int.Parse(lines[3], CultureInfo.InvariantCulture);
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The server binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin.</summary>
    public static string FindBinDirectory()
    {
        static bool HasServer(string? dir) => dir is not null && File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "pg_ctl"));

        var configured = Environment.GetEnvironmentVariable("CONFEDERAL_PG_BINDIR");
        if (HasServer(configured))
        {
            return configured!;
        }

        try
        {
            using var pgConfig = Process.Start(new ProcessStartInfo("pg_config", "--bindir") { RedirectStandardOutput = true, RedirectStandardError = true });
            var bindir = pgConfig?.StandardOutput.ReadToEnd().Trim();
            pgConfig?.WaitForExit();
            if (HasServer(bindir))
            {
                return bindir!;
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // no pg_config on PATH
        }

        var candidate = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => (Dir: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(c => HasServer(c.Dir))
                .OrderByDescending(c => c.Version)
                .Select(c => c.Dir)
                .FirstOrDefault()
            : null;
        return candidate ?? throw new InvalidOperationException(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found: install them (Debian/Ubuntu: apt-get install postgresql), " +
            "point CONFEDERAL_PG_BINDIR at their folder, or set ConnectionStrings__Confederal to use an existing server.");
    }

    private async Task<(int ExitCode, string Output)> RunAsync(
        string tool, IReadOnlyList<string> arguments, CancellationToken ct, bool throwOnError = true, bool useServerUser = true)
    {
        var program = tool is "chown" or "test" ? tool : Path.Combine(_binDirectory, tool);
        var asPostgres = _asPostgresUser && useServerUser;
        var start = new ProcessStartInfo(asPostgres ? "runuser" : program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        if (asPostgres)
        {
            foreach (var a in (string[])["-u", "postgres", "--", program])
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        // pg_ctl start leaves the server holding inherited pipes; read to the end only what the tool itself wrote.
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        var output = (await Task.WhenAny(Task.WhenAll(stdout, stderr), Task.Delay(TimeSpan.FromSeconds(2), ct))) is Task<string[]>
            ? stdout.Result + stderr.Result
            : "";
        if (throwOnError && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{tool} {string.Join(' ', arguments)} failed ({process.ExitCode}): {output}");
        }

        return (process.ExitCode, output);
    }

    private static void OwnerOnly(string file)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private static string QuoteIdentifier(string name) => "\"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
