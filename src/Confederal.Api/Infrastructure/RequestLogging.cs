using System.Diagnostics;

namespace Confederal.Api.Infrastructure;

/// <summary>One structured line per request, with the status its client got (and the count of refusals by status): it
/// runs outside the exception handler.
/// It names the route template, never the raw path, so person ids in URLs stay out of the logs; bodies are never
/// logged.</summary>
internal static partial class RequestLogging
{
    public static IApplicationBuilder UseRequestLogging(this IApplicationBuilder app)
    {
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Confederal.Requests");
        var metrics = app.ApplicationServices.GetRequiredService<ConfederalMetrics>();
        return app.Use(async (http, next) =>
        {
            var started = Stopwatch.GetTimestamp();
            // Taken now: the exception handler inside this middleware, which turns an exception into its problem (a
            // 404, a 503), forgets the endpoint.
            var route = Telemetry.Route(http);
            try
            {
                await next(http);
            }
            finally
            {
                metrics.Answered(http.Response.StatusCode);
                Handled(logger, http.Request.Method, route, http.Response.StatusCode,
                    Stopwatch.GetElapsedTime(started).TotalMilliseconds, http.TraceIdentifier);
            }
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Method} {Route} answered {Status} in {ElapsedMs:0.0} ms ({TraceId})")]
    private static partial void Handled(ILogger logger, string method, string route, int status, double elapsedMs, string traceId);
}
