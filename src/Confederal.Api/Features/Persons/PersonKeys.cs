using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Persons;

/// <summary>
/// One person's key and handles. The log never holds a person id: events name a person by a random handle,
/// <see cref="Taxpayer"/> in tax assessments and designations, <see cref="Resident"/> in residences and participation
/// rolls (two, so that residence dates, which anyone may know, lead to no one's designations), and what identifies them
/// beyond that (the birth date) is sealed under <see cref="Key"/>. Only the key table links the handles and the key to
/// the person id: deleting the row forgets the person.
/// </summary>
public sealed class PersonKey(string personId, string taxpayer, string resident, Func<byte[]> key)
{
    internal const int NonceSize = 12;
    internal const int TagSize = 16;

    // Unwrapped on first use: an assessment or a designation needs only the handle.
    private readonly Lazy<byte[]> _key = new(key);

    public string PersonId { get; } = personId;
    public string Taxpayer { get; } = taxpayer;
    public string Resident { get; } = resident;
    internal byte[] Key => _key.Value;

    /// <summary>Whether the person was first recorded before handles: their handles are their person id, which the
    /// events recorded then carry in clear.</summary>
    public bool RecordedInClear => Taxpayer == PersonId;

    /// <summary>The birth date, sealed for a residence event: base64 of nonce, ciphertext and tag (AES-256-GCM), bound to
    /// the residence handle.</summary>
    public string SealBirthDate(DateOnly birthDate) =>
        Convert.ToBase64String(Seal(Key, Encoding.ASCII.GetBytes(birthDate.ToString("O")), Encoding.ASCII.GetBytes(Resident)));

    /// <summary>The birth date a residence event of this person seals; null when it does not open (not sealed for them).</summary>
    public DateOnly? OpenBirthDate(string? sealedBirthDate) =>
        sealedBirthDate is not null && Open(Key, sealedBirthDate, Encoding.ASCII.GetBytes(Resident)) is { } plain
        && DateOnly.TryParseExact(Encoding.ASCII.GetString(plain), "O", out var date)
            ? date
            : null;

    /// <summary>A resident as the census decisions take them.</summary>
    public Domain.Census.Resident AsResident() => new(PersonId, Resident, SealBirthDate);

    internal static byte[] Seal(byte[] key, ReadOnlySpan<byte> plain, ReadOnlySpan<byte> associated)
    {
        using var aes = new AesGcm(key, TagSize);
        return Seal(aes, plain, associated);
    }

    internal static byte[] Seal(AesGcm aes, ReadOnlySpan<byte> plain, ReadOnlySpan<byte> associated)
    {
        Span<byte> nonce = stackalloc byte[NonceSize];
        RandomNumberGenerator.Fill(nonce);
        return Seal(aes, nonce, plain, associated);
    }

    /// <summary>Seals with a nonce drawn by the caller: random, and never used twice with one key.</summary>
    internal static byte[] Seal(AesGcm aes, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plain, ReadOnlySpan<byte> associated)
    {
        var sealedBytes = new byte[NonceSize + plain.Length + TagSize];
        nonce.CopyTo(sealedBytes);
        aes.Encrypt(nonce, plain, sealedBytes.AsSpan(NonceSize, plain.Length), sealedBytes.AsSpan(NonceSize + plain.Length), associated);
        return sealedBytes;
    }

    internal static byte[]? Open(byte[] key, ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associated)
    {
        if (sealedBytes.Length < NonceSize + TagSize)
        {
            return null;
        }

        var plain = new byte[sealedBytes.Length - NonceSize - TagSize];
        using var aes = new AesGcm(key, TagSize);
        try
        {
            aes.Decrypt(sealedBytes[..NonceSize], sealedBytes[NonceSize..^TagSize], sealedBytes[^TagSize..], plain, associated);
            return plain;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    private static byte[]? Open(byte[] key, string base64, ReadOnlySpan<byte> associated)
    {
        var bytes = new byte[base64.Length * 3 / 4];
        return Convert.TryFromBase64String(base64, bytes, out var written) ? Open(key, bytes.AsSpan(0, written), associated) : null;
    }
}

/// <summary>
/// The person key table, in the directory's database and outside the log: per person, 128 bits of an HMAC of their
/// person id (the lookup), their two handles, their own key and their person id (both sealed under a key derived from
/// Audit:Secret, which the database never holds). A person gets a row when first recorded; reads never create one.
/// </summary>
public sealed class PersonKeys(NpgsqlDataSource directory, AuditKeys keys, TimeProvider clock)
{
    // A key found is kept this long, so that a person's requests in a row cost one lookup; an erasure on another
    // instance is then honoured there within this time.
    private static readonly TimeSpan Kept = TimeSpan.FromSeconds(60);
    private const int MaxCached = 100_000;
    private const int MaxCachedPerCall = 16;

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0012-person-keys", """
            -- lookup: 128 bits of an HMAC of the person id. Two indexes only, one growing at its end (handles begin with the
            -- time): a first import of a million people is a million random inserts into the first, which each index
            -- would repeat. Nothing looks a person up by their taxpayer handle.
            CREATE TABLE person_keys (
                lookup     bytea PRIMARY KEY,
                taxpayer   text NOT NULL,
                resident   text NOT NULL UNIQUE,
                key        bytea NOT NULL,
                person     bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            -- The budgets and the census register name people by their handles (taxpayer, resident) since this migration.
            ALTER TABLE fiscal_taxpayers RENAME COLUMN person_id TO taxpayer;
            ALTER TABLE residences RENAME COLUMN person_id TO resident;
            -- An erased person's birth date is forgotten here as in the log: the register keeps their residences only.
            ALTER TABLE residences ALTER COLUMN birth_date DROP NOT NULL;
            ALTER TABLE ballot_participations RENAME COLUMN person_id TO resident;
            """),
    ];

    private const string LegacyImport = "app-0012-person-keys-recorded-in-clear";

    private readonly ConcurrentDictionary<string, (PersonKey Key, DateTimeOffset Until)> _cache = new(StringComparer.Ordinal);

    private NpgsqlDataSource Db => directory;

    /// <summary>The person's key, or null when they were never recorded (or are erased).</summary>
    public async Task<PersonKey?> FindAsync(string personId, CancellationToken ct)
    {
        if (Cached(personId) is { } cached)
        {
            return cached;
        }

        await using var command = Db.CreateCommand($"SELECT {Columns} FROM person_keys WHERE lookup = $1");
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = Bytes(Lookup(personId)) });
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct) ? Keep(Read(reader, personId)) : null;
    }

    /// <summary>The person's key, created on their first record.</summary>
    public async Task<PersonKey> ObtainAsync(string personId, CancellationToken ct) => (await ObtainAsync([personId], ct))[personId];

    /// <summary>The keys of several people: those recorded, in one round trip, and rows created for the others in a
    /// second (a repeated import costs only the first). Only a few people's keys are cached: an import's would push out
    /// the keys of the people making requests.</summary>
    public async Task<IReadOnlyDictionary<string, PersonKey>> ObtainAsync(IReadOnlyCollection<string> personIds, CancellationToken ct)
    {
        var keep = personIds.Count <= MaxCachedPerCall;
        var found = new Dictionary<string, PersonKey>(personIds.Count, StringComparer.Ordinal);
        var missing = new Dictionary<UInt128, string>(personIds.Count);
        foreach (var personId in personIds)
        {
            if (Cached(personId) is { } cached)
            {
                found[personId] = cached;
            }
            else
            {
                missing.TryAdd(Lookup(personId), personId);
            }
        }

        await FindIntoAsync(missing, found, keep, ct);
        await CreateAsync(missing, found, keep, ct);
        return found;
    }

    // Rows for the people in missing, none of whom was found: all move to found.
    private async Task CreateAsync(Dictionary<UInt128, string> missing, Dictionary<string, PersonKey> found, bool keep, CancellationToken ct)
    {
        if (missing.Count == 0)
        {
            return;
        }

        // A plain INSERT, in lookup order: ON CONFLICT's speculative insertion costs a first import some 40 % more server
        // time a row. A unique violation means a concurrent request created one of these people between the two
        // statements; the rows are then inserted against conflicts, and the others' rows read back.
        var fresh = New([.. missing.OrderBy(m => m.Key)]);
        try
        {
            await InsertAsync(fresh, onConflict: false, ct);
            foreach (var row in fresh)
            {
                var person = missing[row.Lookup];
                found[person] = KeepIf(new PersonKey(person, row.Taxpayer, row.Resident, () => row.Key), keep);
            }

            missing.Clear();
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            await using var insert = InsertCommand(fresh, onConflict: true);
            await ReadIntoAsync(insert, missing, found, keep, ct);
            await FindIntoAsync(missing, found, keep, ct);
            if (missing.Count > 0)
            {
                throw new InvalidOperationException("A person key was neither created nor found: its row was deleted as it was being created.");
            }
        }
    }

    /// <summary>The taxpayer handles of several people, for an import: read alone (no key, no person objects), and rows
    /// created for those never recorded.</summary>
    public async Task<IReadOnlyDictionary<string, string>> TaxpayersAsync(IReadOnlyCollection<string> personIds, CancellationToken ct)
    {
        var handles = new Dictionary<string, string>(personIds.Count, StringComparer.Ordinal);
        var missing = new Dictionary<UInt128, string>(personIds.Count);
        foreach (var personId in personIds)
        {
            missing.TryAdd(Lookup(personId), personId);
        }

        await using (var command = Db.CreateCommand("SELECT lookup, taxpayer FROM person_keys WHERE lookup = ANY($1)"))
        {
            command.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. missing.Keys.Select(Bytes)] });
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                if (missing.Remove(FromBytes(reader.GetFieldValue<byte[]>(0)), out var personId))
                {
                    handles[personId] = reader.GetString(1);
                }
            }
        }

        var created = new Dictionary<string, PersonKey>(missing.Count, StringComparer.Ordinal);
        await CreateAsync(missing, created, keep: false, ct);
        foreach (var (personId, key) in created)
        {
            handles[personId] = key.Taxpayer;
        }

        return handles;
    }

    /// <summary>The keys of those of several people who are recorded, in one round trip; nobody gets a row.</summary>
    public async Task<IReadOnlyDictionary<string, PersonKey>> FindAsync(IReadOnlyCollection<string> personIds, CancellationToken ct)
    {
        var found = new Dictionary<string, PersonKey>(personIds.Count, StringComparer.Ordinal);
        var missing = new Dictionary<UInt128, string>(personIds.Count);
        foreach (var personId in personIds)
        {
            missing.TryAdd(Lookup(personId), personId);
        }

        await FindIntoAsync(missing, found, personIds.Count <= MaxCachedPerCall, ct);
        return found;
    }

    private async Task FindIntoAsync(Dictionary<UInt128, string> missing, Dictionary<string, PersonKey> found, bool keep, CancellationToken ct)
    {
        if (missing.Count > 0)
        {
            await using var command = Db.CreateCommand($"SELECT {Columns} FROM person_keys WHERE lookup = ANY($1)");
            command.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. missing.Keys.Select(Bytes)] });
            await ReadIntoAsync(command, missing, found, keep, ct);
        }
    }

    private const string Columns = "lookup, taxpayer, resident, key, person";

    private async Task InsertAsync(IReadOnlyList<Row> rows, bool onConflict, CancellationToken ct)
    {
        await using var insert = InsertCommand(rows, onConflict);
        await insert.ExecuteNonQueryAsync(ct);
    }

    private NpgsqlCommand InsertCommand(IReadOnlyList<Row> rows, bool onConflict, NpgsqlConnection? connection = null, NpgsqlTransaction? tx = null)
    {
        var sql = $"""
            INSERT INTO person_keys (lookup, taxpayer, resident, key, person)
            SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bytea[], $5::bytea[])
            {(onConflict ? $"ON CONFLICT (lookup) DO NOTHING RETURNING {Columns}" : "")}
            """;
        var insert = connection is null ? Db.CreateCommand(sql) : new NpgsqlCommand(sql, connection, tx);
        insert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. rows.Select(r => Bytes(r.Lookup))] });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(r => r.Taxpayer)] });
        insert.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. rows.Select(r => r.Resident)] });
        insert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. rows.Select(r => r.Wrapped)] });
        insert.Parameters.Add(new NpgsqlParameter<byte[][]> { TypedValue = [.. rows.Select(r => r.Person)] });
        return insert;
    }

    // Moves each row read from missing (by its lookup) to found.
    private async Task ReadIntoAsync(NpgsqlCommand command, Dictionary<UInt128, string> missing, Dictionary<string, PersonKey> found, bool keep, CancellationToken ct)
    {
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            if (missing.Remove(FromBytes(reader.GetFieldValue<byte[]>(0)), out var personId))
            {
                found[personId] = KeepIf(Read(reader, personId), keep);
            }
        }
    }

    /// <summary>The people (and keys) behind residence handles, for those whose key exists; a handle of nobody (an erased
    /// person, or never a handle) is absent.</summary>
    public async Task<IReadOnlyDictionary<string, PersonKey>> ByResidentsAsync(IReadOnlyCollection<string> residents, CancellationToken ct)
    {
        var found = new Dictionary<string, PersonKey>(StringComparer.Ordinal);
        if (residents.Count == 0)
        {
            return found;
        }

        await using var command = Db.CreateCommand($"SELECT {Columns} FROM person_keys WHERE resident = ANY($1)");
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. residents] });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var key = Read(reader, null);
            found[key.Resident] = key;
        }

        return found;
    }

    /// <summary>Gives the people the log recorded before handles, by their person id in clear, their row: handles equal
    /// to that person id (so every fold joins their old events and their new ones) and a key of their own for what is
    /// sealed from now on. Runs once per directory, after its migrations.</summary>
    public Task ImportRecordedInClearAsync(CancellationToken ct) => Schema.RunOnceAsync(Db, LegacyImport, async (connection, tx) =>
    {
        var people = new List<string>();
        await using (var scan = new NpgsqlCommand("""
            SELECT DISTINCT p FROM (
                SELECT data ->> 'personId' FROM marten.mt_events WHERE data ? 'personId'
                UNION ALL
                SELECT jsonb_array_elements_text(data -> 'personIds') FROM marten.mt_events WHERE data ? 'personIds'
            ) AS recorded(p) WHERE p IS NOT NULL
            """, connection, tx))
        await using (var reader = await scan.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct))
            {
                people.Add(reader.GetString(0));
            }
        }

        foreach (var chunk in people.Chunk(10_000))
        {
            var rows = New([.. chunk.Select(p => KeyValuePair.Create(Lookup(p), p))]).Zip(chunk, (row, p) => row with { Taxpayer = p, Resident = p }).ToList();
            await using var insert = InsertCommand(rows, onConflict: true, connection, tx);
            await insert.ExecuteNonQueryAsync(ct);
        }
    }, ct);

    internal void Forget(PersonKey key) => _cache.TryRemove(key.PersonId, out _);

    /// <summary>128 bits of the HMAC of the person id: the row's key.</summary>
    internal UInt128 Lookup(string personId)
    {
        Span<byte> hash = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(keys.PersonLookupKey, Encoding.UTF8.GetBytes(personId), hash);
        return BinaryPrimitives.ReadUInt128BigEndian(hash);
    }

    // Big-endian, so that lookups sort as their bytes do in PostgreSQL.
    internal static byte[] Bytes(UInt128 lookup)
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, lookup);
        return bytes;
    }

    private static UInt128 FromBytes(ReadOnlySpan<byte> bytes) => BinaryPrimitives.ReadUInt128BigEndian(bytes);

    private PersonKey KeepIf(PersonKey key, bool keep) => keep ? Keep(key) : key;

    private PersonKey? Cached(string personId) =>
        _cache.TryGetValue(personId, out var entry) && entry.Until > clock.GetUtcNow() ? entry.Key : null;

    // Counted here: ConcurrentDictionary.Count takes every lock of the table, up to 1,024 of them, and cost an import
    // some 25 µs a row.
    private int _cached;

    private PersonKey Keep(PersonKey key)
    {
        if (Volatile.Read(ref _cached) >= MaxCached)
        {
            _cache.Clear();
            Volatile.Write(ref _cached, 0);
        }

        var entry = (key, clock.GetUtcNow() + Kept);
        if (_cache.TryAdd(key.PersonId, entry))
        {
            Interlocked.Increment(ref _cached);
        }
        else
        {
            _cache[key.PersonId] = entry;
        }

        return key;
    }

    // The key is unwrapped, and the person id opened, only when used.
    private PersonKey Read(NpgsqlDataReader reader, string? personId)
    {
        var lookup = reader.GetFieldValue<byte[]>(0);
        var wrapped = reader.GetFieldValue<byte[]>(3);
        var key = new Lazy<byte[]>(() => PersonKey.Open(keys.PersonWrapKey, wrapped, lookup)
                                         ?? throw new InvalidOperationException("A person key does not open under the key-wrapping key derived from Audit:Secret."));
        personId ??= Encoding.UTF8.GetString(PersonKey.Open(keys.PersonWrapKey, reader.GetFieldValue<byte[]>(4), lookup)
                                             ?? throw new InvalidOperationException("A person id does not open under the key-wrapping key derived from Audit:Secret."));
        return new PersonKey(personId, reader.GetString(1), reader.GetString(2), () => key.Value);
    }

    private sealed record Row(UInt128 Lookup, string Taxpayer, string Resident, byte[] Key, byte[] Wrapped, byte[] Person);

    private const int KeySize = 32, HandleRandomBytes = 11;

    // One cipher instance and one draw of random bytes for the rows of a call: set up for each row, they cost more than
    // the sealing itself.
    private List<Row> New(KeyValuePair<UInt128, string>[] people)
    {
        const int perRow = KeySize + (2 * PersonKey.NonceSize) + (2 * HandleRandomBytes);
        var random = RandomNumberGenerator.GetBytes(people.Length * perRow);
        using var wrap = new AesGcm(keys.PersonWrapKey, PersonKey.TagSize);
        var rows = new List<Row>(people.Length);
        var ms = clock.GetUtcNow().ToUnixTimeMilliseconds();
        for (var i = 0; i < people.Length; i++)
        {
            var (lookup, personId) = people[i];
            var associated = Bytes(lookup);
            var bytes = random.AsSpan(i * perRow, perRow);
            var key = bytes[..KeySize].ToArray();
            var nonces = bytes.Slice(KeySize, 2 * PersonKey.NonceSize);
            var handles = bytes[(KeySize + (2 * PersonKey.NonceSize))..];
            rows.Add(new Row(lookup, Handle("t~", ms, handles[..HandleRandomBytes]), Handle("r~", ms, handles[HandleRandomBytes..]), key,
                PersonKey.Seal(wrap, nonces[..PersonKey.NonceSize], key, associated),
                PersonKey.Seal(wrap, nonces[PersonKey.NonceSize..], Encoding.UTF8.GetBytes(personId), associated)));
        }

        return rows;
    }

    private const string Alphabet = "234567abcdefghijklmnopqrstuvwxyz"; // base32 in ASCII order: handles sort as they were made

    /// <summary>A fresh handle: the prefix and 26 base32 characters of 48 bits of the time in milliseconds and 82 random
    /// bits. The "~" is never in a person id, so a handle is never taken for one (the events recorded before handles
    /// name people by their person id). Time first, so that the key table's resident index grows at its end rather than
    /// at a random page each; the time only says when the person was first recorded, which their first event says too.</summary>
    private static string Handle(string prefix, long ms, ReadOnlySpan<byte> random)
    {
        Span<byte> bits = stackalloc byte[17];
        for (var i = 0; i < 6; i++)
        {
            bits[i] = (byte)(ms >> (40 - (8 * i)));
        }

        random.CopyTo(bits[6..]);
        Span<char> text = stackalloc char[prefix.Length + 26];
        prefix.CopyTo(text);
        for (var i = 0; i < 26; i++)
        {
            var bit = i * 5;
            var pair = (bits[bit / 8] << 8) | bits[(bit / 8) + 1];
            text[prefix.Length + i] = Alphabet[(pair >> (11 - (bit % 8))) & 31];
        }

        return new string(text);
    }
}
