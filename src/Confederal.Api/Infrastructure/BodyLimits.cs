using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;

namespace Confederal.Api.Infrastructure;

/// <summary>Request bodies are small (1 MiB) unless an endpoint declares a larger limit (bulk imports do).
/// A declared Content-Length over the limit is refused before reading; the server enforces it on streamed bodies.</summary>
public static class BodyLimits
{
    public const long DefaultBytes = 1024 * 1024;

    public static IApplicationBuilder UseBodyLimits(this IApplicationBuilder app) => app.Use(async (http, next) =>
    {
        var limit = http.GetEndpoint()?.Metadata.GetMetadata<IRequestSizeLimitMetadata>()?.MaxRequestBodySize ?? DefaultBytes;
        if (http.Request.ContentLength > limit)
        {
            throw new BadHttpRequestException(
                $"The request body is {http.Request.ContentLength} bytes; this endpoint accepts at most {limit}.",
                StatusCodes.Status413PayloadTooLarge);
        }

        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
        {
            feature.MaxRequestBodySize = limit;
        }

        await next(http);
    });

    /// <summary>Declares the largest body an endpoint accepts.</summary>
    public static TBuilder AcceptsBodiesUpTo<TBuilder>(this TBuilder builder, long bytes) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new Microsoft.AspNetCore.Mvc.RequestSizeLimitAttribute(bytes));
}
