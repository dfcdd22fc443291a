using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace Confederal.Api.Tests.Browser;

/// <summary>
/// The accessibility engine the browser tests inject into pages: axe-core's <c>axe.min.js</c> from the package the npm
/// registry serves, pinned by version and by the SHA-512 integrity the registry publishes for it. npm (the registry's
/// own client, as configured on the machine) fetches the tarball once into <c>~/.cache/confederal</c>; every test run
/// checks the cached tarball against the pin before reading the script out of it, so a changed or truncated download
/// is refused, never run.
/// </summary>
internal static class AxeCore
{
    public const string Version = "4.14.1";

    /// <summary>The registry's <c>dist.integrity</c> of axe-core 4.14.1.</summary>
    private const string Integrity = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==";

    private const string Script = "package/axe.min.js";

    private static readonly Lazy<Task<string>> Source = new(LoadAsync);

    /// <summary>The text of <c>axe.min.js</c>, fetched and checked once per test run.</summary>
    public static Task<string> SourceAsync() => Source.Value;

    /// <summary>The script inside <paramref name="tarball"/>, if the tarball is exactly the pinned one.</summary>
    public static string Read(byte[] tarball)
    {
        if (!IsPinned(tarball))
        {
            throw new InvalidDataException($"The axe-core tarball does not match the pinned integrity {Integrity}.");
        }

        using var archive = new TarReader(new GZipStream(new MemoryStream(tarball), CompressionMode.Decompress));
        while (archive.GetNextEntry() is { } entry)
        {
            if (entry.Name == Script && entry.DataStream is { } data)
            {
                using var reader = new StreamReader(data);
                return reader.ReadToEnd();
            }
        }

        throw new InvalidDataException($"The axe-core tarball has no {Script}.");
    }

    private static bool IsPinned(byte[] tarball) =>
        "sha512-" + Convert.ToBase64String(SHA512.HashData(tarball)) == Integrity;

    /// <summary>Where the checked tarball is kept between runs.</summary>
    public static string CachedTarball => Path.Combine(CacheFolder(), $"axe-core-{Version}.tgz");

    private static async Task<string> LoadAsync()
    {
        var cached = CachedTarball;
        if (!File.Exists(cached) || !IsPinned(await File.ReadAllBytesAsync(cached)))
        {
            await FetchAsync(cached);
        }

        return Read(await File.ReadAllBytesAsync(cached));
    }

    private static string CacheFolder()
    {
        var root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Directory.CreateDirectory(Path.Combine(root, "confederal")).FullName;
    }

    private static async Task FetchAsync(string destination)
    {
        var staging = Directory.CreateTempSubdirectory("confederal-axe-");
        try
        {
            var npm = new ProcessStartInfo("npm")
            {
                WorkingDirectory = staging.FullName,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                ArgumentList = { "pack", $"axe-core@{Version}", "--pack-destination", staging.FullName, "--ignore-scripts", "--silent" },
            };
            using var process = StartNpm(npm);
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"npm pack axe-core@{Version} did not finish in two minutes.");
            }

            var tarball = Path.Combine(staging.FullName, $"axe-core-{Version}.tgz");
            if (process.ExitCode != 0 || !File.Exists(tarball))
            {
                throw new InvalidOperationException($"npm pack axe-core@{Version} failed ({process.ExitCode}): {await output} {await errors}");
            }

            // Another test process may fetch at the same time: each moves a whole file into place.
            File.Move(tarball, destination, overwrite: true);
        }
        finally
        {
            staging.Delete(recursive: true);
        }
    }

    private static Process StartNpm(ProcessStartInfo npm)
    {
        try
        {
            return Process.Start(npm) ?? throw new InvalidOperationException("npm did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException(
                $"The accessibility checks fetch axe-core {Version} once with npm, which is not installed: apt-get install npm", e);
        }
    }
}
