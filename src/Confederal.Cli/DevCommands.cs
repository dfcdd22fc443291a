using System.CommandLine;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Microsoft.Extensions.Configuration;

namespace Confederal.Cli;

/// <summary>`confederal dev token`: development helpers.</summary>
public static class DevCommands
{
    public static Command Build()
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

        return new Command("dev", "Development helpers.") { token };
    }
}
