using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Organizations;
using Confederal.EventStore;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Organizations;

public sealed record OrganizationView(string OrganizationId, string Name, OrganizationKind Kind, bool AcceptsRedistribution, bool Suspended)
{
    public static OrganizationView From(Organization o) => new(o.Id, o.Name, o.Kind, o.AcceptsRedistribution, o.Suspended);
}

/// <summary>The public directory of organizations: a read model kept by the projection daemon.</summary>
public sealed class OrganizationDirectory : IProjection
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0002-organizations", """
            CREATE TABLE organizations (
                organization_id        text PRIMARY KEY,
                name                   text NOT NULL,
                kind                   text NOT NULL,
                accepts_redistribution boolean NOT NULL,
                suspended              boolean NOT NULL,
                position               bigint NOT NULL
            );
            """),
    ];

    public string Name => "organizations";

    public IReadOnlyCollection<Type> EventsRead =>
        [typeof(OrganizationRecognized), typeof(OrganizationUpdated), typeof(OrganizationSuspended), typeof(OrganizationReinstated)];

    public IReadOnlyList<string> Tables { get; } = ["public.organizations"];

    public Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct) =>
        Sql.ExecuteAsync(connection, [.. events.Select(e => e.Data switch
        {
            OrganizationRecognized o => Sql.Command("""
                INSERT INTO organizations (organization_id, name, kind, accepts_redistribution, suspended, position)
                VALUES ($1, $2, $3, $4, false, $5)
                """, o.OrganizationId, o.Name, Kind(o.Kind), o.AcceptsRedistribution, e.Position),
            OrganizationUpdated o => Sql.Command(
                "UPDATE organizations SET name = $2, kind = $3, accepts_redistribution = $4, position = $5 WHERE organization_id = $1",
                o.OrganizationId, o.Name, Kind(o.Kind), o.AcceptsRedistribution, e.Position),
            OrganizationSuspended o => Sql.Command(
                "UPDATE organizations SET suspended = true, position = $2 WHERE organization_id = $1", o.OrganizationId, e.Position),
            OrganizationReinstated o => Sql.Command(
                "UPDATE organizations SET suspended = false, position = $2 WHERE organization_id = $1", o.OrganizationId, e.Position),
            _ => null,
        }).OfType<NpgsqlBatchCommand>()], ct);

    private static string Kind(OrganizationKind kind) => kind.ToString().ToLowerInvariant();
}

/// <summary>GET /api/v1/organizations[?kind=…] and /api/v1/organizations/{organizationId}: public.</summary>
public static class GetOrganizations
{
    public sealed record ListQuery(OrganizationKind? Kind) : IRequest<IReadOnlyList<OrganizationView>>;

    public sealed record OneQuery(string OrganizationId) : IRequest<OrganizationView>;

    public sealed class Handler(NpgsqlDataSource db) : IRequestHandler<ListQuery, IReadOnlyList<OrganizationView>>, IRequestHandler<OneQuery, OrganizationView>
    {
        private const string Columns = "organization_id, name, kind, accepts_redistribution, suspended";

        public async Task<IReadOnlyList<OrganizationView>> Handle(ListQuery request, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand($"SELECT {Columns} FROM organizations WHERE $1::text IS NULL OR kind = $1 ORDER BY organization_id");
            command.Parameters.Add(new NpgsqlParameter { Value = request.Kind is { } k ? k.ToString().ToLowerInvariant() : DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            return await ReadAsync(command, cancellationToken);
        }

        public async Task<OrganizationView> Handle(OneQuery request, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand($"SELECT {Columns} FROM organizations WHERE organization_id = $1");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.OrganizationId });
            return (await ReadAsync(command, cancellationToken)).SingleOrDefault()
                   ?? throw new NotFoundException("Organization", request.OrganizationId);
        }

        private static async Task<IReadOnlyList<OrganizationView>> ReadAsync(NpgsqlCommand command, CancellationToken ct)
        {
            var organizations = new List<OrganizationView>();
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                organizations.Add(new OrganizationView(
                    reader.GetString(0), reader.GetString(1), Enum.Parse<OrganizationKind>(reader.GetString(2), ignoreCase: true),
                    reader.GetBoolean(3), reader.GetBoolean(4)));
            }

            return organizations;
        }
    }

    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapGet("/organizations", async Task<Ok<IReadOnlyList<OrganizationView>>> (string? kind, IMediator mediator, CancellationToken ct) =>
            {
                var parsed = kind is null ? (OrganizationKind?)null
                    : Enum.GetValues<OrganizationKind>().Where(k => k.ToString().Equals(kind, StringComparison.OrdinalIgnoreCase))
                          .Cast<OrganizationKind?>().SingleOrDefault()
                      ?? throw new BadHttpRequestException("kind must be one of cultural, origin, community, commons.");
                return TypedResults.Ok(await mediator.Send(new ListQuery(parsed), ct));
            })
            .AllowAnonymous()
            .WithName("ListOrganizations")
            .WithSummary("List the organizations")
            .WithDescription("Lists every recognized organization, in organizationId order, with its kind, whether it accepts " +
                             "redistributed money and whether it is suspended; the kind parameter narrows it to cultural, origin, " +
                             "community or commons organizations (400 for another kind). Public: no token needed. Served from a read " +
                             "model that follows the event log within moments.")
            .WithTags("Organizations");

        api.MapGet("/organizations/{organizationId}", async Task<Ok<OrganizationView>> (string organizationId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new OneQuery(organizationId), ct)))
            .AllowAnonymous()
            .WithName("GetOrganization")
            .WithSummary("Get an organization")
            .WithDescription("Returns one organization: its name, kind, whether it accepts redistributed money and whether it is " +
                             "suspended. Public: no token needed. Served from a read model that follows the event log within moments; " +
                             "404 for an id no organization has there.")
            .WithTags("Organizations")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }
}
