using System.Net.Http.Json;
using System.Text;
using Confederal.Api.Infrastructure;
using Confederal.Cli;
using Confederal.Client;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;

namespace Confederal.Api.Tests;

/// <summary>Runs the command-line tool in process against a test API: its clients send to the factory's server, its
/// output goes to a string, its platform keys come from the API's data folder.</summary>
public static class CliRunner
{
    public static Task<(int Code, string Output)> RunAsync(ApiFactory api, params string[] args) =>
        RunAsync(options => Client(api, options), api.Services.GetRequiredService<IConfiguration>()[DataDirectory.Setting]!, args);

    /// <summary>The tool with its clients made by <paramref name="client"/> and its platform keys in <paramref name="dataDirectory"/>.</summary>
    public static async Task<(int Code, string Output)> RunAsync(
        Func<ConfederalClientOptions, ConfederalClient> client, string dataDirectory, params string[] args)
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = 400;
        var configuration = new ConfigurationBuilder().AddInMemoryCollection([new(DataDirectory.Setting, dataDirectory)]).Build();
        var context = new CliContext(console, console, client, configuration)
        {
            EnvironmentName = "Development",
            ServedWait = TimeSpan.FromSeconds(10),
        };
        var code = await Cli.Cli.RunAsync(args, context);
        return (code, output.ToString());
    }

    public static string AuditorToken(ApiFactory api) => DevTokens.Issue(api.SigningKey, Roles.Auditor, "court-of-audit");

    /// <summary>The client the tool makes of <paramref name="options"/>, its requests carried by the factory's in-memory
    /// server (whatever the address), its retries quick.</summary>
    public static ConfederalClient Client(ApiFactory api, ConfederalClientOptions options)
    {
        options.PrimaryHandler = api.Server.CreateHandler;
        options.FirstRetryDelay = TimeSpan.FromMilliseconds(20);
        return ConfederalClient.Create(options);
    }

    /// <summary>A client of the factory's server as the tool makes it, with <paramref name="token"/> when given.</summary>
    public static ConfederalClient Client(ApiFactory api, string? token = null) => Client(api, new ConfederalClientOptions
    {
        BaseAddress = api.Server.BaseAddress,
        Token = token is null ? null : _ => ValueTask.FromResult(token),
    });

    public static ConfederalClient Auditor(ApiFactory api) => Client(api, AuditorToken(api));

    public static string ConnectionString(ApiFactory api) =>
        api.Services.GetRequiredService<IConfiguration>().GetConnectionString(Database.ConnectionStringName)!;

    /// <summary>`audit export` of the whole sealed log into <paramref name="path"/>; asserts it succeeded.</summary>
    public static async Task ExportAsync(ApiFactory api, string path, params string[] options)
    {
        var (code, output) = await RunAsync(api, ["audit", "export", "--api", "http://localhost", "--token", AuditorToken(api), "--out", path, .. options]);
        Assert.True(code == ExitCodes.Ok, output);
    }
}

/// <summary>
/// A realistic history over the API, sealed and exported once through the command-line tool: three cantons in two
/// currencies over two years, organizations of every kind (one declining redistribution, one suspended), both
/// unallocated policies and an eligibility list, single assessments with a correction and bulk imports (NDJSON and
/// CSV), designations changed, withdrawn and standing, residents coming, leaving and moving, a pact of two members, a
/// carried binding ballot that raises a designation rate and an ordinary three-option ballot.
/// </summary>
public sealed class AuditHistory : IAsyncLifetime
{
    public const int Cantons = 3;
    public const int Organizations = 5;
    public const int Years = 2;

    private readonly string _directory = Directory.CreateTempSubdirectory("confederal-audit-").FullName;

    public ApiFactory Api { get; } = new();

    /// <summary>The export of the sealed history (copy it before changing it).</summary>
    public string Export => Path.Combine(_directory, "history.ndjson");

    /// <summary>Every person id of the history.</summary>
    public List<string> Persons { get; } = [];

    public string NewPath(string name) => Path.Combine(_directory, $"{name}-{Guid.NewGuid():N}.ndjson");

    public async Task InitializeAsync()
    {
        await Api.InitializeAsync();
        await HistoryAsync();
        await Api.SealedAsync();
        await Api.ProjectedAsync("budgets");
        await CliRunner.ExportAsync(Api, Export);
    }

    public async Task DisposeAsync()
    {
        await ((IAsyncLifetime)Api).DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private string Person(string id)
    {
        Persons.Add(id);
        return id;
    }

    private async Task HistoryAsync()
    {
        var d = new Democracy(Api);
        var f = d.Fiscal;
        await f.CantonAsync("au-ge", "CHF");
        await f.CantonAsync("au-vd", "CHF");
        await f.CantonAsync("au-mi", "EUR");
        await Fiscal.Ok(f.Admin.PutAsJsonAsync("/api/v1/cantons/au-mi", new { name = "AU-MI", currency = "EUR", locale = "it-IT", timeZone = "Europe/Rome" }));
        await f.OrganizationAsync("au-linux", "commons");
        await f.OrganizationAsync("au-oceans", "commons");
        await f.OrganizationAsync("au-valdesi", "community", acceptsRedistribution: false);
        await f.OrganizationAsync("au-arts", "cultural");
        await f.OrganizationAsync("au-diaspora", "origin");
        await f.PactAsync("au-alps", "CHF", "equal");
        await f.JoinAsync("au-alps", "au-ge", 500, 2026);
        await f.JoinAsync("au-alps", "au-vd", 300, 2026);

        await f.PolicyAsync("au-ge", 2026, 70, "retain");
        await f.PolicyAsync("au-ge", 2027, 90, "proportional");
        await f.PolicyAsync("au-vd", 2026, 100, "proportional");
        await f.PolicyAsync("au-vd", 2027, 100, "retain");
        await f.PolicyAsync("au-mi", 2026, 80, "proportional");
        await f.PolicyAsync("au-mi", 2027, 60, "retain", eligible: new[] { "au-linux", "au-oceans" });

        var (alice, bob, carol, dino) = (Person("zq-alice"), Person("zq-bob"), Person("zq-carol"), Person("zq-dino"));
        await f.AssessAsync("au-ge", alice, 2026, 1_000_000);
        await f.AssessAsync("au-ge", bob, 2026, 500_000);
        await f.AssessAsync("au-ge", carol, 2026, 750_001);
        await f.AssessAsync("au-ge", alice, 2027, 1_100_000);
        await f.AssessAsync("au-ge", carol, 2027, 800_003);
        await f.AssessAsync("au-ge", alice, 2026, 1_050_000); // a correction
        await f.AssessAsync("au-mi", dino, 2026, 300_000);
        await f.AssessAsync("au-mi", dino, 2027, 320_000);

        var imported = Enumerable.Range(1, 40).Select(i => Person($"zq-imp-{i:000}")).ToList();
        await Fiscal.Ok(f.Municipality("au-vd").PostAsync("/api/v1/cantons/au-vd/tax-assessments/batch", new StringContent(
            string.Join('\n', imported.Select((p, i) => $$"""{"personId": "{{p}}", "fiscalYear": {{2026 + i % 2}}, "amountMinor": {{(i + 1) * 10_007}}}""")),
            Encoding.UTF8, "application/x-ndjson")));
        var csv = Enumerable.Range(1, 20).Select(i => Person($"zq-imc-{i:000}")).ToList();
        await Fiscal.Ok(f.Municipality("au-mi").PostAsync("/api/v1/cantons/au-mi/tax-assessments/batch", new StringContent(
            "personId,fiscalYear,amountMinor\n" + string.Join('\n', csv.Select((p, i) => $"{p},2026,{(i + 3) * 7_919}")), Encoding.UTF8, "text/csv")));

        await Fiscal.Ok(f.DesignateAsync("au-ge", 2026, alice, false, ("au-linux", 6000), ("au-oceans", 4000)));
        await Fiscal.Ok(f.DesignateAsync("au-ge", 2026, alice, true, ("au-linux", 10000))); // changed, and standing into 2027
        await Fiscal.Ok(f.DesignateAsync("au-ge", 2026, bob, false, ("au-arts", 5000), ("au-valdesi", 5000)));
        await Fiscal.Ok(f.DesignateAsync("au-ge", 2026, carol, true, ("au-diaspora", 10000)));
        await Fiscal.Ok(f.Person(carol).DeleteAsync($"/api/v1/cantons/au-ge/fiscal-years/2027/designations/{carol}")); // withdrawn from 2027
        for (var i = 0; i < 15; i++)
        {
            var choices = (i % 3) switch
            {
                0 => new[] { ("au-linux", 10000) },
                1 => new[] { ("au-oceans", 7001), ("au-arts", 2999) },
                _ => new[] { ("au-valdesi", 10000) },
            };
            await Fiscal.Ok(f.DesignateAsync("au-vd", 2026, imported[i], i % 4 == 0, choices));
        }

        await Fiscal.Ok(f.DesignateAsync("au-mi", 2026, dino, true, ("au-linux", 10000)));
        for (var i = 0; i < 5; i++)
        {
            await Fiscal.Ok(f.DesignateAsync("au-mi", 2026, csv[i], false, ("au-oceans", 5000), ("au-diaspora", 5000)));
        }

        await Fiscal.Ok(f.Admin.PostAsync("/api/v1/organizations/au-arts/suspension", null));

        var today = d.Today;
        var voters = Enumerable.Range(1, 5).Select(i => Person($"zq-v{i}")).ToList();
        foreach (var voter in voters)
        {
            await Fiscal.Ok(d.ResideAsync("au-ge", voter, new DateOnly(2012, 3, 1)));
        }

        await Fiscal.Ok(d.ResideAsync("au-ge", Person("zq-kid"), today.AddYears(-5), birth: today.AddYears(-10)));
        await Fiscal.Ok(d.DepartAsync("au-ge", voters[4], today.AddDays(-20)));
        await Fiscal.Ok(d.ResideAsync("au-vd", voters[4], today.AddDays(-10)));
        var walkers = Enumerable.Range(1, 3).Select(i => Person($"zq-w{i}")).ToList();
        foreach (var walker in walkers)
        {
            await Fiscal.Ok(d.ResideAsync("au-vd", walker, new DateOnly(2018, 9, 1)));
        }

        var binding = await d.BallotAsync("au-ge", proposal: new { kind = "set-designation-rate", fiscalYear = 2027, designationRateBp = 120 });
        for (var i = 0; i < 4; i++)
        {
            await d.ReceiptAsync("au-ge", binding, voters[i], i < 3 ? "yes" : "no");
        }

        var results = await d.CloseAsync("au-ge", binding);
        Assert.True(results.GetProperty("enacted").GetBoolean());

        var ordinary = await d.BallotAsync("au-vd");
        await d.ReceiptAsync("au-vd", ordinary, walkers[0], "alpha-choice");
        await d.ReceiptAsync("au-vd", ordinary, walkers[1], "gamma-choice");
        await d.ReceiptAsync("au-vd", ordinary, voters[4], "gamma-choice");
        await d.CloseAsync("au-vd", ordinary);

        await f.AssessAsync("au-ge", bob, 2027, 510_000); // after the rate changed
    }
}
