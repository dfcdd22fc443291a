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
            var stream = Organization.StreamId(command.OrganizationId);
            var (state, version) = await events.AggregateStreamAsync<Organization>(stream, Organization.Apply, cancellationToken);
            var decided = command.Suspend
                ? Organization.Suspend(state, command.OrganizationId)
                : Organization.Reinstate(state, command.OrganizationId);
            if (decided.Count > 0)
            {
                await events.AppendAsync(stream, ExpectedVersion.Exactly(version), decided, command.Metadata, cancellationToken);
                state = decided.Aggregate(state, Organization.Apply);
            }

            return OrganizationView.From(state!);
        }
    }

    public static void Map(IEndpointRouteBuilder api)
    {
        foreach (var (path, suspend, name) in new[] { ("suspension", true, "SuspendOrganization"), ("reinstatement", false, "ReinstateOrganization") })
        {
            api.MapPost($"/organizations/{{organizationId}}/{path}", async Task<Ok<OrganizationView>> (
                    string organizationId, IMediator mediator, HttpContext http, CancellationToken ct) =>
                    TypedResults.Ok(await mediator.Send(new Command(organizationId, suspend, http.Metadata()), ct)))
                .RequireAuthorization(Roles.Admin)
                .WithName(name)
                .WithTags("Organizations")
                .ProducesProblem(StatusCodes.Status404NotFound);
        }
    }
}
