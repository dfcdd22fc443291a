using System.Diagnostics;

namespace Confederal.Api.Infrastructure;

/// <summary>One structured line per request, with the status its client got: it runs outside the exception handler.
/// It names the route template, never the raw path, so person ids in URLs stay out of the logs; bodies are never
/// logged.</summary>
internal static partial class RequestLogging
{
    public static IApplicationBuilder UseRequestLogging(this IApplicationBuilder app)
    {
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Confederal.Requests");
        return app.Use(async (http, next) =>
        {
            var started = Stopwatch.GetTimestamp();
            // Taken now: the exception handler inside this middleware, which turns an exception into its problem (a
            // 404, a 503), forgets the endpoint.
            var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)";
            try
            {
                await next(http);
            }
            finally
            {
                Handled(logger, http.Request.Method, route, http.Response.StatusCode,
                    Stopwatch.GetElapsedTime(started).TotalMilliseconds, http.TraceIdentifier);
            }
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Method} {Route} answered {Status} in {ElapsedMs:0.0} ms ({TraceId})")]
    private static partial void Handled(ILogger logger, string method, string route, int status, double elapsedMs, string traceId);
}
