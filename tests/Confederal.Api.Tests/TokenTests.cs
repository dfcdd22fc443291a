using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Confederal.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Api.Tests;

public sealed class TokenTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    public static TheoryData<string> BadTokens => ["missing", "expired", "wrong issuer", "wrong audience", "bad signature", "alg none", "no expiry", "garbage"];

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_missing_token_or_one_that_does_not_validate_is_401_with_a_bearer_challenge(string kind)
    {
        var key = api.SigningKey;
        var now = DateTime.UtcNow;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = DevTokens.Issuer,
            Audience = DevTokens.Audience,
            Claims = new Dictionary<string, object> { ["role"] = Roles.Admin, ["sub"] = "admin" },
            IssuedAt = now.AddHours(-2),
            NotBefore = now.AddHours(-2),
            Expires = now.AddHours(1),
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.HmacSha256),
        };
        switch (kind)
        {
            case "expired": descriptor.Expires = now.AddMinutes(-5); break;
            case "wrong issuer": descriptor.Issuer = "somebody-else"; break;
            case "wrong audience": descriptor.Audience = "another-api"; break;
            case "bad signature":
                descriptor.SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32)), SecurityAlgorithms.HmacSha256);
                break;
            case "no expiry": descriptor.Expires = null; break;
        }

        var handler = new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false };
        var token = kind switch
        {
            "garbage" => "not.a.token",
            "alg none" => Unsigned(descriptor),
            _ => handler.CreateToken(descriptor),
        };
        var client = api.CreateClient();
        if (kind != "missing")
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        var response = await client.PutAsJsonAsync("/api/v1/cantons/ur", new { name = "Uri", currency = "CHF" });

        await api.AssertRefusedAsync(response, HttpStatusCode.Unauthorized, code: null);
        Assert.Contains(response.Headers.WwwAuthenticate, h => h.Scheme == "Bearer");
    }

    /// <summary>The descriptor's claims under an "alg": "none" header and no signature.</summary>
    private static string Unsigned(SecurityTokenDescriptor descriptor)
    {
        static string Part(object value) => Base64UrlEncoder.Encode(JsonSerializer.SerializeToUtf8Bytes(value));
        var payload = new Dictionary<string, object>(descriptor.Claims)
        {
            ["iss"] = descriptor.Issuer,
            ["aud"] = descriptor.Audience,
            ["exp"] = EpochTime.GetIntDate(descriptor.Expires!.Value),
        };
        return $"{Part(new { alg = "none", typ = "JWT" })}.{Part(payload)}.";
    }

    /// <summary>Tokens that validate but carry no role of DESIGN.md: unknown, differently cased, empty, or none.</summary>
    public static TheoryData<string?> RolesThatAreNot => ["superuser", "Confederation-Admin", "", null];

    [Theory]
    [MemberData(nameof(RolesThatAreNot))]
    public async Task A_valid_token_without_a_known_role_reads_public_data_and_is_403_elsewhere(string? role)
    {
        var claims = new Dictionary<string, object> { ["sub"] = "tk-person", [Roles.CantonClaim] = "tk" };
        if (role is not null)
        {
            claims["role"] = role;
        }

        var client = api.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = DevTokens.Issuer,
            Audience = DevTokens.Audience,
            Claims = claims,
            Expires = DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = new SigningCredentials(api.SigningKey, SecurityAlgorithms.HmacSha256),
        }));

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/v1/cantons")).StatusCode);
        foreach (var (method, path) in new[]
        {
            ("PUT", "/api/v1/cantons/tk"),
            ("POST", "/api/v1/cantons/tk/residents"),
            ("GET", "/api/v1/cantons/tk/fiscal-years/2030/designations/tk-person"),
            ("GET", "/api/v1/organizations/tk-org/receipts/2030"),
            ("GET", "/api/v1/audit/events"),
        })
        {
            var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
            Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{method} {path}: {(int)response.StatusCode}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }
    }

    [Fact]
    public async Task Production_accepts_tokens_of_the_configured_issuer_and_only_those()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var connectionString = await TestPostgres.CreateDatabaseAsync(Database.Migrations);
        using var production = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseEnvironment("Production");
            b.UseSetting("ConnectionStrings:Confederal", connectionString);
            b.UseSetting("Auth:Issuer", "https://id.confederation.example");
            b.UseSetting("Auth:Audience", "confederal-api");
            b.UseSetting("Auth:SigningKey", Convert.ToBase64String(key));
            b.UseSetting("Audit:Secret", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            b.UseSetting("Audit:SealKey", ECDsa.Create(ECCurve.NamedCurves.nistP256).ExportPkcs8PrivateKeyPem());
        });

        string Token(string issuer, SecurityKey signingKey) => new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = "confederal-api",
            Claims = new Dictionary<string, object> { ["role"] = Roles.Admin, ["sub"] = "admin" },
            Expires = DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = new SigningCredentials(signingKey, SecurityAlgorithms.HmacSha256),
        });

        async Task<HttpStatusCode> PutAsync(string token)
        {
            var client = production.CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            return (await client.PutAsJsonAsync("/api/v1/cantons/gr", new { name = "Graubünden", currency = "CHF" })).StatusCode;
        }

        Assert.Equal(HttpStatusCode.Unauthorized, await PutAsync(DevTokens.Issue(api.SigningKey, Roles.Admin, "admin")));
        Assert.Equal(HttpStatusCode.Created, await PutAsync(Token("https://id.confederation.example", new SymmetricSecurityKey(key))));
    }

    [Fact]
    public void Production_refuses_to_start_without_a_token_issuer()
    {
        using var production = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseEnvironment("Production");
            b.UseSetting("ConnectionStrings:Confederal", "Host=127.0.0.1;Port=1;Database=none");
        });

        var error = Assert.Throws<InvalidOperationException>(() => production.CreateClient());
        Assert.Contains("No token issuer configured", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Auth:Issuer", "")]
    [InlineData("Auth:Audience", "")]
    [InlineData("Auth:SigningKey", "bm90IGEga2V5")]
    [InlineData("Auth:SigningKey", "not base64")]
    public void Production_refuses_to_start_with_a_signing_key_but_no_issuer_or_audience_or_a_key_that_is_not_one(string setting, string value)
    {
        var settings = new Dictionary<string, string>
        {
            ["Auth:SigningKey"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Auth:Issuer"] = "https://id.confederation.example",
            ["Auth:Audience"] = "confederal-api",
        };
        settings[setting] = value;
        using var production = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseEnvironment("Production");
            b.UseSetting("ConnectionStrings:Confederal", "Host=127.0.0.1;Port=1;Database=none");
            foreach (var (key, text) in settings)
            {
                b.UseSetting(key, text);
            }

            b.UseSetting("Audit:Secret", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            b.UseSetting("Audit:SealKey", ECDsa.Create(ECCurve.NamedCurves.nistP256).ExportPkcs8PrivateKeyPem());
        });

        var error = Assert.Throws<InvalidOperationException>(() => production.CreateClient());
        Assert.StartsWith($"{setting} must be", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Production_refuses_to_start_without_audit_keys()
    {
        using var production = new WebApplicationFactory<Program>().WithWebHostBuilder(b =>
        {
            b.UseEnvironment("Production");
            b.UseSetting("ConnectionStrings:Confederal", "Host=127.0.0.1;Port=1;Database=none");
            b.UseSetting("Auth:Issuer", "https://id.confederation.example");
            b.UseSetting("Auth:Audience", "confederal-api");
            b.UseSetting("Auth:SigningKey", Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        });

        var error = Assert.Throws<InvalidOperationException>(() => production.CreateClient());
        Assert.Contains("No audit keys configured", error.Message, StringComparison.Ordinal);
    }
}
