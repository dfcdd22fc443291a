namespace Confederal.Domain.Organizations;

public enum OrganizationKind
{
    Cultural,
    Origin,
    Community,
    Commons,
}

public sealed record OrganizationRecognized(string OrganizationId, string Name, OrganizationKind Kind, bool AcceptsRedistribution);

public sealed record OrganizationUpdated(string OrganizationId, string Name, OrganizationKind Kind, bool AcceptsRedistribution);

public sealed record OrganizationSuspended(string OrganizationId);

public sealed record OrganizationReinstated(string OrganizationId);

/// <summary>A transnational commons organization recognized by the confederation. A suspended one keeps its history
/// but cannot be chosen, and receives nothing for years still open when it was suspended.</summary>
public sealed record Organization(string Id, string Name, OrganizationKind Kind, bool AcceptsRedistribution, bool Suspended)
{
    public static string StreamId(string organizationId) => $"organization-{organizationId}";

    public static Organization? Apply(Organization? state, object @event) => @event switch
    {
        OrganizationRecognized e => new Organization(e.OrganizationId, e.Name, e.Kind, e.AcceptsRedistribution, Suspended: false),
        OrganizationUpdated e when state is not null => state with { Name = e.Name, Kind = e.Kind, AcceptsRedistribution = e.AcceptsRedistribution },
        OrganizationSuspended when state is not null => state with { Suspended = true },
        OrganizationReinstated when state is not null => state with { Suspended = false },
        _ => state,
    };

    /// <summary>Recognizes the organization, updates it, or does nothing when it already stands as asked.</summary>
    public static IReadOnlyList<object> Recognize(Organization? state, string id, string name, OrganizationKind kind, bool acceptsRedistribution)
    {
        if (state is null)
        {
            return [new OrganizationRecognized(id, name, kind, acceptsRedistribution)];
        }

        return state.Name == name && state.Kind == kind && state.AcceptsRedistribution == acceptsRedistribution
            ? []
            : [new OrganizationUpdated(id, name, kind, acceptsRedistribution)];
    }

    /// <summary>Suspends it; suspending a suspended organization records nothing (a retry).</summary>
    public static IReadOnlyList<object> Suspend(Organization? state, string id) =>
        Known(state, id).Suspended ? [] : [new OrganizationSuspended(id)];

    /// <summary>Reinstates it; reinstating an active organization records nothing (a retry).</summary>
    public static IReadOnlyList<object> Reinstate(Organization? state, string id) =>
        Known(state, id).Suspended ? [new OrganizationReinstated(id)] : [];

    private static Organization Known(Organization? state, string id) =>
        state ?? throw new NotFoundException("Organization", id);
}
