using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Fiscal;

/// <summary>
/// Restates standing designations in the later years they carry into (<see cref="DesignationCarry"/>): for one person
/// after they change a designation, and for everyone with a carry row of a canton when one of its years gets its key.
/// A person's row stays pending (changes ≠ carried) until every restatement is in the log, so that a run cut short, or
/// a person's own change racing it, is carried on the next run; a row is deleted once nothing of theirs carries.
/// </summary>
public sealed partial class DesignationCarrier(Placement placement, FiscalYearKeys years, PersonKeys persons, ILogger<DesignationCarrier> logger)
{
    private const int PeoplePerRun = 200;

    /// <summary>Carried events are the platform's, not the caller's whose request made them due.</summary>
    public static EventMetadata Metadata(EventMetadata request) => request with { Actor = "platform:designation-carry" };

    private sealed record Person(byte[] Lookup, string Taxpayer, int Changes);

    /// <summary>What the caller appended itself and the log cannot show yet (its write scope is not committed).</summary>
    public sealed record Appended(string StreamId, DesignationHistory History, long Version);

    /// <summary>After a person's own designation in the canton changed: <paramref name="standing"/> when a standing choice
    /// was made or replaced (the person gets a carry row), else only a person who has one is carried again.</summary>
    public async Task ChangedAsync(PersonKey person, string cantonId, bool standing, Appended appended, EventMetadata metadata, CancellationToken ct)
    {
        await using var command = placement.Directory.DataSource.CreateCommand(standing
            ? """
              INSERT INTO designation_carries AS c (lookup, canton_id) VALUES ($1, $2)
              ON CONFLICT (lookup, canton_id) DO UPDATE SET changes = c.changes + 1 RETURNING changes
              """
            : "UPDATE designation_carries SET changes = changes + 1 WHERE lookup = $1 AND canton_id = $2 RETURNING changes");
        var lookup = PersonKeys.Bytes(persons.Lookup(person.PersonId));
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = lookup });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cantonId });
        if (await command.ExecuteScalarAsync(ct) is int changes)
        {
            await CarryAsync(cantonId, [new Person(lookup, person.Taxpayer, changes)], appended, Metadata(metadata), ct);
        }
    }

    /// <summary>After a request opened one of the canton's years (created its key): carries everyone pending, in writes of
    /// their own. The restatements follow from what was recorded before the request, and the key stays whatever becomes
    /// of the request: they must not be undone with it, or nothing would carry them again until the canton's next year.</summary>
    public async Task CarryIntoOpenedYearAsync(string cantonId, EventMetadata metadata, CancellationToken ct)
    {
        using (WriteScope.Outside())
        {
            await CarryPendingAsync(cantonId, metadata, ct);
        }
    }

    /// <summary>Carries every pending person of the canton.</summary>
    public async Task CarryPendingAsync(string cantonId, EventMetadata metadata, CancellationToken ct)
    {
        var after = Array.Empty<byte>();
        while (true)
        {
            var people = await Sql.ListAsync(placement.Directory.DataSource, """
                SELECT c.lookup, k.taxpayer, c.changes FROM designation_carries c JOIN person_keys k USING (lookup)
                WHERE c.canton_id = $1 AND c.changes <> c.carried AND c.lookup > $2 ORDER BY c.lookup LIMIT $3
                """, r => new Person(r.GetFieldValue<byte[]>(0), r.GetString(1), r.GetInt32(2)), ct, cantonId, after, PeoplePerRun);
            if (people.Count == 0)
            {
                return;
            }

            await CarryAsync(cantonId, people, null, Metadata(metadata), ct);
            after = people[^1].Lookup;
        }
    }

    /// <summary>Carries every pending person of every canton whose database answers: what requests left pending.</summary>
    public async Task CarryPendingAsync(CancellationToken ct)
    {
        var cantons = await Sql.ListAsync(placement.Directory.DataSource,
            "SELECT DISTINCT canton_id FROM designation_carries WHERE changes <> carried ORDER BY canton_id", r => r.GetString(0), ct);
        foreach (var cantonId in cantons)
        {
            try
            {
                await CarryPendingAsync(cantonId, EventMetadata.None, ct);
            }
            catch (DatabaseUnavailableException e)
            {
                Unavailable(cantonId, e.Message);
            }
        }
    }

    private async Task CarryAsync(string cantonId, IReadOnlyList<Person> people, Appended? appended, EventMetadata metadata, CancellationToken ct)
    {
        var linked = await years.LinkedAsync(cantonId, ct);
        var log = placement.Of(cantonId).Log;
        var streams = people.ToDictionary(p => p, p => linked.Select(y => Designation.StreamId(cantonId, y.Of(p.Taxpayer))).ToArray());
        var read = await log.ReadStreamsAsync([.. streams.Values.SelectMany(s => s).Where(s => s != appended?.StreamId)], ct);

        var appends = new List<(Person Person, string StreamId, long Version, object Event)>();
        var carrying = new List<Person>();
        var done = new List<Person>();
        foreach (var person in people)
        {
            var ids = streams[person];
            var folded = new Dictionary<string, (DesignationHistory History, long Version)>(StringComparer.Ordinal);
            var records = new List<DesignationCarry.Year>(linked.Count);
            for (var i = 0; i < linked.Count; i++)
            {
                if (!folded.TryGetValue(ids[i], out var stream))
                {
                    var (history, version) = ids[i] == appended?.StreamId
                        ? (appended.History, appended.Version)
                        : read.GetValueOrDefault(ids[i]).Fold<DesignationHistory>(DesignationHistory.Apply);
                    folded[ids[i]] = stream = (history ?? new DesignationHistory(), version);
                }

                records.Add(new DesignationCarry.Year(linked[i].Year, linked[i].Legacy, stream.History));
            }

            var (restatements, stillCarrying) = DesignationCarry.Plan(records);
            foreach (var restatement in restatements)
            {
                var i = records.FindIndex(r => r.FiscalYear == restatement.FiscalYear);
                var handle = linked[i].Of(person.Taxpayer);
                object @event = restatement.Designation is { } d
                    ? new DesignationChosen(cantonId, handle, restatement.FiscalYear, d.Choices, true, restatement.FromYear)
                    : new DesignationWithdrawn(cantonId, handle, restatement.FiscalYear, restatement.FromYear);
                appends.Add((person, ids[i], folded[ids[i]].Version, @event));
            }

            (stillCarrying ? carrying : done).Add(person);
        }

        // A row that changed meanwhile (changes moved on) stays pending.
        var failed = await AppendAsync(log, appends, metadata, ct);
        const string Unchanged = "unnest($1::bytea[], $2::int[]) AS u(lookup, changes) WHERE c.lookup = u.lookup AND c.canton_id = $3 AND c.changes = u.changes";
        await using var batch = new NpgsqlBatch
        {
            BatchCommands =
            {
                Rows($"UPDATE designation_carries c SET carried = u.changes FROM {Unchanged}", carrying),
                Rows($"DELETE FROM designation_carries c USING {Unchanged}", done),
            },
        };
        await using var connection = await placement.Directory.DataSource.OpenConnectionAsync(ct);
        batch.Connection = connection;
        await batch.ExecuteNonQueryAsync(ct);

        NpgsqlBatchCommand Rows(string sql, List<Person> people)
        {
            var carried = people.Where(p => !failed.Contains(p)).ToList();
            return Sql.Command(sql, carried.Select(p => p.Lookup).ToArray(), carried.Select(p => p.Changes).ToArray(), cantonId);
        }
    }

    // All in one transaction; when a person's own designation moved one of the streams meanwhile, each person's appends
    // are tried alone, and those that fail stay pending.
    private static async Task<HashSet<Person>> AppendAsync(
        EventLog log, List<(Person Person, string StreamId, long Version, object Event)> appends, EventMetadata metadata, CancellationToken ct)
    {
        var failed = new HashSet<Person>();
        if (appends.Count == 0)
        {
            return failed;
        }

        try
        {
            await AppendAllAsync(appends);
        }
        catch (ConcurrencyException)
        {
            foreach (var person in appends.GroupBy(a => a.Person))
            {
                try
                {
                    await AppendAllAsync([.. person]);
                }
                catch (ConcurrencyException)
                {
                    failed.Add(person.Key);
                }
            }
        }

        return failed;

        Task<int> AppendAllAsync(IReadOnlyList<(Person Person, string StreamId, long Version, object Event)> some) => log.TransactAsync(async tx =>
        {
            foreach (var (_, streamId, version, @event) in some)
            {
                await log.AppendAsync(tx, streamId, ExpectedVersion.Exactly(version), [@event], metadata, ct);
            }

            return some.Count;
        }, ct);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Standing designations of '{CantonId}' are not carried yet: its database does not answer ({Reason})")]
    private partial void Unavailable(string cantonId, string reason);
}
