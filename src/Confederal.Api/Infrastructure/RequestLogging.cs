using System.Diagnostics;

namespace Confederal.Api.Infrastructure;

/// <summary>One structured line per request. It names the route template, never the raw path, so person ids in URLs
/// stay out of the logs; bodies are never logged.</summary>
internal static partial class RequestLogging
{
    public static IApplicationBuilder UseRequestLogging(this IApplicationBuilder app)
    {
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Confederal.Requests");
        return app.Use(async (http, next) =>
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                await next(http);
            }
            finally
            {
                var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)";
                Handled(logger, http.Request.Method, route, http.Response.StatusCode,
                    Stopwatch.GetElapsedTime(started).TotalMilliseconds, http.TraceIdentifier);
            }
        });
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Method} {Route} answered {Status} in {ElapsedMs:0.0} ms ({TraceId})")]
    private static partial void Handled(ILogger logger, string method, string route, int status, double elapsedMs, string traceId);
}
