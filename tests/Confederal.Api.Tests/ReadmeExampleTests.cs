using Confederal.Api.Features.Fiscal;
using Confederal.Client;
using Confederal.Client.Generated.Models;

namespace Confederal.Api.Tests;

/// <summary>The README's integration example is this file's <see cref="IntegrateAsync"/>, word for word: it compiles with
/// the suite and runs here against the API on Kestrel, with tokens from a real client-credentials endpoint.</summary>
public sealed class ReadmeExampleTests
{
    // README: begin
    static async Task IntegrateAsync(Uri api, Uri tokenEndpoint, string clientSecret, int fiscalYear, string csvFile)
    {
        using var tokens = new ClientCredentials(tokenEndpoint, "ge-tax-office", clientSecret);
        using var confederal = ConfederalClient.Create(new ConfederalClientOptions { BaseAddress = api, Token = tokens.TokenAsync });
        var geneve = confederal.Api.Api.V1.Cantons["ge"];

        // One assessment. Retried after a lost answer, it carries the same Idempotency-Key and is recorded once.
        await geneve.TaxAssessments.PostAsync(new AssessTaxBody { PersonId = "ge-0042", FiscalYear = fiscalYear, AmountMinor = 1_250_000 });

        // A year's file (personId,fiscalYear,amountMinor), streamed, recorded in one transaction: every line or none.
        var import = await confederal.ImportAssessmentsAsync("ge", csvFile);

        // The budget, as projected so far (reads are eventually consistent), to the minor unit.
        var budget = await geneve.Budgets[fiscalYear].GetAsync();
        Console.WriteLine($"{import.Assessments} imported; {budget!.DesignatedMinor} of {budget.RevenueMinor} designated");
    }
    // README: end

    [Fact]
    public async Task The_README_integration_example_is_this_code_and_it_runs()
    {
        var source = await File.ReadAllLinesAsync(Path.Combine(HostTests.RepositoryRoot(), "tests", "Confederal.Api.Tests", "ReadmeExampleTests.cs"));
        var example = source.SkipWhile(l => l.Trim() != "// README: begin").Skip(1).TakeWhile(l => l.Trim() != "// README: end")
            .Select(l => l.Length >= 4 ? l[4..] : l.TrimStart()).ToList();
        var readme = (await File.ReadAllTextAsync(Path.Combine(HostTests.RepositoryRoot(), "README.md"))).ReplaceLineEndings("\n");
        Assert.Contains("```csharp\n" + string.Join("\n", example) + "\n```", readme, StringComparison.Ordinal);

        await using var api = await ClientTests.KestrelAsync();
        var fiscal = new Fiscal(api);
        var year = api.Clock.GetUtcNow().Year;
        await fiscal.CantonAsync("ge");
        await fiscal.OrganizationAsync("commons");
        await fiscal.PolicyAsync("ge", year, 70);
        await api.ProjectedAsync(BudgetProjection.ProjectionName);
        await using var issuer = await TokenEndpoint.StartAsync(api, "ge", "ge-tax-office", "municipal-secret");
        var file = Path.Combine(Path.GetTempPath(), $"assessments-{Guid.NewGuid():N}.csv");
        await File.WriteAllLinesAsync(file, ["personId,fiscalYear,amountMinor", $"ge-0001,{year},800000", $"ge-0002,{year},640000"]);
        var events = await api.CountEventsAsync();
        var printed = new StringWriter();
        var console = Console.Out;
        Console.SetOut(printed);
        try
        {
            await IntegrateAsync(ClientTests.Address(api), issuer.Address, "municipal-secret", year, file);
        }
        finally
        {
            Console.SetOut(console);
            File.Delete(file);
        }

        Assert.Contains("2 imported; ", printed.ToString(), StringComparison.Ordinal);
        Assert.Equal(events + 3, await api.CountEventsAsync()); // one assessment, and two imported
        Assert.Equal(1, issuer.Issued);
    }
}
