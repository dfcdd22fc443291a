namespace Confederal.Domain;

/// <summary>A request that breaks a rule of the confederation (answered 409 with <see cref="Code"/>).</summary>
public class DomainException(string code, string message) : Exception(message)
{
    /// <summary>Stable, machine-readable name of the broken rule, e.g. "currency-is-fixed".</summary>
    public string Code { get; } = code;
}

/// <summary>The thing a request is about does not exist (answered 404), or did not yet (then <paramref name="message"/> says when).</summary>
public sealed class NotFoundException(string what, string id, string? message = null) : Exception(message ?? $"{what} '{id}' does not exist.")
{
    public string What { get; } = what;

    public string Id { get; } = id;

    /// <summary>Stable, machine-readable name of what is missing, e.g. "canton-not-found".</summary>
    public string Code => What.ToLowerInvariant().Replace(' ', '-') + "-not-found";
}

/// <summary>The caller may not do this, for a reason of the rules rather than of their role (answered 403).</summary>
public sealed class ForbiddenException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}

/// <summary>One rule a request's input breaks: a stable, machine-readable <see cref="Code"/> that pages translate, and
/// the English <see cref="Message"/> the REST API answers with.</summary>
public sealed record Problem(string Code, string Message);
