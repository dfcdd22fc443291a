using System.Net.Http.Headers;

namespace Confederal.Client;

/// <summary>Gives every write (POST, PUT, DELETE) that has none an Idempotency-Key. It runs before the retries, so each
/// retry of one logical write carries the same key and the API records it once; a caller's own key is kept (the demo
/// seed uses its own, stable across runs).</summary>
internal sealed class IdempotencyKeys : DelegatingHandler
{
    public const string Header = "Idempotency-Key";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if ((request.Method == HttpMethod.Post || request.Method == HttpMethod.Put || request.Method == HttpMethod.Delete)
            && !request.Headers.Contains(Header))
        {
            request.Headers.Add(Header, Guid.NewGuid().ToString("N"));
        }

        return base.SendAsync(request, cancellationToken);
    }
}

/// <summary>Puts the bearer token on each attempt (inside the retries: a token renewed between attempts is used).</summary>
internal sealed class BearerTokens(Func<CancellationToken, ValueTask<string>> token) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", await token(cancellationToken));
        return await base.SendAsync(request, cancellationToken);
    }
}
