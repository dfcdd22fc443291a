using System.Data;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Audit;

/// <summary>One step of an audit trail in global order: an event (or the gap where a recorded event is missing) or the
/// seal that closes the positions before it. <see cref="Forgery"/>: why the event cannot be trusted as it is read (its
/// authentication code does not match, or Marten reads it as another type), null when it can or was not checked (only a
/// reader holding the platform's keys can check it).</summary>
public sealed record AuditEntry(long Position, AuditEvent? Event, Seal? Seal, string? Forgery = null)
{
    public static AuditEntry Of(AuditEvent e) => new(e.Position, e, null);

    public static AuditEntry Of(Seal seal) => new(seal.ToPosition, null, seal);
}

/// <summary>
/// An audit export: NDJSON, one object per line. The first line is the header
/// <c>{"format":"confederal-audit-export/1","algorithm":"ES256","publicKey":…}</c>, then <c>{"event":{…}}</c> lines in
/// position order, each seal <c>{"seal":{…}}</c> right after the last event it covers. Written by `confederal audit
/// export` from the feed, read back by verify and replay, appended to when resumed.
/// </summary>
public static class AuditExportFile
{
    public const string Format = "confederal-audit-export/1";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public sealed record Header(string Format, string Algorithm, string PublicKey);

    /// <summary>Where an export stands: its header, last event position and last seal (all absent for a new file).</summary>
    public sealed record Tail(Header? Header, long LastPosition, Seal? LastSeal, long Events);

    public static string HeaderLine(string publicKey) =>
        JsonSerializer.Serialize(new Header(Format, "ES256", publicKey), Json);

    public static string Line(AuditEvent e) => JsonSerializer.Serialize(new { @event = e }, Json);

    public static string Line(Seal seal) => JsonSerializer.Serialize(new { seal }, Json);

    /// <summary>The header of an export and every entry after it, streamed.</summary>
    public static async IAsyncEnumerable<AuditEntry> ReadAsync(string path, Action<Header>? header = null, [EnumeratorCancellation] CancellationToken ct = default)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, new FileStreamOptions { BufferSize = 1 << 16 });
        var lineNumber = 0;
        while (await reader.ReadLineAsync(ct) is { } line)
        {
            lineNumber++;
            if (line.Length == 0)
            {
                continue;
            }

            if (lineNumber == 1)
            {
                var h = JsonSerializer.Deserialize<Header>(line, Json);
                if (h?.Format != Format)
                {
                    throw new InvalidDataException($"{path} is not an audit export ({Format}).");
                }

                header?.Invoke(h);
                continue;
            }

            yield return Parse(line, lineNumber);
        }
    }

    /// <summary>Reads an existing export to its end, dropping an unfinished last line (an export interrupted while
    /// writing), so that an export can resume after its last complete line.</summary>
    public static async Task<Tail> ReadTailAsync(string path, CancellationToken ct)
    {
        if (!File.Exists(path) || new FileInfo(path).Length == 0)
        {
            return new Tail(null, 0, null, 0);
        }

        await TruncateUnfinishedLineAsync(path, ct);
        Header? header = null;
        long last = 0, events = 0;
        Seal? seal = null;
        await foreach (var entry in ReadAsync(path, h => header = h, ct))
        {
            if (entry.Seal is not null)
            {
                seal = entry.Seal;
            }
            else
            {
                last = entry.Position;
                events++;
            }
        }

        return new Tail(header, last, seal, events);
    }

    private static async Task TruncateUnfinishedLineAsync(string path, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var end = file.Length;
        var buffer = new byte[1];
        var cut = end;
        while (cut > 0)
        {
            file.Position = cut - 1;
            await file.ReadExactlyAsync(buffer, ct);
            if (buffer[0] == (byte)'\n')
            {
                break;
            }

            cut--;
        }

        if (cut != end)
        {
            file.SetLength(cut);
        }
    }

    private static AuditEntry Parse(string line, int lineNumber)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            if (document.RootElement.TryGetProperty("event", out var e))
            {
                return AuditEntry.Of(e.Deserialize<AuditEvent>(Json) ?? throw new InvalidDataException($"Line {lineNumber}: an empty event."));
            }

            if (document.RootElement.TryGetProperty("seal", out var s))
            {
                return AuditEntry.Of(s.Deserialize<Seal>(Json) ?? throw new InvalidDataException($"Line {lineNumber}: an empty seal."));
            }

            throw new InvalidDataException($"Line {lineNumber}: neither an event nor a seal.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Line {lineNumber} is not valid: {e.Message}", e);
        }
    }
}

/// <summary>The audit trail as the database holds it, for those holding the platform's keys: each stored event with
/// its authentication code checked, pseudonymized and carrying its recorded hash (empty if not sealed yet), the gaps
/// where a recorded hash has lost its event, and the seals in between.</summary>
public static class DatabaseTrail
{
    public static async IAsyncEnumerable<AuditEntry> ReadAsync(
        NpgsqlDataSource db, EventAuthenticator authenticator, EventTypes types, Pseudonyms pseudonyms, Persons.PersonKeys? persons = null,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        var pending = new List<AuditEntry>(1000);
        await foreach (var entry in ReadStoredAsync(db, authenticator, types, pseudonyms, ct))
        {
            pending.Add(entry);
            if (pending.Count == pending.Capacity)
            {
                foreach (var opened in await OpenAsync(pending, persons, ct))
                {
                    yield return opened;
                }
            }
        }

        foreach (var opened in await OpenAsync(pending, persons, ct))
        {
            yield return opened;
        }
    }

    // Who each event's handle names, from the key table (in the directory's database), a page at a time.
    private static async Task<List<AuditEntry>> OpenAsync(List<AuditEntry> entries, Persons.PersonKeys? persons, CancellationToken ct)
    {
        var events = entries.Select(e => e.Event).OfType<AuditEvent>().ToList();
        var opened = persons is null ? events : await AuditPerson.OpenAsync(events, persons, ct);
        var byPosition = opened.ToDictionary(e => e.Position);
        var result = entries.Select(e => e.Event is { } ev ? e with { Event = byPosition[ev.Position] } : e).ToList();
        entries.Clear();
        return result;
    }

    private static async IAsyncEnumerable<AuditEntry> ReadStoredAsync(
        NpgsqlDataSource db, EventAuthenticator authenticator, EventTypes types, Pseudonyms pseudonyms,
        [EnumeratorCancellation] CancellationToken ct)
    {
        var seals = new Queue<Seal>();
        await using (var command = db.CreateCommand($"SELECT {Notary.SealColumns} FROM audit_seals ORDER BY to_position, number"))
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                seals.Enqueue(Notary.ReadSeal(reader));
            }
        }

        await using var connection = await db.OpenConnectionAsync(ct);
        await using var events = new NpgsqlCommand($"""
            SELECT h.position, {EventLog.StoredColumns}, h.hash
            FROM {EventLog.Table} e FULL JOIN audit_hashes h ON h.position = e.seq_id
            ORDER BY coalesce(e.seq_id, h.position)
            """, connection);
        await using var rows = await events.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await rows.ReadAsync(ct))
        {
            var hashed = rows.IsDBNull(0) ? 0 : rows.GetInt64(0);
            var stored = rows.IsDBNull(1) ? null : StoredEvent.Read(rows, first: 1);
            var position = stored?.Position ?? hashed;
            while (seals.Count > 0 && seals.Peek().ToPosition < position)
            {
                yield return AuditEntry.Of(seals.Dequeue());
            }

            if (stored is null)
            {
                yield return new AuditEntry(position, null, null);
                continue;
            }

            const int hashColumn = 1 + EventLog.StoredColumnCount;
            var hash = rows.IsDBNull(hashColumn) ? "" : Convert.ToHexStringLower(rows.GetFieldValue<byte[]>(hashColumn));
            var e = AuditEvent.From(stored, pseudonyms, authenticator, types, out var forgery) with { Hash = hash };
            yield return new AuditEntry(stored.Position, e, null, forgery);
        }

        while (seals.Count > 0)
        {
            yield return AuditEntry.Of(seals.Dequeue());
        }
    }
}
