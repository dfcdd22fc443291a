using Confederal.Domain.Pacts;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Pacts;

/// <summary>The pacts a canton belongs to (or did), folded from their streams.</summary>
public static class Memberships
{
    /// <summary>Which pacts to read comes from the budgets read model; their memberships from the log. A pact joined
    /// within the projection's lag (milliseconds) could be missed, but joining takes a ballot that ran for its whole
    /// voting window after naming the pact, so no membership is that recent when another is decided.</summary>
    public static async Task<IReadOnlyList<Pact>> OfCantonAsync(EventLog events, NpgsqlDataSource db, string cantonId, CancellationToken ct)
    {
        var ids = new List<string>();
        await using (var command = db.CreateCommand("SELECT DISTINCT pact_id FROM pact_members WHERE canton_id = $1"))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cantonId });
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                ids.Add(reader.GetString(0));
            }
        }

        if (ids.Count == 0)
        {
            return [];
        }

        var read = await events.ReadStreamsAsync([.. ids.Select(Pact.StreamId)], ct);
        return [.. read.Values.Select(stream => stream.Fold<Pact>(Pact.Apply).State).OfType<Pact>()];
    }
}
