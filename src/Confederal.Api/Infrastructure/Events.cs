using Confederal.Domain.Cantons;
using Confederal.EventStore;

namespace Confederal.Api.Infrastructure;

/// <summary>Every domain event under its stored name. A name and version, once used, is never reused for another shape:
/// change a shape by registering version + 1 with an upcaster from the old one.</summary>
public static class Events
{
    public static EventTypes Types() => new EventTypes()
        .Register<CantonRegistered>("canton-registered")
        .Register<CantonRenamed>("canton-renamed");

    /// <summary>Correlation (the caller's X-Correlation-Id or the trace id) and actor of the current request.</summary>
    public static EventMetadata Metadata(this HttpContext http) => new(
        CorrelationId: http.Request.Headers["X-Correlation-Id"].FirstOrDefault() is { Length: > 0 and <= 128 } id ? id : http.TraceIdentifier,
        Actor: http.User.Actor());
}
