using System.Security.Cryptography;

namespace Confederal.Api.Features.Audit;

/// <summary>
/// The Merkle tree hash of RFC 6962 (Certificate Transparency) over a sequence of leaves, built as they stream by in
/// O(log n) memory: leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right), the left subtree holding the
/// largest power of two of leaves smaller than the whole.
/// </summary>
public sealed class MerkleRoot
{
    // Complete subtrees of decreasing size, left to right: (number of leaves, hash).
    private readonly List<(long Size, byte[] Hash)> _stack = [];

    public long Count { get; private set; }

    public void Add(ReadOnlySpan<byte> data)
    {
        Span<byte> leaf = stackalloc byte[1 + data.Length];
        leaf[0] = 0;
        data.CopyTo(leaf[1..]);
        var node = (Size: 1L, Hash: SHA256.HashData(leaf));
        while (_stack.Count > 0 && _stack[^1].Size == node.Size)
        {
            node = (node.Size * 2, Node(_stack[^1].Hash, node.Hash));
            _stack.RemoveAt(_stack.Count - 1);
        }

        _stack.Add(node);
        Count++;
    }

    /// <summary>The root of the leaves added so far (SHA-256 of nothing for none).</summary>
    public byte[] Root()
    {
        if (_stack.Count == 0)
        {
            return SHA256.HashData([]);
        }

        var hash = _stack[^1].Hash;
        for (var i = _stack.Count - 2; i >= 0; i--)
        {
            hash = Node(_stack[i].Hash, hash);
        }

        return hash;
    }

    public static byte[] Of(IEnumerable<byte[]> leaves)
    {
        var root = new MerkleRoot();
        foreach (var leaf in leaves)
        {
            root.Add(leaf);
        }

        return root.Root();
    }

    private static byte[] Node(byte[] left, byte[] right)
    {
        Span<byte> node = stackalloc byte[65];
        node[0] = 1;
        left.CopyTo(node[1..]);
        right.CopyTo(node[33..]);
        return SHA256.HashData(node);
    }
}
