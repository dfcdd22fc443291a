using Confederal.Domain;
using Confederal.EventStore;
using FluentValidation;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;

namespace Confederal.Api.Infrastructure;

public sealed record LineError(long Line, string Reason);

/// <summary>Some lines of a bulk body are not valid (answered 400 with the first of them).</summary>
public sealed class InvalidLinesException(IReadOnlyList<LineError> errors, long invalidLines, long lines)
    : Exception($"{invalidLines} invalid lines")
{
    public IReadOnlyList<LineError> Errors { get; } = errors;

    public long InvalidLines { get; } = invalidLines;

    public long Lines { get; } = lines;
}

/// <summary>The database failed after the request had sent a commit: what it asked may or may not be recorded.</summary>
public sealed class OutcomeUnknownException(Exception inner)
    : Exception("The database failed after a commit was sent; its outcome is unknown.", inner);

/// <summary>The one place where exceptions become RFC 9457 problem details.</summary>
internal sealed class ProblemsExceptionHandler(IProblemDetailsService problems, ILogger<ProblemsExceptionHandler> logger) : IExceptionHandler
{
    /// <summary>When an unavailable database or a request cancelled at its deadline may be retried.</summary>
    private static readonly TimeSpan Unavailable = TimeSpan.FromSeconds(5);

    public async ValueTask<bool> TryHandleAsync(HttpContext http, Exception exception, CancellationToken ct)
    {
        var problem = exception switch
        {
            ValidationException e => new HttpValidationProblemDetails(e.Errors
                .GroupBy(f => Camel(f.PropertyName), StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Select(f => f.ErrorMessage).Distinct().ToArray(), StringComparer.Ordinal))
            {
                Status = StatusCodes.Status400BadRequest,
                Title = "The request is not valid.",
            },
            BadHttpRequestException e => new ProblemDetails
            {
                Status = e.StatusCode,
                Title = e.StatusCode == StatusCodes.Status413PayloadTooLarge ? "The request body is too large." : "The request could not be read.",
                Detail = Unwrap(e),
            },
            InvalidLinesException e => new ProblemDetails
            {
                Status = StatusCodes.Status400BadRequest,
                Title = "The batch was rejected; nothing was recorded.",
                Detail = $"{e.InvalidLines} of {e.Lines} lines are not valid; the first {e.Errors.Count} are listed.",
                Extensions = { ["invalidLines"] = e.InvalidLines, ["errors"] = e.Errors },
            },
            ConcurrencyException e => new ProblemDetails
            {
                Status = StatusCodes.Status409Conflict,
                Title = "Somebody else changed this first.",
                Detail = $"{e.Message} Read it again and retry.",
                Extensions = { ["code"] = "concurrency-conflict" },
            },
            DomainException e => new ProblemDetails
            {
                Status = StatusCodes.Status409Conflict,
                Title = "The request breaks a rule.",
                Detail = e.Message,
                Extensions = { ["code"] = e.Code },
            },
            ForbiddenException e => new ProblemDetails
            {
                Status = StatusCodes.Status403Forbidden,
                Title = "Not allowed.",
                Detail = e.Message,
                Extensions = { ["code"] = e.Code },
            },
            NotFoundException e => new ProblemDetails
            {
                Status = StatusCodes.Status404NotFound,
                Title = $"{e.What} not found.",
                Detail = e.Message,
                Extensions = { ["code"] = e.Code },
            },
            IdempotencyException e => new ProblemDetails
            {
                Status = e.Status,
                Title = e.Title,
                Detail = e.Message,
                Extensions = { ["code"] = e.Code },
            },
            TooManyRequestsException e => new ProblemDetails
            {
                Status = StatusCodes.Status429TooManyRequests,
                Title = "Too many requests; nothing was recorded.",
                Detail = $"{e.Message} Retry after {Seconds(e.RetryAfter)} s.",
            },
            RequestTimedOutException e => new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "The request took too long and was cancelled; nothing was recorded.",
                Detail = $"{e.Message} Retry later.",
            },
            OutcomeUnknownException => new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "The database is unavailable; the request may have been recorded.",
                Detail = "The database failed after the request's write was sent, so whether it was recorded is not known. " +
                         "Sent with an Idempotency-Key, retry it with the same key: it is recorded at most once. " +
                         "Sent without one, check whether it was recorded before sending it again.",
                Extensions = { ["code"] = "outcome-unknown" },
            },
            _ when Backoff.IsUnavailable(exception) => new ProblemDetails
            {
                Status = StatusCodes.Status503ServiceUnavailable,
                Title = "The database is unavailable; nothing was recorded.",
                Detail = "Retry later.",
                Extensions = { ["code"] = "database-unavailable" },
            },
            _ => null,
        };

        if (problem is null)
        {
            logger.LogError(exception, "Unhandled exception");
            return false;
        }

        var retryAfter = exception is TooManyRequestsException refused ? refused.RetryAfter
            : problem.Status == StatusCodes.Status503ServiceUnavailable ? Unavailable
            : (TimeSpan?)null;
        if (retryAfter is { } after)
        {
            http.Response.Headers.RetryAfter = Seconds(after).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        http.Response.StatusCode = problem.Status!.Value;
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = http, ProblemDetails = problem, Exception = exception });
    }

    private static int Seconds(TimeSpan after) => Math.Max(1, (int)Math.Ceiling(after.TotalSeconds));

    private static string Camel(string name) =>
        string.IsNullOrEmpty(name) ? "" : char.ToLowerInvariant(name[0]) + name[1..];

    // Minimal APIs wrap JSON errors: the inner message says what and where (path, line, byte).
    private static string Unwrap(BadHttpRequestException e) =>
        e.InnerException is System.Text.Json.JsonException json ? $"{e.Message} {json.Message}" : e.Message;
}

/// <summary>Problems are JSON whatever the request's Accept header says. The framework's writer declines a client that
/// accepts no JSON (Accept: application/xml, text/html without */*): its refusals would go out without a body, or as
/// text, and a 404 thrown by a handler would become a 500. Registered after the framework's, it writes what that one
/// declines, with the same fields.</summary>
internal sealed class ProblemJsonWriter(Microsoft.Extensions.Options.IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json) : IProblemDetailsWriter
{
    public bool CanWrite(ProblemDetailsContext context) => true;

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        var problem = context.ProblemDetails;
        problem.Status ??= http.Response.StatusCode;
        problem.Title ??= Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(problem.Status.Value);
        problem.Extensions.TryAdd("traceId", System.Diagnostics.Activity.Current?.Id ?? http.TraceIdentifier);
        return new ValueTask(http.Response.WriteAsJsonAsync(problem, problem.GetType(), json.Value.SerializerOptions, "application/problem+json"));
    }
}
