using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Api.Infrastructure;

/// <summary>The roles of DESIGN.md; each is also the name of the authorization policy that requires it.</summary>
public static class Roles
{
    public const string Admin = "confederation-admin";
    public const string Municipality = "municipality";
    public const string Person = "person";
    public const string Auditor = "auditor";
    public const string Organization = "organization";

    public static readonly IReadOnlyList<string> All = [Admin, Municipality, Person, Auditor, Organization];

    /// <summary>The claim naming a municipality's canton.</summary>
    public const string CantonClaim = "canton";
}

/// <summary>
/// Tokens for Development and the embedded mode: an HMAC key generated on first run into the data folder (never
/// committed), read by the API and by `confederal dev token`.
/// </summary>
public static class DevTokens
{
    public const string Issuer = "confederal-dev";
    public const string Audience = "confederal";
    private const string KeyFile = "dev-signing.key";

    public static SymmetricSecurityKey LoadOrCreateKey(string dataDirectory)
    {
        var key = SecretFiles.LoadOrCreate(Path.Combine(dataDirectory, KeyFile), () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        return new SymmetricSecurityKey(Convert.FromBase64String(key.Trim())) { KeyId = "confederal-dev" };
    }

    public static string Issue(SecurityKey key, string role, string? subject = null, string? canton = null, TimeSpan? lifetime = null)
    {
        var claims = new Dictionary<string, object> { ["role"] = role };
        if (subject is not null)
        {
            claims["sub"] = subject;
        }

        if (canton is not null)
        {
            claims[Roles.CantonClaim] = canton;
        }

        var now = DateTime.UtcNow;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Claims = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + (lifetime ?? TimeSpan.FromHours(8)),
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.HmacSha256),
        });
    }
}

/// <summary>Development secrets kept in the data folder, readable by their owner only.</summary>
public static class SecretFiles
{
    /// <summary>The file's text, written with <paramref name="create"/> first if it does not exist. Concurrent first
    /// starts agree: the first writer wins and the others read what it wrote.</summary>
    public static string LoadOrCreate(string path, Func<string> create)
    {
        if (!File.Exists(path))
        {
            var fresh = $"{path}.{Guid.NewGuid():N}";
            File.WriteAllText(fresh, create());
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(fresh, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            try
            {
                File.Move(fresh, path);
            }
            catch (IOException)
            {
                File.Delete(fresh);
            }
        }

        return File.ReadAllText(path);
    }
}

/// <summary>Policies that depend on the route as well as the role.</summary>
public static class Scopes
{
    /// <summary>The municipality of the canton in the route ({cantonId}), and no other.</summary>
    public const string CantonMunicipality = "municipality-of-route-canton";

    /// <summary>The person in the route ({personId}), and nobody else: special-category data.</summary>
    public const string Self = "person-of-route";

    /// <summary>The organization in the route ({organizationId}), the admin and auditors.</summary>
    public const string OrganizationReader = "organization-of-route-or-overseer";
}

public static class AuthSetup
{
    /// <summary>
    /// Bearer tokens from the configured issuer (Auth:Authority for OpenID Connect discovery, or Auth:SigningKey, each with
    /// Auth:Issuer and Auth:Audience); without one, the dev issuer in Development or with the embedded database.
    /// Production refuses to start without an issuer.
    /// </summary>
    public static void AddConfederalAuth(this WebApplicationBuilder builder)
    {
        var auth = builder.Configuration.GetSection("Auth");
        var authority = auth["Authority"];
        var signingKey = auth["SigningKey"];
        var external = !string.IsNullOrWhiteSpace(authority) || !string.IsNullOrWhiteSpace(signingKey);
        if (!external && (builder.Environment.IsProduction() || !(builder.Environment.IsDevelopment() || Database.IsEmbedded(builder.Configuration))))
        {
            throw new InvalidOperationException(
                "No token issuer configured: set Auth:Authority (an OpenID Connect issuer) or Auth:SigningKey (base64 HMAC key), " +
                "with Auth:Issuer and Auth:Audience. The generated development key is never used in Production.");
        }

        // Read here rather than when the first token arrives: an incomplete setting stops the start, not every request.
        var (issuer, audience, key) = external
            ? (Required(auth, "Issuer"), Required(auth, "Audience"), string.IsNullOrWhiteSpace(signingKey) ? null : HmacKey(signingKey))
            : (DevTokens.Issuer, DevTokens.Audience, DevTokens.LoadOrCreateKey(DataDirectory.Resolve(builder.Configuration)));

        builder.Services.AddSingleton(new PageSignIn(external ? null : key));
        builder.Services.AddAuthentication(PageSession.Caller)
            .AddPolicyScheme(PageSession.Caller, "The REST API's bearer token, or the pages' session", o => o.ForwardDefaultSelector = PageSession.SchemeOf)
            .AddJwtBearer(Bearer)
            .AddJwtBearer(PageSession.Scheme, options =>
            {
                Bearer(options);
                options.Events = PageSession.Events;
            });

        void Bearer(JwtBearerOptions options)
        {
            options.MapInboundClaims = false;
            options.TokenValidationParameters = new TokenValidationParameters
            {
                NameClaimType = "sub",
                RoleClaimType = "role",
                ClockSkew = TimeSpan.FromSeconds(30),
                ValidateIssuer = true,
                ValidateAudience = true,
                ValidateLifetime = true,
                RequireExpirationTime = true,
                ValidAlgorithms = [SecurityAlgorithms.HmacSha256, SecurityAlgorithms.RsaSha256, SecurityAlgorithms.EcdsaSha256],
                ValidIssuer = issuer,
                ValidAudience = audience,
                IssuerSigningKey = key,
            };
            options.Authority = string.IsNullOrWhiteSpace(authority) ? null : authority;
        }

        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(Roles.Admin, p => p.RequireRole(Roles.Admin))
            .AddPolicy(Roles.Municipality, p => p.RequireRole(Roles.Municipality).RequireClaim(Roles.CantonClaim))
            .AddPolicy(Roles.Person, p => p.RequireRole(Roles.Person).RequireClaim("sub"))
            .AddPolicy(PageSession.Policy, p => p.AddAuthenticationSchemes(PageSession.Scheme).RequireRole(Roles.Person).RequireClaim("sub"))
            .AddPolicy(Roles.Auditor, p => p.RequireRole(Roles.Auditor))
            .AddPolicy(Roles.Organization, p => p.RequireRole(Roles.Organization).RequireClaim("sub"))
            .AddPolicy(Scopes.CantonMunicipality, p => p.RequireRole(Roles.Municipality)
                .RequireAssertion(c => Route(c, "cantonId") is { } canton && c.User.FindFirstValue(Roles.CantonClaim) == canton))
            .AddPolicy(Scopes.Self, p => p.RequireRole(Roles.Person)
                .RequireAssertion(c => Route(c, "personId") is { } person && c.User.FindFirstValue("sub") == person))
            .AddPolicy(Scopes.OrganizationReader, p => p.RequireAssertion(c =>
                c.User.IsInRole(Roles.Admin) || c.User.IsInRole(Roles.Auditor)
                || (c.User.IsInRole(Roles.Organization) && Route(c, "organizationId") is { } organization && c.User.FindFirstValue("sub") == organization)));
    }

    private static string? Route(AuthorizationHandlerContext context, string name) =>
        context.Resource is HttpContext http ? http.GetRouteValue(name) as string : null;

    /// <summary>Who acted, as recorded in event metadata: the role and the subject or canton.</summary>
    public static string? Actor(this ClaimsPrincipal user)
    {
        var role = user.FindFirstValue("role");
        // A person acting is not named: the events they cause name them by a handle, and the log keeps no person id.
        var who = role == Roles.Municipality ? user.FindFirstValue(Roles.CantonClaim) : role == Roles.Person ? null : user.FindFirstValue("sub");
        return role is null ? null : who is null ? role : $"{role}:{who}";
    }

    private static SymmetricSecurityKey HmacKey(string base64)
    {
        var bytes = new byte[base64.Length];
        return Convert.TryFromBase64String(base64, bytes, out var length) && length >= 32
            ? new SymmetricSecurityKey(bytes[..length])
            : throw new InvalidOperationException("Auth:SigningKey must be a base64 HMAC-SHA256 key of at least 32 bytes.");
    }

    private static string Required(IConfigurationSection section, string key) =>
        section[key] is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException($"Auth:{key} must be set along with Auth:Authority or Auth:SigningKey.");
}
