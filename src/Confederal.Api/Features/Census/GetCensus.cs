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
public static partial class GetCensus
{
    /// <summary><paramref name="OnAsSent"/>: the query's text; the binder also reads 2026/01/02 and 01/02/2026 (as
    /// January 2nd, which a European municipality means as February 1st), so only yyyy-mm-dd is let through.</summary>
    public sealed record Query(string CantonId, DateOnly? On, string? OnAsSent = null) : IRequest<CensusView>;

    public sealed class Validator : AbstractValidator<Query>
    {
        public Validator() =>
            RuleFor(q => q.On).Must((q, d) => d is null || (d >= Residences.Earliest && IsoDate().IsMatch(q.OnAsSent ?? ""))).WithName("on")
                .WithMessage($"on must be a date (yyyy-mm-dd) from {Residences.Earliest:O} on.");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^\d{4}-\d{2}-\d{2}\z", System.Text.RegularExpressions.RegexOptions.CultureInvariant)]
    private static partial System.Text.RegularExpressions.Regex IsoDate();

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
        api.MapGet("/cantons/{cantonId}/census", async Task<Ok<CensusView>> (
                string cantonId, DateOnly? on, HttpRequest request, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, on, request.Query["on"]), ct)))
            .AllowAnonymous()
            .WithName("GetCensus")
            .WithSummary("Count a canton's residents on a day")
            .WithDescription("Returns how many people live in the canton on a day (the on parameter, as yyyy-mm-dd; today in UTC by " +
                             "default): a count, never a list. Public: no token needed. Read from the census register, which is written " +
                             "with each arrival and departure, so it never lags.")
            .WithTags("Census")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
}
