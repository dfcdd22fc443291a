using System.Text.Json;

namespace Confederal.EventStore;

/// <summary>Who and what caused an append: recorded beside every event for auditors.</summary>
public sealed record EventMetadata(string? CorrelationId = null, string? CausationId = null, string? Actor = null)
{
    public static readonly EventMetadata None = new();
}

/// <summary>The version a stream must have for an append to succeed.</summary>
public readonly record struct ExpectedVersion(long Value)
{
    /// <summary>No check: append after whatever the stream holds.</summary>
    public static readonly ExpectedVersion Any = new(-1);

    /// <summary>The stream must not exist yet.</summary>
    public static readonly ExpectedVersion NoStream = new(0);

    public static ExpectedVersion Exactly(long version)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(version);
        return new ExpectedVersion(version);
    }

    public bool IsAny => Value < 0;
}

/// <summary>An event as stored. <see cref="Position"/> is its place in the global order: Marten's sequence number,
/// increasing, with a hole wherever a transaction that had taken a number rolled back.</summary>
public sealed record RecordedEvent(
    long Position,
    string StreamId,
    long Version,
    Guid EventId,
    string Type,
    object Data,
    EventMetadata Metadata,
    DateTimeOffset RecordedAt)
{
    /// <summary>For a copy of an event recorded in another database's log (<see cref="StreamCopy"/>), that log and the
    /// event's position in it; null for an event recorded here.</summary>
    public LedgerPosition? Source { get; init; }

    /// <summary>An event as Marten read it, as we read events.</summary>
    public static RecordedEvent From(JasperFx.Events.IEvent e) => new(
        e.Sequence,
        e.StreamKey ?? throw new EventStoreException($"Event {e.Id} has no stream key.", e.Sequence),
        e.Version,
        e.Id,
        EventName.FromAlias(e.EventTypeName).Name,
        e.Data,
        new EventMetadata(e.CorrelationId, e.CausationId, e.UserName),
        e.Timestamp)
    {
        Source = e.Headers is { } headers
                 && headers.TryGetValue(MartenStore.SourceLedgerHeader, out var ledger) && ledger is JsonElement { ValueKind: JsonValueKind.String } id
                 && headers.TryGetValue(MartenStore.SourcePositionHeader, out var position) && position is JsonElement { ValueKind: JsonValueKind.Number } at
            ? new LedgerPosition(id.GetString()!, at.GetInt64())
            : null,
    };
}

/// <summary>A position in one database's log (<see cref="LedgerDatabase.Id"/>).</summary>
public readonly record struct LedgerPosition(string Ledger, long Position);

/// <summary>What <see cref="EventLog.DecideAsync{T}"/> decided: the state after it, the stream's version and the events
/// appended (none when there was nothing to record).</summary>
public sealed record Decision<T>(T? State, long Version, IReadOnlyList<object> Events)
    where T : class;

public sealed record AppendResult(long StreamVersion, IReadOnlyList<Guid> EventIds);

public class EventStoreException(string message, long position = 0, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The global position the error is about, or 0.</summary>
    public long Position { get; } = position;
}

/// <summary>A stored payload that is not valid for its type, or of a type or version that is not registered.</summary>
public sealed class UnreadableEventException(string message, string reason, long position = 0, Exception? inner = null)
    : EventStoreException(message, position, inner)
{
    public string Reason { get; } = reason;
}

/// <summary>The stream's version was not the expected one: somebody else appended first.</summary>
public sealed class ConcurrencyException(string streamId, ExpectedVersion expected, long actual)
    : EventStoreException($"Stream '{streamId}' is at version {actual}, not at the expected {expected.Value}.")
{
    public string StreamId { get; } = streamId;
    public ExpectedVersion Expected { get; } = expected;
    public long ActualVersion { get; } = actual;
}

public static class RecordedEvents
{
    /// <summary>Folds recorded events into a state, with the version to expect when appending after them.</summary>
    public static (T? State, long Version) Fold<T>(this IReadOnlyList<RecordedEvent>? events, Func<T?, object, T?> apply)
        where T : class
    {
        T? state = null;
        long version = 0;
        foreach (var e in events ?? [])
        {
            state = apply(state, e.Data);
            version = e.Version;
        }

        return (state, version);
    }
}

/// <summary>An event exactly as stored: its payload as the database's JSON text, not deserialized, its type name and
/// version as read from Marten's alias, its authentication code (null when written without a key), and the CLR type name
/// Marten recorded beside it (<see cref="EventTypes.MisreadAs"/>). What integrity checks and audit feeds read.</summary>
public sealed record StoredEvent(
    long Position,
    string StreamId,
    long Version,
    Guid EventId,
    string Type,
    int TypeVersion,
    string Json,
    EventMetadata Metadata,
    DateTimeOffset RecordedAt,
    byte[]? Code,
    string? ClrName)
{
    /// <summary>Reads the columns of <see cref="EventLog.StoredColumns"/> from column <paramref name="first"/> on, in
    /// their order (so that a sequential reader may stream them).</summary>
    public static StoredEvent Read(Npgsql.NpgsqlDataReader reader, int first = 0)
    {
        var position = reader.GetInt64(first);
        var streamId = reader.GetString(first + 1);
        var version = reader.GetInt64(first + 2);
        var eventId = reader.GetGuid(first + 3);
        var name = EventName.FromAlias(reader.GetString(first + 4));
        var json = reader.GetString(first + 5);
        var metadata = new EventMetadata(
            reader.IsDBNull(first + 6) ? null : reader.GetString(first + 6),
            reader.IsDBNull(first + 7) ? null : reader.GetString(first + 7),
            reader.IsDBNull(first + 8) ? null : reader.GetString(first + 8));
        var recordedAt = reader.GetFieldValue<DateTimeOffset>(first + 9);
        var code = reader.IsDBNull(first + 10) ? null : Convert.FromBase64String(reader.GetString(first + 10));
        var clrName = reader.IsDBNull(first + 11) ? null : reader.GetString(first + 11);
        return new StoredEvent(position, streamId, version, eventId, name.Name, name.Version, json, metadata, recordedAt, code, clrName);
    }
}
