using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.EventStore;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Cantons;

public sealed record CantonView(string CantonId, string Name, string Currency)
{
    public static CantonView From(Canton canton) => new(canton.Id, canton.Name, canton.Currency);
}

/// <summary>The public directory of cantons: a read model kept by the projection daemon.</summary>
public sealed class CantonDirectory : IProjection
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0001-cantons", """
            CREATE TABLE cantons (
                canton_id text PRIMARY KEY,
                name      text NOT NULL,
                currency  text NOT NULL,
                position  bigint NOT NULL
            );
            """),
    ];

    public string Name => "cantons";

    public IReadOnlyCollection<Type> EventsRead => [typeof(CantonRegistered), typeof(CantonRenamed)];

    public Task ResetAsync(NpgsqlConnection connection, CancellationToken ct) => Sql.TruncateAsync(connection, "cantons", ct);

    public Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct) =>
        Sql.ExecuteAsync(connection, [.. events.Select(e => e.Data switch
        {
            CantonRegistered r => Sql.Command(
                "INSERT INTO cantons (canton_id, name, currency, position) VALUES ($1, $2, $3, $4)", r.CantonId, r.Name, r.Currency, e.Position),
            CantonRenamed r => Sql.Command("UPDATE cantons SET name = $2, position = $3 WHERE canton_id = $1", r.CantonId, r.Name, e.Position),
            _ => null,
        }).OfType<NpgsqlBatchCommand>()], ct);
}

/// <summary>GET /api/v1/cantons and /api/v1/cantons/{cantonId}: public.</summary>
public static class GetCantons
{
    public sealed record ListQuery : IRequest<IReadOnlyList<CantonView>>;

    public sealed record OneQuery(string CantonId) : IRequest<CantonView>;

    public sealed class Handler(NpgsqlDataSource db) : IRequestHandler<ListQuery, IReadOnlyList<CantonView>>, IRequestHandler<OneQuery, CantonView>
    {
        public async Task<IReadOnlyList<CantonView>> Handle(ListQuery request, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand("SELECT canton_id, name, currency FROM cantons ORDER BY canton_id");
            return await ReadAsync(command, cancellationToken);
        }

        public async Task<CantonView> Handle(OneQuery request, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand("SELECT canton_id, name, currency FROM cantons WHERE canton_id = $1");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = request.CantonId });
            return (await ReadAsync(command, cancellationToken)).SingleOrDefault()
                   ?? throw new NotFoundException("Canton", request.CantonId);
        }

        private static async Task<IReadOnlyList<CantonView>> ReadAsync(NpgsqlCommand command, CancellationToken ct)
        {
            var cantons = new List<CantonView>();
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                cantons.Add(new CantonView(reader.GetString(0), reader.GetString(1), reader.GetString(2)));
            }

            return cantons;
        }
    }

    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapGet("/cantons", async Task<Ok<IReadOnlyList<CantonView>>> (IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new ListQuery(), ct)))
            .AllowAnonymous()
            .WithName("ListCantons")
            .WithTags("Cantons");

        api.MapGet("/cantons/{cantonId}", async Task<Ok<CantonView>> (string cantonId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new OneQuery(cantonId), ct)))
            .AllowAnonymous()
            .WithName("GetCanton")
            .WithTags("Cantons")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }
}
