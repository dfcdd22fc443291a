using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Persons;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Whose tax assessments a log holds: the log names taxpayers by their handle in each canton and year, which the
/// key tables give for each person id.</summary>
internal static class Assessed
{
    /// <summary>The handle by which the log names the person in the canton's year.</summary>
    public static async Task<string> HandleAsync(IServiceProvider services, string personId, string cantonId, int year) =>
        (await services.GetRequiredService<FiscalYearKeys>().FindAsync(cantonId, year, CancellationToken.None))!
        .Of((await services.GetRequiredService<PersonKeys>().FindAsync(personId, CancellationToken.None))!.Taxpayer);

    /// <summary>How many assessments <paramref name="log"/> holds of each taxpayer it names, by handle.</summary>
    public static async Task<Dictionary<string, long>> ByTaxpayerAsync(NpgsqlDataSource log)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var command = log.CreateCommand("SELECT data->>'taxpayer', count(*) FROM marten.mt_events WHERE type = 'tax-assessed.v2' GROUP BY 1");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            counts[reader.GetString(0)] = reader.GetInt64(1);
        }

        return counts;
    }

    /// <summary>How many assessments <paramref name="log"/> holds of each of <paramref name="personIds"/> (0 for those
    /// never recorded).</summary>
    public static async Task<Dictionary<string, long>> OfAsync(PersonKeys keys, FiscalYearKeys years, NpgsqlDataSource log, IEnumerable<string> personIds)
    {
        var people = personIds.ToList();
        var handles = await keys.FindAsync(people, CancellationToken.None);
        var linked = await years.LinkedAsync(null, CancellationToken.None);
        var counts = await ByTaxpayerAsync(log);
        return people.Distinct(StringComparer.Ordinal).ToDictionary(
            p => p,
            p => handles.TryGetValue(p, out var key) ? linked.Select(y => y.Of(key.Taxpayer)).Distinct().Sum(h => counts.GetValueOrDefault(h)) : 0,
            StringComparer.Ordinal);
    }
}
