namespace Confederal.Cli;

// Not top-level statements: their Program class is public and would clash with the API's in assemblies that reference both.
internal static class Program
{
    private static Task<int> Main(string[] args) => Cli.RunAsync(args, CliContext.Default());
}
