using System.Runtime.CompilerServices;

namespace Confederal.EventStore;

/// <summary>Reads of a prefix of the global log: what a replay "as of" a position needs.</summary>
public static class PrefixReads
{
    /// <summary>Every event of <paramref name="types"/> at positions 1..<paramref name="toPosition"/>, in global order,
    /// streamed a page of <paramref name="pageSize"/> at a time. Events of other types are passed over on the server
    /// without reading their payloads. Numbered events never change, so pages read one after another see one prefix.</summary>
    public static async IAsyncEnumerable<RecordedEvent> ReadUpToAsync(
        this EventLog log, long toPosition, IReadOnlyCollection<Type> types, int pageSize = 10_000,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        string[] names = [.. types.Select(t => log.Types.NameOf(t).Name).Distinct(StringComparer.Ordinal)];
        await using var connection = await log.DataSource.OpenConnectionAsync(ct);
        var after = 0L;
        while (after < toPosition)
        {
            // No more than the positions left can be in range: a smaller page reads less past the end.
            var limit = (int)Math.Min(pageSize, toPosition - after);
            var (events, _) = await log.ReadTypesAsync(connection, after, limit, names, ct);
            foreach (var e in events)
            {
                if (e.Position > toPosition)
                {
                    yield break;
                }

                yield return e;
            }

            if (events.Count < limit)
            {
                yield break;
            }

            after = events[^1].Position;
        }
    }
}
