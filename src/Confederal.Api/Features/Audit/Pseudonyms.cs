using System.Security.Cryptography;
using System.Text;

namespace Confederal.Api.Features.Audit;

/// <summary>
/// Keyed pseudonyms of person ids: "p-" and 26 base32 characters of HMAC-SHA256(key, personId). Stable per person (one
/// designation per person stays checkable), useless without the key, and valid person ids themselves, so the same
/// rules code replays a pseudonymized log.
/// </summary>
public sealed class Pseudonyms(byte[] key)
{
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    public string Of(string personId) => Keyed(key, "p-", personId);

    /// <summary><paramref name="prefix"/> (two characters) and 26 base32 characters (130 bits, from the first 17 bytes) of
    /// the HMAC-SHA256 of <paramref name="value"/> under <paramref name="key"/>.</summary>
    internal static string Keyed(byte[] key, string prefix, string value)
    {
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(value), mac);
        Span<char> text = stackalloc char[28];
        prefix.CopyTo(text);
        for (var i = 0; i < 26; i++)
        {
            var bit = i * 5;
            var pair = (mac[bit / 8] << 8) | mac[(bit / 8) + 1];
            text[2 + i] = Alphabet[(pair >> (11 - (bit % 8))) & 31];
        }

        return new string(text);
    }

    /// <summary>The payload members that hold person ids, or handles (which are person ids for people recorded before
    /// handles).</summary>
    public static bool IsPersonMember(string member) => member is "personId" or "personIds" or "taxpayer" or "resident" or "residents";

    /// <summary>Rewrites person ids in a payload's members; a handle ("~" is never in a person id) stays.</summary>
    public string Rewrite(string member, string value) =>
        IsPersonMember(member) && !value.Contains('~', StringComparison.Ordinal) ? Of(value) : value;

    /// <summary>A stream named after a person ("residence-{personId}", "designations-{canton}-{personId}") names the
    /// pseudonym instead.</summary>
    public string Stream(string streamId, string? personId) =>
        personId is not null && streamId.EndsWith($"-{personId}", StringComparison.Ordinal)
            ? string.Concat(streamId.AsSpan(0, streamId.Length - personId.Length), Of(personId))
            : streamId;

    /// <summary>A person acting ("person:{personId}") is named by the pseudonym.</summary>
    public string? Actor(string? actor) =>
        actor is not null && actor.StartsWith("person:", StringComparison.Ordinal) ? $"person:{Of(actor["person:".Length..])}" : actor;
}
