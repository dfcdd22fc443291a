using System.Globalization;
using System.Security.Claims;
using System.Text.RegularExpressions;
using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Census;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Organizations;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using MediatR;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Npgsql;

namespace Confederal.Api.Pages.Person;

/// <summary>/me/designations: the signed-in person's designation for a canton and year. The amounts a choice would give
/// are split by the same code the server splits them with; saving and withdrawing go through the same handlers as the
/// REST API, so the page can refuse nothing the API would accept, nor accept anything it would refuse.</summary>
public sealed partial class DesignationsModel(IMediator mediator, NpgsqlDataSource db, Features.Persons.PersonKeys persons, TimeProvider clock)
    : PageModel, ICantonPage
{
    [BindProperty(SupportsGet = true)]
    public string? Canton { get; set; }

    [BindProperty(SupportsGet = true)]
    public int? Year { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Search { get; set; }

    [BindProperty(SupportsGet = true)]
    public string? Kind { get; set; }

    [BindProperty]
    public IList<Row> Rows { get; set; } = [];

    [BindProperty]
    public bool Standing { get; set; }

    /// <summary>One line of the form: an organization and its share in percent, as typed.</summary>
    public sealed class Row
    {
        public string? OrganizationId { get; set; }

        public string? Share { get; set; }
    }

    /// <summary>What a choice would give one organization.</summary>
    public sealed record PreviewLine(string OrganizationId, int ShareBp, long? AmountMinor);

    public string PersonId => User.FindFirstValue("sub")!;

    public IReadOnlyList<CantonView> Cantons { get; private set; } = [];

    public CantonView? Selected { get; private set; }

    public CantonFormat? Format { get; private set; }

    public FiscalPolicyView? Policy { get; private set; }

    public DesignationView? Current { get; private set; }

    /// <summary>Organizations that can be chosen this year: recognized, not suspended, eligible under the policy.</summary>
    public IReadOnlyList<OrganizationView> Eligible { get; private set; } = [];

    /// <summary>The eligible organizations the search and the kind filter leave.</summary>
    public IReadOnlyList<OrganizationView> Shown { get; private set; } = [];

    public IReadOnlyList<PreviewLine>? Preview { get; private set; }

    public IReadOnlyList<PageMessage> Problems { get; private set; } = [];

    /// <summary>After a redirect: the key of the sentence saying what was done.</summary>
    [TempData]
    public string? Done { get; set; }

    public bool CanChange => Policy is { Open: true };

    public int RowCount => Policy?.MaxOrganizations ?? FiscalPolicy.DefaultMaxOrganizations;

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        if (Current is not null)
        {
            Rows = [.. Current.Choices.Select(c => new Row { OrganizationId = c.OrganizationId, Share = Percent(c.ShareBp) })];
            Standing = Current.Standing;
        }

        return Page();
    }

    public async Task<IActionResult> OnPostPreviewAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        if (Rows.Any(r => !string.IsNullOrWhiteSpace(r.OrganizationId) || !string.IsNullOrWhiteSpace(r.Share)) && Choices() is { } choices)
        {
            var designation = Designation.Create(choices, Standing);
            var amounts = Current?.DesignableMinor is { } designable ? designation.Amounts(designable) : null;
            Preview = [.. designation.Choices.Select((c, i) => new PreviewLine(c.OrganizationId, c.ShareBp, amounts?[i]))];
        }

        return Page();
    }

    public async Task<IActionResult> OnPostSaveAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        if (Choices() is not { } choices)
        {
            return Page();
        }

        return await RefusedAsync(() => mediator.Send(
                new Designate.Command(Canton!, Year!.Value, PersonId, new Designate.Body(choices, Standing), HttpContext.Metadata()), ct),
            Standing ? "Designations.SavedStanding" : "Designations.Saved");
    }

    public async Task<IActionResult> OnPostWithdrawAsync(CancellationToken ct)
    {
        await LoadAsync(ct);
        return await RefusedAsync(() => mediator.Send(new Designate.Withdraw(Canton!, Year!.Value, PersonId, HttpContext.Metadata()), ct),
            "Designations.Withdrawn");
    }

    public string NameOf(string organizationId) =>
        Eligible.FirstOrDefault(o => o.OrganizationId == organizationId)?.Name ?? organizationId;

    /// <summary>The organizations a row's list offers: those shown, and the row's own choice even when filtered out.</summary>
    public IEnumerable<OrganizationView> OptionsFor(Row? row) =>
        row?.OrganizationId is { Length: > 0 } chosen && Shown.All(o => o.OrganizationId != chosen)
            ? Eligible.Where(o => o.OrganizationId == chosen).Concat(Shown)
            : Shown;

    public static string KindValue(OrganizationKind kind) => kind.ToString().ToLowerInvariant();

    // Percent with at most two decimals, with a point or a comma: 33.34 or 33,34 → 3334 bp.
    [GeneratedRegex(@"^\s*(\d{1,3})(?:[.,](\d{1,2}))?\s*%?\s*$")]
    private static partial Regex PercentPattern();

    private static string Percent(int bp) =>
        (bp / 100m).ToString(bp % 100 == 0 ? "0" : "0.00", CultureInfo.InvariantCulture);

    private async Task<IActionResult> RefusedAsync(Func<Task> send, string doneKey)
    {
        try
        {
            await send();
        }
        catch (Exception e) when (Refusals.Of(e) is { } refusal)
        {
            Problems = refusal;
            return Page();
        }

        Done = doneKey;
        return RedirectToPage(new { canton = Canton, year = Year });
    }

    /// <summary>The rows as choices, or null with <see cref="Problems"/> telling the person what to mend.</summary>
    private List<Choice>? Choices()
    {
        var problems = new List<PageMessage>();
        var choices = new List<Choice>();
        foreach (var (row, i) in Rows.Select((r, i) => (r, i + 1)))
        {
            var (organization, share) = (row.OrganizationId?.Trim() ?? "", row.Share?.Trim() ?? "");
            if (organization.Length == 0 && share.Length == 0)
            {
                continue;
            }

            if (organization.Length == 0)
            {
                problems.Add(new("Designations.LineWithoutOrganization", i, share));
            }
            else if (PercentPattern().Match(share) is not { Success: true } m)
            {
                problems.Add(new("Designations.LineWithoutShare", i, NameOf(organization)));
            }
            else
            {
                var bp = int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) * 100
                         + (m.Groups[2].Success ? int.Parse(m.Groups[2].Value.PadRight(2, '0'), CultureInfo.InvariantCulture) : 0);
                choices.Add(new Choice(organization, bp));
            }
        }

        if (problems.Count == 0)
        {
            problems.AddRange(Designation.Problems(choices).Select(p => p.Code == "shares-not-whole"
                ? new PageMessage("Designations.SharesAddUpTo", Format?.Share(choices.Sum(c => c.ShareBp)) ?? "")
                : PageMessage.Refusal(p.Code)));
        }

        Problems = problems;
        return problems.Count == 0 ? choices : null;
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        Cantons = await mediator.Send(new GetCantons.ListQuery(), ct);
        Canton ??= (await Residences.ReadAsync(db, persons, PersonId, ct))?.Current?.CantonId ?? (Cantons.Count > 0 ? Cantons[0].CantonId : null);
        Year ??= clock.GetUtcNow().Year;
        Selected = Cantons.FirstOrDefault(c => c.CantonId == Canton);
        if (Selected is null)
        {
            Problems = [Canton is null ? new("Index.NoCanton") : PageMessage.Refusal("canton-not-found", Canton)];
            return;
        }

        Format = CantonFormat.For(Selected, Request);
        try
        {
            Current = await mediator.Send(new Designate.Query(Selected.CantonId, Year.Value, PersonId), ct);
            Policy = await mediator.Send(new SetFiscalPolicy.Query(Selected.CantonId, Year.Value), ct);
        }
        catch (NotFoundException)
        {
            Policy = null;
        }
        catch (Exception e) when (Refusals.Of(e) is { } refusal)
        {
            Problems = refusal;
            return;
        }

        var eligible = Policy?.EligibleOrganizations as IEnumerable<string>;
        Eligible = [.. (await mediator.Send(new GetOrganizations.ListQuery(null), ct))
            .Where(o => !o.Suspended && (eligible is null || eligible.Contains(o.OrganizationId, StringComparer.Ordinal)))
            .OrderBy(o => o.Name, StringComparer.Create(Format.Culture, ignoreCase: true))];
        var kind = Enum.TryParse<OrganizationKind>(Kind, ignoreCase: true, out var k) ? k : (OrganizationKind?)null;
        Shown = [.. Eligible.Where(o => (kind is null || o.Kind == kind)
            && (string.IsNullOrWhiteSpace(Search)
                || Format.Culture.CompareInfo.IndexOf(o.Name, Search.Trim(), CompareOptions.IgnoreCase | CompareOptions.IgnoreNonSpace) >= 0
                || o.OrganizationId.Contains(Search.Trim(), StringComparison.OrdinalIgnoreCase)))];
    }
}
