using System.Numerics;
using Confederal.Domain.Pacts;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Domain.Tests;

public sealed class PactSettlementProperties
{
    public sealed record PactCase(PactDistribution Distribution, PactMemberAccounts[] Members)
    {
        public override string ToString() => $"{Distribution}: {string.Join("; ", Members.Select(m => m.ToString()))}";
    }

    // Ordinal order differs from a culture's: "z-1" < "za" and "Zug" < "aosta".
    private static readonly string[] CantonIds = ["ge", "vd", "za", "z-1", "Zug", "aosta"];

    private static Gen<PactMemberAccounts> Member(string cantonId) =>
        from rate in Gen.Frequency((1, Gen.Elements(0, 1, 10_000)), (2, Gen.Elements(100, 3_333, 5_000)), (3, Gen.Choose(0, 10_000)))
        from revenue in Gen.Frequency(
            (1, Gen.Elements(0L, 1L, 999_999_999_999_999L)),
            (3, Gen.Choose(0, 100_000).Select(i => (long)i)),
            (4, from high in Gen.Choose(0, 999_999) from low in Gen.Choose(0, 999_999_999) select high * 1_000_000_000L + low))
        from designatedPart in Gen.Choose(0, 10_000)
        from residents in Gen.Frequency((2, Gen.Constant(0L)), (3, Gen.Choose(1, 5).Select(i => (long)i)), (1, Gen.Choose(0, 2_000_000).Select(i => (long)i)))
        select new PactMemberAccounts(cantonId, rate, revenue, (long)((BigInteger)revenue * designatedPart / 10_000), residents);

    /// <summary>The pacts drawn for a <see cref="PactCase"/> parameter.</summary>
    public static Arbitrary<PactCase> Cases { get; } = Arb.From(
        from distribution in Gen.Elements(PactDistribution.Equal, PactDistribution.PerResident)
        from ids in Gen.SubListOf(CantonIds)
        from shuffled in Gen.Shuffle(ids.ToArray())
        from members in Gen.CollectToArray(shuffled, Member)
        select new PactCase(distribution, members));

    [Property(MaxTest = 2_000, Arbitrary = [typeof(PactSettlementProperties)])]
    public void The_pool_goes_back_to_the_members_to_the_minor_unit_each_receipt_the_floor_of_its_exact_share_or_one_more(PactCase pact)
    {
        var lines = PactSettlement.Settle(pact.Distribution, pact.Members);

        var members = pact.Members.OrderBy(m => m.CantonId, StringComparer.Ordinal).ToList();
        Assert.Equal(members.Select(m => m.CantonId), lines.Select(l => l.CantonId));
        var contributions = members.Select(m => (long)((BigInteger)(m.RevenueMinor - m.DesignatedMinor) * m.ContributionRateBp / 10_000)).ToList();
        Assert.Equal(contributions, lines.Select(l => l.ContributionMinor));
        var pool = contributions.Aggregate(BigInteger.Zero, (s, c) => s + c);
        Assert.Equal(pool, lines.Aggregate(BigInteger.Zero, (s, l) => s + l.ReceiptMinor));

        var weights = members.Select(m => pact.Distribution == PactDistribution.Equal ? 1 : m.Residents).ToList();
        if (weights.All(w => w == 0))
        {
            weights = [.. weights.Select(_ => 1L)]; // nobody has a resident: equally
        }

        var sum = weights.Aggregate(BigInteger.Zero, (s, w) => s + w);
        for (var i = 0; i < lines.Count; i++)
        {
            var floor = (long)(pool * weights[i] / sum);
            Assert.InRange(lines[i].ReceiptMinor, floor, floor + 1);
        }

        if (pact.Distribution == PactDistribution.Equal)
        {
            // Equal weights tie on every remainder: the units left over go to the first cantons in ordinal order.
            Assert.Equal(lines.Select(l => l.ReceiptMinor).OrderByDescending(r => r), lines.Select(l => l.ReceiptMinor));
        }
    }
}
