using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Fiscal;

/// <summary>
/// The taxpayer handles of one canton's fiscal year. A person's assessments and designations for the year name them by
/// an HMAC of their taxpayer handle under the year's own key, so that another year's events (or a person's key row)
/// lead to them only while this key exists. A year recorded before per-year handles (<see cref="Legacy"/>) names people
/// by their taxpayer handle itself, as its events always did.
/// </summary>
public sealed class YearHandles(string cantonId, int year, byte[]? key)
{
    public string CantonId { get; } = cantonId;

    public int Year { get; } = year;

    public bool Legacy => key is null;

    /// <summary>The person's handle in this year: "y~" and 26 base32 characters of the HMAC of their taxpayer handle.</summary>
    public string Of(string taxpayer) => key is null ? taxpayer : Pseudonyms.Keyed(key, "y~", taxpayer);
}

/// <summary>
/// The key table of fiscal years, in the directory's database beside the person keys: per canton and year, a random key
/// (sealed under the key derived from Audit:Secret) from which that year's taxpayer handles are derived. Once the year is
/// closed and the canton's retention of tax records has passed, <see cref="UnlinkExpiredAsync"/> deletes the key: the
/// year's assessments and designations stay in the log and keep every total, but lead to nobody any more.
/// </summary>
public sealed class FiscalYearKeys(NpgsqlDataSource directory, AuditKeys keys, TimeProvider clock)
{
    private static readonly TimeSpan Kept = TimeSpan.FromSeconds(60);
    private const int KeySize = 32;

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0014-fiscal-year-keys", """
            -- key: sealed; NULL for a year recorded before per-year handles (legacy) or unlinked (unlinked_at).
            CREATE TABLE fiscal_year_keys (
                canton_id   text NOT NULL,
                year        int NOT NULL,
                key         bytea,
                legacy      boolean NOT NULL DEFAULT false,
                unlinked_at timestamptz,
                PRIMARY KEY (canton_id, year)
            );
            -- The people whose standing designations a canton's later years may need restated: changes counts what could
            -- change them (their own designations, a new year), carried what the carrier has restated.
            CREATE TABLE designation_carries (
                lookup    bytea NOT NULL,
                canton_id text NOT NULL,
                changes   int NOT NULL DEFAULT 1,
                carried   int NOT NULL DEFAULT 0,
                PRIMARY KEY (lookup, canton_id)
            );
            CREATE INDEX designation_carries_pending ON designation_carries (canton_id) WHERE changes <> carried;
            """),
    ];

    private const string LegacyImport = "app-0014-fiscal-years-recorded-before";

    private readonly ConcurrentDictionary<(string CantonId, int Year), (YearHandles Handles, DateTimeOffset Until)> _cache = new();

    /// <summary>The year's handles, or null when the year has no key (nobody recorded in it yet, or unlinked).</summary>
    public async Task<YearHandles?> FindAsync(string cantonId, int year, CancellationToken ct)
    {
        if (Cached(cantonId, year) is { } cached)
        {
            return cached;
        }

        var row = await ReadAsync(cantonId, year, ct);
        return row is { Unlinked: false } ? Keep(row.Handles) : null;
    }

    /// <summary>The year's handles, its key created on its first record (then <c>Created</c>: every standing designation
    /// of the canton is to be carried into it). Refused once the year is unlinked.</summary>
    public async Task<(YearHandles Handles, bool Created)> ObtainAsync(string cantonId, int year, CancellationToken ct)
    {
        if (Cached(cantonId, year) is { } cached)
        {
            return (cached, false);
        }

        var created = false;
        var row = await ReadAsync(cantonId, year, ct);
        if (row is null)
        {
            var key = RandomNumberGenerator.GetBytes(KeySize);
            await using var insert = directory.CreateCommand("""
                WITH created AS (
                    INSERT INTO fiscal_year_keys (canton_id, year, key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1),
                marked AS (
                    UPDATE designation_carries SET changes = changes + 1 WHERE canton_id = $1 AND EXISTS (SELECT FROM created))
                SELECT count(*) FROM created
                """);
            insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cantonId });
            insert.Parameters.Add(new NpgsqlParameter<int> { TypedValue = year });
            insert.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = PersonKey.Seal(keys.PersonWrapKey, key, Associated(cantonId, year)) });
            created = (long)(await insert.ExecuteScalarAsync(ct))! == 1;
            row = created ? new Row(new YearHandles(cantonId, year, key), false) : await ReadAsync(cantonId, year, ct);
        }

        if (row is not { Unlinked: false })
        {
            throw new DomainException("fiscal-year-unlinked",
                $"{cantonId}'s fiscal year {year} is past its retention of tax records: its records are no longer linked to anyone and can no longer change.");
        }

        return (Keep(row.Handles), created);
    }

    /// <summary>Every year still linked, of one canton or (null) of all, in canton and year order.</summary>
    public async Task<IReadOnlyList<YearHandles>> LinkedAsync(string? cantonId, CancellationToken ct)
    {
        await using var command = directory.CreateCommand("""
            SELECT canton_id, year, key, legacy FROM fiscal_year_keys
            WHERE unlinked_at IS NULL AND ($1::text IS NULL OR canton_id = $1) ORDER BY canton_id, year
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)cantonId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var years = new List<YearHandles>();
        while (await reader.ReadAsync(ct))
        {
            years.Add(Handles(reader.GetString(0), reader.GetInt32(1), reader.IsDBNull(2) ? null : reader.GetFieldValue<byte[]>(2)));
        }

        return years;
    }

    /// <summary>
    /// Deletes the key of every year that is closed (its designation deadline has passed) and past its canton's retention
    /// of tax records (<see cref="Domain.Cantons.Canton.RetainedUntil"/>): from then on nobody, whoever holds the database
    /// and Audit:Secret, can tell whose records the year's events are. A year recorded before per-year handles cannot be
    /// unlinked this way (its handles are the people's own); it stays linked until each person is erased.
    /// </summary>
    public async Task<IReadOnlyList<(string CantonId, int Year)>> UnlinkExpiredAsync(Placement placement, CancellationToken ct)
    {
        var today = DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime);
        var expired = await Sql.ListAsync(directory, """
            SELECT k.canton_id, k.year FROM fiscal_year_keys k JOIN cantons c USING (canton_id)
            WHERE k.unlinked_at IS NULL AND NOT k.legacy AND make_date(k.year + c.tax_retention_years, 12, 31) < $1
            ORDER BY k.canton_id, k.year
            """, r => (r.GetString(0), r.GetInt32(1)), ct, today);
        var unlinked = new List<(string, int)>();
        foreach (var (cantonId, year) in expired)
        {
            var stream = Domain.Fiscal.FiscalPolicy.StreamId(cantonId, year);
            var (policy, _) = await placement.Of(cantonId).Log.AggregateStreamAsync<Domain.Fiscal.FiscalPolicy>(stream, Domain.Fiscal.FiscalPolicy.Apply, ct);
            if (policy is null || policy.IsOpenAt(clock.GetUtcNow()))
            {
                continue;
            }

            await using (var unlink = directory.CreateCommand(
                "UPDATE fiscal_year_keys SET key = NULL, unlinked_at = now() WHERE canton_id = $1 AND year = $2 AND unlinked_at IS NULL"))
            {
                unlink.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cantonId });
                unlink.Parameters.Add(new NpgsqlParameter<int> { TypedValue = year });
                await unlink.ExecuteNonQueryAsync(ct);
            }

            _cache.TryRemove((cantonId, year), out _);
            unlinked.Add((cantonId, year));
        }

        return unlinked;
    }

    /// <summary>Marks the years that hold assessments or designations recorded before per-year handles as legacy (their
    /// people keep their taxpayer handle there, or a correction would count them twice), and gives every person with a
    /// standing designation then a carry row, so that it is restated in the years after. Runs once per directory,
    /// after the person keys' own import; the directory's log holds every canton's events.</summary>
    public async Task ImportRecordedBeforeAsync(CancellationToken ct)
    {
        await Schema.RunOnceAsync(directory, LegacyImport, async (connection, tx) =>
        {
            await using var import = new NpgsqlBatch(connection, tx)
            {
                BatchCommands =
                {
                    Sql.Command("""
                        INSERT INTO fiscal_year_keys (canton_id, year, legacy)
                        SELECT DISTINCT data ->> 'cantonId', (data ->> 'fiscalYear')::int, true FROM marten.mt_events
                        WHERE split_part(type, '.v', 1) IN ('tax-assessed', 'designation-chosen', 'designation-withdrawn')
                        ON CONFLICT DO NOTHING
                        """),
                    Sql.Command("""
                        INSERT INTO designation_carries (lookup, canton_id)
                        SELECT DISTINCT k.lookup, d.canton_id FROM person_keys k JOIN (
                            SELECT data ->> 'cantonId' AS canton_id, coalesce(data ->> 'taxpayer', data ->> 'personId') AS taxpayer FROM marten.mt_events
                            WHERE split_part(type, '.v', 1) = 'designation-chosen' AND (data ->> 'standing')::boolean) AS d ON d.taxpayer = k.taxpayer
                        ON CONFLICT DO NOTHING
                        """),
                },
            };
            await import.ExecuteNonQueryAsync(ct);
        }, ct);
    }

    private sealed record Row(YearHandles Handles, bool Unlinked);

    private async Task<Row?> ReadAsync(string cantonId, int year, CancellationToken ct)
    {
        await using var command = directory.CreateCommand("SELECT key, legacy, unlinked_at IS NOT NULL FROM fiscal_year_keys WHERE canton_id = $1 AND year = $2");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cantonId });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = year });
        await using var reader = await command.ExecuteReaderAsync(ct);
        return await reader.ReadAsync(ct)
            ? new Row(Handles(cantonId, year, reader.IsDBNull(0) ? null : reader.GetFieldValue<byte[]>(0)), reader.GetBoolean(2))
            : null;
    }

    private YearHandles Handles(string cantonId, int year, byte[]? sealedKey) =>
        new(cantonId, year, sealedKey is null
            ? null
            : PersonKey.Open(keys.PersonWrapKey, sealedKey, Associated(cantonId, year))
              ?? throw new InvalidOperationException("A fiscal year key does not open under the key-wrapping key derived from Audit:Secret."));

    private static byte[] Associated(string cantonId, int year) => Encoding.UTF8.GetBytes($"fiscal-year/{cantonId}/{year}");

    private YearHandles? Cached(string cantonId, int year) =>
        _cache.TryGetValue((cantonId, year), out var entry) && entry.Until > clock.GetUtcNow() ? entry.Handles : null;

    private YearHandles Keep(YearHandles handles)
    {
        _cache[(handles.CantonId, handles.Year)] = (handles, clock.GetUtcNow() + Kept);
        return handles;
    }
}

/// <summary>At start and then every hour: deletes the keys of years past their retention (again, after a key table was
/// restored from a backup), and carries the standing designations that requests left pending (a run cut short, a
/// person's own change racing it, a canton's database that did not answer).</summary>
internal sealed partial class FiscalYearKeeper(
    FiscalYearKeys years, DesignationCarrier carrier, Placement placement, Database database, ILogger<FiscalYearKeeper> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1));
        do
        {
            // Started after the directory's migration (which the host awaits before any other service), unless it
            // failed; then the next tick tries again.
            if (!database.IsMigrated(LedgerDatabase.DirectoryId))
            {
                continue;
            }

            try
            {
                foreach (var (cantonId, year) in await years.UnlinkExpiredAsync(placement, stoppingToken))
                {
                    Unlinked(cantonId, year);
                }

                await carrier.CarryPendingAsync(stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or DatabaseUnavailableException && !stoppingToken.IsCancellationRequested)
            {
                Failed(e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Fiscal year {Year} of '{CantonId}' is past its retention: its key is deleted, its records lead to nobody")]
    private partial void Unlinked(string cantonId, int year);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not keep the fiscal year keys; retrying in an hour")]
    private partial void Failed(Exception exception);
}
