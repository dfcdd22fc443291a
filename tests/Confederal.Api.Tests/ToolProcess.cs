using System.Diagnostics;
using System.Text;

namespace Confederal.Api.Tests;

/// <summary>A tool the tests run as a process of its own (a linter, a code generator).</summary>
internal static class ToolProcess
{
    /// <summary>Runs <paramref name="start"/> to its end (killed after <paramref name="timeout"/>), with what it wrote.</summary>
    public static async Task<(int Exit, string Output, string Errors)> RunAsync(ProcessStartInfo start, TimeSpan timeout, string? hint = null)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.StandardOutputEncoding = Encoding.UTF8;
        start.StandardErrorEncoding = Encoding.UTF8;
        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{start.FileName} did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{start.FileName} could not start{(hint is null ? "" : "; " + hint)}.", e);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var errors = process.StandardError.ReadToEndAsync();
            using var deadline = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{start.FileName} {string.Join(' ', start.ArgumentList)} did not finish in {timeout}: {await output} {await errors}");
            }

            return (process.ExitCode, await output, await errors);
        }
    }
}
