using System.Text.Json;
using System.Text.Json.Nodes;

namespace Confederal.EventStore;

/// <summary>
/// Maps CLR event types to explicit, versioned names (never CLR type names) and back.
/// An event stored under an older version is upcast, one version at a time, to the registered one.
/// </summary>
public sealed class EventTypes
{
    private readonly Dictionary<Type, EventName> _names = [];
    private readonly Dictionary<string, (Type Type, int Version)> _current = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Name, int FromVersion), Func<JsonObject, JsonObject>> _upcasters = [];

    public EventTypes(JsonSerializerOptions? options = null) =>
        SerializerOptions = options ?? new JsonSerializerOptions(JsonSerializerDefaults.Web);

    public JsonSerializerOptions SerializerOptions { get; }

    /// <summary>Registers <typeparamref name="T"/> as the current shape of <paramref name="name"/> at <paramref name="version"/>.</summary>
    public EventTypes Register<T>(string name, int version = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        if (!_names.TryAdd(typeof(T), new EventName(name, version)) || !_current.TryAdd(name, (typeof(T), version)))
        {
            throw new InvalidOperationException($"Event type {typeof(T).Name} or name '{name}' is registered twice.");
        }

        return this;
    }

    /// <summary>Registers how a payload stored as <paramref name="name"/> version <paramref name="fromVersion"/> becomes version <paramref name="fromVersion"/> + 1.</summary>
    public EventTypes Upcast(string name, int fromVersion, Func<JsonObject, JsonObject> upcast)
    {
        if (!_upcasters.TryAdd((name, fromVersion), upcast))
        {
            throw new InvalidOperationException($"Upcaster for '{name}' v{fromVersion} is registered twice.");
        }

        return this;
    }

    public EventName NameOf(Type type) =>
        _names.TryGetValue(type, out var name)
            ? name
            : throw new InvalidOperationException($"Event type {type.FullName} is not registered.");

    /// <summary>Reads a payload stored as <paramref name="name"/> v<paramref name="version"/> into the registered CLR event,
    /// upcasting older versions; <paramref name="position"/> and <paramref name="streamId"/> name it in errors.</summary>
    /// <exception cref="EventStoreException">Unknown name or version, or a payload that is not valid for its type.</exception>
    public object Read(string name, int version, string json, long position, string streamId) =>
        Deserialize(name, version, json, position, streamId);

    /// <summary>Whether <paramref name="name"/> is a registered event type.</summary>
    public bool IsRegistered(string name) => _current.ContainsKey(name);

    /// <summary>Every registered name.</summary>
    public IEnumerable<string> Names => _current.Keys;

    internal string SerializeToString(object @event) =>
        JsonSerializer.Serialize(@event, @event.GetType(), SerializerOptions);

    /// <summary>Turns a stored payload into the registered CLR event, upcasting older versions.</summary>
    /// <exception cref="EventStoreException">Unknown name or version, or a payload that is not valid for its type.</exception>
    internal object Deserialize(string name, int version, string json, long position, string streamId)
    {
        if (!_current.TryGetValue(name, out var current))
        {
            throw Unreadable(position, streamId, $"unknown event type '{name}' v{version}");
        }

        if (version > current.Version)
        {
            throw Unreadable(position, streamId, $"event type '{name}' v{version} is newer than the registered v{current.Version}");
        }

        try
        {
            if (version == current.Version)
            {
                return JsonSerializer.Deserialize(json, current.Type, SerializerOptions)
                    ?? throw Unreadable(position, streamId, $"'{name}' v{version} payload is null");
            }

            var node = JsonNode.Parse(json) as JsonObject
                ?? throw Unreadable(position, streamId, $"'{name}' v{version} payload is not a JSON object");
            for (var v = version; v < current.Version; v++)
            {
                if (!_upcasters.TryGetValue((name, v), out var upcast))
                {
                    throw Unreadable(position, streamId, $"no upcaster from '{name}' v{v} to v{v + 1}");
                }

                node = upcast(node);
            }

            return node.Deserialize(current.Type, SerializerOptions)
                ?? throw Unreadable(position, streamId, $"'{name}' v{version} payload is null");
        }
        catch (JsonException e)
        {
            throw Unreadable(position, streamId, $"'{name}' v{version} payload is corrupt: {e.Message}", e);
        }
    }

    private static EventStoreException Unreadable(long position, string streamId, string reason, Exception? inner = null) =>
        new(position > 0
                ? $"Event at position {position} (stream '{streamId}') cannot be read: {reason}."
                : $"Event in stream '{streamId}' cannot be read: {reason}.",
            position,
            inner);
}

public readonly record struct EventName(string Name, int Version);
