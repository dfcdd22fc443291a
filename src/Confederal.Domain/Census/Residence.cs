using System.Collections.Immutable;

namespace Confederal.Domain.Census;

/// <summary>A person took up residence in a canton. Only residence is recorded: no nationality, origin or name. The
/// person is named by their residence handle (random, linked to the person id only by the key table outside the log;
/// events recorded before handles carry the person id itself there). The birth date, there for the voting age, is
/// <see cref="SealedBirthDate"/>: encrypted under the person's own key, so that destroying the key forgets it.</summary>
public sealed record ResidentRegistered(string Resident, string CantonId, DateOnly ResidentSince, string? SealedBirthDate)
{
    /// <summary>The birth date once opened with the person's key, or as an event recorded before sealing holds it in
    /// clear. Never written: the stored payload holds only <see cref="SealedBirthDate"/>.</summary>
    public DateOnly? BirthDate { get; init; }
}

/// <summary>A person's residence in a canton ended: <see cref="LeftOn"/> is the first day they no longer live there.</summary>
public sealed record ResidentDeparted(string Resident, string CantonId, DateOnly LeftOn);

/// <summary>The person with this residence handle was erased: their key (and with it every link from the handles to
/// them, and their sealed birth date) is destroyed. Names neither their person id nor their taxpayer handle.
/// <see cref="EligibleIn"/> lists the certified ballots whose roll they were on, which their birth date can no longer
/// show, so that a replay still counts those rolls exactly. <see cref="Basis"/> is <see cref="Erasure.Request"/> or
/// <see cref="Erasure.CourtOrder"/>; <see cref="Reference"/> is the case's reference as the admin gave it.</summary>
public sealed record PersonErased(string Resident, string Basis, string Reference, IReadOnlyList<Guid> EligibleIn);

/// <summary>The lawful bases of an erasure.</summary>
public static class Erasure
{
    /// <summary>The person asked (GDPR art. 17): refused while the canton must still keep their tax records.</summary>
    public const string Request = "erasure-request";

    /// <summary>A court ordered it: the canton's retention of tax records does not hold it back.</summary>
    public const string CourtOrder = "court-order";

    public static bool IsBasis(string? basis) => basis is Request or CourtOrder;
}

/// <summary>Resident from <see cref="Since"/> until the day before <see cref="Until"/> (null: still resident).</summary>
public sealed record ResidencePeriod(string CantonId, DateOnly Since, DateOnly? Until)
{
    public bool Covers(DateOnly day) => Since <= day && (Until is null || day < Until);
}

/// <summary>Why a person is not on a ballot's roll.</summary>
public static class Ineligibility
{
    public const string NotResident = "not-resident-on-census-date";
    public const string UnderVotingAge = "under-voting-age";
    public const string ResidenceTooShort = "residence-too-short";
}

/// <summary>One person's residences across the confederation, in time order: one at a time, an arrival ending the
/// residence before it. <see cref="BirthDate"/> is null when it could not be opened (the person's key is destroyed).</summary>
public sealed record Residence(DateOnly? BirthDate, ImmutableList<ResidencePeriod> Periods)
{
    public static string StreamId(string resident) => $"residence-{resident}";

    public ResidencePeriod? Current => Periods.Count > 0 && Periods[^1].Until is null ? Periods[^1] : null;

    public static Residence? Apply(Residence? state, object @event) => @event switch
    {
        ResidentRegistered e => new Residence(e.BirthDate ?? state?.BirthDate, (state?.Periods ?? []).Add(new ResidencePeriod(e.CantonId, e.ResidentSince, null))),
        ResidentDeparted e when state?.Current is { } current && current.CantonId == e.CantonId =>
            state with { Periods = state.Periods.SetItem(state.Periods.Count - 1, current with { Until = e.LeftOn }) },
        _ => state,
    };

    /// <summary>Registers an arrival in <paramref name="cantonId"/>, ending the current residence elsewhere on the same
    /// day. A retry of the same arrival records nothing. History is not rewritten: an arrival must come after the
    /// person's last recorded arrival and departure. <paramref name="who"/> names the person in messages and events.</summary>
    public static IReadOnlyList<object> Register(Residence? state, Resident who, string cantonId, DateOnly since, DateOnly birthDate)
    {
        var personId = who.PersonId;
        if (birthDate > since)
        {
            throw new DomainException("born-after-arrival", $"A person born on {birthDate:O} cannot have been resident since {since:O}.");
        }

        if (state is null)
        {
            return [who.Registered(cantonId, since, birthDate)];
        }

        if (state.BirthDate != birthDate)
        {
            throw new DomainException("birth-date-mismatch", $"Person '{personId}' is recorded as born on {state.BirthDate:O}, not {birthDate:O}.");
        }

        var current = state.Current;
        if (current is not null && current.CantonId == cantonId)
        {
            return current.Since == since
                ? []
                : throw new DomainException("already-resident", $"Person '{personId}' has been resident in '{cantonId}' since {current.Since:O}.");
        }

        var last = state.Periods[^1];
        if (since <= last.Since || (last.Until is { } until && since < until))
        {
            throw new DomainException("residence-out-of-order",
                $"Person '{personId}''s last recorded residence began on {last.Since:O}{(last.Until is { } u ? $" and ended on {u:O}" : "")}; " +
                "a new arrival must come after it.");
        }

        return current is null
            ? [who.Registered(cantonId, since, birthDate)]
            : [new ResidentDeparted(who.Handle, current.CantonId, since), who.Registered(cantonId, since, birthDate)];
    }

    /// <summary>Why a departure from a canton the person does not live in (or of someone never recorded) is refused.</summary>
    public static DomainException NotResident(string personId, string cantonId) =>
        new("not-resident", $"Person '{personId}' is not resident in canton '{cantonId}'.");

    /// <summary>Records a departure from <paramref name="cantonId"/>; a retry of the same departure records nothing.</summary>
    public static IReadOnlyList<object> Depart(Residence? state, Resident who, string cantonId, DateOnly leftOn)
    {
        var personId = who.PersonId;
        var last = state?.Periods[^1];
        if (last is null || last.CantonId != cantonId)
        {
            throw NotResident(personId, cantonId);
        }

        if (last.Until is { } until)
        {
            return until == leftOn
                ? []
                : throw new DomainException("not-resident", $"Person '{personId}' left canton '{cantonId}' on {until:O}.");
        }

        return leftOn > last.Since
            ? [new ResidentDeparted(who.Handle, cantonId, leftOn)]
            : throw new DomainException("departure-before-arrival",
                $"Person '{personId}' has been resident in '{cantonId}' since {last.Since:O}; they cannot have left on {leftOn:O}.");
    }

    /// <summary>Whether the person is on the roll of a ballot of <paramref name="cantonId"/>: resident on the census
    /// date, at least <paramref name="votingAge"/> years old then, resident for at least
    /// <paramref name="minimumResidenceDays"/> days by then. Nothing else. Returns null when eligible, else why not.</summary>
    public static string? Ineligible(Residence? state, string cantonId, DateOnly censusDate, int votingAge, int minimumResidenceDays)
    {
        var period = state?.Periods.LastOrDefault(p => p.CantonId == cantonId && p.Covers(censusDate));
        if (state is null || period is null)
        {
            return Ineligibility.NotResident;
        }

        if (!IsOfAge(state.BirthDate, censusDate, votingAge))
        {
            return Ineligibility.UnderVotingAge;
        }

        return censusDate.DayNumber - period.Since.DayNumber < minimumResidenceDays ? Ineligibility.ResidenceTooShort : null;
    }

    /// <summary>Aged at least <paramref name="years"/> on <paramref name="day"/>; someone born on 29 February comes of
    /// age on 28 February of a common year.</summary>
    public static bool IsOfAge(DateOnly? birthDate, DateOnly day, int years) =>
        years <= 0 || (birthDate is { } born && born.Year + years <= DateOnly.MaxValue.Year && born.AddYears(years) <= day);
}

/// <summary>A person as residence events name them: <see cref="PersonId"/> for messages only, <see cref="Handle"/> in
/// the events, and <see cref="Seal"/> to encrypt their birth date under their own key.</summary>
public sealed record Resident(string PersonId, string Handle, Func<DateOnly, string> Seal)
{
    public ResidentRegistered Registered(string cantonId, DateOnly since, DateOnly birthDate) =>
        new(Handle, cantonId, since, Seal(birthDate)) { BirthDate = birthDate };
}

/// <summary>A canton's rules for who is on a ballot's roll; a ballot keeps the rules in force when it was called.</summary>
public sealed record VotingRulesSet(string CantonId, int VotingAge, int MinimumResidenceDays);

public sealed record VotingRules(int VotingAge, int MinimumResidenceDays)
{
    public const int DefaultVotingAge = 16;
    public const int MaxVotingAge = 100;
    public const int MaxMinimumResidenceDays = 3660;

    public static readonly VotingRules Default = new(DefaultVotingAge, 0);

    public static string StreamId(string cantonId) => $"voting-rules-{cantonId}";

    public static VotingRules? Apply(VotingRules? state, object @event) => @event switch
    {
        VotingRulesSet e => new VotingRules(e.VotingAge, e.MinimumResidenceDays),
        _ => state,
    };

    public static IReadOnlyList<object> Set(VotingRules? state, string cantonId, int votingAge, int minimumResidenceDays) =>
        (state ?? Default) == new VotingRules(votingAge, minimumResidenceDays) && state is not null
            ? []
            : [new VotingRulesSet(cantonId, votingAge, minimumResidenceDays)];
}
