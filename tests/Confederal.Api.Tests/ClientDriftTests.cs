using System.Diagnostics;

namespace Confederal.Api.Tests;

/// <summary>The committed client (src/Confederal.Client/Generated) is what Kiota, at the version the tool manifest pins,
/// generates from the committed OpenAPI document: an endpoint changed without regenerating fails here.</summary>
public sealed class ClientDriftTests
{
    private const string Update = "CONFEDERAL_UPDATE_CLIENT";
    private static readonly string Root = HostTests.RepositoryRoot();

    [Fact]
    public async Task The_committed_client_is_the_one_Kiota_generates_from_the_committed_document()
    {
        // Generated beside a copy of the document at the same relative place, so that the lock file names it alike.
        var scratch = Directory.CreateTempSubdirectory("confederal-client-").FullName;
        try
        {
            var document = Path.Combine(scratch, "openapi", "confederal.v1.json");
            Directory.CreateDirectory(Path.GetDirectoryName(document)!);
            File.Copy(Path.Combine(Root, "openapi", "confederal.v1.json"), document);
            var output = Path.Combine(scratch, "src", "Confederal.Client", "Generated");
            await GenerateAsync(document, output);

            var committed = Path.Combine(Root, "src", "Confederal.Client", "Generated");
            if (Environment.GetEnvironmentVariable(Update) == "1")
            {
                Directory.Delete(committed, recursive: true);
                await GenerateAsync(Path.Combine(Root, "openapi", "confederal.v1.json"), committed);
                File.Delete(Path.Combine(committed, ".kiota.log"));
            }

            var differences = Differences(committed, output);
            Assert.True(differences.Count == 0,
                $"src/Confederal.Client/Generated differs from what Kiota generates from openapi/confederal.v1.json ({string.Join(", ", differences.Take(10))}). " +
                $"Regenerate it with: {Update}=1 dotnet test tests/Confederal.Api.Tests --filter {nameof(The_committed_client_is_the_one_Kiota_generates_from_the_committed_document)}");
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>Kiota from the repository's tool manifest (dotnet-tools.json), restored first on a fresh machine.</summary>
    private static async Task GenerateAsync(string document, string output)
    {
        await DotnetAsync("tool", "restore");
        await DotnetAsync("kiota", "generate", "--language", "CSharp", "--openapi", document, "--output", output,
            "--class-name", "ConfederalApi", "--namespace-name", "Confederal.Client.Generated",
            "--exclude-backward-compatible", "--clean-output", "--log-level", "Error");
    }

    private static async Task DotnetAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = Root };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        var (exit, output, errors) = await ToolProcess.RunAsync(start, TimeSpan.FromMinutes(5));
        Assert.True(exit == 0, $"dotnet {string.Join(' ', arguments)} exited with {exit}: {output} {errors}");
    }

    /// <summary>The files that are only in one folder or differ, by their path in it.</summary>
    private static List<string> Differences(string committed, string generated)
    {
        static Dictionary<string, string> Files(string folder) => Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
                .Where(f => Path.GetFileName(f) != ".kiota.log") // Kiota's log of the run, not committed
                .ToDictionary(f => Path.GetRelativePath(folder, f), f => File.ReadAllText(f).ReplaceLineEndings("\n"), StringComparer.Ordinal)
            : [];

        var ours = Files(committed);
        var theirs = Files(generated);
        return [.. ours.Keys.Union(theirs.Keys).Where(f => !ours.TryGetValue(f, out var a) || !theirs.TryGetValue(f, out var b) || a != b).Order(StringComparer.Ordinal)];
    }
}
