using System.Buffers;
using System.Text.Json;

namespace Confederal.EventStore;

/// <summary>
/// One byte sequence per JSON value, whoever wrote it: object members sorted by name (ordinal), no whitespace, integers
/// in plain decimal, strings escaped as <see cref="Utf8JsonWriter"/> escapes them. PostgreSQL's jsonb text and the
/// serializer's output of the same payload canonicalize to the same bytes, so a digest taken when an event is written can
/// be checked against what the database returns.
/// </summary>
public static class CanonicalJson
{
    /// <summary>Rewrites a string value found under the named member (also each string of an array there).</summary>
    public delegate string Rewrite(string member, string value);

    public static byte[] Serialize(string json, Rewrite? rewrite = null)
    {
        using var document = JsonDocument.Parse(json);
        return Serialize(document.RootElement, rewrite);
    }

    public static byte[] Serialize(JsonElement element, Rewrite? rewrite = null)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, element, rewrite);
        }

        return buffer.WrittenSpan.ToArray();
    }

    public static void Write(Utf8JsonWriter writer, JsonElement element, Rewrite? rewrite = null) =>
        Write(writer, element, rewrite, member: null);

    private static void Write(Utf8JsonWriter writer, JsonElement element, Rewrite? rewrite, string? member)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                var members = new List<JsonProperty>();
                foreach (var property in element.EnumerateObject())
                {
                    members.Add(property);
                }

                members.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
                foreach (var property in members)
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value, rewrite, property.Name);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item, rewrite, member);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                var text = element.GetString()!;
                writer.WriteStringValue(rewrite is not null && member is not null ? rewrite(member, text) : text);
                break;
            case JsonValueKind.Number:
                if (element.TryGetInt64(out var integer))
                {
                    writer.WriteNumberValue(integer);
                }
                else
                {
                    writer.WriteRawValue(element.GetRawText(), skipInputValidation: true);
                }

                break;
            default:
                element.WriteTo(writer); // true, false, null
                break;
        }
    }
}
