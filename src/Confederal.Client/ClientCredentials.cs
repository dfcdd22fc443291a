using System.Net.Http.Json;
using System.Text.Json.Serialization;

namespace Confederal.Client;

/// <summary>
/// Tokens from the platform's OpenID Connect issuer by OAuth 2.0's client-credentials grant (RFC 6749, 4.4): a
/// municipality's system is a client with its own id and secret, and its tokens carry its role and canton. A token is
/// kept until a minute before it expires; callers waiting meanwhile share one request for the next.
/// </summary>
public sealed class ClientCredentials : IDisposable
{
    private static readonly TimeSpan Margin = TimeSpan.FromMinutes(1);

    private readonly Uri _tokenEndpoint;
    private readonly Dictionary<string, string> _form;
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly TimeProvider _clock;
    private readonly SemaphoreSlim _renewal = new(1, 1);
    private (string Token, DateTimeOffset Renew)? _current;

    public ClientCredentials(Uri tokenEndpoint, string clientId, string clientSecret, string? scope = null, HttpClient? http = null, TimeProvider? clock = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(clientId);
        ArgumentException.ThrowIfNullOrEmpty(clientSecret);
        _tokenEndpoint = tokenEndpoint;
        _form = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = clientId,
            ["client_secret"] = clientSecret,
        };
        if (scope is not null)
        {
            _form["scope"] = scope;
        }

        _ownsHttp = http is null;
        _http = http ?? new HttpClient();
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>A token valid for at least a minute more; for <see cref="ConfederalClientOptions.Token"/>.</summary>
    public async ValueTask<string> TokenAsync(CancellationToken ct)
    {
        if (_current is { } current && _clock.GetUtcNow() < current.Renew)
        {
            return current.Token;
        }

        await _renewal.WaitAsync(ct);
        try
        {
            if (_current is { } renewed && _clock.GetUtcNow() < renewed.Renew)
            {
                return renewed.Token;
            }

            using var form = new FormUrlEncodedContent(_form);
            using var response = await _http.PostAsync(_tokenEndpoint, form, ct);
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException(
                    $"The token endpoint {_tokenEndpoint} refused the client credentials: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(ct)}",
                    null, response.StatusCode);
            }

            var answer = await response.Content.ReadFromJsonAsync<TokenAnswer>(ct)
                         ?? throw new HttpRequestException($"The token endpoint {_tokenEndpoint} answered no token.");
            if (string.IsNullOrEmpty(answer.AccessToken) || !string.Equals(answer.TokenType, "bearer", StringComparison.OrdinalIgnoreCase))
            {
                throw new HttpRequestException($"The token endpoint {_tokenEndpoint} answered no bearer token.");
            }

            var lifetime = TimeSpan.FromSeconds(answer.ExpiresIn ?? 0);
            _current = (answer.AccessToken, _clock.GetUtcNow() + (lifetime > 2 * Margin ? lifetime - Margin : lifetime / 2));
            return answer.AccessToken;
        }
        finally
        {
            _renewal.Release();
        }
    }

    public void Dispose()
    {
        _renewal.Dispose();
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    private sealed record TokenAnswer(
        [property: JsonPropertyName("access_token")] string? AccessToken,
        [property: JsonPropertyName("token_type")] string? TokenType,
        [property: JsonPropertyName("expires_in")] long? ExpiresIn);
}
