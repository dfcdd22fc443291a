using System.Globalization;
using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Cantons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.EventStore;
using FluentValidation;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.Extensions.Localization;

namespace Confederal.Api.Pages;

/// <summary>Money and dates as people of a canton read them, in the language of the page: amounts in the canton's
/// currency with its minor digits, numbers, dates and times by the canton's locale (its region's conventions, e.g. it-CH
/// for Italian on a fr-CH canton's page) and time zone. Figures are exact: minor units become a decimal, never a
/// floating-point number.</summary>
public sealed class CantonFormat
{
    private readonly NumberFormatInfo _money;
    private readonly decimal _minorPerMajor;

    public CantonFormat(string currency, string locale, string timeZone, string language)
    {
        // Stored locales and zones were checked when the canton was registered; one the platform lost since reads as en/UTC.
        Language = language;
        Culture = InLanguage(CantonLocales.Culture(locale) ?? CultureInfo.GetCultureInfo("en"), language);
        TimeZone = CantonLocales.TimeZone(timeZone) ?? TimeZoneInfo.Utc;
        var digits = Currencies.MinorUnitDigits(currency);
        _minorPerMajor = (decimal)Math.Pow(10, digits);
        _money = (NumberFormatInfo)Culture.NumberFormat.Clone();
        _money.CurrencyDecimalDigits = digits;
        _money.CurrencySymbol = LocalSymbol(Culture, currency) ?? currency;
        if (_money.CurrencySymbol.All(char.IsAsciiLetter))
        {
            // An ISO code reads as a word: never glued to the number ("CHF 1,234.56", not "CHF1,234.56").
            _money.CurrencyPositivePattern = _money.CurrencyPositivePattern switch { 0 => 2, 1 => 3, var p => p };
            _money.CurrencyNegativePattern = _money.CurrencyNegativePattern switch
            {
                0 => 14, 1 => 9, 2 => 12, 3 => 11, 4 => 15, 5 => 8, 6 => 13, 7 => 10, var p => p,
            };
        }
    }

    /// <summary>The canton's format in the language <see cref="Languages.Of"/> gives this request.</summary>
    public static CantonFormat For(CantonView canton, HttpRequest request) =>
        new(canton.Currency, canton.Locale, canton.TimeZone, Languages.Of(request, canton.Locale));

    /// <summary>The language of the page (en, fr, de, it, es, ja).</summary>
    public string Language { get; }

    public CultureInfo Culture { get; }

    public TimeZoneInfo TimeZone { get; }

    public string Money(long minor) => (minor / _minorPerMajor).ToString("C", _money);

    /// <summary>A count (taxpayers, voters, votes) as the canton's locale writes it.</summary>
    public string Number(long value) => value.ToString("N0", Culture);

    public string Share(long basisPoints) => (basisPoints / (decimal)Domain.Fiscal.Money.BasisPoints).ToString("P2", Culture);

    public string Instant(DateTimeOffset instant) =>
        $"{TimeZoneInfo.ConvertTime(instant, TimeZone).ToString("f", Culture)} ({TimeZone.Id})";

    public string Date(DateOnly date) => date.ToString("D", Culture);

    // The canton's locale in another language keeps its region's conventions: fr-CH read in Italian is it-CH, in
    // Japanese ja-CH (ICU builds a culture for any language and region it knows both of).
    private static CultureInfo InLanguage(CultureInfo canton, string language)
    {
        if (canton.TwoLetterISOLanguageName == language)
        {
            return canton;
        }

        var region = canton.Name.Split('-') is [.., { Length: 2 } last] && !canton.IsNeutralCulture ? last : null;
        return CultureInfo.GetCultureInfo(region is null ? language : $"{language}-{region}");
    }

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
/// documents: broken rules, invalid input, conflicts, missing things, each by its stable code, which the page says in its
/// language. Anything else (an unavailable database) is left to the API's one mapping.</summary>
public static class Refusals
{
    public static IReadOnlyList<PageMessage>? Of(Exception exception) => exception switch
    {
        ValidationException e => [.. e.Errors.Select(f => f.ErrorCode ?? f.PropertyName).Distinct(StringComparer.Ordinal).Select(c => PageMessage.Refusal(c))],
        ConcurrencyException => [PageMessage.Refusal("concurrency-conflict")],
        DomainException e => [PageMessage.Refusal(e.Code)],
        ForbiddenException e => [PageMessage.Refusal(e.Code)],
        NotFoundException e => [PageMessage.Refusal(e.Code, e.Id)],
        _ => null,
    };
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

/// <summary>What the platform itself wrote on a ballot, in the page's language: the yes and no of a proposal's ballot.
/// A question and options that a canton wrote are shown as written.</summary>
public static class BallotTexts
{
    public static string Option(IStringLocalizer<Text> text, BallotView ballot, string option) =>
        ballot.Proposal is not null && Domain.Ballots.Ballot.YesNo.Contains(option) ? text["Ballot.Option." + option] : option;
}
