using System.Net;
using Confederal.Client;
using Confederal.Client.Generated.Models;
using Microsoft.Kiota.Abstractions;

namespace Confederal.Cli;

/// <summary>The API's refusals as the tool reports them: one clear line, never a stack trace; and a 404 read as nothing there.</summary>
public static class Refusals
{
    /// <summary>The request, its status with a hint for 401 and 403, and the problem's title and detail:
    /// <c>GET /api/v1/audit/events?limit=1: 403 (the token's role may not read this: …). Forbidden …</c></summary>
    public static string Describe(ApiException refusal)
    {
        var request = RefusedRequest.Of(refusal);
        var hint = (HttpStatusCode)refusal.ResponseStatusCode switch
        {
            HttpStatusCode.Unauthorized => " (the token is missing, expired or not signed by the API's issuer)",
            HttpStatusCode.Forbidden when request?.Method == "GET" => " (the token's role may not read this: the audit feed needs an auditor's token)",
            HttpStatusCode.Forbidden => " (the token's role may not do this)",
            _ => "",
        };
        string?[] problem = refusal switch
        {
            ProblemDetails p => [p.Title, p.Detail],
            HttpValidationProblemDetails v => [v.Title, v.Detail],
            _ => [],
        };
        var said = string.Join(" ", problem.Where(t => !string.IsNullOrEmpty(t)));
        return $"{(request is null ? "" : $"{request}: ")}{refusal.ResponseStatusCode}{hint}. {said}".TrimEnd();
    }

    /// <summary>The answer of <paramref name="read"/>, or null when the API has no such thing (404).</summary>
    public static async Task<T?> OrNotFoundAsync<T>(this Task<T> read)
    {
        try
        {
            return await read;
        }
        catch (ApiException e) when (e.ResponseStatusCode == (int)HttpStatusCode.NotFound)
        {
            return default;
        }
    }
}
