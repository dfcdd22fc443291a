using System.Collections.Immutable;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Census;
using Confederal.EventStore;
using FluentValidation;
using Npgsql;

namespace Confederal.Api.Features.Census;

/// <summary>What a municipality is told about one person's residence in its canton.</summary>
public sealed record ResidenceView(string PersonId, string CantonId, DateOnly ResidentSince, DateOnly? LeftOn);

/// <summary>
/// The census register: every person's residence periods, written in the same transaction as the residence events, so
/// a ballot's roll and the census counts never lag behind a registration. It holds residence only: where and since
/// when, and the birth date for the voting age.
/// </summary>
public static class Residences
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0005-census", """
            CREATE TABLE residences (
                person_id  text NOT NULL,
                since      date NOT NULL,
                canton_id  text NOT NULL,
                until      date,
                birth_date date NOT NULL,
                PRIMARY KEY (person_id, since)
            );
            CREATE INDEX residences_canton ON residences (canton_id, since);
            """),
    ];

    public static readonly DateOnly Earliest = new(1900, 1, 1);

    /// <summary>Folds the person's residences (their birth date opened with their key), decides, and appends what was
    /// decided together with the register rows. Returns the residence after the decision and whether anything was
    /// recorded.</summary>
    public static async Task<(Residence? State, bool Recorded)> DecideAsync(
        EventLog events, PersonKey key, Func<Residence?, IReadOnlyList<object>> decide, EventMetadata metadata, CancellationToken ct)
    {
        var stream = Residence.StreamId(key.Resident);
        var (state, version) = await events.AggregateStreamAsync<Residence>(stream, (s, e) => Residence.Apply(s, Opened(key, e)), ct);
        var decided = decide(state);
        if (decided.Count == 0)
        {
            return (state, false);
        }

        var after = decided.Aggregate(state, Residence.Apply)!;
        await events.TransactAsync(async tx =>
        {
            await events.AppendAsync(tx, stream, ExpectedVersion.Exactly(version), decided, metadata, ct);
            await using var batch = new NpgsqlBatch(tx.Connection, tx)
            {
                BatchCommands =
                {
                    Sql.Command("DELETE FROM residences WHERE resident = $1", key.Resident),
                    Sql.Command("""
                        INSERT INTO residences (resident, since, canton_id, until, birth_date)
                        SELECT $1, s, c, u, $5 FROM unnest($2::date[], $3::text[], $4::date[]) AS p(s, c, u)
                        """, key.Resident, after.Periods.Select(p => p.Since).ToArray(), after.Periods.Select(p => p.CantonId).ToArray(),
                        after.Periods.Select(p => p.Until).ToArray(), after.BirthDate),
                },
            };
            return await batch.ExecuteNonQueryAsync(ct);
        }, ct);
        return (after, true);
    }

    /// <summary>The person's residences as the register has them (null: never resident anywhere, or never recorded).</summary>
    public static async Task<Residence?> ReadAsync(NpgsqlDataSource db, PersonKeys persons, string personId, CancellationToken ct) =>
        await persons.FindAsync(personId, ct) is { } key ? await ReadAsync(db, key.Resident, ct) : null;

    /// <summary>A residence event with its birth date opened with the person's key.</summary>
    public static object Opened(PersonKey key, object e) =>
        e is ResidentRegistered { BirthDate: null } registered ? registered with { BirthDate = key.OpenBirthDate(registered.SealedBirthDate) } : e;

    /// <summary>The residences of the person with this residence handle as the register has them (null: never resident
    /// anywhere).</summary>
    public static async Task<Residence?> ReadAsync(NpgsqlDataSource db, string resident, CancellationToken ct)
    {
        await using var command = db.CreateCommand("SELECT canton_id, since, until, birth_date FROM residences WHERE resident = $1 ORDER BY since");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = resident });
        await using var reader = await command.ExecuteReaderAsync(ct);
        var periods = ImmutableList.CreateBuilder<ResidencePeriod>();
        DateOnly? birthDate = null;
        while (await reader.ReadAsync(ct))
        {
            periods.Add(new ResidencePeriod(reader.GetString(0), reader.GetFieldValue<DateOnly>(1),
                reader.IsDBNull(2) ? null : reader.GetFieldValue<DateOnly>(2)));
            birthDate = reader.IsDBNull(3) ? null : reader.GetFieldValue<DateOnly>(3);
        }

        return periods.Count == 0 ? null : new Residence(birthDate, periods.ToImmutable());
    }

    /// <summary>A calendar date no earlier than 1900 and not after today.</summary>
    public static IRuleBuilderOptions<T, DateOnly?> PastDate<T>(this IRuleBuilder<T, DateOnly?> rule, TimeProvider clock, string name) =>
        rule.NotNull().WithMessage($"{name} is required (yyyy-mm-dd).")
            .Must(d => d is null || (d >= Earliest && d <= DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime)))
            .WithMessage($"{name} must lie between {Earliest:O} and today.")
            .WithName(name);
}
