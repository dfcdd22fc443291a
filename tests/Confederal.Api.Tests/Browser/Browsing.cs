using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace Confederal.Api.Tests.Browser;

/// <summary>What the page scenarios check on any page: accessibility with axe-core, and a screenshot for people to look
/// at (written under <c>artifacts/screenshots/</c> at the repository root, which git ignores).</summary>
public static partial class Browsing
{
    private const string Run = """
        async () => {
          const results = await axe.run(document, { resultTypes: ['violations'] });
          return results.violations.map(v => ({
            id: v.id,
            impact: v.impact ?? '',
            help: v.help,
            helpUrl: v.helpUrl,
            nodes: v.nodes.map(n => ({
              target: n.target.map(t => Array.isArray(t) ? t.join(' >>> ') : t).join(', '),
              html: n.html,
              failureSummary: n.failureSummary ?? '',
            })),
          }));
        }
        """;

    /// <summary>Every axe-core violation on the page as it is now (rules of WCAG 2.x A/AA and axe's best practices).</summary>
    public static async Task<IReadOnlyList<AxeViolation>> AxeAsync(this IPage page)
    {
        if (!await page.EvaluateAsync<bool>("() => typeof window.axe === 'object'"))
        {
            // Evaluated through the DevTools protocol rather than added as a <script>: a page's Content-Security-Policy
            // does not apply, so the check never weakens the page it checks.
            await page.EvaluateAsync(await AxeCore.SourceAsync());
        }

        var violations = await page.EvaluateAsync<JsonElement>(Run);
        return violations.EnumerateArray().Select(v => new AxeViolation(
            v.GetProperty("id").GetString()!,
            v.GetProperty("impact").GetString()!,
            v.GetProperty("help").GetString()!,
            v.GetProperty("helpUrl").GetString()!,
            [.. v.GetProperty("nodes").EnumerateArray().Select(n => new AxeNode(
                n.GetProperty("target").GetString()!,
                n.GetProperty("html").GetString()!,
                n.GetProperty("failureSummary").GetString()!))])).ToList();
    }

    /// <summary>Fails, listing them, when axe-core finds a serious or critical violation on the page.</summary>
    public static async Task AssertAccessibleAsync(this IPage page)
    {
        var blocking = (await page.AxeAsync()).Where(v => v.IsSeriousOrCritical).ToList();
        if (blocking.Count == 0)
        {
            return;
        }

        var report = new StringBuilder($"{blocking.Count} serious or critical accessibility violation(s) on {page.Url}:");
        foreach (var violation in blocking)
        {
            report.AppendLine().Append(violation);
        }

        Assert.Fail(report.ToString());
    }

    /// <summary>Writes a full-page PNG of the page to <c>artifacts/screenshots/&lt;name&gt;.png</c> at the repository
    /// root and returns its path. <paramref name="name"/> is lowercase letters, digits and dashes.</summary>
    public static async Task<string> ScreenshotAsync(this IPage page, string name)
    {
        if (!ScreenshotName().IsMatch(name))
        {
            throw new ArgumentException($"A screenshot name is lowercase letters, digits and dashes: {name}", nameof(name));
        }

        var folder = Directory.CreateDirectory(ScreenshotFolder).FullName;
        var path = Path.Combine(folder, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true, Type = ScreenshotType.Png });
        return path;
    }

    /// <summary>The repository's <c>artifacts/screenshots/</c>.</summary>
    public static string ScreenshotFolder => Path.Combine(HostTests.RepositoryRoot(), "artifacts", "screenshots");

    [GeneratedRegex("^[a-z0-9]+(-[a-z0-9]+)*$")]
    private static partial Regex ScreenshotName();
}

/// <summary>One axe-core rule the page breaks, with the elements that break it.</summary>
public sealed record AxeViolation(string Id, string Impact, string Help, string HelpUrl, IReadOnlyList<AxeNode> Nodes)
{
    public bool IsSeriousOrCritical => Impact is "serious" or "critical";

    public override string ToString() =>
        $"  {Impact} {Id}: {Help} ({HelpUrl}){string.Concat(Nodes.Select(n => $"{Environment.NewLine}    {n.Target}  {n.Html}"))}";
}

/// <summary>An element that breaks a rule: its CSS selector, its HTML, and what axe-core says to fix.</summary>
public sealed record AxeNode(string Target, string Html, string FailureSummary);
