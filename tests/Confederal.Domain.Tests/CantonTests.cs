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
}
