using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.EventStore;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Cantons;

/// <summary>A canton as anyone may read it. <see cref="Locale"/> (a .NET culture name such as fr-CH) and
/// <see cref="TimeZone"/> (an IANA id such as Europe/Zurich) say how its amounts and dates are shown to people;
/// <see cref="TaxRetentionYears"/>, how many years after a fiscal year its tax records are kept.</summary>
public sealed record CantonView(string CantonId, string Name, string Currency, string Locale, string TimeZone, int TaxRetentionYears)
{
    public static CantonView From(Canton canton) => new(canton.Id, canton.Name, canton.Currency, canton.Locale, canton.TimeZone, canton.TaxRetentionYears);
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
        new("app-0009-canton-locale", """
            ALTER TABLE cantons ADD COLUMN locale text NOT NULL DEFAULT 'en', ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
            ALTER TABLE cantons ALTER COLUMN locale DROP DEFAULT, ALTER COLUMN time_zone DROP DEFAULT;
            """),
        new("app-0013-canton-retention", "ALTER TABLE cantons ADD COLUMN tax_retention_years int NOT NULL DEFAULT 10;"),
    ];

    public string Name => "cantons";

    public IReadOnlyCollection<Type> EventsRead => [typeof(CantonRegistered), typeof(CantonRenamed), typeof(CantonLocaleSet), typeof(CantonRetentionSet)];

    public IReadOnlyList<string> Tables { get; } = ["public.cantons"];

    public Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct) =>
        Sql.ExecuteAsync(connection, [.. events.Select(e => e.Data switch
        {
            CantonRegistered r => Sql.Command(
                "INSERT INTO cantons (canton_id, name, currency, locale, time_zone, position) VALUES ($1, $2, $3, $4, $5, $6)",
                r.CantonId, r.Name, r.Currency, r.Locale, r.TimeZone, e.Position),
            CantonRenamed r => Sql.Command("UPDATE cantons SET name = $2, position = $3 WHERE canton_id = $1", r.CantonId, r.Name, e.Position),
            CantonLocaleSet r => Sql.Command(
                "UPDATE cantons SET locale = $2, time_zone = $3, position = $4 WHERE canton_id = $1", r.CantonId, r.Locale, r.TimeZone, e.Position),
            CantonRetentionSet r => Sql.Command(
                "UPDATE cantons SET tax_retention_years = $2, position = $3 WHERE canton_id = $1", r.CantonId, r.TaxRetentionYears, e.Position),
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
        private const string Columns = "canton_id, name, currency, locale, time_zone, tax_retention_years";

        public async Task<IReadOnlyList<CantonView>> Handle(ListQuery request, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand($"SELECT {Columns} FROM cantons ORDER BY canton_id");
            return await ReadAsync(command, cancellationToken);
        }

        public async Task<CantonView> Handle(OneQuery request, CancellationToken cancellationToken)
        {
            await using var command = db.CreateCommand($"SELECT {Columns} FROM cantons WHERE canton_id = $1");
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
                cantons.Add(new CantonView(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetInt32(5)));
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
            .WithSummary("List the cantons")
            .WithDescription("Lists every registered canton, in cantonId order, with its currency, locale, time zone and tax retention. " +
                             "Public: no token needed. Served from a read model that follows the event log within moments, so a canton " +
                             "registered a moment ago may not be listed yet.")
            .WithTags("Cantons");

        api.MapGet("/cantons/{cantonId}", async Task<Ok<CantonView>> (string cantonId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new OneQuery(cantonId), ct)))
            .AllowAnonymous()
            .WithName("GetCanton")
            .WithSummary("Get a canton")
            .WithDescription("Returns one canton: its name, currency, locale, time zone and tax retention. Public: no token needed. " +
                             "Served from the same read model as the list, which follows the event log within moments; 404 for an id no " +
                             "canton has there.")
            .WithTags("Cantons")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }
}
