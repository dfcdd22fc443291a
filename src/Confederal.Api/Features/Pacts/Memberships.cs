using Confederal.Domain.Pacts;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Pacts;

/// <summary>A canton's pacts as its decisions stand: each pact's terms from its stream, the canton's timeline in it
/// from the canton's memberships stream (and from the pact's own, where earlier memberships were recorded).</summary>
public sealed record Memberships(IReadOnlyDictionary<string, Pact> Pacts, long Version)
{
    /// <summary>Which pacts to read comes from the canton's memberships stream and, for memberships recorded in pact
    /// streams, from the budgets read model of the canton's database (a pact joined within the projection's lag could
    /// be missed there, but joining takes a ballot that ran for its whole voting window after naming the pact).
    /// <paramref name="pactId"/>, the pact being decided, is read too. <see cref="Version"/>: the memberships stream's.</summary>
    public static async Task<Memberships> OfCantonAsync(EventLog events, NpgsqlDataSource db, string cantonId, string? pactId, CancellationToken ct)
    {
        var stream = Pact.MembershipsStreamId(cantonId);
        var own = (await events.ReadStreamsAsync([stream], ct)).GetValueOrDefault(stream) ?? [];
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        if (pactId is not null)
        {
            ids.Add(pactId);
        }

        foreach (var e in own)
        {
            ids.Add(e.Data switch { PactJoined j => j.PactId, PactLeft l => l.PactId, _ => throw new InvalidOperationException($"{e.Data.GetType().Name} in {stream}") });
        }

        await using (var command = db.CreateCommand("SELECT DISTINCT pact_id FROM pact_members WHERE canton_id = $1"))
        {
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cantonId });
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                ids.Add(reader.GetString(0));
            }
        }

        var read = await events.ReadStreamsAsync([.. ids.Select(Pact.StreamId)], ct);
        var pacts = new Dictionary<string, Pact>(StringComparer.Ordinal);
        foreach (var pactStream in read.Values)
        {
            if (pactStream.Fold<Pact>(Pact.Apply).State is { } pact)
            {
                pacts[pact.Id] = pact;
            }
        }

        foreach (var e in own)
        {
            var id = e.Data is PactJoined j ? j.PactId : ((PactLeft)e.Data).PactId;
            if (pacts.TryGetValue(id, out var pact))
            {
                pacts[id] = Pact.Apply(pact, e.Data)!;
            }
        }

        return new Memberships(pacts, own.Count > 0 ? own[^1].Version : 0);
    }
}
