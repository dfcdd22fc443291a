using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Fiscal;

/// <summary>POST /api/v1/cantons/{cantonId}/tax-assessments: the canton's municipality records one person's assessed
/// tax for a year. A later assessment of the same person and year replaces the earlier one (a correction).</summary>
public static class AssessTax
{
    public sealed record Body(string? PersonId, int? FiscalYear, long? AmountMinor);

    public sealed record Command(string CantonId, Body Body, EventMetadata Metadata) : IRequest<AssessmentView>;

    public sealed record AssessmentView(string CantonId, string PersonId, int FiscalYear, long AmountMinor, string FilingId);

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator() =>
            RuleFor(c => c.Body).Custom((body, context) =>
            {
                if (TaxAssessed.Problem(body.PersonId, body.FiscalYear, body.AmountMinor) is { } problem)
                {
                    context.AddFailure(problem.Split(' ')[0], problem + ".");
                }
            });
    }

    public sealed class Handler(Placement placement, PersonKeys persons, FiscalYearKeys years, DesignationCarrier carrier)
        : IRequestHandler<Command, AssessmentView>
    {
        public async Task<AssessmentView> Handle(Command command, CancellationToken cancellationToken)
        {
            var events = placement.Of(command.CantonId).Log;
            await Cantons.RequireAsync(events, command.CantonId, cancellationToken);
            var filing = Guid.CreateVersion7();
            var body = command.Body;
            var (year, opened) = await years.ObtainAsync(command.CantonId, body.FiscalYear!.Value, cancellationToken);
            var taxpayer = year.Of((await persons.ObtainAsync(body.PersonId!, cancellationToken)).Taxpayer);
            var assessed = new TaxAssessed(command.CantonId, taxpayer, year.Year, body.AmountMinor!.Value);
            await events.AppendAsync(TaxAssessed.FilingStreamId(command.CantonId, filing), ExpectedVersion.NoStream, [assessed], command.Metadata, cancellationToken);
            if (opened)
            {
                await carrier.CarryIntoOpenedYearAsync(command.CantonId, command.Metadata, cancellationToken);
            }

            return new AssessmentView(assessed.CantonId, body.PersonId!, assessed.FiscalYear, assessed.AmountMinor, filing.ToString("N"));
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPost("/cantons/{cantonId}/tax-assessments", async Task<Created<AssessmentView>> (
                string cantonId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
                TypedResults.Created((string?)null, await mediator.Send(new Command(cantonId, body, http.Metadata()), ct)))
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("AssessTax")
            .WithSummary("Record a tax assessment")
            .WithDescription("Records one person's assessed tax for a fiscal year in the canton, in minor units of its currency; " +
                             "designated amounts follow it. Only the canton's municipality may call it. A later assessment of the same " +
                             "person and year replaces the earlier one, so a correction is a new assessment. Each request is a new " +
                             "filing: send an Idempotency-Key so that a retry records it once.")
            .WithTags("Tax assessments")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
}

internal static class Cantons
{
    /// <summary>The canton, read from its stream; 404 when it was never registered.</summary>
    public static async Task<Canton> RequireAsync(EventLog events, string cantonId, CancellationToken ct) =>
        (await events.AggregateStreamAsync<Canton>(Canton.StreamId(cantonId), Canton.Apply, ct)).State
        ?? throw new NotFoundException("Canton", cantonId);
}
