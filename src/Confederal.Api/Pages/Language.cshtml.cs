using Confederal.Api.Infrastructure;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Confederal.Api.Pages;

/// <summary>POST /language: the language menu of every page. Remembers the person's choice in a cookie for a year (a
/// preference, nothing about who they are) and returns to the page they were on.</summary>
public sealed class LanguageModel : PageModel
{
    private static readonly TimeSpan Remembered = TimeSpan.FromDays(365);

    [BindProperty]
    public string? Language { get; set; }

    [BindProperty]
    public string? ReturnUrl { get; set; }

    public IActionResult OnGet() => LocalRedirect("/");

    public IActionResult OnPost()
    {
        if (!Languages.IsSupported(Language))
        {
            return BadRequest();
        }

        Response.Cookies.Append(Languages.Cookie, Language!, new CookieOptions
        {
            HttpOnly = true,
            Secure = Request.IsHttps,
            SameSite = SameSiteMode.Lax,
            Path = "/",
            MaxAge = Remembered,
            IsEssential = true,
        });
        return LocalRedirect(PageSession.LocalPath(ReturnUrl));
    }
}
