using System.Text.Json;
using System.Text.Json.Nodes;
using Marten.Events;
using Marten.Services.Json.Transformations;

namespace Confederal.EventStore;

/// <summary>
/// Maps CLR event types to explicit, versioned names (never CLR type names) and back: Marten stores each event under the
/// alias <c>{name}.v{version}</c> (<see cref="EventName.Alias"/>). An event stored under an older version is upcast, one
/// version at a time, to the registered one, by Marten's upcasting on every read.
/// </summary>
public sealed class EventTypes
{
    private readonly Dictionary<Type, EventName> _names = [];
    private readonly Dictionary<string, (Type Type, int Version)> _current = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Name, int FromVersion), Func<JsonObject, JsonObject>> _upcasters = [];
    private readonly Dictionary<string, Type> _byClrName = new(StringComparer.Ordinal);
    private readonly Dictionary<Type, string> _clrNames = [];

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

        _clrNames.Add(typeof(T), ClrNameOf(typeof(T)));
        _byClrName.Add(_clrNames[typeof(T)], typeof(T));

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

    /// <summary>Every alias <paramref name="type"/> is stored under: its registered version's and the older ones'.</summary>
    public IEnumerable<string> AliasesOf(Type type)
    {
        var name = NameOf(type);
        return Enumerable.Range(1, name.Version).Select(v => new EventName(name.Name, v).Alias);
    }

    /// <summary>The CLR type name Marten records beside an event of <paramref name="type"/> (its <c>mt_dotnet_type</c>).</summary>
    public static string ClrNameOf(Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";

    /// <summary><see cref="ClrNameOf"/> of a registered type, computed once at its registration (the bulk import writes it
    /// on every row).</summary>
    internal string RegisteredClrNameOf(Type type) => _clrNames[type];

    /// <summary>
    /// The registered event type Marten reads a row as, if it is not the one the row's alias names: Marten resolves the
    /// alias first, but beside the registered version's alias it takes the CLR type name stored in
    /// <c>mt_dotnet_type</c> when that names another registered type, and for an unknown alias it reads that name alone.
    /// No authentication code covers that column (it is Marten's, not the writer's decision), so a changed one would
    /// make Marten read a valid event as another: null when Marten reads the row as <paramref name="name"/>, or as no
    /// registered type at all.
    /// Older versions' aliases are Marten's upcasts, which it never swaps.
    /// </summary>
    public EventName? MisreadAs(string name, int version, string? clrName)
    {
        if (string.IsNullOrEmpty(clrName) || !_byClrName.TryGetValue(clrName, out var named))
        {
            return null;
        }

        var registered = _current.TryGetValue(name, out var current);
        if (registered && version < current.Version)
        {
            return null;
        }

        return registered && version == current.Version && named == current.Type ? null : _names[named];
    }

    /// <summary>Whether <paramref name="name"/> is a registered event type.</summary>
    public bool IsRegistered(string name) => _current.ContainsKey(name);

    /// <summary>Every registered name.</summary>
    public IEnumerable<string> Names => _current.Keys;

    /// <summary>Maps every registered type to its alias in Marten, and every older version's alias to an upcaster into the
    /// registered type; Marten serializes events with <see cref="SerializerOptions"/>.</summary>
    internal void MapInto(IEventStoreOptions events)
    {
        foreach (var (type, name) in _names)
        {
            events.MapEventType(type, name.Alias);
            for (var version = 1; version < name.Version; version++)
            {
                var stored = new EventName(name.Name, version);
                events.Upcast(type, stored.Alias, new JsonTransformation(
                    (_, reader, index) => Deserialize(stored.Name, stored.Version, reader.GetFieldValue<string>(index), 0, "")));
            }
        }
    }

    /// <summary>Gives Marten's serializer the same options as ours, so that Marten stores the JSON we authenticate.</summary>
    internal void CopySerializerOptionsTo(JsonSerializerOptions target)
    {
        target.PropertyNamingPolicy = SerializerOptions.PropertyNamingPolicy;
        target.PropertyNameCaseInsensitive = SerializerOptions.PropertyNameCaseInsensitive;
        target.NumberHandling = SerializerOptions.NumberHandling;
        target.DefaultIgnoreCondition = SerializerOptions.DefaultIgnoreCondition;
        target.UnmappedMemberHandling = SerializerOptions.UnmappedMemberHandling;
        // What an event holds only in memory (an opened birth date) is left out by the resolver's modifiers: Marten must
        // write exactly what the authentication code covers.
        target.TypeInfoResolver = SerializerOptions.TypeInfoResolver;
        target.Converters.Clear();
        foreach (var converter in SerializerOptions.Converters)
        {
            target.Converters.Add(converter);
        }
    }

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

    private static UnreadableEventException Unreadable(long position, string streamId, string reason, Exception? inner = null) =>
        new(position > 0
                ? $"Event at position {position} (stream '{streamId}') cannot be read: {reason}."
                : $"Event cannot be read: {reason}.",
            reason,
            position,
            inner);
}

public readonly record struct EventName(string Name, int Version)
{
    /// <summary>The name Marten stores: <c>canton-registered.v2</c>.</summary>
    public string Alias => $"{Name}.v{Version}";

    /// <summary>Reads an alias back into its name and version.</summary>
    /// <exception cref="FormatException">Not an alias of ours.</exception>
    public static EventName FromAlias(string alias)
    {
        var dot = alias.LastIndexOf(".v", StringComparison.Ordinal);
        return dot > 0 && int.TryParse(alias.AsSpan(dot + 2), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var version) && version >= 1
            ? new EventName(alias[..dot], version)
            : throw new FormatException($"'{alias}' is not a versioned event type name.");
    }
}
