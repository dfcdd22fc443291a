using System.Security.Claims;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Fiscal;

public sealed record ReceiptView(string CantonId, string Currency, long AmountMinor, long RedistributedMinor, long Taxpayers);

public sealed record CurrencyTotalView(string Currency, long AmountMinor);

/// <summary>What an organization receives for a year, per canton and currency, with totals per currency (amounts of
/// different currencies are never added). Counts of taxpayers, never who they are.</summary>
/// <param name="Position">The directory's log position the receipts reflect: every event up to it, and none after.</param>
/// <param name="Ledgers">For each canton whose ledger is on a database of its own, the position in that canton's own log
/// through which the receipts reflect it. Empty while every canton's ledger is the directory's.</param>
public sealed record ReceiptsView(
    string OrganizationId, int FiscalYear, IReadOnlyList<ReceiptView> Receipts, IReadOnlyList<CurrencyTotalView> Totals, long Position,
    IReadOnlyList<LedgerView> Ledgers);

/// <summary>GET /api/v1/organizations/{organizationId}/receipts/{year}: that organization, the admin and auditors.</summary>
public static class GetReceipts
{
    /// <param name="FromStandby">Whether the read model may be read on a streaming standby of the directory (then the
    /// position says how far its replay reflects the log): the organization's and auditors' reads, who write nothing the
    /// receipts reflect; the admin, who recognizes organizations and changes their standing, reads on the primary.</param>
    public sealed record Query(string OrganizationId, int FiscalYear, bool FromStandby = false) : IRequest<ReceiptsView>;

    public sealed class Validator : AbstractValidator<Query>
    {
        public Validator() =>
            RuleFor(c => c.FiscalYear).FiscalYear();
    }

    public sealed class Handler(Database database) : IRequestHandler<Query, ReceiptsView>
    {
        public async Task<ReceiptsView> Handle(Query query, CancellationToken cancellationToken)
        {
            // On one server (on a standby, as far as its replay has reached), at one checkpoint.
            var db = query.FromStandby ? database.ReadsOf(LedgerDatabase.DirectoryId) : database.DataSource;
            var (receipts, position, ledgers) = await BudgetProjection.ReadAtOneCheckpointAsync(db, () =>
            [
                Sql.Command("SELECT 1 FROM fiscal_organizations WHERE organization_id = $1", query.OrganizationId),
                Sql.Command("""
                    SELECT canton_id, currency, amount_minor, redistributed_minor, taxpayers FROM organization_receipts
                    WHERE organization_id = $1 AND year = $2 ORDER BY canton_id
                    """, query.OrganizationId, query.FiscalYear),
            ], ReadReceiptsAsync, cancellationToken);
            if (receipts is null)
            {
                throw new NotFoundException("Organization", query.OrganizationId);
            }

            var totals = receipts.GroupBy(r => r.Currency, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
                .Select(g => new CurrencyTotalView(g.Key, g.Sum(r => r.AmountMinor))).ToList();
            return new ReceiptsView(query.OrganizationId, query.FiscalYear, receipts, totals, position, ledgers);
        }

        /// <summary>The organization's receipts (null when there is no such organization).</summary>
        private static async Task<List<ReceiptView>?> ReadReceiptsAsync(NpgsqlDataReader reader, CancellationToken ct)
        {
            var known = await reader.ReadAsync(ct);
            await reader.NextResultAsync(ct);
            var receipts = new List<ReceiptView>();
            while (await reader.ReadAsync(ct))
            {
                receipts.Add(new ReceiptView(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4)));
            }

            return known ? receipts : null;
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/organizations/{organizationId}/receipts/{year}", async Task<Ok<ReceiptsView>> (
                string organizationId, int year, IMediator mediator, ClaimsPrincipal user, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(organizationId, year, FromStandby: !user.IsInRole(Roles.Admin)), ct)))
            .RequireAuthorization(Scopes.OrganizationReader)
            .WithName("GetOrganizationReceipts")
            .WithSummary("Get what an organization receives in a fiscal year")
            .WithDescription("Returns what an organization receives for a fiscal year from each canton, in that canton's currency: the " +
                             "amount, the redistributed amount and the number of taxpayers who chose it (never who), with totals per " +
                             "currency (amounts of different currencies are never added). The organization itself (a token whose " +
                             "subject is organizationId), the confederation admin and auditors may call it. Served from the budgets " +
                             "read model, which follows the event log within moments: position (and ledgers, for cantons on databases " +
                             "of their own) says through which event the figures reflect it.")
            .WithTags("Organizations")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
}
