using Confederal.Api.Features.Cantons;
using MediatR;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Confederal.Api.Pages;

/// <summary>/: the confederation's cantons, each with its public budget and ballots.</summary>
public sealed class IndexModel(IMediator mediator, TimeProvider clock) : PageModel
{
    public IReadOnlyList<CantonView> Cantons { get; private set; } = [];

    public int Year { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        Cantons = await mediator.Send(new GetCantons.ListQuery(), ct);
        Year = clock.GetUtcNow().Year;
    }
}
