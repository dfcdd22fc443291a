using System.ComponentModel;
using System.Data;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.EventStore;
using FluentValidation;
using FluentValidation.Results;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;
using NpgsqlTypes;

namespace Confederal.Api.Features.Audit;

/// <summary>A page of the audit feed: the sealed events after the requested position that match the filters, in
/// global order. Every matching event up to <see cref="Next"/> is in this page or an earlier one: ask again with
/// after = <see cref="Next"/>. <see cref="SealedThrough"/>: the last sealed position (the feed's end for now).</summary>
public sealed record AuditEventsPage(IReadOnlyList<AuditEvent> Events, long Next, long SealedThrough);

/// <summary>GET /api/v1/audit/events?after={position}&amp;limit={n}&amp;canton={cantonId}&amp;type={eventType}&amp;ledger={cantonId}:
/// auditors. Each database of the store keeps its own log, hash chain and seals: <c>ledger</c> names the log that keeps
/// that canton's ledger (its own database when it is placed, else the directory's); without it, the directory's, which
/// also holds verbatim copies of every placed canton's log.</summary>
public static class GetAuditEvents
{
    public const int MaxLimit = 1000;

    public sealed record Query(long After, int Limit, string? Canton, string? Type, string? Ledger = null) : IRequest<AuditEventsPage>;

    public sealed class Validator : AbstractValidator<Query>
    {
        public Validator(EventLog events)
        {
            RuleFor(q => q.After).GreaterThanOrEqualTo(0);
            RuleFor(q => q.Limit).InclusiveBetween(1, MaxLimit);
            RuleFor(q => q.Canton).Must(Identifiers.IsSlug).When(q => q.Canton is not null).WithMessage("'canton' must be a canton id.");
            RuleFor(q => q.Ledger).Must(Identifiers.IsSlug).When(q => q.Ledger is not null).WithMessage("'ledger' must be a canton id.");
            RuleFor(q => q.Type).Must(t => events.Types.IsRegistered(t!)).When(q => q.Type is not null)
                .WithMessage(q => $"'{q.Type}' is not an event type. Types: {string.Join(", ", events.Types.Names.Order(StringComparer.Ordinal))}.");
        }
    }

    public sealed class Handler(Placement placement, Pseudonyms pseudonyms, Persons.PersonKeys persons) : IRequestHandler<Query, AuditEventsPage>
    {
        public async Task<AuditEventsPage> Handle(Query query, CancellationToken cancellationToken)
        {
            await using var connection = await placement.LogOf(query.Ledger).DataSource.OpenConnectionAsync(cancellationToken);
            await using var tx = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
            long sealedThrough;
            await using (var head = new NpgsqlCommand("SELECT coalesce(max(to_position), 0) FROM audit_seals", connection, tx))
            {
                sealedThrough = (long)(await head.ExecuteScalarAsync(cancellationToken))!;
            }

            if (query.After > sealedThrough)
            {
                throw new ValidationException([new ValidationFailure("after", $"'after' is beyond the last sealed position, {sealedThrough}.")]);
            }

            // Marten stores a type under its alias, name.v{version}: the filter names the type whatever its version.
            await using var command = new NpgsqlCommand($"""
                SELECT {EventLog.StoredColumns}, h.hash
                FROM {EventLog.Table} e JOIN audit_hashes h ON h.position = e.seq_id
                WHERE e.seq_id > $1 AND e.seq_id <= $2
                  AND ($4::text IS NULL OR starts_with(e.type, $4 || '.v'))
                  AND ($5::text IS NULL OR e.data->>'cantonId' = $5)
                ORDER BY e.seq_id
                LIMIT $3
                """, connection, tx)
            {
                Parameters =
                {
                    new NpgsqlParameter<long> { TypedValue = query.After },
                    new NpgsqlParameter<long> { TypedValue = sealedThrough },
                    new NpgsqlParameter<int> { TypedValue = query.Limit },
                    new NpgsqlParameter { Value = (object?)query.Type ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                    new NpgsqlParameter { Value = (object?)query.Canton ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text },
                },
            };
            var page = new List<AuditEvent>();
            await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    var stored = StoredEvent.Read(reader);
                    page.Add(AuditEvent.From(stored, pseudonyms) with { Hash = Convert.ToHexStringLower(reader.GetFieldValue<byte[]>(EventLog.StoredColumnCount)) });
                }
            }

            var next = page.Count == query.Limit ? page[^1].Position : sealedThrough;
            return new AuditEventsPage(await AuditPerson.OpenAsync(page, persons, cancellationToken), next, sealedThrough);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/audit/events", async Task<Ok<AuditEventsPage>> (
                long? after, int? limit, string? canton, string? type,
                [Description(Placement.LedgerParameter)] string? ledger, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(after ?? 0, limit ?? 100, canton, type, ledger), ct)))
            .RequireAuthorization(Roles.Auditor)
            .WithName("GetAuditEvents")
            .WithSummary("Read the audit feed")
            .WithDescription("Returns, in global order, the sealed events that follow the position given as after (limit 1 to 1000 a " +
                             "page, 100 by default), as stored, each with its hash and with person ids replaced by keyed pseudonyms; " +
                             "the canton and type parameters narrow the page, and next in the answer says where to continue. Only " +
                             "auditors may call it. The ledger parameter names a canton whose ledger is on a database of its own, to " +
                             "read that log instead of the directory's.")
            .WithTags("Audit")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status401Unauthorized)
            .ProducesProblem(StatusCodes.Status403Forbidden);
}
