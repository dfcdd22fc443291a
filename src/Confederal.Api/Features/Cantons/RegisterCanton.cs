using System.Globalization;
using System.Text.RegularExpressions;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Cantons;

/// <summary>PUT /api/v1/cantons/{cantonId}: the confederation admin registers a canton, renames it, or sets the locale and
/// time zone its money and dates are shown in (en and UTC when registered without them; left as they are when a later
/// PUT omits them), and how many years after a fiscal year it keeps that year's tax records (10 unless given; until then
/// nobody they name is erased but by a court order). Repeating the same PUT records nothing new; changing the currency
/// is refused.</summary>
public static class RegisterCanton
{
    public sealed record Body(string? Name, string? Currency, string? Locale = null, string? TimeZone = null, int? TaxRetentionYears = null);

    public sealed record Command(
        string CantonId, string? Name, string? Currency, EventMetadata Metadata, string? Locale = null, string? TimeZone = null, int? TaxRetentionYears = null)
        : IRequest<Result>;

    public sealed record Result(bool Created, CantonView Canton, long Version);

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.CantonId).Must(Identifiers.IsSlug)
                .WithMessage("cantonId must be a slug: lowercase letters, digits and '-', 2 to 63 characters, starting with a letter or digit.");
            RuleFor(c => c.Name).NotEmpty().MaximumLength(200)
                .Must(n => n is null || n.Trim() == n).WithMessage("name must not start or end with spaces.");
            RuleFor(c => c.Currency).NotEmpty().Must(Currencies.IsKnown)
                .WithMessage("currency must be an active ISO 4217 code in capitals, e.g. CHF or EUR.");
            RuleFor(c => c.Locale).Must(l => CantonLocales.Culture(l) is not null).When(c => c.Locale is not null)
                .WithMessage("locale must be a culture name the platform knows: a language, or a language and region, e.g. fr-CH, de-CH, it-IT, en.");
            RuleFor(c => c.TimeZone).Must(z => CantonLocales.TimeZone(z) is not null).When(c => c.TimeZone is not null)
                .WithMessage("timeZone must be an IANA time-zone id the platform knows, e.g. Europe/Zurich, Asia/Tokyo, UTC.");
            RuleFor(c => c.TaxRetentionYears).InclusiveBetween(0, Canton.MaxTaxRetentionYears).When(c => c.TaxRetentionYears is not null)
                .WithName("taxRetentionYears");
        }
    }

    public sealed class Handler(EventLog events) : IRequestHandler<Command, Result>
    {
        public async Task<Result> Handle(Command command, CancellationToken cancellationToken)
        {
            var decision = await events.DecideAsync<Canton>(Canton.StreamId(command.CantonId), Canton.Apply,
                state => Canton.Register(state, command.CantonId, command.Name!, command.Currency!,
                    CantonLocales.Culture(command.Locale)?.Name, CantonLocales.TimeZone(command.TimeZone)?.Id, command.TaxRetentionYears),
                command.Metadata, cancellationToken);
            return new Result(Created: decision.Events is [CantonRegistered, ..], CantonView.From(decision.State!), decision.Version);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPut("/cantons/{cantonId}", async Task<Results<Created<CantonView>, Ok<CantonView>>> (
                string cantonId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var result = await mediator.Send(new Command(cantonId, body.Name, body.Currency, http.Metadata(), body.Locale, body.TimeZone, body.TaxRetentionYears), ct);
                http.Response.Headers.ETag = $"\"{result.Version}\"";
                return result.Created
                    ? TypedResults.Created($"/api/v1/cantons/{cantonId}", result.Canton)
                    : TypedResults.Ok(result.Canton);
            })
            .RequireAuthorization(Roles.Admin)
            .WithName("RegisterCanton")
            .WithSummary("Register or update a canton")
            .WithDescription("Registers a canton with its name and ISO 4217 currency, or renames it and sets its locale, time zone and " +
                             "tax retention (the years after a fiscal year that its tax records are kept): en, UTC and 10 when " +
                             "registered without them, left as they are when a later request omits them. Only the confederation admin " +
                             "may call it. The first registration answers 201; repeating the same request records nothing new and " +
                             "answers 200. The currency is fixed once registered: another one is refused (409 currency-is-fixed).")
            .WithTags("Cantons")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict);
}

/// <summary>The locales and time zones a canton may take, by what this platform (ICU and the system's time-zone
/// database) knows, in their canonical spelling, so that every page formats a canton's amounts and dates alike.</summary>
public static partial class CantonLocales
{
    private static readonly Lazy<HashSet<string>> ListedZones =
        new(() => TimeZoneInfo.GetSystemTimeZones().Select(z => z.Id).ToHashSet(StringComparer.Ordinal));

    /// <summary>The predefined culture named by a language (fr) or a language and region (fr-CH, es-419), with an
    /// optional script (zh-Hans-CN); null for anything else: private-use or extension subtags (which the culture would
    /// drop or alter), the invariant culture, a name the platform does not know.</summary>
    public static CultureInfo? Culture(string? name)
    {
        if (name is null || !LocaleShape().IsMatch(name))
        {
            return null;
        }

        try
        {
            var culture = CultureInfo.GetCultureInfo(name, predefinedOnly: true);
            return culture.Name.Length == 0 ? null : culture;
        }
        catch (CultureNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The IANA time zone of that id (any letter case); null for Windows ids and for files of the system's zone
    /// folder that are not zones of the IANA database (localtime, posixrules, right/…, posix/…).</summary>
    public static TimeZoneInfo? TimeZone(string? id) =>
        id is not null && ZoneShape().IsMatch(id) && TimeZoneInfo.TryFindSystemTimeZoneById(id, out var zone) && zone.HasIanaId
        && (ListedZones.Value.Contains(zone.Id) || TimeZoneInfo.TryConvertIanaIdToWindowsId(zone.Id, out _))
            ? zone
            : null;

    [GeneratedRegex(@"^[A-Za-z]{2,3}(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?\z", RegexOptions.CultureInvariant)]
    private static partial Regex LocaleShape();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9_+-]{0,29}(?:/[A-Za-z0-9][A-Za-z0-9_+-]{0,29}){0,2}\z", RegexOptions.CultureInvariant)]
    private static partial Regex ZoneShape();
}
