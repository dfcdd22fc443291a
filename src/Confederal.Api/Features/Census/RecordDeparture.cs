using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Census;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Census;

/// <summary>POST /api/v1/cantons/{cantonId}/residents/{personId}/departure: the canton's municipality records that a
/// resident left; from <c>leftOn</c> on they are no longer on its rolls. A retry records nothing.</summary>
public static class RecordDeparture
{
    public sealed record Body(DateOnly? LeftOn);

    public sealed record Command(string CantonId, string PersonId, Body Body, EventMetadata Metadata) : IRequest<ResidenceView>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator(TimeProvider clock)
        {
            RuleFor(c => c.PersonId).Must(Identifiers.IsPersonId).WithName("personId")
                .WithMessage("personId must match ^[A-Za-z0-9._:-]{1,64}$.");
            RuleFor(c => c.Body.LeftOn).PastDate(clock, "leftOn");
        }
    }

    public sealed class Handler(EventLog events, PersonKeys persons) : IRequestHandler<Command, ResidenceView>
    {
        public async Task<ResidenceView> Handle(Command command, CancellationToken cancellationToken)
        {
            await Fiscal.Cantons.RequireAsync(events, command.CantonId, cancellationToken);
            var leftOn = command.Body.LeftOn!.Value;
            var key = await persons.FindAsync(command.PersonId, cancellationToken)
                      ?? throw Residence.NotResident(command.PersonId, command.CantonId); // never recorded: resident nowhere
            var (state, _) = await Residences.DecideAsync(events, key,
                s => Residence.Depart(s, key.AsResident(), command.CantonId, leftOn), command.Metadata, cancellationToken);
            var period = state!.Periods[^1];
            return new ResidenceView(command.PersonId, period.CantonId, period.Since, period.Until);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPost("/cantons/{cantonId}/residents/{personId}/departure", async Task<Ok<ResidenceView>> (
                string cantonId, string personId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Command(cantonId, personId, body, http.Metadata()), ct)))
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("RecordDeparture")
            .WithSummary("Record a resident's departure")
            .WithDescription("Records that a resident left the canton on leftOn; from that day on they are no longer on its rolls. Only " +
                             "the canton's municipality may call it. Repeating the same departure records nothing; someone not resident " +
                             "in the canton is refused (409 not-resident), and so is a departure before the arrival (409 " +
                             "departure-before-arrival).")
            .WithTags("Census")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
}
