using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Confederal.Api.Tests;

/// <summary>
/// The committed OpenAPI document passes Redocly's recommended rules and Spectral's default ruleset with no error and no
/// warning (openapi/lint says how, and why Redocly's info-license is off): what a generated client and its reader need,
/// every operation summarized and described, every tag described, public operations saying they need no token. The
/// linters are the versions openapi/lint/package-lock.json pins, installed by npm once into ~/.cache/confederal.
/// </summary>
public sealed class OpenApiLintTests
{
    private static readonly string Root = HostTests.RepositoryRoot();
    private static readonly string Document = Path.Combine(Root, "openapi", "confederal.v1.json");
    private static readonly string Rules = Path.Combine(Root, "openapi", "lint");
    private static readonly Lazy<Task<string>> Linters = new(InstallAsync);

    [Fact]
    public async Task The_committed_openapi_document_passes_Redocly_recommended_rules()
    {
        var (exit, output, errors) = await LintAsync("redocly", "lint", Document, "--config", Path.Combine(Rules, "redocly.yaml"), "--format=json");

        // Redocly exits 1 on errors only; its report counts the warnings.
        var problems = new List<string>();
        var totals = (Errors: -1, Warnings: -1);
        try
        {
            using var report = JsonDocument.Parse(output);
            var counts = report.RootElement.GetProperty("totals");
            totals = (counts.GetProperty("errors").GetInt32(), counts.GetProperty("warnings").GetInt32());
            problems.AddRange(report.RootElement.GetProperty("problems").EnumerateArray().Select(p =>
                $"{p.GetProperty("severity").GetString()} {p.GetProperty("ruleId").GetString()}: {p.GetProperty("message").GetString()} " +
                $"at {string.Join(", ", p.GetProperty("location").EnumerateArray().Select(l => l.GetProperty("pointer").GetString()))}"));
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            problems.Add($"(no report: {e.Message}) {output}");
        }

        Assert.True(exit == 0 && totals == (0, 0),
            $"redocly lint openapi/confederal.v1.json (exit {exit}, {totals.Errors} errors, {totals.Warnings} warnings):\n" +
            string.Join("\n", problems) + "\n" + errors);
    }

    [Fact]
    public async Task The_committed_openapi_document_passes_Spectral_default_ruleset()
    {
        var (exit, output, errors) = await LintAsync(
            "spectral", "lint", Document, "--ruleset", Path.Combine(Rules, ".spectral.yaml"), "--fail-severity=warn");

        Assert.True(exit == 0, $"spectral lint openapi/confederal.v1.json (exit {exit}):\n{output}\n{errors}");
    }

    private static async Task<(int Exit, string Output, string Errors)> LintAsync(string linter, params string[] arguments)
    {
        var folder = await Linters.Value;
        var start = new ProcessStartInfo(Path.Combine(folder, "node_modules", ".bin", linter)) { WorkingDirectory = Root };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Nothing leaves the machine (Redocly's telemetry and update notice), and no colour codes in failure messages.
        start.Environment["REDOCLY_TELEMETRY"] = "off";
        start.Environment["REDOCLY_SUPPRESS_NOTIFICATIONS"] = "true";
        start.Environment["NO_COLOR"] = "1";
        return await ToolProcess.RunAsync(start, TimeSpan.FromMinutes(2), "the OpenAPI linters need npm: apt-get install npm");
    }

    /// <summary>The folder whose node_modules holds the pinned linters: one per content of package.json and its lock, so
    /// that a change of either installs afresh. Test processes running at once each install into a folder of their own
    /// and move it into place; the first move wins, the others' copies are deleted.</summary>
    private static async Task<string> InstallAsync()
    {
        var manifest = await File.ReadAllBytesAsync(Path.Combine(Rules, "package.json"));
        var lockFile = await File.ReadAllBytesAsync(Path.Combine(Rules, "package-lock.json"));
        var folder = Path.Combine(CacheFolder(), $"openapi-lint-{Convert.ToHexStringLower(SHA256.HashData([.. manifest, .. lockFile]))[..16]}");
        if (Installed(folder))
        {
            return folder;
        }

        var staging = Directory.CreateDirectory($"{folder}.{Guid.NewGuid():N}");
        try
        {
            await File.WriteAllBytesAsync(Path.Combine(staging.FullName, "package.json"), manifest);
            await File.WriteAllBytesAsync(Path.Combine(staging.FullName, "package-lock.json"), lockFile);
            // No install scripts: the linters need none (the one in the tree, @scarf/scarf's, only reports the install).
            var npm = new ProcessStartInfo("npm") { WorkingDirectory = staging.FullName, ArgumentList = { "ci", "--no-audit", "--no-fund", "--ignore-scripts" } };
            var (exit, output, errors) = await ToolProcess.RunAsync(npm, TimeSpan.FromMinutes(10), "the OpenAPI linters need npm: apt-get install npm");
            if (exit != 0 || !Installed(staging.FullName))
            {
                throw new InvalidOperationException($"npm ci of openapi/lint failed ({exit}): {output} {errors}");
            }

            if (Directory.Exists(folder) && !Installed(folder))
            {
                Directory.Delete(folder, recursive: true); // left incomplete by hand: only whole installs are moved into place
            }

            try
            {
                Directory.Move(staging.FullName, folder);
            }
            catch (IOException) when (Installed(folder))
            {
                // Another test process moved its install into place first.
            }
        }
        finally
        {
            if (staging.Exists)
            {
                staging.Delete(recursive: true);
            }
        }

        return folder;
    }

    private static bool Installed(string folder) =>
        File.Exists(Path.Combine(folder, "node_modules", ".bin", "redocly")) && File.Exists(Path.Combine(folder, "node_modules", ".bin", "spectral"));

    /// <summary>Where installs are kept between runs, as for axe-core (<see cref="Browser.AxeCore"/>).</summary>
    private static string CacheFolder()
    {
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Directory.CreateDirectory(Path.Combine(root, "confederal")).FullName;
    }
}
