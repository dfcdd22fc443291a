using System.Numerics;
using Confederal.Domain.Fiscal;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Domain.Tests;

public sealed class MoneyProperties
{
    public sealed record SplitCase(long Total, long[] Weights)
    {
        public override string ToString() => $"split {Total} by [{string.Join(", ", Weights)}]";
    }

    // Up to 10^14 (the largest assessment), with the edges and small totals (where leftovers and ties abound) often.
    private static readonly Gen<long> Totals = Gen.Frequency(
        (1, Gen.Elements(0L, 1L, Money.MaxAssessmentMinor)),
        (3, Gen.Choose(0, 1_000).Select(i => (long)i)),
        (6, from high in Gen.Choose(0, 99_999) from low in Gen.Choose(0, 999_999_999) select high * 1_000_000_000L + low));

    private static readonly Gen<long> Weights = Gen.Frequency(
        (2, Gen.Constant(0L)),
        (3, Gen.Choose(1, 10).Select(i => (long)i)),
        (1, Gen.Elements(3_333L, 3_334L, 5_000L, 1_000_000L)),
        (4, Gen.Choose(0, 1_000_000).Select(i => (long)i)));

    /// <summary>The splits drawn for a <see cref="SplitCase"/> parameter.</summary>
    public static Arbitrary<SplitCase> Cases { get; } = Arb.From(
        from total in Totals
        from count in Gen.Choose(1, 10)
        from weights in Gen.ArrayOf(Weights, count).Where(w => w.Any(x => x > 0))
        select new SplitCase(total, weights),
        Shrink);

    private static IEnumerable<SplitCase> Shrink(SplitCase split)
    {
        if (split.Total > 0)
        {
            yield return split with { Total = split.Total / 2 };
        }

        for (var i = 0; i < split.Weights.Length; i++)
        {
            var fewer = split.Weights.Where((_, k) => k != i).ToArray();
            if (fewer.Any(w => w > 0))
            {
                yield return split with { Weights = fewer };
            }

            if (split.Weights[i] > 1)
            {
                var smaller = split.Weights.ToArray();
                smaller[i] /= 2;
                yield return split with { Weights = smaller };
            }
        }
    }

    private const int Runs = 2_000;

    [Property(MaxTest = Runs, Arbitrary = [typeof(MoneyProperties)])]
    public void A_largest_remainder_split_gives_everyone_the_floor_or_one_more_and_sums_to_the_total(SplitCase split)
    {
        var parts = Money.SplitByLargestRemainder(split.Total, split.Weights);

        var sum = split.Weights.Aggregate(BigInteger.Zero, (s, w) => s + w);
        Assert.Equal(split.Weights.Length, parts.Length);
        Assert.Equal(split.Total, parts.Aggregate(BigInteger.Zero, (s, p) => s + p));
        for (var i = 0; i < parts.Length; i++)
        {
            var floor = (long)(split.Total * (BigInteger)split.Weights[i] / sum);
            Assert.InRange(parts[i], floor, floor + 1);
            Assert.True(parts[i] >= 0);
        }
    }

    [Property(MaxTest = Runs, Arbitrary = [typeof(MoneyProperties)])]
    public void A_largest_remainder_split_rounds_up_the_largest_remainders_first_ties_to_the_lower_index(SplitCase split)
    {
        var parts = Money.SplitByLargestRemainder(split.Total, split.Weights);

        var sum = split.Weights.Aggregate(BigInteger.Zero, (s, w) => s + w);
        var remainders = split.Weights.Select(w => split.Total * (BigInteger)w % sum).ToArray();
        var roundedUp = parts.Select((p, i) => p != (long)(split.Total * (BigInteger)split.Weights[i] / sum)).ToArray();
        for (var up = 0; up < parts.Length; up++)
        {
            for (var down = 0; down < parts.Length; down++)
            {
                if (roundedUp[up] && !roundedUp[down])
                {
                    Assert.True(remainders[up] > remainders[down] || (remainders[up] == remainders[down] && up < down),
                        $"index {up} (remainder {remainders[up]}) was rounded up before index {down} (remainder {remainders[down]})");
                }
            }
        }
    }
}
