using System.Text.RegularExpressions;

namespace Confederal.Domain;

/// <summary>The identifier formats of DESIGN.md.</summary>
public static partial class Identifiers
{
    /// <summary>cantonId, organizationId, pactId.</summary>
    [GeneratedRegex("^[a-z0-9][a-z0-9-]{1,62}\\z", RegexOptions.CultureInvariant)]
    public static partial Regex Slug();

    /// <summary>An opaque, confederation-wide person key: no names, no national numbers.</summary>
    [GeneratedRegex("^[A-Za-z0-9._:-]{1,64}\\z", RegexOptions.CultureInvariant)]
    public static partial Regex PersonId();

    public static bool IsSlug(string? value) => value is not null && Slug().IsMatch(value);

    public static bool IsPersonId(string? value) => value is not null && PersonId().IsMatch(value);
}
