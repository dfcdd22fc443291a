using System.Security.Claims;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Ballots;
using Confederal.Api.Features.Census;
using Confederal.EventStore;
using FluentValidation;
using FluentValidation.Results;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Ballots;

/// <summary>The voter's receipt: it appears in the published ballot list once the ballot is certified.</summary>
public sealed record VoteReceipt(Guid BallotId, string Receipt);

/// <summary>POST /api/v1/cantons/{cantonId}/ballots/{ballotId}/votes: a person on the roll votes once, between opensAt
/// and closesAt. The participation (who) and the ballot (what, under a random receipt) are recorded apart; nothing
/// links them.</summary>
public static class CastVote
{
    public sealed record Body(string? Option);

    public sealed record Command(string CantonId, Guid BallotId, string PersonId, Body Body) : IRequest<VoteReceipt>;

    public sealed class Handler(Placement placement, CalledBallots ballots, PersonKeys persons, TimeProvider clock) : IRequestHandler<Command, VoteReceipt>
    {
        private readonly string[] _certified = [.. placement.Directory.Log.Types.AliasesOf(typeof(BallotCertified))];

        public async Task<VoteReceipt> Handle(Command command, CancellationToken cancellationToken)
        {
            var events = placement.Of(command.CantonId).Log;
            var called = await ballots.GetAsync(command.CantonId, command.BallotId, cancellationToken);
            // Whether the caller may vote at all is answered first: someone off the roll is refused the same whatever they send.
            // The census register is the directory's, where every residence is decided.
            var key = await persons.FindAsync(command.PersonId, cancellationToken);
            new Ballot(called, Certified: null).Admit(
                key is null ? null : await Residences.ReadAsync(placement.Directory.DataSource, key.Resident, cancellationToken), clock.GetUtcNow());
            var option = called.Options.ToList().IndexOf(command.Body.Option!);
            if (option < 0)
            {
                throw new ValidationException([new ValidationFailure("option", $"option must be one of: {string.Join(", ", called.Options)}.") { ErrorCode = "unknown-option" }]);
            }

            var receipt = BallotBox.NewReceipt();
            await BallotBox.CastAsync(events, _certified, command.BallotId, key!.Resident, receipt, option, cancellationToken);
            return new VoteReceipt(command.BallotId, receipt);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPost("/cantons/{cantonId}/ballots/{ballotId:guid}/votes", async Task<Created<VoteReceipt>> (
                string cantonId, Guid ballotId, Body body, ClaimsPrincipal user, IMediator mediator, CancellationToken ct) =>
                TypedResults.Created((string?)null, await mediator.Send(new Command(cantonId, ballotId, user.FindFirstValue("sub")!, body), ct)))
            .RequireAuthorization(Roles.Person)
            .WithName("CastVote")
            .WithSummary("Cast a vote")
            .WithDescription("Casts the calling person's vote (any person token; the voter is its subject) for one of the ballot's " +
                             "options, once, between opensAt and closesAt. Who voted and what was voted are recorded apart, and nothing " +
                             "links them; the answer's receipt is listed with its option among the counted ballots once the ballot is " +
                             "certified. Refused: off the roll (403 not-on-roll), outside the voting window (409 ballot-not-open or " +
                             "ballot-closed), a second vote (409 already-voted), an option the ballot does not have (400). Send an " +
                             "Idempotency-Key so that a retry after a lost answer gets the same receipt rather than already-voted.")
            .WithTags("Ballots")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status403Forbidden)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
}
