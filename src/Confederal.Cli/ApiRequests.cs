using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Confederal.Cli;

/// <summary>Requests to the API whose refusals are one clear message (the problem's title and detail), never a stack trace.</summary>
public static class ApiRequests
{
    private static readonly string[] ProblemMembers = ["title", "detail"];

    /// <summary>The body of a successful GET, or null for a 404 when <paramref name="missingIsNull"/>.</summary>
    public static async Task<T?> GetAsync<T>(HttpClient client, string path, CancellationToken ct, bool missingIsNull = false)
        where T : class
    {
        using var response = await client.GetAsync(path, ct);
        if (response.StatusCode == HttpStatusCode.NotFound && missingIsNull)
        {
            return null;
        }

        await EnsureSuccessAsync(response, ct);
        return await response.Content.ReadFromJsonAsync<T>(CliContext.Json, ct)
               ?? throw new CliException($"GET {path}: the API answered an empty body.");
    }

    /// <summary>Returns when <paramref name="response"/> is a success; otherwise throws its refusal as a <see cref="CliException"/>.</summary>
    public static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken ct)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw new CliException(await RefusalAsync(response, ct));
        }
    }

    private static async Task<string> RefusalAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var request = $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri?.PathAndQuery}";
        var status = (int)response.StatusCode;
        var hint = response.StatusCode switch
        {
            HttpStatusCode.Unauthorized => " (the token is missing, expired or not signed by the API's issuer)",
            HttpStatusCode.Forbidden when response.RequestMessage?.Method == HttpMethod.Get =>
                " (the token's role may not read this: the audit feed needs an auditor's token)",
            HttpStatusCode.Forbidden => " (the token's role may not do this)",
            _ => "",
        };
        var body = await response.Content.ReadAsStringAsync(ct);
        try
        {
            using var problem = JsonDocument.Parse(body);
            var detail = string.Join(" ", ProblemMembers
                .Select(p => problem.RootElement.ValueKind == JsonValueKind.Object && problem.RootElement.TryGetProperty(p, out var v) ? v.ToString() : null)
                .Where(t => !string.IsNullOrEmpty(t)));
            return $"{request}: {status}{hint}. {detail}".TrimEnd();
        }
        catch (JsonException)
        {
            return $"{request}: {status}{hint}.";
        }
    }
}
