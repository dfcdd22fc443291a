using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Confederal.Api.Infrastructure;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Benchmarks;

/// <summary>
/// The built API (Confederal.Api.dll, copied beside this program) run with <c>dotnet</c> as a process of its own, so that
/// its memory is its own and nothing of the load generator's: Kestrel on 127.0.0.1 at a free port, Development, a fresh
/// data folder holding the dev signing key that this side issues tokens with, and the API's own server GC. It logs
/// warnings only; the first lines it writes are echoed here.
/// </summary>
public sealed class ApiProcess : IAsyncDisposable
{
    private const int EchoedLines = 20;
    private readonly Process _process;
    private readonly string? _ownDataDirectory;
    private readonly Queue<string> _recent = new();
    private int _lines;

    private ApiProcess(Process process, string? ownDataDirectory, Uri address, SecurityKey signingKey)
    {
        _process = process;
        _ownDataDirectory = ownDataDirectory;
        Address = address;
        SigningKey = signingKey;
    }

    public Uri Address { get; }

    public SecurityKey SigningKey { get; }

    public int Pid => _process.Id;

    /// <summary>Lines the API wrote to its console (warnings and errors).</summary>
    public int LoggedLines => Volatile.Read(ref _lines);

    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the API wrote, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_recent)
            {
                return string.Join(Environment.NewLine, _recent);
            }
        }
    }

    /// <summary>Starts the API on <paramref name="connectionString"/> with further configuration <paramref name="settings"/>
    /// (environment variable names, e.g. <c>RateLimiting__Client__Burst</c>) and waits until /health/ready answers 200.
    /// Its files (signing and audit keys) go to <paramref name="dataDirectory"/>, kept for a restart, or else to a fresh
    /// folder deleted with the process.</summary>
    public static async Task<ApiProcess> StartAsync(
        string connectionString, IReadOnlyDictionary<string, string>? settings = null, string? dataDirectory = null)
    {
        var own = dataDirectory is null ? Directory.CreateTempSubdirectory("confederal-api-process-").FullName : null;
        dataDirectory ??= own!;
        var key = DevTokens.LoadOrCreateKey(dataDirectory);
        var address = new Uri($"http://127.0.0.1:{FreePort()}");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "Confederal.Api.dll") },
            WorkingDirectory = AppContext.BaseDirectory, // the content root: the API's appsettings are copied here
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            Environment =
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Development",
                ["ASPNETCORE_URLS"] = address.ToString().TrimEnd('/'),
                ["ConnectionStrings__Confederal"] = connectionString,
                [DataDirectory.Setting] = dataDirectory,
                ["Logging__LogLevel__Default"] = "Warning",
                ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Warning",
                ["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning",
            },
        };
        foreach (var (name, value) in settings ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        var api = new ApiProcess(process, own, address, key);
        process.OutputDataReceived += (_, e) => api.Echo(e.Data);
        process.ErrorDataReceived += (_, e) => api.Echo(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await api.WaitUntilReadyAsync(TimeSpan.FromSeconds(90));
        }
        catch
        {
            await api.DisposeAsync();
            throw;
        }

        return api;
    }

    public string Token(string role, string? subject = null, string? canton = null, TimeSpan? lifetime = null) =>
        DevTokens.Issue(SigningKey, role, subject, canton, lifetime ?? TimeSpan.FromHours(4));

    /// <summary>An HTTP client over real sockets, with its own pool of <paramref name="connections"/> connections.</summary>
    public HttpClient Client(int connections = 1) => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = connections,
        UseCookies = false,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(30),
    })
    {
        BaseAddress = Address,
        Timeout = TimeSpan.FromSeconds(60),
        DefaultRequestHeaders = { Accept = { new MediaTypeWithQualityHeaderValue("application/json") } },
    };

    /// <summary>SIGKILL: the process ends at once, in whatever it was doing, as when a machine loses power.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    /// <summary>The API process's resident set in MiB (VmRSS), or NaN once it has ended.</summary>
    public double ResidentMiB() => ProcessStatus.StatusMiB(Pid, "VmRSS");

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGTERM: the host stops gracefully (Marten's daemon, its projections and the notary finish their batch).
            using (var term = Process.Start("kill", ["-TERM", Pid.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill();
                await _process.WaitForExitAsync();
            }
        }

        _process.Dispose();
        if (_ownDataDirectory is not null)
        {
            Directory.Delete(_ownDataDirectory, recursive: true);
        }
    }

    private void Echo(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_recent)
        {
            _recent.Enqueue(line);
            if (_recent.Count > 40)
            {
                _recent.Dequeue();
            }
        }

        if (Interlocked.Increment(ref _lines) <= EchoedLines)
        {
            Console.WriteLine($"  [api] {line}");
        }
    }

    private async Task WaitUntilReadyAsync(TimeSpan patience)
    {
        using var probe = Client();
        var deadline = Stopwatch.GetTimestamp() + (long)(patience.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The API exited with code {_process.ExitCode} before it was ready (its output is above).");
            }

            try
            {
                using var response = await probe.GetAsync(new Uri("/health/ready", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"The API at {Address} was not ready within {patience.TotalSeconds:0} s.");
            }

            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Memory and CPU time of processes, read from /proc (Linux).</summary>
public static class ProcessStatus
{
    /// <summary>A size field of /proc/<paramref name="pid"/>/status (VmRSS, RssAnon, RssShmem…) in MiB; NaN when the
    /// process has ended.</summary>
    public static double StatusMiB(int pid, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    return long.Parse(line.AsSpan(field.Length + 1).Trim().TrimEnd(" kB"), CultureInfo.InvariantCulture) / 1024.0;
                }
            }
        }
        catch (IOException)
        {
            // the process ended
        }

        return double.NaN;
    }

    /// <summary>CPU seconds (user and system) the process has used so far.</summary>
    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0; // USER_HZ
    }

    /// <summary>PostgreSQL's memory: the private memory (RssAnon) of the postmaster and its children summed, and the
    /// shared memory once (the largest RssShmem among them: the shared buffers touched so far, which every backend
    /// maps); and how many processes.</summary>
    public static (double PrivateMiB, double SharedMiB, int Processes) Server(int postmaster)
    {
        var pids = new List<int> { postmaster };
        try
        {
            pids.AddRange(File.ReadAllText($"/proc/{postmaster}/task/{postmaster}/children")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)));
        }
        catch (IOException)
        {
            return (double.NaN, double.NaN, 0);
        }

        double anonymous = 0, shared = 0;
        foreach (var pid in pids)
        {
            if (StatusMiB(pid, "RssAnon") is var a && !double.IsNaN(a))
            {
                anonymous += a;
                shared = Math.Max(shared, StatusMiB(pid, "RssShmem") is var s && !double.IsNaN(s) ? s : 0);
            }
        }

        return (anonymous, shared, pids.Count);
    }
}
