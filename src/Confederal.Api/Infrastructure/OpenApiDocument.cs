using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Confederal.Api.Infrastructure;

/// <summary>Declares the bearer scheme and, on each operation that needs a token, that requirement and its 401 and 403
/// answers (who exactly may call what is stated and tested in AuthorizationMatrixTests); and the Idempotency-Key of
/// every write.</summary>
internal sealed partial class OpenApiDocument : IOpenApiDocumentTransformer
{
    public Task TransformAsync(Microsoft.OpenApi.OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "Confederal";
        document.Info.Description = "The public ledger of a confederation of autonomous cantons: votes by residence, taxpayer designations, confederal pacts.";
        document.Servers = []; // the document is committed: it must not depend on the host that served it
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes["bearer"] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            BearerFormat = "JWT",
            Description = "A token from the configured issuer; in Development: dotnet run --project src/Confederal.Cli -- dev token --role …",
        };

        var endpoints = context.DescriptionGroups.SelectMany(g => g.Items).ToList();
        foreach (var (path, item) in document.Paths)
        {
            foreach (var (method, operation) in item.Operations ?? [])
            {
                var description = endpoints.FirstOrDefault(d =>
                    string.Equals(d.HttpMethod, method.ToString(), StringComparison.OrdinalIgnoreCase)
                    && "/" + RouteConstraint().Replace(d.RelativePath?.TrimEnd('/') ?? "", "{$1}") == path);
                if (method == HttpMethod.Post || method == HttpMethod.Put || method == HttpMethod.Delete)
                {
                    DeclareIdempotencyKey(operation);
                }

                var metadata = description?.ActionDescriptor.EndpointMetadata ?? [];
                if (metadata.OfType<IAllowAnonymous>().Any() || !metadata.OfType<IAuthorizeData>().Any())
                {
                    continue;
                }

                operation.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("bearer", document)] = [] }];
                operation.Responses ??= new OpenApiResponses();
                operation.Responses.TryAdd("401", new OpenApiResponse { Description = "No valid bearer token." });
                operation.Responses.TryAdd("403", new OpenApiResponse { Description = "The token's role may not do this." });
            }
        }

        return Task.CompletedTask;
    }

    private static void DeclareIdempotencyKey(OpenApiOperation operation)
    {
        operation.Parameters ??= [];
        operation.Parameters.Add(new OpenApiParameter
        {
            Name = Idempotency.Header,
            In = ParameterLocation.Header,
            Description = "Makes retries safe: a retry with the same key and request gets the first answer (with Idempotent-Replayed: true) " +
                "and records nothing again. Keys belong to the caller and are kept 7 days. 1 to 255 visible ASCII characters.",
            Schema = new OpenApiSchema { Type = JsonSchemaType.String, Pattern = "^[!-~]{1,255}$" },
        });
        operation.Responses ??= new OpenApiResponses();
        operation.Responses.TryAdd("422", new OpenApiResponse { Description = "The Idempotency-Key was used for another request." });
    }

    // The document's paths drop route constraints ({ballotId:guid} is {ballotId}); the descriptions keep them.
    [GeneratedRegex(@"\{([^}:?=]+)[^}]*\}")]
    private static partial Regex RouteConstraint();
}

/// <summary>Corrects what the generator cannot infer: optional members typed nullable for validation, and the
/// "all"-or-list shape of eligibleOrganizations.</summary>
internal sealed class OpenApiSchemas : IOpenApiSchemaTransformer
{
    public Task TransformAsync(OpenApiSchema schema, OpenApiSchemaTransformerContext context, CancellationToken cancellationToken)
    {
        if (context.JsonTypeInfo.Type == typeof(Features.Fiscal.SetFiscalPolicy.Body) && schema.Properties is { } properties)
        {
            properties["eligibleOrganizations"] = new OpenApiSchema
            {
                Description = "\"all\" recognized organizations (the default), or a list of organization ids.",
                OneOf =
                [
                    new OpenApiSchema { Type = JsonSchemaType.String, Enum = [System.Text.Json.Nodes.JsonValue.Create("all")] },
                    new OpenApiSchema { Type = JsonSchemaType.Array, Items = new OpenApiSchema { Type = JsonSchemaType.String } },
                ],
            };
            schema.Required?.Remove("eligibleOrganizations");
            schema.Required?.Remove("maxOrganizations");
        }

        if (context.JsonTypeInfo.Type == typeof(Features.Fiscal.FiscalPolicyView) && schema.Properties is { } view)
        {
            view["eligibleOrganizations"] = new OpenApiSchema { Description = "\"all\", or the list of eligible organization ids." };
        }

        if (context.JsonTypeInfo.Type == typeof(Features.Fiscal.Designate.Body))
        {
            schema.Required?.Remove("standing");
        }

        if (typeof(Microsoft.AspNetCore.Mvc.ProblemDetails).IsAssignableFrom(context.JsonTypeInfo.Type) && schema.Properties is { } problem)
        {
            // A problem's members beyond RFC 9457's: its stable code, the request's trace id, and those of some problems
            // (errors, invalidLines); the document must not forbid what every answer carries.
            problem["code"] = new OpenApiSchema
            {
                Type = JsonSchemaType.String,
                Description = "Stable, machine-readable name of the refusal (e.g. deadline-passed, canton-not-found); the title and " +
                              "detail are English for people, the code is for programs and is what the web pages translate.",
            };
            problem["traceId"] = new OpenApiSchema { Type = JsonSchemaType.String, Description = "The request's W3C trace id, for support." };
            schema.AdditionalPropertiesAllowed = true;
            schema.AdditionalProperties = null;
        }

        return Task.CompletedTask;
    }
}
