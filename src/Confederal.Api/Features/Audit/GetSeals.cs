using System.ComponentModel;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Audit;

/// <summary>The seals after seal number <c>after</c>, and the key that signs them: <see cref="Algorithm"/> ES256 (ECDSA
/// P-256, SHA-256), <see cref="PublicKey"/> base64 SubjectPublicKeyInfo. Ask again with after = <see cref="Next"/>.</summary>
public sealed record SealsPage(string Algorithm, string PublicKey, IReadOnlyList<Seal> Seals, long Next);

/// <summary>GET /api/v1/audit/seals?after={number}&amp;limit={n}: public, like a transparency log's signed heads.</summary>
public static class GetSeals
{
    public const int MaxLimit = 1000;

    public sealed record Query(long After, int Limit, string? Ledger = null) : IRequest<SealsPage>;

    public sealed class Validator : AbstractValidator<Query>
    {
        public Validator()
        {
            RuleFor(q => q.After).GreaterThanOrEqualTo(0);
            RuleFor(q => q.Limit).InclusiveBetween(1, MaxLimit);
            RuleFor(q => q.Ledger).Must(Identifiers.IsSlug).When(q => q.Ledger is not null).WithMessage("'ledger' must be a canton id.");
        }
    }

    public sealed class Handler(Placement placement, AuditKeys keys) : IRequestHandler<Query, SealsPage>
    {
        public async Task<SealsPage> Handle(Query query, CancellationToken cancellationToken)
        {
            await using var command = placement.LogOf(query.Ledger).DataSource.CreateCommand($"SELECT {Notary.SealColumns} FROM audit_seals WHERE number > $1 ORDER BY number LIMIT $2");
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = query.After });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = query.Limit });
            var seals = new List<Seal>();
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    seals.Add(Notary.ReadSeal(reader));
                }
            }

            return new SealsPage("ES256", keys.PublicKey, seals, seals.Count > 0 ? seals[^1].Number : query.After);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/audit/seals", async Task<Ok<SealsPage>> (
                long? after, int? limit, [Description(Placement.LedgerParameter)] string? ledger, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(after ?? 0, limit ?? 100, ledger), ct)))
            .AllowAnonymous()
            .WithName("GetAuditSeals")
            .WithSummary("Read the audit seals")
            .WithDescription("Returns the signed seals that follow the seal number given as after (limit 1 to 1000 a page, 100 by " +
                             "default), each covering a range of log positions with its Merkle root and the digest of the seal before, " +
                             "and the ES256 public key that verifies them; next in the answer says where to continue. Public: no token " +
                             "needed, so that anyone can check an audit export against them.")
            .WithTags("Audit")
            .ProducesValidationProblem();
}
