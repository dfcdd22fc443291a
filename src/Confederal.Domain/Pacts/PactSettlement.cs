using Confederal.Domain.Fiscal;

namespace Confederal.Domain.Pacts;

/// <summary>What one member canton puts into a pact's pool for a fiscal year and what it gets back from it.</summary>
public sealed record PactLine(string CantonId, long ContributionMinor, long ReceiptMinor);

/// <summary>What the settlement of a pact-year needs from one member canton: its rate, its budget before pacts
/// (zero revenue when it has none for the year) and its residents on 1 January of the year.</summary>
public sealed record PactMemberAccounts(string CantonId, int ContributionRateBp, long RevenueMinor, long DesignatedMinor, long Residents);

/// <summary>DESIGN.md's pact rule for one pact and one fiscal year, exact to the minor unit.</summary>
public static class PactSettlement
{
    /// <summary>floor((revenue − designated) × contributionRateBp / 10000).</summary>
    public static long Contribution(long revenueMinor, long designatedMinor, int contributionRateBp)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(contributionRateBp);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(contributionRateBp, Money.BasisPoints);
        var retained = checked(revenueMinor - designatedMinor);
        ArgumentOutOfRangeException.ThrowIfNegative(retained, nameof(designatedMinor));
        return (long)((Int128)retained * contributionRateBp / Money.BasisPoints);
    }

    /// <summary>
    /// Each member contributes <see cref="Contribution"/>; the pool (Σ contributions) is split among all the members by
    /// largest remainder, ties in cantonId ordinal order, with weight 1 each (<see cref="PactDistribution.Equal"/>) or
    /// each member's residents (<see cref="PactDistribution.PerResident"/>). When no member has a resident, a
    /// per-resident pool is split equally: nobody's weight can be preferred, and the pool must still go back to the
    /// members. The lines come in cantonId ordinal order; Σ receipts = Σ contributions exactly.
    /// </summary>
    public static IReadOnlyList<PactLine> Settle(PactDistribution distribution, IEnumerable<PactMemberAccounts> members)
    {
        var ordered = members.OrderBy(m => m.CantonId, StringComparer.Ordinal).ToList();
        for (var i = 1; i < ordered.Count; i++)
        {
            if (ordered[i].CantonId == ordered[i - 1].CantonId)
            {
                throw new ArgumentException($"Canton '{ordered[i].CantonId}' is listed twice.", nameof(members));
            }
        }

        if (ordered.Count == 0)
        {
            return [];
        }

        var contributions = new long[ordered.Count];
        var weights = new long[ordered.Count];
        var pool = 0L;
        for (var i = 0; i < ordered.Count; i++)
        {
            var member = ordered[i];
            ArgumentOutOfRangeException.ThrowIfNegative(member.Residents, nameof(members));
            contributions[i] = Contribution(member.RevenueMinor, member.DesignatedMinor, member.ContributionRateBp);
            pool = checked(pool + contributions[i]);
            weights[i] = distribution == PactDistribution.PerResident ? member.Residents : 1;
        }

        if (Array.TrueForAll(weights, w => w == 0))
        {
            Array.Fill(weights, 1);
        }

        var receipts = Money.SplitByLargestRemainder(pool, weights);
        return [.. ordered.Select((m, i) => new PactLine(m.CantonId, contributions[i], receipts[i]))];
    }
}
