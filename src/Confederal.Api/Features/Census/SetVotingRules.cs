using Confederal.Api.Infrastructure;
using Confederal.Domain.Census;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Census;

public sealed record VotingRulesView(string CantonId, int VotingAge, int MinimumResidenceDays);

/// <summary>PUT and GET /api/v1/cantons/{cantonId}/voting-rules: who is on the canton's rolls besides residence on the
/// census date (defaults: aged 16, no minimum residence). A ballot keeps the rules in force when it was called.</summary>
public static class SetVotingRules
{
    public sealed record Body(int? VotingAge, int? MinimumResidenceDays);

    public sealed record Command(string CantonId, Body Body, EventMetadata Metadata) : IRequest<VotingRulesView>;

    public sealed record Query(string CantonId) : IRequest<VotingRulesView>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.Body.VotingAge).NotNull().InclusiveBetween(0, VotingRules.MaxVotingAge).WithName("votingAge");
            RuleFor(c => c.Body.MinimumResidenceDays).NotNull().InclusiveBetween(0, VotingRules.MaxMinimumResidenceDays).WithName("minimumResidenceDays");
        }
    }

    public sealed class Handler(Placement placement) : IRequestHandler<Command, VotingRulesView>, IRequestHandler<Query, VotingRulesView>
    {
        public async Task<VotingRulesView> Handle(Command command, CancellationToken cancellationToken)
        {
            var events = placement.Of(command.CantonId).Log;
            await Fiscal.Cantons.RequireAsync(events, command.CantonId, cancellationToken);
            var decision = await events.DecideAsync<VotingRules>(VotingRules.StreamId(command.CantonId), VotingRules.Apply,
                state => VotingRules.Set(state, command.CantonId, command.Body.VotingAge!.Value, command.Body.MinimumResidenceDays!.Value),
                command.Metadata, cancellationToken);
            return View(command.CantonId, decision.State);
        }

        public async Task<VotingRulesView> Handle(Query query, CancellationToken cancellationToken)
        {
            var events = placement.Of(query.CantonId).Log;
            await Fiscal.Cantons.RequireAsync(events, query.CantonId, cancellationToken);
            return View(query.CantonId, await ReadAsync(events, query.CantonId, cancellationToken));
        }

        private static VotingRulesView View(string cantonId, VotingRules? rules) =>
            new(cantonId, (rules ?? VotingRules.Default).VotingAge, (rules ?? VotingRules.Default).MinimumResidenceDays);
    }

    public static async Task<VotingRules> ReadAsync(EventLog events, string cantonId, CancellationToken ct) =>
        (await events.AggregateStreamAsync<VotingRules>(VotingRules.StreamId(cantonId), VotingRules.Apply, ct)).State ?? VotingRules.Default;

    private const string Route = "/cantons/{cantonId}/voting-rules";

    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapPut(Route, async Task<Ok<VotingRulesView>> (string cantonId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Command(cantonId, body, http.Metadata()), ct)))
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("SetVotingRules")
            .WithSummary("Set a canton's voting rules")
            .WithDescription("Sets who is on the canton's ballot rolls besides residence on the census date: the voting age (0 to 100) " +
                             "and the minimum residence in days (0 to 3660). Only the canton's municipality may call it. A ballot keeps " +
                             "the rules in force when it was called; setting the same rules again records nothing.")
            .WithTags("Census")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);

        api.MapGet(Route, async Task<Ok<VotingRulesView>> (string cantonId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId), ct)))
            .AllowAnonymous()
            .WithName("GetVotingRules")
            .WithSummary("Get a canton's voting rules")
            .WithDescription("Returns the canton's voting age and minimum residence in days (16 and 0 until the canton sets them). " +
                             "Public: no token needed.")
            .WithTags("Census")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }
}
