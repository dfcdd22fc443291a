using System.Globalization;
using Confederal.Api.Features.Cantons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.EventStore;
using FluentValidation;
using Microsoft.AspNetCore.Mvc.Filters;

namespace Confederal.Api.Pages;

/// <summary>Money and dates as people of a canton read them: amounts in the canton's currency with its minor digits,
/// numbers, dates and times in the canton's locale and time zone. Figures are exact: minor units become a decimal,
/// never a floating-point number.</summary>
public sealed class CantonFormat
{
    private readonly NumberFormatInfo _money;
    private readonly decimal _minorPerMajor;

    public CantonFormat(string currency, string locale, string timeZone)
    {
        // Stored locales and zones were checked when the canton was registered; one the platform lost since reads as en/UTC.
        Culture = CantonLocales.Culture(locale) ?? CultureInfo.GetCultureInfo("en");
        TimeZone = CantonLocales.TimeZone(timeZone) ?? TimeZoneInfo.Utc;
        var digits = Currencies.MinorUnitDigits(currency);
        _minorPerMajor = (decimal)Math.Pow(10, digits);
        _money = (NumberFormatInfo)Culture.NumberFormat.Clone();
        _money.CurrencyDecimalDigits = digits;
        if (LocalSymbol(Culture, currency) is { } symbol)
        {
            _money.CurrencySymbol = symbol;
        }
        else
        {
            // An ISO code reads as a word: never glued to the number ("CHF 1,234.56", not "CHF1,234.56").
            _money.CurrencySymbol = currency;
            _money.CurrencyPositivePattern = _money.CurrencyPositivePattern switch { 0 => 2, 1 => 3, var p => p };
            _money.CurrencyNegativePattern = _money.CurrencyNegativePattern switch
            {
                0 => 14, 1 => 9, 2 => 12, 3 => 11, 4 => 15, 5 => 8, 6 => 13, 7 => 10, var p => p,
            };
        }
    }

    public static CantonFormat For(CantonView canton) => new(canton.Currency, canton.Locale, canton.TimeZone);

    public CultureInfo Culture { get; }

    public TimeZoneInfo TimeZone { get; }

    public string Money(long minor) => (minor / _minorPerMajor).ToString("C", _money);

    /// <summary>A count (taxpayers, voters, votes) as the canton's locale writes it.</summary>
    public string Number(long value) => value.ToString("N0", Culture);

    public string Share(long basisPoints) => (basisPoints / (decimal)Domain.Fiscal.Money.BasisPoints).ToString("P2", Culture);

    public string Instant(DateTimeOffset instant) =>
        $"{TimeZoneInfo.ConvertTime(instant, TimeZone).ToString("f", Culture)} ({TimeZone.Id})";

    public string Date(DateOnly date) => date.ToString("D", Culture);

    // The culture's own symbol only for its own currency (Fr. for CHF in fr-CH, € for EUR in it-IT); otherwise the ISO
    // code, so that nobody reads dollars where the canton means another currency.
    private static string? LocalSymbol(CultureInfo culture, string currency)
    {
        if (culture.IsNeutralCulture || culture.Equals(CultureInfo.InvariantCulture))
        {
            return null;
        }

        return new RegionInfo(culture.Name).ISOCurrencySymbol == currency ? culture.NumberFormat.CurrencySymbol : null;
    }
}

/// <summary>The refusals a page shows to the person as messages next to the form, instead of the REST API's problem
/// documents: broken rules, invalid input, conflicts, missing things. Anything else (an unavailable database) is left
/// to the API's one mapping.</summary>
public static class Refusals
{
    public static IReadOnlyList<string>? Of(Exception exception) => exception switch
    {
        ValidationException e => [.. e.Errors.Select(f => Sentence(f.ErrorMessage)).Distinct(StringComparer.Ordinal)],
        ConcurrencyException => ["Somebody changed this at the same moment. Reload the page and try again."],
        DomainException e => [Sentence(e.Message)],
        ForbiddenException e => [Sentence(e.Message)],
        NotFoundException e => [Sentence(e.Message)],
        _ => null,
    };

    private static string Sentence(string text) =>
        text.Length == 0 ? text : char.ToUpper(text[0], CultureInfo.InvariantCulture) + text[1..];
}

/// <summary>Headers for every page: no framing, no scripts, no foreign forms, no referrer leaking query strings, never
/// cached (a person's designations are special-category data).</summary>
public sealed class PageBasics : IAsyncPageFilter
{
    public Task OnPageHandlerSelectionAsync(PageHandlerSelectedContext context) => Task.CompletedTask;

    public async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context, PageHandlerExecutionDelegate next)
    {
        var http = context.HttpContext;
        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy =
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
        headers["X-Content-Type-Options"] = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache, no-store"; // as antiforgery wants it on pages with forms
        headers.Pragma = "no-cache";
        await next();
    }
}

/// <summary>Geometry of the inline SVG charts, in the invariant culture SVG requires. Charts only draw: the exact
/// figures are always printed beside them.</summary>
public static class Svg
{
    /// <summary><paramref name="part"/> of <paramref name="whole"/> as a length out of <paramref name="width"/>.</summary>
    public static string Length(long part, long whole, double width) =>
        (whole <= 0 ? 0 : width * part / whole).ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>Where a bar that follows a <paramref name="part"/>-long one starting at <paramref name="start"/> begins.</summary>
    public static string At(double start, long part, long whole, double width) => Number(start + (whole <= 0 ? 0 : width * part / whole));

    public static string Number(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);
}
