using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Pacts;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Pacts;

/// <summary>From <see cref="FromFiscalYear"/> on, the canton contributes <see cref="ContributionRateBp"/>, or is no
/// longer a member (null).</summary>
public sealed record MembershipView(int FromFiscalYear, int? ContributionRateBp);

public sealed record PactMemberView(string CantonId, IReadOnlyList<MembershipView> Timeline);

/// <summary>A pact, its terms and every canton that ever joined it with its timeline, in cantonId order.</summary>
public sealed record PactView(string PactId, string Name, string Currency, PactDistribution Distribution, IReadOnlyList<PactMemberView> Members)
{
    public static PactView From(Pact pact) => new(
        pact.Id, pact.Name, pact.Currency, pact.Distribution,
        [.. pact.Members.Select(m => new PactMemberView(m.Key, [.. m.Value.Select(t => new MembershipView(t.FromFiscalYear, t.ContributionRateBp))]))]);
}

/// <summary>GET /api/v1/pacts/{pactId}: public, served from the pacts the budgets read model keeps (memberships
/// change budgets, so both move together).</summary>
public static class GetPact
{
    public sealed record Query(string PactId) : IRequest<PactView>;

    public sealed class Handler(NpgsqlDataSource db) : IRequestHandler<Query, PactView>
    {
        public async Task<PactView> Handle(Query query, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand("""
                SELECT p.name, p.currency, p.distribution, m.canton_id, m.from_year, m.rate_bp
                FROM pacts p LEFT JOIN pact_members m ON m.pact_id = p.pact_id
                WHERE p.pact_id = $1
                ORDER BY m.canton_id COLLATE "C", m.from_year
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = query.PactId });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                throw new NotFoundException("Pact", query.PactId);
            }

            var (name, currency, distribution) = (reader.GetString(0), reader.GetString(1), BudgetProjection.ParseDistribution(reader.GetString(2)));
            var members = new List<(string CantonId, List<MembershipView> Timeline)>();
            do
            {
                if (reader.IsDBNull(3))
                {
                    continue;
                }

                var cantonId = reader.GetString(3);
                if (members.Count == 0 || members[^1].CantonId != cantonId)
                {
                    members.Add((cantonId, []));
                }

                members[^1].Timeline.Add(new MembershipView(reader.GetInt32(4), reader.IsDBNull(5) ? null : reader.GetInt32(5)));
            }
            while (await reader.ReadAsync(cancellationToken));

            return new PactView(query.PactId, name, currency, distribution, [.. members.Select(m => new PactMemberView(m.CantonId, m.Timeline))]);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/pacts/{pactId}", async Task<Ok<PactView>> (string pactId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(pactId), ct)))
            .AllowAnonymous()
            .WithName("GetPact")
            .WithSummary("Get a pact")
            .WithDescription("Returns a pact's terms and every canton that ever joined it, in cantonId order, each with its timeline: " +
                             "from which fiscal year it contributes which rate, or null once it left. Public: no token needed. Served " +
                             "from the budgets read model, which follows the event log within moments.")
            .WithTags("Pacts")
            .ProducesProblem(StatusCodes.Status404NotFound);
}
