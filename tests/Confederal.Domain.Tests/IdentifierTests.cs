namespace Confederal.Domain.Tests;

public sealed class IdentifierTests
{
    [Theory]
    [InlineData("ge", true)]
    [InlineData("basel-stadt", true)]
    [InlineData("0x", true)]
    [InlineData("g", false)]
    [InlineData("-ge", false)]
    [InlineData("GE", false)]
    [InlineData("g e", false)]
    [InlineData("gé", false)]
    [InlineData("ge\n", false)]
    [InlineData(null, false)]
    public void Slugs_are_lowercase_letters_digits_and_dashes_of_2_to_63(string? value, bool valid) =>
        Assert.Equal(valid, Identifiers.IsSlug(value));

    [Fact]
    public void A_slug_is_at_most_63_characters()
    {
        Assert.True(Identifiers.IsSlug(new string('a', 63)));
        Assert.False(Identifiers.IsSlug(new string('a', 64)));
    }

    [Theory]
    [InlineData("it-001", true)]
    [InlineData("A.b_c:d-9", true)]
    [InlineData("", false)]
    [InlineData("anna maria", false)]
    [InlineData("zoë", false)]
    [InlineData("it-001\n", false)]
    public void Person_ids_are_opaque_keys_of_safe_characters(string value, bool valid) =>
        Assert.Equal(valid, Identifiers.IsPersonId(value));

    [Fact]
    public void A_person_id_is_at_most_64_characters()
    {
        Assert.True(Identifiers.IsPersonId(new string('p', 64)));
        Assert.False(Identifiers.IsPersonId(new string('p', 65)));
    }

    [Theory]
    [InlineData("CHF", true, 2)]
    [InlineData("JPY", true, 0)]
    [InlineData("KWD", true, 3)]
    [InlineData("chf", false, 0)]
    [InlineData("XYZ", false, 0)]
    public void Currencies_are_active_iso_4217_codes_with_their_minor_unit(string code, bool known, int digits)
    {
        Assert.Equal(known, Currencies.IsKnown(code));
        if (known)
        {
            Assert.Equal(digits, Currencies.MinorUnitDigits(code));
        }
    }
}
