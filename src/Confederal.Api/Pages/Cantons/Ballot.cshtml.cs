using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Cantons;
using Confederal.EventStore;
using MediatR;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Ballots = Confederal.Api.Features.Ballots.Ballots;

namespace Confederal.Api.Pages.Cantons;

/// <summary>/cantons/{cantonId}/ballots/{ballotId}: a ballot and, once certified, its results, where anyone holding a
/// receipt can check that it is among the counted ballots and with which option.</summary>
public sealed class BallotModel(IMediator mediator, EventLog events, TimeProvider clock) : PageModel, ICantonPage
{
    [BindProperty(SupportsGet = true)]
    public string CantonId { get; set; } = "";

    [BindProperty(SupportsGet = true)]
    public Guid BallotId { get; set; }

    [BindProperty]
    public string? Receipt { get; set; }

    public CantonView? Canton { get; private set; }

    public CantonFormat? Format { get; private set; }

    public BallotView? Ballot { get; private set; }

    public BallotResultsView? Results { get; private set; }

    /// <summary>After a check: the counted ballot with the receipt, or null when none has it.</summary>
    public CountedBallotView? Found { get; private set; }

    public bool Checked { get; private set; }

    public IReadOnlyList<PageMessage>? Refusal { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        return Page();
    }

    public async Task<IActionResult> OnPostCheckAsync(CancellationToken ct)
    {
        var ballot = await LoadAsync(ct);
        var receipt = Receipt?.Trim().ToLowerInvariant() ?? "";
        if (ballot?.Certified is not null && receipt.Length > 0)
        {
            Receipt = receipt;
            Checked = true;
            Found = receipt.Length == 24 && receipt.All(c => c is (>= 'a' and <= 'z') or (>= '2' and <= '7'))
                ? await BallotResultsView.FindAsync(events, ballot, receipt, ct)
                : null;
        }

        return Page();
    }

    private async Task<Domain.Ballots.Ballot?> LoadAsync(CancellationToken ct)
    {
        try
        {
            Canton = await mediator.Send(new GetCantons.OneQuery(CantonId), ct);
            Format = CantonFormat.For(Canton, Request);
            var (ballot, _) = await Ballots.ReadAsync(events, CantonId, BallotId, ct);
            Ballot = BallotView.From(ballot, clock.GetUtcNow());
            Results = ballot.Certified is null ? null : BallotResultsView.From(ballot, 0, []);
            return ballot;
        }
        catch (Exception e) when (Refusals.Of(e) is { } refusal)
        {
            Refusal = refusal;
            Response.StatusCode = StatusCodes.Status404NotFound;
            return null;
        }
    }
}
