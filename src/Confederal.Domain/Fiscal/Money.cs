namespace Confederal.Domain.Fiscal;

/// <summary>The exact arithmetic of DESIGN.md's "Amounts": integers only, every split sums to what was split.</summary>
public static class Money
{
    /// <summary>The largest amount one assessment may carry (10^14 minor units): large enough for any taxpayer, small
    /// enough that a rate times it never overflows and a canton's sums stay far inside int64.</summary>
    public const long MaxAssessmentMinor = 100_000_000_000_000;

    public const int BasisPoints = 10_000;

    /// <summary>The designable amount of one taxpayer: floor(tax × rateBp / 10000).</summary>
    public static long Designable(long taxMinor, int rateBp)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(taxMinor);
        ArgumentOutOfRangeException.ThrowIfNegative(rateBp);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rateBp, BasisPoints);
        return (long)((Int128)taxMinor * rateBp / BasisPoints);
    }

    /// <summary>
    /// Splits <paramref name="total"/> in proportion to <paramref name="weights"/> by largest remainder: everyone gets the
    /// floor of their exact share, and the units left over go one each to the largest remainders, ties to the lower
    /// index (callers order by organizationId, ordinal). The parts sum to <paramref name="total"/> exactly.
    /// </summary>
    public static long[] SplitByLargestRemainder(long total, ReadOnlySpan<long> weights)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(total);
        Int128 sum = 0;
        foreach (var w in weights)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(w, nameof(weights));
            sum += w;
        }

        if (sum == 0)
        {
            throw new ArgumentException("A split needs at least one positive weight.", nameof(weights));
        }

        var parts = new long[weights.Length];
        var remainders = new Int128[weights.Length];
        var given = 0L;
        for (var i = 0; i < weights.Length; i++)
        {
            var exact = (Int128)total * weights[i];
            parts[i] = (long)(exact / sum);
            remainders[i] = exact % sum;
            given += parts[i];
        }

        var left = total - given; // < number of weights
        if (left > 0)
        {
            var order = new int[weights.Length];
            for (var i = 0; i < order.Length; i++)
            {
                order[i] = i;
            }

            Array.Sort(order, (a, b) => remainders[a] != remainders[b] ? remainders[b].CompareTo(remainders[a]) : a.CompareTo(b));
            for (var k = 0; k < left; k++)
            {
                parts[order[k]]++;
            }
        }

        return parts;
    }
}
