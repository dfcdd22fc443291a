using System.Globalization;
using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.EventStore;
using Org = Confederal.Domain.Organizations.Organization;
using Assessed = Confederal.Domain.Fiscal.TaxAssessed;

namespace Confederal.Benchmarks;

/// <summary>
/// A realistic fiscal history made of the API's own events, written fast by bulk appends: 10 cantons, 20 organizations,
/// a policy per canton for 2024–2026, then groups of 10 events: 8 tax assessments (one in 20 a correction of an earlier
/// one) and 2 designations by people already assessed (one in 10 standing, from 2025). Every event is a pure function
/// of its index, so a range can be written again after it was deleted. The projection reads only the events' data, so
/// assessments and designations go in bulk streams of 8,000 and 2,000 events, alternating.
/// </summary>
public static class FiscalHistory
{
    public static readonly string[] Cantons = ["ge", "vd", "ti", "zh", "be", "bs", "ur", "sz", "ne", "ju"];
    public static readonly int[] Years = [2024, 2025, 2026];
    private const int OrganizationCount = 20;
    private const int Group = 10;
    private const int AssessmentsPerGroup = 8;
    private const int BulkGroups = 1_000;

    public static int SetupEvents => Cantons.Length + OrganizationCount + Cantons.Length * Years.Length;

    public static string Organization(int i) => $"org-{i:D2}";

    /// <summary>The setup events and the first <paramref name="total"/> − setup events of the body.</summary>
    public static async Task AppendAsync(EventLog log, int total)
    {
        await AppendSetupAsync(log);
        await AppendBodyAsync(log, 0, total - SetupEvents);
    }

    /// <summary>Body events [<paramref name="from"/>, <paramref name="from"/> + <paramref name="count"/>).</summary>
    public static async Task AppendBodyAsync(EventLog log, long from, long count)
    {
        var end = from + count;
        for (var start = from; start < end; start += Group * BulkGroups)
        {
            var stop = Math.Min(end, start + Group * BulkGroups);
            await WriteAsync(log, $"bench-assessments-{start}", Range(start, stop).Where(k => k % Group < AssessmentsPerGroup).Select(Assessment));
            await WriteAsync(log, $"designations-bench-{start}", Range(start, stop).Where(k => k % Group >= AssessmentsPerGroup).Select(Designation));
        }
    }

    private static IEnumerable<long> Range(long from, long to)
    {
        for (var k = from; k < to; k++)
        {
            yield return k;
        }
    }

    private static async Task AppendSetupAsync(EventLog log)
    {
        foreach (var canton in Cantons)
        {
            await log.AppendAsync(Canton.StreamId(canton), ExpectedVersion.NoStream, [new CantonRegistered(canton, canton.ToUpperInvariant(), "CHF")]);
        }

        for (var i = 0; i < OrganizationCount; i++)
        {
            await log.AppendAsync(Org.StreamId(Organization(i)), ExpectedVersion.NoStream,
                [new OrganizationRecognized(Organization(i), $"Organization {i}", OrganizationKind.Commons, AcceptsRedistribution: i % 4 != 0)]);
        }

        for (var c = 0; c < Cantons.Length; c++)
        {
            foreach (var year in Years)
            {
                await log.AppendAsync(FiscalPolicy.StreamId(Cantons[c], year), ExpectedVersion.NoStream,
                [
                    new FiscalPolicySet(Cantons[c], year, 50 + 5 * c, 3, c % 2 == 0 ? UnallocatedPolicy.Retain : UnallocatedPolicy.Proportional,
                        new DateTimeOffset(year + 1, 3, 31, 23, 59, 59, TimeSpan.Zero), Eligibility.All, []),
                ]);
            }
        }
    }

    private static async Task WriteAsync(EventLog log, string stream, IEnumerable<object> events)
    {
        await using var bulk = await log.BeginBulkAppendAsync(stream, new EventMetadata(Actor: "bench"));
        foreach (var e in events)
        {
            await bulk.WriteAsync(e);
        }

        if (bulk.Count > 0)
        {
            await bulk.CommitAsync();
        }
    }

    /// <summary>Assessment a (the a-th of the body): an original, or every 20th a correction of an earlier original.</summary>
    private static Assessed Assessment(long k)
    {
        var a = k / Group * AssessmentsPerGroup + k % Group;
        var originalsBefore = a - a / 20;
        return a % 20 == 19
            ? Original(Hash(a) % originalsBefore, 20_000 + Hash(a + 7) % 15_000_000)
            : Original(originalsBefore, 20_000 + Hash(originalsBefore) % 15_000_000);
    }

    private static Assessed Original(long b, long amount)
    {
        var person = b / Years.Length;
        return new Assessed(Cantons[person % Cantons.Length], PersonId(person), Years[b % Years.Length], amount);
    }

    /// <summary>Designation d: a person assessed before it chooses 1 to 3 distinct organizations.</summary>
    private static DesignationChosen Designation(long k)
    {
        var d = k / Group * (Group - AssessmentsPerGroup) + k % Group - AssessmentsPerGroup;
        var assessed = Math.Max(1, k / Group * AssessmentsPerGroup * 19 / 20 / Years.Length);
        var person = Hash(d) % assessed;
        var count = (int)(1 + Hash(d + 1) % 3);
        var first = (int)(Hash(d + 2) % OrganizationCount);
        var choices = Enumerable.Range(0, count)
            .Select(j => new Choice(Organization((first + 7 * j) % OrganizationCount), 10_000 / count + (j == 0 ? 10_000 % count : 0)))
            .ToList();
        var standing = d % 10 == 9;
        return new DesignationChosen(Cantons[person % Cantons.Length], PersonId(person), standing ? 2025 : 2026, choices, standing);
    }

    private static string PersonId(long person) => string.Create(CultureInfo.InvariantCulture, $"p{person:D7}");

    private static long Hash(long x)
    {
        var z = unchecked((ulong)x + 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (long)((z ^ (z >> 31)) >> 1);
    }
}
