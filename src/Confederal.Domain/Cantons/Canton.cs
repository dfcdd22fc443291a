namespace Confederal.Domain.Cantons;

/// <summary>A canton is registered with its currency, and the locale and time zone its money and dates are shown in
/// (<see cref="Canton.DefaultLocale"/> and <see cref="Canton.DefaultTimeZone"/> when none is given; version 1 of the
/// event, written before cantons had them, reads as those).</summary>
public sealed record CantonRegistered(
    string CantonId, string Name, string Currency, string Locale = Canton.DefaultLocale, string TimeZone = Canton.DefaultTimeZone);

public sealed record CantonRenamed(string CantonId, string Name);

/// <summary>The canton now shows its money and dates in <see cref="Locale"/> (a .NET culture name) and
/// <see cref="TimeZone"/> (an IANA time-zone id). Both are given, even when one of them did not change.</summary>
public sealed record CantonLocaleSet(string CantonId, string Locale, string TimeZone);

/// <summary>The canton keeps tax records <see cref="TaxRetentionYears"/> years after the end of their fiscal year: until
/// then nobody they name can be erased but by a court order.</summary>
public sealed record CantonRetentionSet(string CantonId, int TaxRetentionYears);

/// <summary>An autonomous canton of the confederation. Its currency is fixed once registered: amounts recorded in one
/// currency can never be re-read in another. Its locale and time zone only say how people see amounts and dates.</summary>
public sealed record Canton(string Id, string Name, string Currency, string Locale = Canton.DefaultLocale, string TimeZone = Canton.DefaultTimeZone)
{
    public const string DefaultLocale = "en";
    public const string DefaultTimeZone = "UTC";

    /// <summary>Ten years, as Swiss and Italian law keep accounting records, unless the canton sets its own.</summary>
    public const int DefaultTaxRetentionYears = 10;
    public const int MaxTaxRetentionYears = 100;

    public int TaxRetentionYears { get; init; } = DefaultTaxRetentionYears;

    /// <summary>The last day a tax record of <paramref name="fiscalYear"/> must be kept.</summary>
    public DateOnly RetainedUntil(int fiscalYear) => new(fiscalYear + TaxRetentionYears, 12, 31);

    public static string StreamId(string cantonId) => $"canton-{cantonId}";

    public static Canton? Apply(Canton? state, object @event) => @event switch
    {
        CantonRegistered e => new Canton(e.CantonId, e.Name, e.Currency, e.Locale, e.TimeZone),
        CantonRenamed e when state is not null => state with { Name = e.Name },
        CantonLocaleSet e when state is not null => state with { Locale = e.Locale, TimeZone = e.TimeZone },
        CantonRetentionSet e when state is not null => state with { TaxRetentionYears = e.TaxRetentionYears },
        _ => state,
    };

    /// <summary>Registers the canton, renames it, sets its locale and time zone, or does nothing when it already stands
    /// as asked (a retried PUT). A locale or time zone not given is the default at registration, and unchanged later.
    /// Both are taken as valid and canonically spelled: the caller checks them against the platform's cultures and
    /// time zones. The retention of tax records likewise: <see cref="DefaultTaxRetentionYears"/> unless given.</summary>
    public static IReadOnlyList<object> Register(
        Canton? state, string id, string name, string currency, string? locale = null, string? timeZone = null, int? taxRetentionYears = null)
    {
        if (taxRetentionYears is < 0 or > MaxTaxRetentionYears)
        {
            throw new DomainException("invalid-retention", $"taxRetentionYears must be 0..{MaxTaxRetentionYears}.");
        }

        if (state is null)
        {
            IReadOnlyList<object> registered = [new CantonRegistered(id, name, currency, locale ?? DefaultLocale, timeZone ?? DefaultTimeZone)];
            return taxRetentionYears is { } years && years != DefaultTaxRetentionYears
                ? [.. registered, new CantonRetentionSet(id, years)]
                : registered;
        }

        if (state.Currency != currency)
        {
            throw new DomainException("currency-is-fixed",
                $"Canton '{id}' keeps its accounts in {state.Currency}; its currency cannot become {currency}.");
        }

        var decided = new List<object>();
        if (state.Name != name)
        {
            decided.Add(new CantonRenamed(id, name));
        }

        var (newLocale, newTimeZone) = (locale ?? state.Locale, timeZone ?? state.TimeZone);
        if (newLocale != state.Locale || newTimeZone != state.TimeZone)
        {
            decided.Add(new CantonLocaleSet(id, newLocale, newTimeZone));
        }

        if (taxRetentionYears is { } retention && retention != state.TaxRetentionYears)
        {
            decided.Add(new CantonRetentionSet(id, retention));
        }

        return decided;
    }
}
