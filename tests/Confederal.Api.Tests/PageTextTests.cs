using System.Collections;
using System.Globalization;
using System.Resources;
using System.Text.RegularExpressions;
using Confederal.Api.Pages;
using Confederal.Domain.Census;
using Confederal.Domain.Organizations;
using Microsoft.Extensions.Localization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Confederal.Api.Tests;

/// <summary>The pages' texts as compiled into the API and its satellite assemblies: a missing or broken translation
/// fails here, not on a page.</summary>
public sealed partial class PageTextTests
{
    private static readonly ResourceManager Resources = new(typeof(Text).FullName!, typeof(Text).Assembly);

    public static TheoryData<string> Translations => [.. Languages.Supported.Select(l => l.Code).Where(c => c != Languages.Default)];

    [Fact]
    public void The_pages_speak_english_french_german_italian_spanish_and_japanese() =>
        Assert.Equal(["en", "fr", "de", "it", "es", "ja"], Languages.Supported.Select(l => l.Code));

    [Theory]
    [MemberData(nameof(Translations))]
    public void Every_text_exists_in_every_language_with_the_same_placeholders_and_markup(string language)
    {
        var english = In(Languages.Default);
        var translated = In(language);
        Assert.Equal(english.Keys.Order(StringComparer.Ordinal), translated.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, source) in english)
        {
            var text = translated[key];
            Assert.False(string.IsNullOrWhiteSpace(text), $"{language} {key} is empty");
            Assert.True(Placeholders(source).SetEquals(Placeholders(text)), $"{language} {key}: placeholders differ from English");
            Assert.Equal(Tags(source), Tags(text));
        }
    }

    [Theory]
    [MemberData(nameof(Translations))]
    [InlineData("en")]
    public void Only_texts_named_html_hold_markup_and_none_can_break_out_of_an_attribute(string language)
    {
        foreach (var (key, text) in In(language))
        {
            var words = Tag().Replace(text, "");
            Assert.False(words.Contains('<') || words.Contains('>') || words.Contains('"'), $"{language} {key}: a < > or \" outside a tag");
            Assert.Equal(key.EndsWith("Html", StringComparison.Ordinal), Tag().IsMatch(text));
        }
    }

    [Fact]
    public void Refusals_take_no_argument_but_the_id_of_what_is_missing()
    {
        foreach (var (key, text) in In(Languages.Default).Where(e => e.Key.StartsWith("Refusal.", StringComparison.Ordinal)))
        {
            var expected = key.EndsWith("-not-found", StringComparison.Ordinal) || key == "Refusal.other" ? new[] { "{0}" } : [];
            Assert.True(Placeholders(text).SetEquals(expected), $"{key}: {text}");
        }
    }

    [Fact]
    public void Every_refusal_code_the_code_can_raise_has_a_text_on_the_pages()
    {
        var codes = RefusalCodes();
        Assert.Contains("deadline-passed", codes); // the scan finds what it looks for
        Assert.Contains("canton-not-found", codes);
        Assert.Contains("shares-not-whole", codes);
        Assert.Contains("invalid-fiscal-year", codes);
        var english = In(Languages.Default);
        Assert.Equal([], codes.Where(c => !english.ContainsKey("Refusal." + c)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_words_the_platform_writes_have_texts_the_names_people_wrote_do_not()
    {
        var english = In(Languages.Default);
        string[] platform =
        [
            .. Enum.GetValues<OrganizationKind>().Select(k => "Kind." + Pages.Person.DesignationsModel.KindValue(k)),
            .. new[] { "scheduled", "open", "closing", "certified" }.Select(s => "Ballot.Status." + s),
            .. new[] { Ineligibility.NotResident, Ineligibility.UnderVotingAge, Ineligibility.ResidenceTooShort }.Select(r => "Ballots.Reason." + r),
            .. Domain.Ballots.Ballot.YesNo.Select(o => "Ballot.Option." + o),
        ];
        Assert.Equal([], platform.Where(k => !english.ContainsKey(k)));
    }

    [Fact]
    public void A_refusal_whose_code_has_no_text_yet_reads_as_a_general_sentence_in_the_language_of_the_page()
    {
        var text = new StringLocalizer<Text>(new ResourceManagerStringLocalizerFactory(
            Options.Create(new LocalizationOptions()), NullLoggerFactory.Instance));
        var before = CultureInfo.CurrentUICulture;
        try
        {
            CultureInfo.CurrentUICulture = CultureInfo.GetCultureInfo("fr");
            var said = text.Say(PageMessage.Refusal("a-code-of-tomorrow"));
            Assert.Equal(In("fr")["Refusal.other"].Replace("{0}", "a-code-of-tomorrow", StringComparison.Ordinal), said);
            Assert.Equal(In("fr")["Refusal.canton-not-found"].Replace("{0}", "zz", StringComparison.Ordinal),
                text.Say(PageMessage.Refusal("canton-not-found", "zz")));
        }
        finally
        {
            CultureInfo.CurrentUICulture = before;
        }
    }

    /// <summary>One language's texts, without falling back to English.</summary>
    internal static Dictionary<string, string> In(string language) =>
        Resources.GetResourceSet(language == Languages.Default ? CultureInfo.InvariantCulture : CultureInfo.GetCultureInfo(language), true, false)!
            .Cast<DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string)e.Value!);

    private static HashSet<string> Placeholders(string text) => [.. Placeholder().Matches(text).Select(m => m.Value)];

    private static List<string> Tags(string text) => [.. Tag().Matches(text).Select(m => m.Value).Order(StringComparer.Ordinal)];

    // Every code a page may be handed in an exception or a result, as the source writes them: the rules' codes, the
    // validators' error codes, the missing things' (NotFoundException's What, as its Code spells it), the designation
    // problems' and the reasons a carried proposal was not enacted.
    private static HashSet<string> RefusalCodes()
    {
        var codes = new HashSet<string>(StringComparer.Ordinal) { "concurrency-conflict" };
        foreach (var file in Directory.EnumerateFiles(Path.Combine(HostTests.RepositoryRoot(), "src"), "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            {
                continue;
            }

            var source = File.ReadAllText(file);
            codes.UnionWith(Code().Matches(source).Select(m => m.Groups["code"].Value));
            codes.UnionWith(Missing().Matches(source).Select(m => new Domain.NotFoundException(m.Groups["what"].Value, "").Code));
        }

        return codes;
    }

    [GeneratedRegex(@"\{\d+\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex("<[^<>]*>")]
    private static partial Regex Tag();

    [GeneratedRegex("""(?:(?:DomainException|ForbiddenException)\(\s*|ErrorCode = |WithErrorCode\(|new Problem\(|Enactment\(stream, version, \[\], )"(?<code>[a-z]+(?:-[a-z]+)+)"[,)]""")]
    private static partial Regex Code();

    [GeneratedRegex("""NotFoundException\("(?<what>[A-Z][a-z]+(?: [a-z]+)*)",""")]
    private static partial Regex Missing();
}
