using Confederal.Api.Features.Persons;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Who a log's tax assessments are of: the log names taxpayers by handles, which the key table turns back into
/// person ids.</summary>
internal static class Assessed
{
    /// <summary>The person id of each tax assessment in <paramref name="log"/>, one per assessment (an assessment whose
    /// taxpayer the key table does not know is left out).</summary>
    public static async Task<List<string>> PersonsAsync(PersonKeys keys, NpgsqlDataSource log)
    {
        var handles = new List<string>();
        await using (var command = log.CreateCommand("SELECT data->>'taxpayer' FROM marten.mt_events WHERE type = 'tax-assessed.v2'"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                handles.Add(reader.GetString(0));
            }
        }

        var people = await keys.ByHandlesAsync(handles.Distinct(StringComparer.Ordinal).ToList(), CancellationToken.None);
        return [.. handles.Where(people.ContainsKey).Select(h => people[h].PersonId)];
    }
}
