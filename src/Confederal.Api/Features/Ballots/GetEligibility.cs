using System.Security.Claims;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Api.Features.Census;
using Confederal.Domain.Ballots;
using Npgsql;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Ballots;

/// <summary>Whether the caller is on the ballot's roll, and if not, why (only ever told to that person).</summary>
public sealed record EligibilityView(Guid BallotId, bool Eligible, string? Reason, DateOnly CensusDate, int VotingAge, int MinimumResidenceDays);

/// <summary>GET /api/v1/cantons/{cantonId}/ballots/{ballotId}/eligibility: the person (the token's subject) asks "am I on
/// the roll, and if not, why": not-resident-on-census-date, under-voting-age or residence-too-short.</summary>
public static class GetEligibility
{
    public sealed record Query(string CantonId, Guid BallotId, string PersonId) : IRequest<EligibilityView>;

    public sealed class Handler(CalledBallots ballots, Placement placement, PersonKeys persons) : IRequestHandler<Query, EligibilityView>
    {
        public async Task<EligibilityView> Handle(Query query, CancellationToken cancellationToken)
        {
            var called = await ballots.GetAsync(query.CantonId, query.BallotId, cancellationToken);
            var reason = new Ballot(called, Certified: null).Ineligible(await Residences.ReadAsync(placement.Directory.DataSource, persons, query.PersonId, cancellationToken));
            return new EligibilityView(called.BallotId, reason is null, reason, called.CensusDate, called.VotingAge, called.MinimumResidenceDays);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/cantons/{cantonId}/ballots/{ballotId:guid}/eligibility", async Task<Ok<EligibilityView>> (
                string cantonId, Guid ballotId, ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, ballotId, user.FindFirstValue("sub")!), ct)))
            .RequireAuthorization(Roles.Person)
            .WithName("GetEligibility")
            .WithSummary("Check whether you may vote in a ballot")
            .WithDescription("Tells the calling person whether they are on the ballot's roll and, if not, why: " +
                             "not-resident-on-census-date, under-voting-age or residence-too-short. Any person token may call it, and " +
                             "learns about its own subject only: the reason is told to nobody else.")
            .WithTags("Ballots")
            .ProducesProblem(StatusCodes.Status404NotFound);
}
