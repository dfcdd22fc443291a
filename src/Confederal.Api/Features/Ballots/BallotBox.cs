using System.Security.Cryptography;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Ballots;
using Confederal.Domain.Census;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Features.Ballots;

/// <summary>
/// Where votes wait until the ballot closes, kept apart: the participation register (who voted, never what) and the
/// ballot box (what was voted under a random receipt, never who or when: no timestamp, no sequence, keyed by the
/// receipt). Votes are not events while the ballot is open: the log's positions and timestamps would give their cast
/// order. At close both are sealed into the log in key order (receipts are random, so the box comes out shuffled), and
/// the box's working rows are deleted.
/// </summary>
public static class BallotBox
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0006-ballot-box", """
            CREATE TABLE ballot_participations (
                ballot_id uuid NOT NULL,
                person_id text NOT NULL,
                PRIMARY KEY (ballot_id, person_id)
            );
            CREATE TABLE ballot_box (
                ballot_id uuid NOT NULL,
                receipt   text NOT NULL,
                option    smallint NOT NULL,
                PRIMARY KEY (ballot_id, receipt)
            );
            """),
    ];

    /// <summary>Ballots and participations per sealed page (one event each).</summary>
    public const int PageSize = 10_000;

    /// <summary>A fresh receipt: 120 random bits in lowercase base32 (24 characters), unrelated to the voter or the time.</summary>
    public static string NewReceipt()
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
        Span<byte> bytes = stackalloc byte[15];
        RandomNumberGenerator.Fill(bytes);
        Span<char> text = stackalloc char[24];
        for (var i = 0; i < 24; i++)
        {
            var bit = i * 5;
            var value = ((bytes[bit / 8] << 8) | (bit / 8 + 1 < bytes.Length ? bytes[bit / 8 + 1] : 0)) >> (11 - bit % 8);
            text[i] = Alphabet[value & 31];
        }

        return new string(text);
    }

    // The lock that orders votes and the close: votes hold it shared, the close exclusively, so a vote either
    // commits before the close counts or finds the ballot certified.
    private const string SharedLockSql = "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))";

    private const string ExclusiveLockSql = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

    /// <summary>Records the participation and the ballot in one transaction (one round trip).</summary>
    /// <exception cref="DomainException">already-voted, or ballot-closed when the close came first.</exception>
    public static async Task CastAsync(EventLog events, string[] certifiedTypes, Guid ballotId, string resident, string receipt, int option, CancellationToken ct)
    {
        var stream = Ballot.StreamId(ballotId);
        const string Open = $"NOT EXISTS (SELECT 1 FROM {EventLog.Table} WHERE stream_id = $2 AND type = ANY($3))";
        await using var batch = new NpgsqlBatch();
        batch.BatchCommands.Add(Sql.Command(SharedLockSql, stream));
        batch.BatchCommands.Add(Sql.Command(
            $"INSERT INTO ballot_participations (ballot_id, resident) SELECT $1, $4 WHERE {Open}", ballotId, stream, certifiedTypes, resident));
        batch.BatchCommands.Add(Sql.Command(
            $"INSERT INTO ballot_box (ballot_id, receipt, option) SELECT $1, $4, $5 WHERE {Open}", ballotId, stream, certifiedTypes, receipt, (short)option));
        try
        {
            await events.ExecuteAsync(batch, ct);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "ballot_participations_pkey")
        {
            throw new DomainException("already-voted", "A vote is already recorded in your name for this ballot; nobody votes twice.");
        }

        if (batch.BatchCommands[1].RecordsAffected == 0)
        {
            throw new DomainException("ballot-closed", "The ballot was closed before your vote arrived; it was not recorded.");
        }
    }

    /// <summary>Takes the ballot's lock exclusively for the rest of <paramref name="tx"/>: no vote is in flight after it.</summary>
    public static async Task LockAsync(NpgsqlTransaction tx, Guid ballotId, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(ExclusiveLockSql, tx.Connection, tx);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Ballot.StreamId(ballotId) });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The ballot box in receipt order (receipts and their options' indexes), with the count of each option.</summary>
    public static async Task<(List<string> Receipts, List<int> Options, long[] Tallies)> ReadBoxAsync(
        NpgsqlTransaction tx, Guid ballotId, int options, CancellationToken ct)
    {
        var (receipts, chosen, tallies) = (new List<string>(), new List<int>(), new long[options]);
        await using var command = new NpgsqlCommand(
            "SELECT receipt, option FROM ballot_box WHERE ballot_id = $1 ORDER BY receipt COLLATE \"C\"", tx.Connection, tx);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = ballotId });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            var option = reader.GetInt16(1);
            receipts.Add(reader.GetString(0));
            chosen.Add(option);
            tallies[option]++;
        }

        return (receipts, chosen, tallies);
    }

    /// <summary>The participation register in person id order.</summary>
    public static async Task<List<string>> ReadRollAsync(NpgsqlTransaction tx, Guid ballotId, CancellationToken ct)
    {
        var persons = new List<string>();
        await using var command = new NpgsqlCommand(
            "SELECT resident FROM ballot_participations WHERE ballot_id = $1 ORDER BY resident COLLATE \"C\"", tx.Connection, tx);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = ballotId });
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            persons.Add(reader.GetString(0));
        }

        return persons;
    }

    /// <summary>How many people are on the ballot's roll: the same rule as <see cref="Residence.Ineligible"/>, counted
    /// over the census register (the directory's, where every residence is decided).</summary>
    public static async Task<long> CountRollAsync(NpgsqlDataSource census, BallotCalled ballot, CancellationToken ct)
    {
        await using var command = census.CreateCommand("""
            SELECT count(*) FROM residences
            WHERE canton_id = $1 AND since <= $2 AND (until IS NULL OR until > $2)
              AND ($3 <= 0 OR birth_date + make_interval(years => $3) <= $2)
              AND $2 - since >= $4
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = ballot.CantonId });
        command.Parameters.Add(new NpgsqlParameter<DateOnly> { TypedValue = ballot.CensusDate });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = ballot.VotingAge });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = ballot.MinimumResidenceDays });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Deletes the box's working rows once sealed into the log.</summary>
    public static async Task EmptyAsync(NpgsqlTransaction tx, Guid ballotId, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("DELETE FROM ballot_box WHERE ballot_id = $1", tx.Connection, tx);
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = ballotId });
        await command.ExecuteNonQueryAsync(ct);
    }

    public static async Task<bool> ParticipatedAsync(NpgsqlDataSource db, Guid ballotId, string resident, CancellationToken ct)
    {
        await using var command = db.CreateCommand("SELECT EXISTS (SELECT 1 FROM ballot_participations WHERE ballot_id = $1 AND resident = $2)");
        command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = ballotId });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = resident });
        return (bool)(await command.ExecuteScalarAsync(ct))!;
    }
}

/// <summary>Ballots as called, kept in memory once read: a call never changes (the certification is checked by the
/// vote's own statement), and every vote needs it.</summary>
public sealed class CalledBallots(Placement placement)
{
    private const int Capacity = 10_000;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, BallotCalled> _called = new();

    /// <summary>The ballot of the canton as called; 404 when the canton has no such ballot.</summary>
    public async Task<BallotCalled> GetAsync(string cantonId, Guid ballotId, CancellationToken ct)
    {
        if (!_called.TryGetValue(ballotId, out var called))
        {
            called = (await Ballots.ReadAsync(placement.Of(cantonId).Log, cantonId, ballotId, ct)).Ballot.Called;
            if (_called.Count >= Capacity)
            {
                _called.Clear();
            }

            _called[ballotId] = called;
        }

        return called.CantonId == cantonId ? called : throw new NotFoundException("Ballot", ballotId.ToString());
    }
}

/// <summary>Reading a ballot of a canton from its stream.</summary>
internal static class Ballots
{
    /// <summary>The ballot and its stream's version; 404 when the canton has no such ballot.</summary>
    public static async Task<(Ballot Ballot, long Version)> ReadAsync(EventLog events, string cantonId, Guid ballotId, CancellationToken ct)
    {
        var (ballot, version) = await events.AggregateStreamAsync<Ballot>(Ballot.StreamId(ballotId), Ballot.Apply, ct);
        return ballot is null || ballot.Called.CantonId != cantonId
            ? throw new NotFoundException("Ballot", ballotId.ToString())
            : (ballot, version);
    }
}
