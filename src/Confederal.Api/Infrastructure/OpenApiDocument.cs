using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Confederal.Api.Infrastructure;

/// <summary>Declares the bearer scheme and, on each operation that needs a token, that requirement and its 401 and 403
/// answers (who exactly may call what is stated and tested in AuthorizationMatrixTests), on each public one that it needs
/// none; the Idempotency-Key of every write; and what the document says of itself: its server, contact and tags.
/// Operations describe themselves where they are mapped (WithSummary, WithDescription).</summary>
internal sealed partial class OpenApiDocument : IOpenApiDocumentTransformer
{
    /// <summary>One sentence per tag of the features' WithTags; OpenApiLintTests fails on a tag without one.</summary>
    private static readonly Dictionary<string, string> Tags = new(StringComparer.Ordinal)
    {
        ["Cantons"] = "The confederation's autonomous cantons, registered by the confederation admin, each with its currency, locale, " +
                      "time zone and how long it keeps tax records; anyone may read them.",
        ["Organizations"] = "The commons organizations taxpayers may designate part of their tax to: recognized, suspended and " +
                            "reinstated by the confederation admin, listed publicly, with what each receives from the cantons.",
        ["Fiscal years"] = "Each canton's designation policy for a fiscal year: the rate, how many organizations a taxpayer may choose, " +
                           "what becomes of unallocated money, the deadline and which organizations are eligible.",
        ["Tax assessments"] = "The tax a canton's municipality assessed for each taxpayer and year, one by one or in bulk; designated " +
                              "amounts follow it, corrections included.",
        ["Designations"] = "A person's choice of the organizations that receive the designated part of their tax, as shares: " +
                           "special-category data that only that person reads or changes.",
        ["Budgets"] = "Each canton's public budget for a fiscal year, to the minor unit: revenue, designations, unallocated money, " +
                      "pact contributions and receipts, and the net, now or as of an earlier point of the log.",
        ["Census"] = "Who lives in each canton and since when (residence only, with a birth date for the voting age), how many " +
                     "live there on a day (public), and the canton's voting rules.",
        ["Ballots"] = "A canton's ballots, decided by whoever lives there on the census date: called and closed by its municipality, " +
                      "voted secretly by the persons on the roll, with public certified results anyone can recount.",
        ["Pacts"] = "Supraterritorial pacts in which cantons share part of their budget, founded by the confederation admin and " +
                    "joined or left by each canton through a binding ballot.",
        ["Audit"] = "The sealed event log with person ids pseudonymized, for auditors, and the public signed seals that let anyone " +
                    "check it was not changed.",
        ["Persons"] = "The erasure of a person on a lawful basis, which destroys the key to their personal data and changes no event " +
                      "and no served number.",
    };

    public Task TransformAsync(Microsoft.OpenApi.OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Title = "Confederal";
        document.Info.Description = "The public ledger of a confederation of autonomous cantons: votes by residence, taxpayer designations, confederal pacts.";
        // No URL or email: the project names none. No licence either: none has been chosen (see openapi/lint/redocly.yaml).
        document.Info.Contact = new OpenApiContact { Name = "Confederal maintainers" };
        // The document is committed: it names a fixed server, not the host that served it.
        document.Servers =
        [
            new OpenApiServer
            {
                Url = "http://127.0.0.1:5080",
                Description = "The API as `dotnet run --project src/Confederal.Api` starts it (Development); a deployment serves the " +
                              "same paths at its own address.",
            },
        ];
        foreach (var tag in document.Tags ?? Enumerable.Empty<OpenApiTag>())
        {
            tag.Description = tag.Name is { } name ? Tags.GetValueOrDefault(name) : null;
        }

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
                                      && "/" + RouteConstraint().Replace(d.RelativePath?.TrimEnd('/') ?? "", "{$1}") == path)
                                  ?? throw new InvalidOperationException($"No endpoint found for {method} {path}: whether it needs a token is unknown.");
                if (method == HttpMethod.Post || method == HttpMethod.Put || method == HttpMethod.Delete)
                {
                    DeclareIdempotencyKey(operation);
                }

                var metadata = description.ActionDescriptor.EndpointMetadata;
                if (metadata.OfType<IAllowAnonymous>().Any() || !metadata.OfType<IAuthorizeData>().Any())
                {
                    operation.Security = []; // public, and said so: an empty list of requirements, not an absent one
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
