using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Confederal.Api.Pages;

/// <summary>/sign-in: a demo person picked from a list (Development and the embedded mode), or a token of the configured
/// issuer pasted into a form. The token goes into the page session's cookie, never into a URL.</summary>
public sealed class SignInModel(
    PageSignIn signIn, NpgsqlDataSource db, Features.Persons.PersonKeys persons, IOptionsMonitor<JwtBearerOptions> bearer, TimeProvider clock) : PageModel
{
    private const int DemoListSize = 200;

    [BindProperty(SupportsGet = true)]
    public string? ReturnUrl { get; set; }

    [BindProperty]
    public string? PersonId { get; set; }

    [BindProperty]
    public string? OtherPersonId { get; set; }

    [BindProperty]
    public string? Token { get; set; }

    public bool OffersDemoPeople => signIn.OffersDemoPeople;

    public IReadOnlyList<string> DemoPeople { get; private set; } = [];

    /// <summary>The key of the sentence saying why signing in was refused.</summary>
    public string? Refusal { get; private set; }

    public async Task OnGetAsync(CancellationToken ct) => DemoPeople = signIn.OffersDemoPeople ? await DemoPeopleAsync(ct) : [];

    public async Task<IActionResult> OnPostDemoAsync(CancellationToken ct)
    {
        if (!signIn.OffersDemoPeople)
        {
            return NotFound();
        }

        var person = string.IsNullOrWhiteSpace(OtherPersonId) ? PersonId : OtherPersonId.Trim();
        if (!Identifiers.IsPersonId(person))
        {
            return await RefuseAsync("SignIn.PickPerson", ct);
        }

        PageSession.Start(Response, signIn.IssueDemo(person!), clock.GetUtcNow() + PageSignIn.DemoLifetime);
        return LocalRedirect(PageSession.LocalPath(ReturnUrl));
    }

    public async Task<IActionResult> OnPostTokenAsync(CancellationToken ct)
    {
        var token = Token?.Trim();
        if (string.IsNullOrEmpty(token))
        {
            return await RefuseAsync("SignIn.PasteToken", ct);
        }

        var (expires, refusal) = await PageSignIn.ValidateAsync(token, bearer.Get(PageSession.Scheme), ct);
        if (refusal is not null)
        {
            return await RefuseAsync(refusal, ct);
        }

        PageSession.Start(Response, token, expires!.Value);
        return LocalRedirect(PageSession.LocalPath(ReturnUrl));
    }

    public IActionResult OnPostSignOut()
    {
        PageSession.End(Response);
        return LocalRedirect("/");
    }

    private async Task<IActionResult> RefuseAsync(string refusal, CancellationToken ct)
    {
        Refusal = refusal;
        Token = null;
        await OnGetAsync(ct);
        return Page();
    }

    // People known to the census, for picking one on a development machine: the register names them by residence
    // handles, which the key table turns back into person ids.
    private async Task<IReadOnlyList<string>> DemoPeopleAsync(CancellationToken ct)
    {
        var residents = await Sql.ListAsync(db, $"SELECT DISTINCT resident FROM residences ORDER BY 1 LIMIT {DemoListSize}", r => r.GetString(0), ct);
        var keys = await persons.ByResidentsAsync(residents, ct);
        return [.. keys.Values.Select(k => k.PersonId).Order(StringComparer.Ordinal)];
    }
}
