using System.Globalization;
using Microsoft.AspNetCore.Http.Timeouts;

namespace Confederal.Api.Infrastructure;

/// <summary>A request cancelled at its deadline; its transaction was rolled back.</summary>
public sealed class RequestTimedOutException(TimeSpan timeout)
    : Exception(string.Create(CultureInfo.InvariantCulture, $"The request did not complete within {timeout.TotalSeconds:0.###} s."));

/// <summary>
/// Every request has a deadline, so a request stuck behind a lock or a slow disk gives its connection back instead of
/// holding it: RequestTimeouts:DefaultSeconds (30), the bulk import RequestTimeouts:ImportSeconds (3,600), health checks
/// none. At the deadline the request's cancellation token fires, Npgsql cancels the statement and the transaction rolls
/// back, and the client is answered 503 with Retry-After. Once a write's handler has returned, its deadline is lifted:
/// the write has committed (or, keyed with Idempotency-Key, commits with its answer right after) and is answered as
/// such, never turned into a 503 by a deadline passing while its answer is written. A deadline that passed just before
/// the lift still cancels a keyed write's commit: then it is a 503 and nothing was recorded, as it says.
/// </summary>
public static class RequestDeadlines
{
    public const string Import = "import";

    public static IServiceCollection AddRequestDeadlines(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection("RequestTimeouts");
        var normal = Seconds(section, "DefaultSeconds", 30);
        var import = Seconds(section, "ImportSeconds", 3600);
        return services.AddRequestTimeouts(o =>
        {
            o.DefaultPolicy = Policy(normal);
            o.AddPolicy(Import, Policy(import));
        });
    }

    /// <summary>Once a write's handler has returned, its deadline no longer applies.</summary>
    public static TBuilder KeepsCommittedWrites<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(AnswerCommittedAsync);

    internal static async ValueTask<object?> AnswerCommittedAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var result = await next(context);
        var http = context.HttpContext;
        if (!HttpMethods.IsGet(http.Request.Method) && http.Features.Get<IHttpRequestTimeoutFeature>() is { } deadline)
        {
            deadline.DisableTimeout();
            if (deadline.RequestTimeoutToken.IsCancellationRequested) // passed after the commit: the answer is still written
            {
                http.RequestAborted = CancellationToken.None;
            }
        }

        return result;
    }

    // The middleware has set 503; the exception takes the answer to the one problem mapping (with Retry-After).
    private static RequestTimeoutPolicy Policy(TimeSpan timeout) => new()
    {
        Timeout = timeout,
        TimeoutStatusCode = StatusCodes.Status503ServiceUnavailable,
        WriteTimeoutResponse = _ => Task.FromException(new RequestTimedOutException(timeout)),
    };

    private static TimeSpan Seconds(IConfigurationSection section, string key, double fallback)
    {
        var seconds = section.GetValue(key, fallback);
        return seconds > 0
            ? TimeSpan.FromSeconds(seconds)
            : throw new InvalidOperationException($"RequestTimeouts:{key} must be a positive number of seconds.");
    }
}
