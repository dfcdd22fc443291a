using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;

namespace Confederal.Api.Features.Audit;

/// <summary>
/// A seal over the positions <see cref="FromPosition"/>..<see cref="ToPosition"/> of the global log, which can no longer
/// change: <see cref="Root"/> is the RFC 6962 Merkle root of their event hashes in position order, <see cref="Previous"/>
/// the digest of the seal before (64 zeros for the first), and <see cref="Signature"/> the platform's ES256 signature
/// (IEEE P1363, hex) of this seal's <see cref="Digest"/>. Hashes are lowercase hex.
/// </summary>
public sealed record Seal(long Number, long FromPosition, long ToPosition, string Root, string Previous, DateTimeOffset SealedAt, string Signature)
{
    public static readonly string First = new('0', 64);

    /// <summary>SHA-256 of the seal without its signature, as canonical JSON.</summary>
    public byte[] Digest()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteNumber("number", Number);
            writer.WriteNumber("fromPosition", FromPosition);
            writer.WriteNumber("toPosition", ToPosition);
            writer.WriteString("root", Root);
            writer.WriteString("previous", Previous);
            writer.WriteString("sealedAt", AuditEvent.FormatInstant(SealedAt));
            writer.WriteEndObject();
        }

        return SHA256.HashData(buffer.WrittenSpan);
    }

    public string DigestHex() => Convert.ToHexStringLower(Digest());

    public Seal SignWith(ECDsa key) => this with { Signature = Convert.ToHexStringLower(key.SignHash(Digest())) };

    public bool IsSignedBy(ECDsa publicKey)
    {
        try
        {
            return publicKey.VerifyHash(Digest(), Convert.FromHexString(Signature));
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>The public key served with the seals (base64 SubjectPublicKeyInfo).</summary>
    public static ECDsa PublicKey(string subjectPublicKeyInfo)
    {
        var key = ECDsa.Create();
        key.ImportSubjectPublicKeyInfo(Convert.FromBase64String(subjectPublicKeyInfo), out _);
        return key;
    }
}
