using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Cantons;

/// <summary>PUT /api/v1/cantons/{cantonId}: the confederation admin registers a canton or renames it. Repeating the same
/// PUT records nothing new; changing the currency is refused.</summary>
public static class RegisterCanton
{
    public sealed record Body(string? Name, string? Currency);

    public sealed record Command(string CantonId, string? Name, string? Currency, EventMetadata Metadata) : IRequest<Result>;

    public sealed record Result(bool Created, CantonView Canton, long Version);

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.CantonId).Must(Identifiers.IsSlug)
                .WithMessage("cantonId must be a slug: lowercase letters, digits and '-', 2 to 63 characters, starting with a letter or digit.");
            RuleFor(c => c.Name).NotEmpty().MaximumLength(200)
                .Must(n => n is null || n.Trim() == n).WithMessage("name must not start or end with spaces.");
            RuleFor(c => c.Currency).NotEmpty().Must(Currencies.IsKnown)
                .WithMessage("currency must be an active ISO 4217 code in capitals, e.g. CHF or EUR.");
        }
    }

    public sealed class Handler(EventLog events) : IRequestHandler<Command, Result>
    {
        public async Task<Result> Handle(Command command, CancellationToken cancellationToken)
        {
            var decision = await events.DecideAsync<Canton>(Canton.StreamId(command.CantonId), Canton.Apply,
                state => Canton.Register(state, command.CantonId, command.Name!, command.Currency!), command.Metadata, cancellationToken);
            return new Result(Created: decision.Events is [CantonRegistered], CantonView.From(decision.State!), decision.Version);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPut("/cantons/{cantonId}", async Task<Results<Created<CantonView>, Ok<CantonView>>> (
                string cantonId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var result = await mediator.Send(new Command(cantonId, body.Name, body.Currency, http.Metadata()), ct);
                http.Response.Headers.ETag = $"\"{result.Version}\"";
                return result.Created
                    ? TypedResults.Created($"/api/v1/cantons/{cantonId}", result.Canton)
                    : TypedResults.Ok(result.Canton);
            })
            .RequireAuthorization(Roles.Admin)
            .WithName("RegisterCanton")
            .WithTags("Cantons")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict);
}
