using System.Security.Cryptography;
using Confederal.Api.Features.Audit;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Confederal.Api.Tests;

public sealed class MerkleProperties
{
    // RFC 6962 §2.1, as written: MTH({}) = SHA-256(), MTH({d}) = SHA-256(0x00 ‖ d), MTH(D[n]) = SHA-256(0x01 ‖ MTH(D[0:k]) ‖
    // MTH(D[k:n])) with k the largest power of two smaller than n.
    private static byte[] Reference(List<byte[]> leaves)
    {
        if (leaves.Count == 0)
        {
            return SHA256.HashData([]);
        }

        if (leaves.Count == 1)
        {
            return SHA256.HashData([0, .. leaves[0]]);
        }

        var k = 1;
        while (k * 2 < leaves.Count)
        {
            k *= 2;
        }

        return SHA256.HashData([1, .. Reference(leaves.Take(k).ToList()), .. Reference(leaves.Skip(k).ToList())]);
    }

    /// <summary>Trees of 0 to 300 leaves, each leaf a SHA-256 hash.</summary>
    public static Arbitrary<List<byte[]>> Leaves { get; } =
        Arb.From(Gen.Choose(0, 300).Select(n => Enumerable.Range(0, n).Select(i => SHA256.HashData(BitConverter.GetBytes(i * 7919 + n))).ToList()));

    /// <summary>A tree of N leaves and two distinct leaves I and J of it.</summary>
    public static Arbitrary<(int N, int I, int J)> TwoLeaves { get; } = Arb.From(
        from n in Gen.Choose(2, 200)
        from i in Gen.Choose(0, n - 1)
        from j in Gen.Choose(0, n - 1).Where(j => j != i)
        select (N: n, I: i, J: j));

    [Property(MaxTest = 300, Arbitrary = [typeof(MerkleProperties)])]
    public void The_streamed_root_is_the_RFC_6962_tree_hash(List<byte[]> leaves) =>
        Assert.Equal(Reference(leaves), MerkleRoot.Of(leaves));

    [Property(MaxTest = 300, Arbitrary = [typeof(MerkleProperties)])]
    public void Changing_dropping_or_swapping_a_leaf_changes_the_root((int N, int I, int J) c)
    {
        var leaves = Enumerable.Range(0, c.N).Select(k => SHA256.HashData(BitConverter.GetBytes(k))).ToList();
        var root = MerkleRoot.Of(leaves);
        var changed = leaves.ToList();
        changed[c.I] = SHA256.HashData(changed[c.I]);
        var swapped = leaves.ToList();
        (swapped[c.I], swapped[c.J]) = (swapped[c.J], swapped[c.I]);
        Assert.NotEqual(root, MerkleRoot.Of(changed));
        Assert.NotEqual(root, MerkleRoot.Of(leaves.Where((_, k) => k != c.I)));
        Assert.NotEqual(root, MerkleRoot.Of(swapped));
    }
}
