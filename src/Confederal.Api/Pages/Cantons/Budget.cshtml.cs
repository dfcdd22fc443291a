using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Organizations;
using MediatR;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Npgsql;

namespace Confederal.Api.Pages.Cantons;

/// <summary>/cantons/{cantonId}/budgets/{year}[?asOf=]: a canton's public budget, the same read as the REST API's,
/// with the position of the log it is as of and when that event was recorded.</summary>
public sealed class BudgetModel(IMediator mediator, NpgsqlDataSource db) : PageModel, ICantonPage
{
    [BindProperty(SupportsGet = true)]
    public string CantonId { get; set; } = "";

    [BindProperty(SupportsGet = true)]
    public int Year { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? AsOf { get; set; }

    public CantonView? Canton { get; private set; }

    public BudgetView? Budget { get; private set; }

    public CantonFormat? Format { get; private set; }

    public DateTimeOffset? RecordedAt { get; private set; }

    public IReadOnlyDictionary<string, string> OrganizationNames { get; private set; } = new Dictionary<string, string>();

    public IReadOnlyList<PageMessage>? Refusal { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        try
        {
            Canton = await mediator.Send(new GetCantons.OneQuery(CantonId), ct);
            Format = CantonFormat.For(Canton, Request);
            Budget = await mediator.Send(new GetBudget.Query(CantonId, Year, string.IsNullOrWhiteSpace(AsOf) ? null : AsOf.Trim()), ct);
        }
        catch (Exception e) when (Refusals.Of(e) is { } refusal)
        {
            Refusal = refusal;
            Response.StatusCode = Canton is null ? StatusCodes.Status404NotFound : StatusCodes.Status400BadRequest;
            return Page();
        }

        OrganizationNames = (await mediator.Send(new GetOrganizations.ListQuery(null), ct)).ToDictionary(o => o.OrganizationId, o => o.Name);
        RecordedAt = await RecordedAtAsync(Budget.Position, ct);
        return Page();
    }

    public string NameOf(string organizationId) => OrganizationNames.GetValueOrDefault(organizationId, organizationId);

    private async Task<DateTimeOffset?> RecordedAtAsync(long position, CancellationToken ct)
    {
        // The position is a projection's progress, which may stand on a number no event took: the event at or before it.
        await using var command = db.CreateCommand($"SELECT timestamp FROM {Confederal.EventStore.EventLog.Table} WHERE seq_id <= $1 ORDER BY seq_id DESC LIMIT 1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = position });
        return await command.ExecuteScalarAsync(ct) is DateTime at ? new DateTimeOffset(at, TimeSpan.Zero) : null;
    }
}
