namespace Confederal.Domain.Cantons;

public sealed record CantonRegistered(string CantonId, string Name, string Currency);

public sealed record CantonRenamed(string CantonId, string Name);

/// <summary>An autonomous canton of the confederation. Its currency is fixed once registered: amounts recorded in one
/// currency can never be re-read in another.</summary>
public sealed record Canton(string Id, string Name, string Currency)
{
    public static string StreamId(string cantonId) => $"canton-{cantonId}";

    public static Canton? Apply(Canton? state, object @event) => @event switch
    {
        CantonRegistered e => new Canton(e.CantonId, e.Name, e.Currency),
        CantonRenamed e when state is not null => state with { Name = e.Name },
        _ => state,
    };

    /// <summary>Registers the canton, renames it, or does nothing when it already stands as asked (a retried PUT).</summary>
    public static IReadOnlyList<object> Register(Canton? state, string id, string name, string currency)
    {
        if (state is null)
        {
            return [new CantonRegistered(id, name, currency)];
        }

        if (state.Currency != currency)
        {
            throw new DomainException("currency-is-fixed",
                $"Canton '{id}' keeps its accounts in {state.Currency}; its currency cannot become {currency}.");
        }

        return state.Name == name ? [] : [new CantonRenamed(id, name)];
    }
}
