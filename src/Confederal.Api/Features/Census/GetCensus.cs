using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Census;

public sealed record CensusView(string CantonId, DateOnly On, long Residents);

/// <summary>GET /api/v1/cantons/{cantonId}/census?on={date}: public, the number of residents on a day (today by
/// default). A count, never a list.</summary>
public static class GetCensus
{
    public sealed record Query(string CantonId, DateOnly? On) : IRequest<CensusView>;

    public sealed class Validator : AbstractValidator<Query>
    {
        public Validator() =>
            RuleFor(q => q.On).Must(d => d is null || d >= Residences.Earliest).WithName("on")
                .WithMessage($"on must be a date (yyyy-mm-dd) from {Residences.Earliest:O} on.");
    }

    public sealed class Handler(EventLog events, NpgsqlDataSource db, TimeProvider clock) : IRequestHandler<Query, CensusView>
    {
        public async Task<CensusView> Handle(Query query, CancellationToken cancellationToken)
        {
            await Fiscal.Cantons.RequireAsync(events, query.CantonId, cancellationToken);
            var on = query.On ?? DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime);
            await using var command = db.CreateCommand(
                "SELECT count(*) FROM residences WHERE canton_id = $1 AND since <= $2 AND (until IS NULL OR until > $2)");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = query.CantonId });
            command.Parameters.Add(new NpgsqlParameter<DateOnly> { TypedValue = on });
            return new CensusView(query.CantonId, on, (long)(await command.ExecuteScalarAsync(cancellationToken))!);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/cantons/{cantonId}/census", async Task<Ok<CensusView>> (string cantonId, DateOnly? on, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, on), ct)))
            .AllowAnonymous()
            .WithName("GetCensus")
            .WithTags("Census")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
}
