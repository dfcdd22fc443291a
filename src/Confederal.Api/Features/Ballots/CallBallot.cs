using Confederal.Api.Features.Census;
using Confederal.Api.Features.Pacts;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Ballots;
using Confederal.Domain.Pacts;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Ballots;

/// <summary>A ballot as anyone may read it; <see cref="Status"/> is scheduled, open, closing (voting has ended, not yet
/// certified) or certified.</summary>
public sealed record BallotView(
    Guid BallotId, string CantonId, string Question, IReadOnlyList<string> Options, DateOnly CensusDate, DateTimeOffset OpensAt,
    DateTimeOffset ClosesAt, Proposal? Proposal, int VotingAge, int MinimumResidenceDays, string Status)
{
    public static BallotView From(Ballot ballot, DateTimeOffset now)
    {
        var c = ballot.Called;
        var status = ballot.Certified is not null ? "certified" : now < c.OpensAt ? "scheduled" : now < c.ClosesAt ? "open" : "closing";
        return new BallotView(c.BallotId, c.CantonId, c.Question, c.Options, c.CensusDate, c.OpensAt, c.ClosesAt, c.Proposal, c.VotingAge,
            c.MinimumResidenceDays, status);
    }
}

/// <summary>POST /api/v1/cantons/{cantonId}/ballots: the canton's municipality calls a ballot, and GET …/{ballotId}
/// shows it to anyone. The roll is fixed by the census date and the canton's voting rules when the ballot is called.
/// A binding ballot carries a proposal and exactly the options yes and no.</summary>
public static class CallBallot
{
    public sealed record ProposalBody(
        ProposalKind? Kind, int? FiscalYear, int? DesignationRateBp, string? PactId, int? ContributionRateBp, int? FromFiscalYear)
    {
        public Proposal ToProposal() => new(Kind!.Value, FiscalYear, DesignationRateBp, PactId, ContributionRateBp, FromFiscalYear);
    }

    public sealed record Body(
        string? Question, IReadOnlyList<string>? Options, DateOnly? CensusDate, DateTimeOffset? OpensAt, DateTimeOffset? ClosesAt, ProposalBody? Proposal);

    public sealed record Command(string CantonId, Body Body, EventMetadata Metadata) : IRequest<BallotView>;

    public sealed record Query(string CantonId, Guid BallotId) : IRequest<BallotView>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator(TimeProvider clock)
        {
            RuleFor(c => c.Body.Question).NotNull().WithName("question");
            RuleFor(c => c.Body.Options).NotNull().WithName("options");
            RuleFor(c => c.Body.CensusDate).NotNull().WithName("censusDate");
            RuleFor(c => c.Body.OpensAt).NotNull().WithName("opensAt");
            RuleFor(c => c.Body.ClosesAt).NotNull().WithName("closesAt");
            RuleFor(c => c.Body.Proposal!.Kind).NotNull().When(c => c.Body.Proposal is not null).WithName("proposal.kind")
                .WithMessage("proposal.kind is one of set-designation-rate, join-pact, leave-pact.");
            RuleFor(c => c.Body).Custom((body, context) =>
            {
                if (body.Question is null || body.Options is null || body.CensusDate is null || body.OpensAt is null || body.ClosesAt is null
                    || body.Proposal is { Kind: null })
                {
                    return;
                }

                if (body.Options.Any(o => o is null))
                {
                    context.AddFailure("options", "every option is a string.");
                    return;
                }

                foreach (var problem in Ballot.Problems(body.Question, body.Options, body.CensusDate.Value, body.OpensAt.Value, body.ClosesAt.Value,
                             body.Proposal?.ToProposal(), clock.GetUtcNow()))
                {
                    context.AddFailure("ballot", problem + ".");
                }
            });
        }
    }

    public sealed class Handler(Placement placement, TimeProvider clock) : IRequestHandler<Command, BallotView>, IRequestHandler<Query, BallotView>
    {
        public async Task<BallotView> Handle(Command command, CancellationToken cancellationToken)
        {
            var (events, db) = placement.Ledger(command.CantonId);
            var canton = await Fiscal.Cantons.RequireAsync(events, command.CantonId, cancellationToken);
            var body = command.Body;
            var proposal = body.Proposal?.ToProposal();
            if (proposal?.PactId is { } pactId)
            {
                var memberships = await Memberships.OfCantonAsync(events, db, canton.Id, pactId, cancellationToken);
                var pact = Pact.Known(memberships.Pacts.GetValueOrDefault(pactId), pactId);
                if (proposal.Kind == ProposalKind.JoinPact)
                {
                    // Refused now rather than after the vote: the currency, and the canton's commitments so far.
                    Pact.Join(pact, pactId, canton.Id, canton.Currency, proposal.ContributionRateBp!.Value, proposal.FromFiscalYear!.Value, Guid.Empty,
                        memberships.Pacts.Values);
                }
            }

            var rules = await SetVotingRules.ReadAsync(events, command.CantonId, cancellationToken);
            var called = new BallotCalled(Guid.NewGuid(), command.CantonId, body.Question!, body.Options!, body.CensusDate!.Value,
                body.OpensAt!.Value, body.ClosesAt!.Value, proposal, rules.VotingAge, rules.MinimumResidenceDays);
            await events.AppendAsync(Ballot.StreamId(called.BallotId), ExpectedVersion.NoStream, [called], command.Metadata, cancellationToken);
            return BallotView.From(new Ballot(called, null), clock.GetUtcNow());
        }

        public async Task<BallotView> Handle(Query query, CancellationToken cancellationToken) =>
            BallotView.From((await Ballots.ReadAsync(placement.Of(query.CantonId).Log, query.CantonId, query.BallotId, cancellationToken)).Ballot, clock.GetUtcNow());
    }

    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapPost("/cantons/{cantonId}/ballots", async Task<Created<BallotView>> (
                string cantonId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var ballot = await mediator.Send(new Command(cantonId, body, http.Metadata()), ct);
                return TypedResults.Created($"/api/v1/cantons/{cantonId}/ballots/{ballot.BallotId}", ballot);
            })
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("CallBallot")
            .WithSummary("Call a ballot")
            .WithDescription("Calls a ballot: a question, 2 to 10 options, the census date that fixes the roll (no later than the day " +
                             "voting opens) and the voting window from opensAt to closesAt, which must end in the future; the canton's " +
                             "voting rules in force are copied into it. Only the canton's municipality may call it. A binding ballot " +
                             "carries a proposal (set-designation-rate, join-pact or leave-pact) and exactly the options yes and no, " +
                             "and a pact the canton could not join (another currency, or rates across its pacts over 10000 bp) is " +
                             "refused now (409), not after the vote. The answer (201) carries the generated ballotId; send an " +
                             "Idempotency-Key so that a retry does not call a second ballot.")
            .WithTags("Ballots")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        api.MapGet("/cantons/{cantonId}/ballots/{ballotId:guid}", async Task<Ok<BallotView>> (
                string cantonId, Guid ballotId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, ballotId), ct)))
            .AllowAnonymous()
            .WithName("GetBallot")
            .WithSummary("Get a ballot")
            .WithDescription("Returns a ballot as called (question, options, census date, voting window, proposal and the voting rules " +
                             "copied into it) and its status now: scheduled, open, closing (voting over, not yet certified) or " +
                             "certified. Public: no token needed. 404 for a ballot that is not the canton's.")
            .WithTags("Ballots")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }
}
