using Confederal.Domain.Fiscal;

namespace Confederal.Domain.Tests;

public sealed class MoneyTests
{
    [Theory]
    [InlineData(1_000, 70, 7)] // 1000 × 0.7 % = 7 exactly
    [InlineData(999, 70, 6)] // 6.993 → 6
    [InlineData(142_857, 70, 999)] // 999.999 → 999
    [InlineData(123_456, 100, 1_234)] // 1234.56 → 1234
    [InlineData(0, 70, 0)]
    [InlineData(5_000_000, 0, 0)]
    [InlineData(12_345, 10_000, 12_345)] // the whole tax
    [InlineData(Money.MaxAssessmentMinor, 9_999, 99_990_000_000_000)] // the largest assessment does not overflow
    public void The_designable_amount_is_the_floor_of_tax_times_rate(long tax, int rateBp, long designable) =>
        Assert.Equal(designable, Money.Designable(tax, rateBp));

    [Theory]
    [InlineData(-1, 70)]
    [InlineData(1_000, -1)]
    [InlineData(1_000, 10_001)]
    public void The_designable_amount_needs_a_non_negative_tax_and_a_rate_of_0_to_10000_bp(long tax, int rateBp) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Money.Designable(tax, rateBp));

    [Fact]
    public void A_leftover_unit_goes_to_the_lower_index_when_remainders_tie()
    {
        // 100 / 3 = 33.33…: floors 33+33+33 = 99, one unit left; the three remainders tie, the first index takes it.
        Assert.Equal([34, 33, 33], Money.SplitByLargestRemainder(100, [1, 1, 1]));

        // 7 × 5000/10000 = 3.5 twice: one unit left, tie, the first takes it.
        Assert.Equal([4, 3], Money.SplitByLargestRemainder(7, [5_000, 5_000]));

        // 2 / 3 each = 0.67: floors 0, two units left, all remainders tie: the first two indexes.
        Assert.Equal([1, 1, 0], Money.SplitByLargestRemainder(2, [1, 1, 1]));

        // One unit among four equal shares.
        Assert.Equal([1, 0, 0, 0], Money.SplitByLargestRemainder(1, [2_500, 2_500, 2_500, 2_500]));
    }

    [Fact]
    public void Leftover_units_go_to_the_largest_remainders()
    {
        // 10 × 3333/10000 = 3.333 (remainder 3330), 3.333 (3330), 10 × 3334/10000 = 3.334 (3340): floors 9, one unit
        // left, the largest remainder is the last one.
        Assert.Equal([3, 3, 4], Money.SplitByLargestRemainder(10, [3_333, 3_333, 3_334]));

        // 10 × 1/3 = 3.33 (remainder 1 of 3), 10 × 2/3 = 6.67 (remainder 2 of 3): the unit goes to the second.
        Assert.Equal([3, 7], Money.SplitByLargestRemainder(10, [1, 2]));

        // 100 × 3333/10000 = 33.33 (3300), 100 × 6667/10000 = 66.67 (6700).
        Assert.Equal([33, 67], Money.SplitByLargestRemainder(100, [3_333, 6_667]));
    }

    [Fact]
    public void An_exact_split_has_no_leftover() =>
        Assert.Equal([20, 30, 50], Money.SplitByLargestRemainder(100, [2_000, 3_000, 5_000]));

    [Fact]
    public void Splitting_zero_gives_zero_to_everyone() =>
        Assert.Equal([0, 0, 0], Money.SplitByLargestRemainder(0, [1, 5, 9]));

    [Fact]
    public void A_zero_weight_gets_nothing_even_with_units_left()
    {
        // 5 × 1/2 = 2.5 twice: the one unit left goes to the first positive weight, never to the zero weights between.
        Assert.Equal([0, 3, 0, 2, 0], Money.SplitByLargestRemainder(5, [0, 1, 0, 1, 0]));
        Assert.Equal([0, 100, 0], Money.SplitByLargestRemainder(100, [0, 7, 0]));
    }

    [Fact]
    public void A_split_at_the_limits_of_int64_does_not_overflow()
    {
        // M = 2^63 − 1 split M : 1. M × M = (M + 1)(M − 1) + 1, so the first gets M − 1 (remainder 1) and the second
        // 0 (remainder M); the unit left goes to the second.
        Assert.Equal([long.MaxValue - 1, 1], Money.SplitByLargestRemainder(long.MaxValue, [long.MaxValue, 1]));

        // 10^14 / 3 = 33 333 333 333 333.33…
        Assert.Equal([33_333_333_333_334, 33_333_333_333_333, 33_333_333_333_333],
            Money.SplitByLargestRemainder(Money.MaxAssessmentMinor, [1, 1, 1]));
    }

    [Fact]
    public void A_split_needs_at_least_one_positive_weight()
    {
        Assert.Throws<ArgumentException>(() => Money.SplitByLargestRemainder(10, [0, 0]));
        Assert.Throws<ArgumentException>(() => Money.SplitByLargestRemainder(10, []));
    }

    [Fact]
    public void A_split_refuses_negative_totals_and_weights()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Money.SplitByLargestRemainder(-1, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Money.SplitByLargestRemainder(10, [3, -1]));
    }
}
