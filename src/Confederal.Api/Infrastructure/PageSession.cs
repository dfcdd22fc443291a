using System.Security.Claims;
using Confederal.Domain;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Api.Infrastructure;

/// <summary>
/// Who is signed in on the web pages: a bearer token of the configured issuer, kept in an HttpOnly, SameSite=Strict
/// cookie (never in a URL, never readable by script) and read by a bearer scheme of its own that only the pages use.
/// The REST API never reads the cookie, so another site cannot use a person's page session to call it.
/// </summary>
public static class PageSession
{
    public const string Scheme = "page";

    /// <summary>The default scheme: <see cref="SchemeOf"/> picks the real one for each request.</summary>
    public const string Caller = "caller";
    public const string Policy = "page-person";
    public const string Cookie = "confederal-session";
    public const string SignInPath = "/sign-in";

    public static JwtBearerEvents Events { get; } = new()
    {
        OnMessageReceived = context =>
        {
            // Only the cookie: without one the bearer handler would fall back to the Authorization header.
            if (context.Request.Cookies[Cookie] is { Length: > 0 } token)
            {
                context.Token = token;
            }
            else
            {
                context.NoResult();
            }

            return Task.CompletedTask;
        },
        // A page asked for without a session (or with an expired one) leads to the sign-in, then back.
        OnChallenge = context =>
        {
            context.HandleResponse();
            context.Response.Redirect(SignIn(context.Request));
            return Task.CompletedTask;
        },
        OnForbidden = context =>
        {
            context.Response.Redirect(SignIn(context.Request));
            return Task.CompletedTask;
        },
    };

    /// <summary>The REST API (under /api) reads only the Authorization header; everything else, the pages, only the
    /// session cookie. Knowing the caller before antiforgery checks a form matters: its tokens are bound to the user.</summary>
    public static string SchemeOf(HttpContext http) =>
        http.Request.Path.StartsWithSegments("/api") ? JwtBearerDefaults.AuthenticationScheme : Scheme;

    public static void Start(HttpResponse response, string token, DateTimeOffset expires) =>
        response.Cookies.Append(Cookie, token, Options(response.HttpContext.Request, expires));

    public static void End(HttpResponse response) =>
        response.Cookies.Delete(Cookie, Options(response.HttpContext.Request, null));

    /// <summary>A local path to return to after signing in; anything else (another host, a scheme) is the home page.</summary>
    public static string LocalPath(string? returnUrl) =>
        returnUrl is ['/', not '/' and not '\\', ..] || returnUrl == "/" ? returnUrl : "/";

    private static string SignIn(HttpRequest request) =>
        $"{SignInPath}?returnUrl={Uri.EscapeDataString(request.PathBase + request.Path + request.QueryString)}";

    private static CookieOptions Options(HttpRequest request, DateTimeOffset? expires) => new()
    {
        HttpOnly = true,
        Secure = request.IsHttps,
        SameSite = SameSiteMode.Strict,
        Path = "/",
        Expires = expires,
        IsEssential = true,
    };
}

/// <summary>Signs a person in on the pages: with the development key, as any person picked from a list (Development
/// and the embedded mode only); otherwise with a token of the configured issuer that the person pastes.</summary>
public sealed class PageSignIn(SecurityKey? developmentKey)
{
    public static readonly TimeSpan DemoLifetime = TimeSpan.FromHours(8);

    /// <summary>Whether demo people can be picked: only when tokens are signed with this machine's development key.</summary>
    public bool OffersDemoPeople => developmentKey is not null;

    public string IssueDemo(string personId) =>
        DevTokens.Issue(developmentKey ?? throw new InvalidOperationException("Demo sign-in needs the development key."),
            Roles.Person, personId, lifetime: DemoLifetime);

    /// <summary>The token's expiry when it is a valid person's token for this API (as the bearer scheme
    /// <paramref name="options"/> validates it), or why not (the key of a page's sentence).</summary>
    public static async Task<(DateTimeOffset? Expires, string? Refusal)> ValidateAsync(string token, JwtBearerOptions options, CancellationToken ct)
    {
        var parameters = options.TokenValidationParameters.Clone();
        if (options.ConfigurationManager is { } manager)
        {
            parameters.IssuerSigningKeys = (await manager.GetConfigurationAsync(ct)).SigningKeys;
        }

        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, parameters);
        if (!result.IsValid)
        {
            return (null, "SignIn.TokenRefused");
        }

        var user = new ClaimsPrincipal(result.ClaimsIdentity);
        return user.IsInRole(Roles.Person) && Identifiers.IsPersonId(user.FindFirstValue("sub"))
            ? (new DateTimeOffset(result.SecurityToken.ValidTo, TimeSpan.Zero), null)
            : (null, "SignIn.NotAPerson");
    }
}
