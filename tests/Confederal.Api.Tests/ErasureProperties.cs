using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Ballots;
using Confederal.Domain.Census;
using Confederal.EventStore;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Api.Tests;

/// <summary>
/// Erasing people changes no number an audit replay recomputes. Over random census histories (people of random ages
/// arriving, moving and leaving) and certified ballots (random census dates, voting ages and minimum residences, voters
/// drawn from each roll), any set of people is erased as the API does it: their arrivals' birth dates no longer open,
/// and a person-erased event (later in the log) lists the certified rolls they were on. The replay's ballots are those
/// it recomputes without the erasure, and it finds nothing wrong either way.
/// </summary>
public sealed class ErasureProperties
{
    private static readonly EventTypes Types = Events.Types();
    private static readonly string[] Cantons = ["ge", "vd"];

    /// <summary>A seed for the history and a bit mask of the people to erase.</summary>
    public static Arbitrary<(int Seed, int Erased)> Histories { get; } =
        Arb.From(from seed in Gen.Choose(0, int.MaxValue - 1) from erased in Gen.Choose(0, 255) select (seed, erased));

    [Property(MaxTest = 200, Arbitrary = [typeof(ErasureProperties)])]
    public async Task Erasing_any_set_of_people_changes_no_replayed_number((int Seed, int Erased) c)
    {
        var (people, ballots) = History(c.Seed);
        var erased = people.Where((_, i) => (c.Erased & (1 << i)) != 0).Select(p => p.Resident).ToHashSet(StringComparer.Ordinal);

        var before = await new AuditReplay(Types).RunAsync(Trail(people, ballots, []).ToAsyncEnumerable());
        var after = await new AuditReplay(Types).RunAsync(Trail(people, ballots, erased).ToAsyncEnumerable());

        Assert.Empty(before.Differences);
        Assert.Empty(after.Differences);
        Assert.Equal(Numbers(before), Numbers(after));
    }

    private static string Numbers(ReplayResult r) =>
        JsonSerializer.Serialize(new { Ballots = r.Ballots.OrderBy(b => b.BallotId), r.Budgets });

    private sealed record Person(string Resident, DateOnly Born, List<object> Events)
    {
        public Residence? Residence => Events.Aggregate((Residence?)null, (s, e) => Residence.Apply(s, e is ResidentRegistered r ? r with { BirthDate = Born } : e));
    }

    /// <summary>Up to 8 people and 1–4 ballots, drawn from the seed.</summary>
    private static (List<Person> People, List<(BallotCalled Called, List<string> Voters, long Eligible)> Ballots) History(int seed)
    {
        var random = new Random(seed);
        var people = new List<Person>();
        var count = random.Next(1, 9);
        for (var i = 0; i < count; i++)
        {
            var resident = $"r~{i:D26}";
            var person = new Person(resident, new DateOnly(random.Next(1950, 2016), random.Next(1, 13), random.Next(1, 29)), []);
            var since = new DateOnly(random.Next(2000, 2025), random.Next(1, 13), 1);
            var canton = Cantons[random.Next(2)];
            person.Events.Add(new ResidentRegistered(resident, canton, since, "sealed"));
            if (random.Next(2) == 0)
            {
                since = since.AddDays(random.Next(1, 2000));
                canton = Cantons[1 - Array.IndexOf(Cantons, canton)];
                person.Events.Add(new ResidentRegistered(resident, canton, since, "sealed"));
            }

            if (random.Next(2) == 0)
            {
                person.Events.Add(new ResidentDeparted(resident, canton, since.AddDays(random.Next(1, 1000))));
            }

            people.Add(person);
        }

        var ballots = new List<(BallotCalled, List<string>, long)>();
        var calls = random.Next(1, 5);
        for (var b = 0; b < calls; b++)
        {
            var called = new BallotCalled(
                new Guid(b + 1, 0, 0, new byte[8]), Cantons[random.Next(2)], "Shall we?", ["alpha", "beta"],
                new DateOnly(random.Next(2005, 2027), random.Next(1, 13), 1), DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddHours(1), null,
                random.Next(2) == 0 ? 16 : 18, random.Next(2) == 0 ? 0 : 365);
            var ballot = new Ballot(called, null);
            var roll = people.Where(p => ballot.Ineligible(p.Residence) is null).ToList();
            ballots.Add((called, [.. roll.Where(_ => random.Next(2) == 0).Select(p => p.Resident)], roll.Count));
        }

        return (people, ballots);
    }

    /// <summary>The trail as the feed serves it after <paramref name="erased"/> are erased (none: before any erasure).</summary>
    private static List<AuditEntry> Trail(List<Person> people, List<(BallotCalled Called, List<string> Voters, long Eligible)> ballots, HashSet<string> erased)
    {
        var trail = new List<AuditEntry>();
        void Add(string stream, string type, int version, object data, AuditPerson? person = null) =>
            trail.Add(AuditEntry.Of(new AuditEvent(
                trail.Count + 1, stream, 1, Guid.NewGuid(), type, version, DateTimeOffset.UnixEpoch, null, null, null,
                JsonSerializer.SerializeToElement(data, data.GetType(), Types.SerializerOptions), "") { Person = person }));

        foreach (var person in people)
        {
            foreach (var e in person.Events)
            {
                var opened = erased.Contains(person.Resident) ? AuditPerson.IsErased : new AuditPerson(person.Born, false);
                if (e is ResidentRegistered)
                {
                    Add(Residence.StreamId(person.Resident), "resident-registered", 2, e, opened);
                }
                else
                {
                    Add(Residence.StreamId(person.Resident), "resident-departed", 2, e, opened);
                }
            }
        }

        foreach (var (called, voters, eligible) in ballots)
        {
            var stream = Ballot.StreamId(called.BallotId);
            Add(stream, "ballot-called", 1, called);
            var options = voters.Select((_, i) => i % 2).ToList();
            if (voters.Count > 0)
            {
                Add(stream, "participations-recorded", 2, new ParticipationsRecorded(called.BallotId, 0, voters));
                Add(stream, "ballots-counted", 1, new BallotsCounted(called.BallotId, 0, [.. voters.Select((_, i) => $"receipt-{i:D4}")], options));
            }

            Add(stream, "ballot-certified", 1, new BallotCertified(
                called.BallotId, called.CantonId, eligible, voters.Count, [options.Count(o => o == 0), options.Count(o => o == 1)],
                voters.Count > 0 ? 1 : 0, null, null));
        }

        foreach (var person in people.Where(p => erased.Contains(p.Resident)))
        {
            var eligibleIn = ballots.Where(b => new Ballot(b.Called, null).Ineligible(person.Residence) is null).Select(b => b.Called.BallotId).ToList();
            Add(Residence.StreamId(person.Resident), "person-erased", 1, new PersonErased(person.Resident, "court-order", "case 1", eligibleIn), AuditPerson.IsErased);
        }

        return trail;
    }
}
