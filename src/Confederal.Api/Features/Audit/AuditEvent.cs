using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Confederal.EventStore;

namespace Confederal.Api.Features.Audit;

/// <summary>
/// An event as auditors see it: as stored (its stored type version, not upcast), with person ids replaced by
/// pseudonyms in the payload, the stream id and the actor, and its <see cref="Hash"/>:
/// SHA-256(hash of the stream's previous event, or 32 zero bytes, ‖ SHA-256(<see cref="Canonical"/>)), lowercase hex.
/// </summary>
public sealed record AuditEvent(
    long Position,
    string StreamId,
    long Version,
    Guid EventId,
    string Type,
    int TypeVersion,
    DateTimeOffset RecordedAt,
    string? CorrelationId,
    string? CausationId,
    string? Actor,
    JsonElement Data,
    string Hash)
{
    public static readonly byte[] NoPredecessor = new byte[32];

    /// <summary>For an event that names a person by their residence handle: their birth date, opened with their key, or
    /// that they are erased (not hashed: it changes when the person is erased, the event does not). Absent from other
    /// events.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public AuditPerson? Person { get; init; }

    /// <summary>The residence handle the payload names its person by, when it is one: a person recorded before handles is
    /// named by their person id, pseudonymized in the payload itself.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Resident =>
        Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty("resident", out var h)
        && h.ValueKind == JsonValueKind.String && h.GetString() is { } handle && handle.Contains('~', StringComparison.Ordinal)
            ? handle
            : null;

    /// <summary>The pseudonymized view of a stored event; <see cref="Hash"/> is left empty.</summary>
    public static AuditEvent From(StoredEvent stored, Pseudonyms pseudonyms) => From(stored, pseudonyms, null, null, out _);

    /// <summary>The pseudonymized view of a stored event, and why it cannot be trusted as Marten reads it (null when it
    /// can): its authentication code is not the one <paramref name="authenticator"/> computes, or Marten reads it as
    /// another of the registered <paramref name="types"/> than the one it is stored and authenticated as (each check
    /// only with what it needs).</summary>
    public static AuditEvent From(
        StoredEvent stored, Pseudonyms pseudonyms, EventAuthenticator? authenticator, EventTypes? types, out string? forgery)
    {
        using var document = JsonDocument.Parse(stored.Json);
        forgery = null;
        if (authenticator is not null && !(stored.Code is { } code && authenticator.Verify(
                code, stored.StreamId, stored.Version, stored.EventId, stored.Type, stored.TypeVersion,
                CanonicalJson.Serialize(document.RootElement), stored.Metadata)))
        {
            forgery = "the authentication code does not match: the event was altered or forged";
        }
        else if (types?.MisreadAs(stored.Type, stored.TypeVersion, stored.ClrName) is { } misread)
        {
            forgery = $"Marten reads it as {misread.Alias}, not as the {new EventName(stored.Type, stored.TypeVersion).Alias} it is " +
                      "stored and authenticated as: the CLR type name beside it (mt_dotnet_type, which no code covers) was altered";
        }

        // The person a stream is named after: by a person id in clear (events recorded before handles, and the later
        // events of those people, whose handle is that person id), pseudonymized in the stream id as in the payload.
        var person = document.RootElement.ValueKind == JsonValueKind.Object
                     && (document.RootElement.TryGetProperty("personId", out var p)
                         || document.RootElement.TryGetProperty("taxpayer", out p) || document.RootElement.TryGetProperty("resident", out p))
                     && p.ValueKind == JsonValueKind.String && !p.GetString()!.Contains('~', StringComparison.Ordinal)
            ? p.GetString()
            : null;
        var data = CanonicalJson.Serialize(document.RootElement, pseudonyms.Rewrite);
        return new AuditEvent(
            stored.Position,
            pseudonyms.Stream(stored.StreamId, person),
            stored.Version,
            stored.EventId,
            stored.Type,
            stored.TypeVersion,
            stored.RecordedAt,
            stored.Metadata.CorrelationId,
            stored.Metadata.CausationId,
            pseudonyms.Actor(stored.Metadata.Actor),
            JsonDocument.Parse(data).RootElement.Clone(),
            "")
        {
            _canonicalData = data,
        };
    }

    // The payload's canonical bytes when this process made them, so that hashing does not write them twice.
    private byte[]? _canonicalData;

    /// <summary>The bytes the hash covers: every field but the hash, in this order, as canonical JSON (recordedAt in UTC
    /// with microseconds, the database's precision).</summary>
    public byte[] Canonical()
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteNumber("position", Position);
            writer.WriteString("streamId", StreamId);
            writer.WriteNumber("version", Version);
            writer.WriteString("eventId", EventId.ToString("D"));
            writer.WriteString("type", Type);
            writer.WriteNumber("typeVersion", TypeVersion);
            writer.WriteString("recordedAt", FormatInstant(RecordedAt));
            writer.WriteString("correlationId", CorrelationId);
            writer.WriteString("causationId", CausationId);
            writer.WriteString("actor", Actor);
            writer.WritePropertyName("data");
            if (_canonicalData is not null)
            {
                writer.WriteRawValue(_canonicalData, skipInputValidation: true);
            }
            else
            {
                CanonicalJson.Write(writer, Data);
            }
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>This event's hash, chained to <paramref name="previous"/> (its stream predecessor's hash).</summary>
    public byte[] ComputeHash(ReadOnlySpan<byte> previous)
    {
        Span<byte> link = stackalloc byte[64];
        previous.CopyTo(link);
        SHA256.HashData(Canonical(), link[32..]);
        return SHA256.HashData(link);
    }

    public static string FormatInstant(DateTimeOffset instant) =>
        instant.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}

/// <summary>What the key table still knows of the person an event names by their residence handle: their birth date
/// (for an arrival), which replay needs for eligibility; or <see cref="Erased"/>, once their key is destroyed. Handles
/// are pseudonyms already: random, stable per person and useless outside the platform.</summary>
public sealed record AuditPerson(DateOnly? BirthDate, bool Erased)
{
    public static readonly AuditPerson IsErased = new(null, true);

    /// <summary>The events of a page with <see cref="AuditEvent.Person"/> filled from the key table, in one lookup.</summary>
    public static async Task<List<AuditEvent>> OpenAsync(IReadOnlyList<AuditEvent> page, Persons.PersonKeys persons, CancellationToken ct)
    {
        var residents = page.Select(e => e.Resident).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
        var keys = await persons.ByResidentsAsync(residents, ct);
        return [.. page.Select(e => e.Resident is not { } resident ? e
            : keys.TryGetValue(resident, out var key) ? e with { Person = new AuditPerson(OpenBirthDate(e, key), false) }
            : e with { Person = IsErased })];
    }

    private static DateOnly? OpenBirthDate(AuditEvent e, Persons.PersonKey key) =>
        e.Data.TryGetProperty("sealedBirthDate", out var sealedDate) && sealedDate.ValueKind == JsonValueKind.String
            ? key.OpenBirthDate(sealedDate.GetString())
            : null;
}
