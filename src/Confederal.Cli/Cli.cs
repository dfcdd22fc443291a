using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Confederal.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Kiota.Abstractions;
using Polly.Timeout;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Confederal.Cli;

/// <summary>Exit codes of every command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>What was checked does not hold: verification failed, the replay differs, the server contradicts an export.</summary>
    public const int Failed = 1;

    /// <summary>Bad arguments, unreadable files, unreachable servers: nothing was checked.</summary>
    public const int Usage = 2;
}

/// <summary>A failure to report as one clear line, with its exit code.</summary>
public sealed class CliException(string message, int exitCode = ExitCodes.Usage) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>What the commands talk to, injectable so that tests hand in their own server, console and configuration.</summary>
public sealed class CliContext(
    IAnsiConsole console, IAnsiConsole error, Func<ConfederalClientOptions, ConfederalClient> client, IConfiguration configuration)
{
    public IAnsiConsole Console { get; } = console;

    public IAnsiConsole Error { get; } = error;

    /// <summary>Configuration of the platform's keys and data folder: environment variables by default.</summary>
    public IConfiguration Configuration { get; } = configuration;

    /// <summary>The environment the platform's keys are loaded for (DOTNET_ENVIRONMENT, else ASPNETCORE_ENVIRONMENT, else
    /// Production, as a host decides it).</summary>
    public string EnvironmentName { get; init; } =
        Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT") ?? Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT") ?? "Production";

    /// <summary>How long a replay waits for the API's read model to reach the replayed position.</summary>
    public TimeSpan ServedWait { get; init; } = TimeSpan.FromSeconds(30);

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false) },
    };

    /// <summary>A client of the API at <paramref name="api"/>, with <paramref name="token"/> as its bearer token when given.</summary>
    public ConfederalClient Client(Uri api, string? token) => client(new ConfederalClientOptions
    {
        BaseAddress = api,
        Token = token is null ? null : _ => ValueTask.FromResult(token),
    });

    /// <summary>The real console, HTTP and environment.</summary>
    public static CliContext Default() => new(
        AnsiConsole.Console,
        AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(System.Console.Error) }),
        ConfederalClient.Create,
        new ConfigurationBuilder().AddEnvironmentVariables().Build());
}

/// <summary>The command tree and how it runs: parse errors and failures are one clear message and an exit code.</summary>
public static class Cli
{
    public static RootCommand Build(CliContext context) => new("Confederal's command-line tool.")
    {
        DevCommands.Build(context),
        AuditCommands.Build(context),
        ProjectionCommands.Build(context),
        PersonCommands.Build(context),
        PlacementCommands.Build(context),
    };

    public static async Task<int> RunAsync(string[] args, CliContext context, CancellationToken ct = default)
    {
        var parse = Build(context).Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                context.Error.MarkupLineInterpolated($"[red]{error.Message}[/]");
            }

            context.Error.WriteLine("Run with --help for the usage.");
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration
        {
            Output = context.Console.Profile.Out.Writer,
            Error = context.Error.Profile.Out.Writer,
            EnableDefaultExceptionHandler = false,
        }, ct);
    }

    /// <summary>An action whose failures print one line (never a stack trace) and exit with their code: the API's
    /// refusals and an API out of reach (after the client's retries) too.</summary>
    public static Func<ParseResult, CancellationToken, Task<int>> Guarded(CliContext context, Func<ParseResult, CancellationToken, Task<int>> action) =>
        async (parse, ct) =>
        {
            try
            {
                return await action(parse, ct);
            }
            catch (CliException e)
            {
                context.Error.MarkupLineInterpolated($"[red]{e.Message}[/]");
                return e.ExitCode;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                context.Error.WriteLine("Cancelled.");
                return ExitCodes.Usage;
            }
            catch (Exception e)
            {
                context.Error.MarkupLineInterpolated($"[red]{Describe(e)}[/]");
                return ExitCodes.Usage;
            }
        };

    private static string Describe(Exception e) => e switch
    {
        FileNotFoundException f => $"File not found: {f.FileName}",
        DirectoryNotFoundException or IOException or UnauthorizedAccessException => e.Message,
        ApiException refusal => Refusals.Describe(refusal),
        HttpRequestException h => $"The API could not be reached: {h.Message}",
        TimeoutRejectedException or TaskCanceledException => "The API did not answer in time.",
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    /// <summary>Runs <paramref name="work"/> under a progress bar of <paramref name="unit"/> with counts and rate;
    /// <paramref name="work"/> reports (done, total) with total 0 when not known.</summary>
    public static async Task<T> ProgressAsync<T>(IAnsiConsole console, string description, string unit, Func<Action<long, long>, Task<T>> work)
    {
        T result = default!;
        await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new CountColumn(unit), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async progress =>
            {
                var task = progress.AddTask(description, maxValue: 1);
                task.IsIndeterminate = true;
                result = await work((done, total) =>
                {
                    if (total > 0)
                    {
                        task.IsIndeterminate = false;
                        task.MaxValue = Math.Max(total, done);
                    }

                    task.Value = done;
                });
                task.MaxValue = Math.Max(task.Value, 1);
                task.IsIndeterminate = false;
                task.StopTask();
            });
        return result;
    }

    /// <summary>"1,234 / 5,678 events  12,345/s": the count and the rate over the run.</summary>
    private sealed class CountColumn(string unit) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime)
        {
            var elapsed = task.ElapsedTime?.TotalSeconds ?? 0;
            var rate = elapsed > 0 ? task.Value / elapsed : 0;
            var total = task.IsIndeterminate ? "" : $" / {task.MaxValue:N0}";
            return new Text($"{task.Value:N0}{total} {unit}  {rate:N0}/s");
        }
    }
}
