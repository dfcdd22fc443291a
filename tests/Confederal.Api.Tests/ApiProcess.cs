using System.Diagnostics;
using System.Net.Http.Headers;
using Confederal.Api.Infrastructure;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Api.Tests;

/// <summary>The built API (Confederal.Api.dll beside the tests) as a process of its own on 127.0.0.1, so that a test
/// can kill it as an operating system would: SIGKILL, no shutdown, no finally blocks.</summary>
public sealed class ApiProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];

    private ApiProcess(Process process, string dataDirectory)
    {
        _process = process;
        SigningKey = DevTokens.LoadOrCreateKey(dataDirectory);
    }

    public Uri Address { get; private set; } = null!;

    public SecurityKey SigningKey { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Starts the API on <paramref name="connectionString"/> with its files in <paramref name="dataDirectory"/>
    /// and waits until it listens (after its migrations).</summary>
    public static async Task<ApiProcess> StartAsync(string connectionString, string dataDirectory)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "Confederal.Api.dll")])
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            Environment =
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Development",
                ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
                ["ConnectionStrings__Confederal"] = connectionString,
                [DataDirectory.Setting] = dataDirectory,
                ["Logging__Console__FormatterName"] = "simple",
            },
        };
        var api = new ApiProcess(Process.Start(start)!, dataDirectory);
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Read(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (api._output)
            {
                api._output.Add(line);
            }

            const string Marker = "Confederal listens on ";
            if (line.IndexOf(Marker, StringComparison.Ordinal) is >= 0 and var at)
            {
                listening.TrySetResult(new Uri(line[(at + Marker.Length)..].Split(' ')[0]));
            }
        }

        api._process.OutputDataReceived += (_, e) => Read(e.Data);
        api._process.ErrorDataReceived += (_, e) => Read(e.Data);
        api._process.BeginOutputReadLine();
        api._process.BeginErrorReadLine();
        var exited = api._process.WaitForExitAsync();
        if (await Task.WhenAny(listening.Task, exited, Task.Delay(TimeSpan.FromSeconds(60))) != listening.Task)
        {
            var output = api.Output;
            await api.DisposeAsync();
            throw new InvalidOperationException($"The API did not start:{Environment.NewLine}{output}");
        }

        api.Address = await listening.Task;
        return api;
    }

    /// <summary>What the process wrote so far, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return string.Join(Environment.NewLine, _output.TakeLast(40));
            }
        }
    }

    public HttpClient ClientAs(string role, string? subject = null, string? canton = null) =>
        new() { BaseAddress = Address, Timeout = TimeSpan.FromMinutes(2), DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", DevTokens.Issue(SigningKey, role, subject, canton)) } };

    /// <summary>SIGKILL: the process ends at once, in whatever it was doing.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await KillAsync();
        }

        _process.Dispose();
    }
}
