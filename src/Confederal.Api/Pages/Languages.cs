using System.Globalization;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.Extensions.Localization;

namespace Confederal.Api.Pages;

/// <summary>The people's pages' texts: <c>Text.resx</c> (English) and one translation per language of
/// <see cref="Languages.Supported"/>, read through <c>IStringLocalizer&lt;Text&gt;</c> by key.</summary>
public sealed class Text;

/// <summary>
/// The languages the people's pages speak, and which one a request gets: the person's own choice (the language menu's
/// cookie), else the first language of their browser's <c>Accept-Language</c> that the pages speak, else the canton's
/// language, else English. Names a canton or an organization wrote are shown as written; numbers, money and dates
/// follow the canton's locale, in the language shown (see <see cref="CantonFormat"/>).
/// </summary>
public static class Languages
{
    public const string Cookie = "confederal-language";

    public const string Default = "en";

    /// <summary>Each language by its ISO 639-1 code, with its name as its own speakers write it.</summary>
    public static readonly IReadOnlyList<(string Code, string Name)> Supported =
        [("en", "English"), ("fr", "Français"), ("de", "Deutsch"), ("it", "Italiano"), ("es", "Español"), ("ja", "日本語")];

    public static bool IsSupported(string? code) => code is not null && Supported.Any(l => l.Code == code);

    /// <summary>The language the person asked for, by the menu or their browser; null when they asked for none the
    /// pages speak.</summary>
    public static string? Chosen(HttpRequest request)
    {
        if (request.Cookies[Cookie] is { } chosen && IsSupported(chosen))
        {
            return chosen;
        }

        // Highest quality first; among equal qualities, the order the browser sent (OrderByDescending is stable).
        return request.GetTypedHeaders().AcceptLanguage
            .Where(l => l.Quality is null or > 0)
            .OrderByDescending(l => l.Quality ?? 1)
            .Select(l => LanguageOf(l.Value.Value))
            .FirstOrDefault(IsSupported);
    }

    /// <summary>Where the language menu returns to: the page shown, as a GET (without the handler a form posted to).</summary>
    public static string ReturnUrl(HttpRequest request) =>
        request.PathBase + request.Path
        + QueryString.Create(request.Query.Where(q => !q.Key.Equals("handler", StringComparison.OrdinalIgnoreCase)));

    /// <summary>The language of a page about a canton of <paramref name="cantonLocale"/> (null: about no canton).</summary>
    public static string Of(HttpRequest request, string? cantonLocale) =>
        Chosen(request) ?? (LanguageOf(cantonLocale) is { } canton && IsSupported(canton) ? canton : Default);

    private static string? LanguageOf(string? tag) =>
        tag is null ? null : tag.Split('-', 2)[0].ToLowerInvariant();
}

/// <summary>A page that may be about one canton, whose locale then decides its language (unless the person chose one).</summary>
public interface ICantonPage
{
    /// <summary>The canton's format for this request, once the page knows its canton.</summary>
    CantonFormat? Format { get; }
}

/// <summary>Renders every page in its language (<see cref="Languages"/>): the page's canton is known only once its
/// handler ran, so the language is set around the result, which is where every text is looked up.</summary>
public sealed class PageLanguage : IAsyncAlwaysRunResultFilter
{
    public async Task OnResultExecutionAsync(ResultExecutingContext context, ResultExecutionDelegate next)
    {
        var language = context.Controller is ICantonPage { Format: { } format }
            ? format.Language
            : Languages.Of(context.HttpContext.Request, null);
        CultureInfo.CurrentUICulture = CultureInfo.GetCultureInfo(language);
        await next();
    }
}

/// <summary>Looks up a page's texts, falling back to a general sentence (never the bare key) for a refusal whose code
/// has no text of its own: the REST API may grow codes that a page can show before anyone translates them.</summary>
public static class TextLookup
{
    public static string Say(this IStringLocalizer<Text> text, PageMessage message)
    {
        var said = text[message.Key, message.Args];
        return said.ResourceNotFound ? text["Refusal.other", message.Key.Replace(PageMessage.RefusalPrefix, "", StringComparison.Ordinal)].Value : said.Value;
    }
}

/// <summary>A sentence a page shows, as a key of <see cref="Text"/> and its arguments: handlers run before the
/// page's language is known, so they keep what to say and the page says it.</summary>
public sealed record PageMessage(string Key, params object[] Args)
{
    public const string RefusalPrefix = "Refusal.";

    public static PageMessage Refusal(string code, params object[] args) => new(RefusalPrefix + code, args);
}
