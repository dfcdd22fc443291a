using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Organizations;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Organizations;

/// <summary>POST /api/v1/organizations/{organizationId}/suspension and …/reinstatement: the confederation admin
/// suspends an organization (it can no longer be chosen and receives nothing for open years) or reinstates it. Both are
/// idempotent: a retry records nothing.</summary>
public static class ChangeOrganizationStanding
{
    public sealed record Command(string OrganizationId, bool Suspend, EventMetadata Metadata) : IRequest<OrganizationView>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator() =>
            RuleFor(c => c.OrganizationId).Must(Identifiers.IsSlug).WithMessage("organizationId must be a slug.");
    }

    public sealed class Handler(EventLog events) : IRequestHandler<Command, OrganizationView>
    {
        public async Task<OrganizationView> Handle(Command command, CancellationToken cancellationToken)
        {
            var decision = await events.DecideAsync<Organization>(Organization.StreamId(command.OrganizationId), Organization.Apply,
                state => command.Suspend ? Organization.Suspend(state, command.OrganizationId) : Organization.Reinstate(state, command.OrganizationId),
                command.Metadata, cancellationToken);
            return OrganizationView.From(decision.State!);
        }
    }

    public static void Map(IEndpointRouteBuilder api)
    {
        foreach (var (path, suspend, name, summary, description) in new[]
                 {
                     ("suspension", true, "SuspendOrganization", "Suspend an organization",
                         "Suspends an organization: it can no longer be chosen, and for fiscal years still open it receives nothing (the " +
                         "shares chosen for it count as unallocated). Only the confederation admin may call it. Suspending a suspended " +
                         "organization records nothing; 404 for an organization never recognized."),
                     ("reinstatement", false, "ReinstateOrganization", "Reinstate a suspended organization",
                         "Reinstates a suspended organization, which taxpayers may then choose again. Only the confederation admin may call " +
                         "it. Reinstating an active organization records nothing; 404 for an organization never recognized."),
                 })
        {
            api.MapPost($"/organizations/{{organizationId}}/{path}", async Task<Ok<OrganizationView>> (
                    string organizationId, IMediator mediator, HttpContext http, CancellationToken ct) =>
                    TypedResults.Ok(await mediator.Send(new Command(organizationId, suspend, http.Metadata()), ct)))
                .RequireAuthorization(Roles.Admin)
                .WithName(name)
                .WithSummary(summary)
                .WithDescription(description)
                .WithTags("Organizations")
                .ProducesProblem(StatusCodes.Status404NotFound);
        }
    }
}
