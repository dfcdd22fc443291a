using System.Security.Claims;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Ballots;

public sealed record ParticipationView(Guid BallotId, bool Participated);

/// <summary>GET /api/v1/cantons/{cantonId}/ballots/{ballotId}/participation: the person (the token's subject) checks
/// whether a participation is recorded in their name, and so that nobody voted for them. It never says what was voted.</summary>
public static class GetParticipation
{
    public sealed record Query(string CantonId, Guid BallotId, string PersonId) : IRequest<ParticipationView>;

    public sealed class Handler(CalledBallots ballots, Placement placement, PersonKeys persons) : IRequestHandler<Query, ParticipationView>
    {
        public async Task<ParticipationView> Handle(Query query, CancellationToken cancellationToken)
        {
            var db = placement.Of(query.CantonId).DataSource;
            await ballots.GetAsync(query.CantonId, query.BallotId, cancellationToken);
            return new ParticipationView(query.BallotId,
                await persons.FindAsync(query.PersonId, cancellationToken) is { } key && await BallotBox.ParticipatedAsync(db, query.BallotId, key.Resident, cancellationToken));
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/cantons/{cantonId}/ballots/{ballotId:guid}/participation", async Task<Ok<ParticipationView>> (
                string cantonId, Guid ballotId, ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, ballotId, user.FindFirstValue("sub")!), ct)))
            .RequireAuthorization(Roles.Person)
            .WithName("GetParticipation")
            .WithSummary("Check whether a vote is recorded in your name")
            .WithDescription("Tells the calling person whether a participation in the ballot is recorded in their name, so that they " +
                             "can check nobody voted for them. Any person token may call it, and learns about its own subject only. It " +
                             "never says what was voted.")
            .WithTags("Ballots")
            .ProducesProblem(StatusCodes.Status404NotFound);
}
