namespace Confederal.Client;

/// <summary>Where the API is, how a request gets its token, and how long to keep trying.</summary>
public sealed class ConfederalClientOptions
{
    /// <summary>The API's address, e.g. https://confederal.example (without /api/v1).</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>The bearer token of a request, asked for each attempt (so that a token about to expire can be renewed):
    /// a fixed token, or <see cref="ClientCredentials.TokenAsync"/>. None: the client calls anonymously, which only
    /// the public reads allow.</summary>
    public Func<CancellationToken, ValueTask<string>>? Token { get; set; }

    /// <summary>How many times a request is sent again after a network failure, a timeout, or a 408, 429, 502, 503 or
    /// 504 answer. A write is sent again with the same Idempotency-Key, so that it is recorded once.</summary>
    public int MaxRetries { get; set; } = 6;

    /// <summary>The first pause before sending again; each next pause doubles, with jitter. A Retry-After answer
    /// header is waited out instead.</summary>
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>How long one attempt may take before it is abandoned and tried again.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>How long one attempt of a bulk import (whose body may be gigabytes) may take.</summary>
    public TimeSpan ImportAttemptTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The handler that carries each attempt, under the keys, retries and tokens. None: IHttpClientFactory's
    /// sockets. A proxy's handler, or an in-memory test server's (a tool tested against its API in process).</summary>
    public Func<HttpMessageHandler>? PrimaryHandler { get; set; }

    internal void Validate()
    {
        if (BaseAddress is not { IsAbsoluteUri: true })
        {
            throw new InvalidOperationException("ConfederalClientOptions.BaseAddress must be an absolute URI.");
        }

        if (MaxRetries < 0 || FirstRetryDelay < TimeSpan.Zero || AttemptTimeout <= TimeSpan.Zero || ImportAttemptTimeout <= TimeSpan.Zero)
        {
            throw new InvalidOperationException("ConfederalClientOptions: retries and delays cannot be negative, timeouts must be positive.");
        }
    }
}
