using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;

namespace Confederal.Api.Infrastructure;

/// <summary>A client's token bucket: the steady rate it may keep up and the burst it may spend at once (a retry storm
/// after an outage, a nightly synchronization).</summary>
public sealed class BucketSettings
{
    public double PermitsPerSecond { get; set; }

    public int Burst { get; set; }
}

/// <summary>The RateLimiting section of the configuration.</summary>
public sealed class RateLimitSettings
{
    /// <summary>Every request of a client: 100 a second, bursts of 1,000. A municipality that records assessments one
    /// by one keeps up 100 a second from several connections; the bulk import is one request.</summary>
    public BucketSettings Client { get; set; } = new() { PermitsPerSecond = 100, Burst = 1000 };

    /// <summary>Budgets as of a position or instant, folded from the whole log (seconds and half a gigabyte at a
    /// million events): one every ten seconds per client, bursts of 5.</summary>
    public BucketSettings AsOf { get; set; } = new() { PermitsPerSecond = 0.1, Burst = 5 };

    /// <summary>How many folds run at once across all clients; a fold beyond them is refused, not queued.</summary>
    public int AsOfConcurrency { get; set; } = 2;
}

/// <summary>A request refused by a rate limit; nothing was done.</summary>
public sealed class TooManyRequestsException(TimeSpan retryAfter, string detail) : Exception(detail)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// Per-client rate limits with ASP.NET Core's limiter. A client is the authenticated caller (role and subject, or
/// the municipality's canton) or, for anonymous callers, the remote address (an IPv6 /64, one subscriber's
/// allocation). Requests that fold the log (<see cref="FoldsTheLogWith{TBuilder}"/>) take, besides, a permit from
/// the client's fold bucket and one of the few fold slots shared by everyone. Refusals are 429 problems with
/// Retry-After; health checks are never limited.
/// </summary>
public static class RateLimits
{
    /// <summary>When a refusal does not say when a permit comes back (every fold slot is busy).</summary>
    public static readonly TimeSpan BusyRetryAfter = TimeSpan.FromSeconds(5);

    // The partitioned limiter refills its buckets on a 100 ms timer: a permit due at t is there by t + 100 ms.
    private static readonly TimeSpan Heartbeat = TimeSpan.FromMilliseconds(100);

    public static IServiceCollection AddRateLimits(this IServiceCollection services, IConfiguration configuration)
    {
        var settings = configuration.GetSection("RateLimiting").Get<RateLimitSettings>() ?? new RateLimitSettings();
        Validate(settings.Client, "RateLimiting:Client");
        Validate(settings.AsOf, "RateLimiting:AsOf");
        if (settings.AsOfConcurrency < 1)
        {
            throw new InvalidOperationException("RateLimiting:AsOfConcurrency must be at least 1.");
        }

        return services.AddRateLimiter(options =>
        {
            // A slot first: when none is free, nothing else is spent; a slot taken before a bucket refuses is given back.
            options.GlobalLimiter = PartitionedRateLimiter.CreateChained(
                PartitionedRateLimiter.Create<HttpContext, string>(http => FoldsTheLog(http)
                    ? RateLimitPartition.GetConcurrencyLimiter("folds", _ => new ConcurrencyLimiterOptions
                    {
                        PermitLimit = settings.AsOfConcurrency,
                        QueueLimit = 0,
                    })
                    : RateLimitPartition.GetNoLimiter("")),
                PartitionedRateLimiter.Create<HttpContext, string>(http => FoldsTheLog(http)
                    ? RateLimitPartition.Get(Client(http), _ => Bucket(settings.AsOf))
                    : RateLimitPartition.GetNoLimiter("")),
                PartitionedRateLimiter.Create<HttpContext, string>(http => RateLimitPartition.Get(Client(http), _ => Bucket(settings.Client))));
            options.OnRejected = (context, _) =>
            {
                var known = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter);
                throw new TooManyRequestsException(known ? retryAfter + Heartbeat : BusyRetryAfter, known
                    ? "This client sent more requests than its limit allows."
                    : "The server is already folding the log for other clients.");
            };
        });
    }

    /// <summary>Requests carrying <paramref name="queryParameter"/> fold the log and take a fold permit.</summary>
    public static TBuilder FoldsTheLogWith<TBuilder>(this TBuilder builder, string queryParameter) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new LogFold(queryParameter));

    /// <summary>Who is asking, as a partition key: held in memory only, never logged.</summary>
    public static string Client(HttpContext http) =>
        http.User.Actor() ?? http.Connection.RemoteIpAddress switch
        {
            { AddressFamily: AddressFamily.InterNetworkV6, IsIPv4MappedToIPv6: false } v6 => "ip:" + Prefix64(v6),
            { } address => "ip:" + address.MapToIPv4(),
            null => "ip:none",
        };

    private static bool FoldsTheLog(HttpContext http) =>
        http.GetEndpoint()?.Metadata.GetMetadata<LogFold>() is { } fold && http.Request.Query.ContainsKey(fold.QueryParameter);

    private static TokenBucketRateLimiter Bucket(BucketSettings bucket)
    {
        // Whole tokens, replenished about every 100 ms (or one at a time for rates under 10 a second).
        var tokens = Math.Max(1, (int)Math.Round(bucket.PermitsPerSecond / 10));
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = bucket.Burst,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = TimeSpan.FromSeconds(tokens / bucket.PermitsPerSecond),
            QueueLimit = 0,
            AutoReplenishment = false, // the partitioned limiter replenishes every bucket from one timer
        });
    }

    private static string Prefix64(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes).ToString() + "/64";
    }

    private static void Validate(BucketSettings bucket, string section)
    {
        if (!(bucket.PermitsPerSecond > 0) || bucket.Burst < 1)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"{section}: PermitsPerSecond must be positive and Burst at least 1 (got {bucket.PermitsPerSecond} and {bucket.Burst})."));
        }
    }

    private sealed record LogFold(string QueryParameter);
}
