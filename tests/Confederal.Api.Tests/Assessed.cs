using Confederal.Api.Features.Persons;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Whose tax assessments a log holds: the log names taxpayers by handles, which the key table gives for each
/// person id.</summary>
internal static class Assessed
{
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
    public static async Task<Dictionary<string, long>> OfAsync(PersonKeys keys, NpgsqlDataSource log, IEnumerable<string> personIds)
    {
        var people = personIds.ToList();
        var handles = await keys.FindAsync(people, CancellationToken.None);
        var counts = await ByTaxpayerAsync(log);
        return people.Distinct(StringComparer.Ordinal).ToDictionary(
            p => p, p => handles.TryGetValue(p, out var key) ? counts.GetValueOrDefault(key.Taxpayer) : 0, StringComparer.Ordinal);
    }
}
