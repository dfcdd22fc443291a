using System.Security.Claims;
using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Census;
using MediatR;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Npgsql;

namespace Confederal.Api.Pages.Person;

/// <summary>/me/ballots: a canton's ballots as the signed-in person sees them: whether they are on each roll and why
/// not, a vote on the open ones, the receipt of the vote just cast (shown once, stored nowhere with their name), and the
/// results of the certified ones.</summary>
public sealed class BallotsModel(IMediator mediator, NpgsqlDataSource db, Features.Persons.PersonKeys persons) : PageModel, ICantonPage
{
    [BindProperty(SupportsGet = true)]
    public string? Canton { get; set; }

    /// <summary>One ballot with what the person may know about their part in it.</summary>
    public sealed record Card(BallotView Ballot, EligibilityView? Eligibility, bool Participated);

    public string PersonId => User.FindFirstValue("sub")!;

    public IReadOnlyList<CantonView> Cantons { get; private set; } = [];

    public CantonView? Selected { get; private set; }

    public CantonFormat? Format { get; private set; }

    public IReadOnlyList<Card> Cards { get; private set; } = [];

    /// <summary>The vote just cast.</summary>
    public VoteReceipt? Receipt { get; private set; }

    public IReadOnlyList<PageMessage> Problems { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct) => await LoadAsync(ct);

    public async Task<IActionResult> OnPostVoteAsync(Guid ballotId, string? option, CancellationToken ct)
    {
        try
        {
            Receipt = await mediator.Send(new CastVote.Command(Canton ?? "", ballotId, PersonId, new CastVote.Body(option)), ct);
        }
        catch (Exception e) when (Refusals.Of(e) is { } refusal)
        {
            Problems = option is null ? [new("Ballots.ChooseOption")] : refusal;
        }

        await LoadAsync(ct);
        return Page();
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        Cantons = await mediator.Send(new GetCantons.ListQuery(), ct);
        Canton ??= (await Residences.ReadAsync(db, persons, PersonId, ct))?.Current?.CantonId ?? (Cantons.Count > 0 ? Cantons[0].CantonId : null);
        Selected = Cantons.FirstOrDefault(c => c.CantonId == Canton);
        if (Selected is null)
        {
            Problems = [.. Problems, Canton is null ? new("Index.NoCanton") : PageMessage.Refusal("canton-not-found", Canton)];
            return;
        }

        Format = CantonFormat.For(Selected, Request);
        var cards = new List<Card>();
        foreach (var ballot in await mediator.Send(new ListBallots.Query(Selected.CantonId, null), ct))
        {
            var eligibility = ballot.Status is "scheduled" or "open"
                ? await mediator.Send(new GetEligibility.Query(Selected.CantonId, ballot.BallotId, PersonId), ct)
                : null;
            var participated = (await mediator.Send(new GetParticipation.Query(Selected.CantonId, ballot.BallotId, PersonId), ct)).Participated;
            cards.Add(new Card(ballot, eligibility, participated));
        }

        Cards = cards;
    }
}
