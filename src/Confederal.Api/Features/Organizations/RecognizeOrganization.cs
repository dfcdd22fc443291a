using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Organizations;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Organizations;

/// <summary>PUT /api/v1/organizations/{organizationId}: the confederation admin recognizes an organization or updates
/// it. Repeating the same PUT records nothing new.</summary>
public static class RecognizeOrganization
{
    public sealed record Body(string? Name, OrganizationKind? Kind, bool? AcceptsRedistribution);

    public sealed record Command(string OrganizationId, string? Name, OrganizationKind? Kind, bool? AcceptsRedistribution, EventMetadata Metadata)
        : IRequest<Result>;

    public sealed record Result(bool Created, OrganizationView Organization, long Version);

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.OrganizationId).Must(Identifiers.IsSlug)
                .WithMessage("organizationId must be a slug: lowercase letters, digits and '-', 2 to 63 characters, starting with a letter or digit.");
            RuleFor(c => c.Name).NotEmpty().MaximumLength(200)
                .Must(n => n is null || n.Trim() == n).WithMessage("name must not start or end with spaces.");
            RuleFor(c => c.Kind).NotNull().WithMessage("kind must be one of cultural, origin, community, commons.");
            RuleFor(c => c.AcceptsRedistribution).NotNull().WithMessage("acceptsRedistribution must be true or false.");
        }
    }

    public sealed class Handler(EventLog events) : IRequestHandler<Command, Result>
    {
        public async Task<Result> Handle(Command command, CancellationToken cancellationToken)
        {
            var decision = await events.DecideAsync<Organization>(Organization.StreamId(command.OrganizationId), Organization.Apply,
                state => Organization.Recognize(state, command.OrganizationId, command.Name!, command.Kind!.Value, command.AcceptsRedistribution!.Value),
                command.Metadata, cancellationToken);
            return new Result(Created: decision.Events is [OrganizationRecognized], OrganizationView.From(decision.State!), decision.Version);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPut("/organizations/{organizationId}", async Task<Results<Created<OrganizationView>, Ok<OrganizationView>>> (
                string organizationId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var result = await mediator.Send(new Command(organizationId, body.Name, body.Kind, body.AcceptsRedistribution, http.Metadata()), ct);
                http.Response.Headers.ETag = $"\"{result.Version}\"";
                return result.Created
                    ? TypedResults.Created($"/api/v1/organizations/{organizationId}", result.Organization)
                    : TypedResults.Ok(result.Organization);
            })
            .RequireAuthorization(Roles.Admin)
            .WithName("RecognizeOrganization")
            .WithSummary("Recognize or update an organization")
            .WithDescription("Recognizes a commons organization (kind cultural, origin, community or commons) so that taxpayers may " +
                             "choose it, or changes its name, its kind or whether it accepts redistributed money (unallocated money " +
                             "shared out in proportion to the choices). Only the confederation admin may call it. The first recognition " +
                             "answers 201; repeating the same request records nothing new and answers 200.")
            .WithTags("Organizations")
            .ProducesValidationProblem();
}
