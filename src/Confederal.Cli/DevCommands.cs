using System.CommandLine;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Microsoft.Extensions.Configuration;
using Spectre.Console;

namespace Confederal.Cli;

/// <summary>`confederal dev token | seed`: development helpers.</summary>
public static class DevCommands
{
    public static Command Build(CliContext context) => new("dev", "Development helpers.") { Token(), Seed(context) };

    private static Command Token()
    {
        var role = new Option<string>("--role") { Description = $"The caller's role: {string.Join(", ", Roles.All)}.", Required = true };
        var canton = new Option<string?>("--canton") { Description = "The municipality's canton (role municipality)." };
        var subject = new Option<string?>("--subject") { Description = "The personId (role person) or organizationId (role organization)." };
        var hours = new Option<int>("--hours") { Description = "Lifetime of the token in hours.", DefaultValueFactory = _ => 8 };

        var token = new Command("token", "Print a bearer token signed with this machine's development key (the one the API uses in Development and with the embedded database).")
        {
            role, canton, subject, hours,
        };
        hours.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int>() is < 1 or > 24 * 30)
            {
                result.AddError("--hours must be between 1 and 720.");
            }
        });
        token.Validators.Add(result =>
        {
            var r = result.GetValue(role);
            if (r is not null && !Roles.All.Contains(r))
            {
                result.AddError($"--role must be one of: {string.Join(", ", Roles.All)}.");
            }

            var c = result.GetValue(canton);
            var s = result.GetValue(subject);
            if (r == Roles.Municipality && !Identifiers.IsSlug(c))
            {
                result.AddError("--role municipality needs --canton with a canton id, e.g. --canton ge.");
            }

            if (r != Roles.Municipality && c is not null)
            {
                result.AddError("--canton goes only with --role municipality.");
            }

            if (r == Roles.Person && !Identifiers.IsPersonId(s))
            {
                result.AddError("--role person needs --subject with a personId, e.g. --subject it-001.");
            }

            if (r == Roles.Organization && !Identifiers.IsSlug(s))
            {
                result.AddError("--role organization needs --subject with an organization id, e.g. --subject valdesi.");
            }
        });
        token.SetAction(parse =>
        {
            var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
            var key = DevTokens.LoadOrCreateKey(DataDirectory.Resolve(configuration));
            parse.InvocationConfiguration.Output.WriteLine(DevTokens.Issue(key, parse.GetValue(role)!, parse.GetValue(subject), parse.GetValue(canton),
                TimeSpan.FromHours(parse.GetValue(hours))));
            return 0;
        });

        return token;
    }

    private static Command Seed(CliContext context)
    {
        var api = new Option<string>("--api") { Description = "The running API's base address.", DefaultValueFactory = _ => "http://127.0.0.1:5080" };
        var seed = new Command("seed",
            "Fill a running API (Development or embedded database, on this machine's data folder) with a small demo confederation, " +
            "written over its REST API with development tokens of each role. Safe to run again.")
        {
            api,
        };
        api.Validators.Add(result =>
        {
            if (!Uri.TryCreate(result.GetValueOrDefault<string>(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                result.AddError("--api must be an http(s) address, e.g. http://127.0.0.1:5080.");
            }
        });
        seed.SetAction(Cli.Guarded(context, async (parse, ct) =>
        {
            var uri = new Uri(parse.GetValue(api)!);
            var key = DevTokens.LoadOrCreateKey(DataDirectory.Resolve(context.Configuration));
            using var client = context.Client(uri, null); // each write carries its caller's development token
            var demo = new DemoConfederation(client, key, TimeProvider.System, line => context.Console.WriteLine(line));
            DemoSummary summary;
            try
            {
                summary = await demo.SeedAsync(ct);
            }
            catch (HttpRequestException e) // after the client's retries
            {
                throw new CliException($"The API at {uri} cannot be reached ({e.Message}). Start it in another terminal with " +
                                       "`dotnet run --project src/Confederal.Api`, wait for it to listen, and run this again.");
            }

            context.Console.WriteLine(summary.AlreadySeeded
                ? $"The demo confederation is already in {uri} (its last step, the suspension of {DemoConfederation.SuspendedOrganization}, is there): nothing was written."
                : $"Seeded {uri}, writes:");
            foreach (var (what, count) in summary.Writes)
            {
                context.Console.WriteLine($"  {what}: {count}");
            }

            context.Console.WriteLine($"Cantons: {string.Join(", ", DemoConfederation.Cantons.Select(c => $"{c.Id} {c.Name} ({c.Currency})"))}; " +
                                      $"pact {DemoConfederation.Pact}: {string.Join(", ", DemoConfederation.Cantons.Where(c => c.PactRateBp is not null).Select(c => c.Id))}.");
            context.Console.WriteLine("Sign in on the web pages as one of these persons:");
            foreach (var (person, what) in summary.Examples)
            {
                context.Console.WriteLine($"  {person,-9} {what}");
            }

            return ExitCodes.Ok;
        }));
        return seed;
    }
}
