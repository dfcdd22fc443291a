using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Pacts;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Pacts;

/// <summary>PUT /api/v1/pacts/{pactId}: the confederation admin founds a pact or renames it. Repeating the same PUT
/// records nothing new; its currency and distribution are fixed once founded (members joined on those terms).</summary>
public static class FoundPact
{
    public sealed record Body(string? Name, string? Currency, PactDistribution? Distribution);

    public sealed record Command(string PactId, string? Name, string? Currency, PactDistribution? Distribution, EventMetadata Metadata)
        : IRequest<Result>;

    public sealed record Result(bool Created, PactView Pact, long Version);

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.PactId).Must(Identifiers.IsSlug)
                .WithMessage("pactId must be a slug: lowercase letters, digits and '-', 2 to 63 characters, starting with a letter or digit.");
            RuleFor(c => c.Name).NotEmpty().MaximumLength(200)
                .Must(n => n is null || n.Trim() == n).WithMessage("name must not start or end with spaces.");
            RuleFor(c => c.Currency).NotEmpty().Must(Currencies.IsKnown)
                .WithMessage("currency must be an active ISO 4217 code in capitals, e.g. CHF or EUR.");
            RuleFor(c => c.Distribution).NotNull().WithMessage("distribution must be equal or per-resident.");
        }
    }

    public sealed class Handler(EventLog events) : IRequestHandler<Command, Result>
    {
        public async Task<Result> Handle(Command command, CancellationToken cancellationToken)
        {
            var decision = await events.DecideAsync<Pact>(Pact.StreamId(command.PactId), Pact.Apply,
                state => Pact.Found(state, command.PactId, command.Name!, command.Currency!, command.Distribution!.Value),
                command.Metadata, cancellationToken);
            return new Result(Created: decision.Events is [PactFounded], PactView.From(decision.State!), decision.Version);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPut("/pacts/{pactId}", async Task<Results<Created<PactView>, Ok<PactView>>> (
                string pactId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var result = await mediator.Send(new Command(pactId, body.Name, body.Currency, body.Distribution, http.Metadata()), ct);
                http.Response.Headers.ETag = $"\"{result.Version}\"";
                return result.Created
                    ? TypedResults.Created($"/api/v1/pacts/{pactId}", result.Pact)
                    : TypedResults.Ok(result.Pact);
            })
            .RequireAuthorization(Roles.Admin)
            .WithName("FoundPact")
            .WithSummary("Found or rename a pact")
            .WithDescription("Founds a pact with its name, currency and distribution (equal, or per-resident), or renames it. Only the " +
                             "confederation admin may call it. Currency and distribution are fixed once founded (409 pact-terms-fixed); " +
                             "the first request answers 201, and repeating it records nothing new and answers 200. Cantons join and " +
                             "leave a pact through binding ballots, not here.")
            .WithTags("Pacts")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict);
}
