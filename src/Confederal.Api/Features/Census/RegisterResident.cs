using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Census;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Census;

/// <summary>POST /api/v1/cantons/{cantonId}/residents: the canton's municipality registers a person's arrival. It ends
/// the person's residence in any other canton on the same day. A retried registration records nothing (200).</summary>
public static class RegisterResident
{
    public sealed record Body(string? PersonId, DateOnly? ResidentSince, DateOnly? BirthDate);

    public sealed record Command(string CantonId, Body Body, EventMetadata Metadata) : IRequest<(bool Recorded, ResidenceView Residence)>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator(TimeProvider clock)
        {
            RuleFor(c => c.Body.PersonId).Must(Identifiers.IsPersonId).WithName("personId")
                .WithMessage("personId must match ^[A-Za-z0-9._:-]{1,64}$.");
            RuleFor(c => c.Body.ResidentSince).PastDate(clock, "residentSince");
            RuleFor(c => c.Body.BirthDate).PastDate(clock, "birthDate");
            RuleFor(c => c.Body).Must(b => b.BirthDate is null || b.ResidentSince is null || b.BirthDate <= b.ResidentSince)
                .WithName("birthDate").WithMessage("birthDate must not come after residentSince.");
        }
    }

    public sealed class Handler(EventLog events, PersonKeys persons) : IRequestHandler<Command, (bool, ResidenceView)>
    {
        public async Task<(bool, ResidenceView)> Handle(Command command, CancellationToken cancellationToken)
        {
            await Fiscal.Cantons.RequireAsync(events, command.CantonId, cancellationToken);
            var body = command.Body;
            var key = await persons.ObtainAsync(body.PersonId!, cancellationToken);
            var (state, recorded) = await Residences.DecideAsync(events, key,
                s => Residence.Register(s, key.AsResident(), command.CantonId, body.ResidentSince!.Value, body.BirthDate!.Value),
                command.Metadata, cancellationToken);
            var current = state!.Current!;
            return (recorded, new ResidenceView(body.PersonId!, current.CantonId, current.Since, null));
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPost("/cantons/{cantonId}/residents", async Task<Results<Created<ResidenceView>, Ok<ResidenceView>>> (
                string cantonId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var (recorded, residence) = await mediator.Send(new Command(cantonId, body, http.Metadata()), ct);
                return recorded ? TypedResults.Created((string?)null, residence) : TypedResults.Ok(residence);
            })
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("RegisterResident")
            .WithSummary("Register a resident's arrival")
            .WithDescription("Records that a person lives in the canton since residentSince, with their birth date for the voting age; " +
                             "nothing else about a person is accepted. Only the canton's municipality may call it. The arrival ends the " +
                             "person's residence in any other canton on the same day; repeating the same arrival records nothing and " +
                             "answers 200 instead of 201. Refused (409) when it contradicts what is recorded: another birth date, an " +
                             "arrival no later than the last one recorded, or residence here since another date.")
            .WithTags("Census")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
}
