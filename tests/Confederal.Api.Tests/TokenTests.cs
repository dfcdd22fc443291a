using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Confederal.Api.Infrastructure;
using Confederal.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Confederal.Api.Tests;

public sealed class TokenTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    public static TheoryData<string> BadTokens => ["expired", "wrong issuer", "wrong audience", "bad signature", "no expiry", "garbage"];

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_token_that_does_not_validate_is_401(string kind)
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
        var token = kind == "garbage" ? "not.a.token" : handler.CreateToken(descriptor);
        var client = api.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

        var response = await client.PutAsJsonAsync("/api/v1/cantons/ur", new { name = "Uri", currency = "CHF" });

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
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
