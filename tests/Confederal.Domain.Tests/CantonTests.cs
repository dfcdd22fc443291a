using Confederal.Domain.Cantons;

namespace Confederal.Domain.Tests;

public sealed class CantonTests
{
    [Fact]
    public void A_new_canton_is_registered()
    {
        Assert.Equal([new CantonRegistered("ge", "Genève", "CHF")], Canton.Register(null, "ge", "Genève", "CHF"));
    }

    [Fact]
    public void Registering_again_as_it_stands_decides_nothing()
    {
        var state = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF"));

        Assert.Empty(Canton.Register(state, "ge", "Genève", "CHF"));
    }

    [Fact]
    public void Registering_with_another_name_renames()
    {
        var state = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF"));

        var decided = Canton.Register(state, "ge", "Genf", "CHF");

        Assert.Equal([new CantonRenamed("ge", "Genf")], decided);
        Assert.Equal(new Canton("ge", "Genf", "CHF"), decided.Aggregate(state, Canton.Apply));
    }

    [Fact]
    public void A_cantons_currency_is_fixed_once_registered()
    {
        var state = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF"));

        var error = Assert.Throws<DomainException>(() => Canton.Register(state, "ge", "Genève", "EUR"));

        Assert.Equal("currency-is-fixed", error.Code);
    }

    [Fact]
    public void A_canton_registered_without_locale_and_time_zone_has_en_and_utc()
    {
        var decided = Canton.Register(null, "ge", "Genève", "CHF");

        Assert.Equal([new CantonRegistered("ge", "Genève", "CHF", "en", "UTC")], decided);
        Assert.Equal(new Canton("ge", "Genève", "CHF", "en", "UTC"), decided.Aggregate((Canton?)null, Canton.Apply));
    }

    [Fact]
    public void A_canton_registered_with_locale_and_time_zone_keeps_them()
    {
        Assert.Equal([new CantonRegistered("ti", "Ticino", "CHF", "it-CH", "Europe/Zurich")],
            Canton.Register(null, "ti", "Ticino", "CHF", "it-CH", "Europe/Zurich"));
    }

    [Fact]
    public void Another_locale_or_time_zone_records_one_event_with_both_and_an_omitted_one_stays()
    {
        var state = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF", "fr-CH", "Europe/Zurich"));

        var decided = Canton.Register(state, "ge", "Genève", "CHF", timeZone: "Europe/Paris");

        Assert.Equal([new CantonLocaleSet("ge", "fr-CH", "Europe/Paris")], decided);
        Assert.Equal(new Canton("ge", "Genève", "CHF", "fr-CH", "Europe/Paris"), decided.Aggregate(state, Canton.Apply));
        Assert.Equal([new CantonLocaleSet("ge", "de-CH", "Europe/Zurich")], Canton.Register(state, "ge", "Genève", "CHF", "de-CH"));
    }

    [Fact]
    public void The_same_or_an_omitted_locale_and_time_zone_decide_nothing()
    {
        var state = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF", "fr-CH", "Europe/Zurich"));

        Assert.Empty(Canton.Register(state, "ge", "Genève", "CHF"));
        Assert.Empty(Canton.Register(state, "ge", "Genève", "CHF", "fr-CH", "Europe/Zurich"));
        Assert.Empty(Canton.Register(state, "ge", "Genève", "CHF", "fr-CH"));
    }

    [Fact]
    public void A_rename_and_a_new_locale_are_two_events()
    {
        var state = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF"));

        Assert.Equal([new CantonRenamed("ge", "Genf"), new CantonLocaleSet("ge", "de-CH", "UTC")], Canton.Register(state, "ge", "Genf", "CHF", "de-CH"));
    }

    [Fact]
    public void Tax_records_are_kept_ten_years_after_their_year_unless_the_canton_says_otherwise()
    {
        var registered = Canton.Apply(null, new CantonRegistered("ge", "Genève", "CHF"))!;
        Assert.Equal(new DateOnly(2036, 12, 31), registered.RetainedUntil(2026));

        var decided = Canton.Register(null, "ge", "Genève", "CHF", taxRetentionYears: 7);
        Assert.Equal([new CantonRegistered("ge", "Genève", "CHF"), new CantonRetentionSet("ge", 7)], decided);
        var state = decided.Aggregate((Canton?)null, Canton.Apply)!;
        Assert.Equal(new DateOnly(2033, 12, 31), state.RetainedUntil(2026));
        Assert.Empty(Canton.Register(state, "ge", "Genève", "CHF", taxRetentionYears: 7));
        Assert.Empty(Canton.Register(state, "ge", "Genève", "CHF"));
        Assert.Equal([new CantonRetentionSet("ge", 0)], Canton.Register(state, "ge", "Genève", "CHF", taxRetentionYears: 0));
        Assert.Equal("invalid-retention", Assert.Throws<DomainException>(() => Canton.Register(state, "ge", "Genève", "CHF", taxRetentionYears: -1)).Code);
    }
}
