using Microsoft.AspNetCore.Http.Features;

namespace Confederal.Api.Infrastructure;

/// <summary>Request bodies are small (BodyLimits:DefaultBytes, 1 MiB) unless an endpoint declares a larger limit, with the
/// setting that overrides it (the bulk import: BodyLimits:ImportBytes, 8 GiB). A declared Content-Length over the limit
/// is refused before reading; the server enforces it on streamed bodies as they are read. Either way the answer is a
/// 413 problem and nothing is recorded.</summary>
public static class BodyLimits
{
    public const long DefaultBytes = 1024 * 1024;

    public static IApplicationBuilder UseBodyLimits(this IApplicationBuilder app)
    {
        var settings = app.ApplicationServices.GetRequiredService<IConfiguration>().GetSection("BodyLimits");
        var normal = settings.GetValue("DefaultBytes", DefaultBytes);
        return app.Use(async (http, next) =>
        {
            var limit = http.GetEndpoint()?.Metadata.GetMetadata<BodyLimit>() is { } declared
                ? settings.GetValue(declared.Setting, declared.DefaultBytes)
                : normal;
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
    }

    /// <summary>Declares the largest body an endpoint accepts, <paramref name="defaultBytes"/> unless
    /// BodyLimits:<paramref name="setting"/> says otherwise.</summary>
    public static TBuilder AcceptsBodiesUpTo<TBuilder>(this TBuilder builder, string setting, long defaultBytes) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new BodyLimit(setting, defaultBytes));

    private sealed record BodyLimit(string Setting, long DefaultBytes);
}
