using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Ballots;
using Confederal.Domain.Cantons;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Ballots;

/// <summary>Which ballots each canton has called, and when they open and close: a read model kept by the projection
/// daemon so that a canton's ballots are found without scanning the log. What a ballot says and its status are read
/// from its stream, as GET …/ballots/{ballotId} reads them.</summary>
public sealed class BallotDirectory : IProjection
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0010-ballots", """
            CREATE TABLE ballots (
                ballot_id uuid PRIMARY KEY,
                canton_id text NOT NULL,
                opens_at  timestamptz NOT NULL,
                closes_at timestamptz NOT NULL,
                position  bigint NOT NULL
            );
            CREATE INDEX ballots_by_canton ON ballots (canton_id, opens_at DESC, ballot_id);
            """),
    ];

    public const string ProjectionName = "ballots";

    public string Name => ProjectionName;

    public IReadOnlyCollection<Type> EventsRead => [typeof(BallotCalled)];

    public IReadOnlyList<string> Tables { get; } = ["public.ballots"];

    public Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct) =>
        Sql.ExecuteAsync(connection, [.. events.Select(e => e.Data switch
        {
            BallotCalled c => Sql.Command(
                "INSERT INTO ballots (ballot_id, canton_id, opens_at, closes_at, position) VALUES ($1, $2, $3, $4, $5)",
                c.BallotId, c.CantonId, c.OpensAt.ToUniversalTime(), c.ClosesAt.ToUniversalTime(), e.Position),
            _ => null,
        }).OfType<NpgsqlBatchCommand>()], ct);
}

/// <summary>GET /api/v1/cantons/{cantonId}/ballots[?status=scheduled|open|closing|certified]: public, the canton's ballots
/// as GET …/ballots/{ballotId} shows each, the latest to open first (then by ballotId). A ballot called in the last
/// moments may be missing until the directory has caught up with it (milliseconds).</summary>
public static class ListBallots
{
    public static readonly IReadOnlyList<string> Statuses = ["scheduled", "open", "closing", "certified"];

    public sealed record Query(string CantonId, string? Status) : IRequest<IReadOnlyList<BallotView>>;

    public sealed class Validator : AbstractValidator<Query>
    {
        public Validator() =>
            RuleFor(q => q.Status).Must(s => s is null || Statuses.Contains(s, StringComparer.Ordinal))
                .WithMessage("status must be one of scheduled, open, closing, certified.");
    }

    public sealed class Handler(Placement placement, TimeProvider clock) : IRequestHandler<Query, IReadOnlyList<BallotView>>
    {
        // The directory keeps microseconds and the ballots ticks: its times only narrow the search, by a margin wider
        // than that rounding; the status itself is decided on the ballot as read from its stream.
        private static readonly TimeSpan Margin = TimeSpan.FromMilliseconds(1);

        public async Task<IReadOnlyList<BallotView>> Handle(Query query, CancellationToken cancellationToken)
        {
            var (events, db) = placement.Ledger(query.CantonId);
            var now = clock.GetUtcNow();
            var ids = await CandidatesAsync(query, now, cancellationToken);
            var streams = await events.ReadStreamsAsync([Canton.StreamId(query.CantonId), .. ids.Select(Ballot.StreamId)], cancellationToken);
            if (!streams.ContainsKey(Canton.StreamId(query.CantonId)))
            {
                throw new NotFoundException("Canton", query.CantonId);
            }

            return
            [
                .. ids.Select(id => streams.GetValueOrDefault(Ballot.StreamId(id)).Fold<Ballot>(Ballot.Apply).State)
                    .OfType<Ballot>()
                    .Where(b => b.Called.CantonId == query.CantonId)
                    .Select(b => BallotView.From(b, now))
                    .Where(v => query.Status is null || v.Status == query.Status)
                    .OrderByDescending(v => v.OpensAt)
                    .ThenBy(v => v.BallotId),
            ];
        }

        private static string Window(string? status) => status switch
        {
            "scheduled" => "AND opens_at > $2 - $3",
            "open" => "AND opens_at <= $2 + $3 AND closes_at > $2 - $3",
            "closing" => "AND closes_at <= $2 + $3",
            _ => "",
        };

        private async Task<List<Guid>> CandidatesAsync(Query query, DateTimeOffset now, CancellationToken ct)
        {
            var db = placement.Of(query.CantonId).DataSource;
            await using var command = db.CreateCommand($"SELECT ballot_id FROM ballots WHERE canton_id = $1 {Window(query.Status)}");
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = query.CantonId });
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = now.ToUniversalTime() });
            command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = Margin });
            var ids = new List<Guid>();
            await using var reader = await command.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                ids.Add(reader.GetGuid(0));
            }

            return ids;
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/cantons/{cantonId}/ballots", async Task<Ok<IReadOnlyList<BallotView>>> (
                string cantonId, string? status, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, status), ct)))
            .AllowAnonymous()
            .WithName("ListBallots")
            .WithSummary("List a canton's ballots")
            .WithDescription("Lists the canton's ballots, the latest to open first, each as it is returned on its own; the status " +
                             "parameter narrows the list to scheduled, open, closing (voting over, not yet certified) or certified " +
                             "ones. Public: no token needed. Found through a read model that follows the event log within moments, so a " +
                             "ballot called a moment ago may not be listed yet.")
            .WithTags("Ballots")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
}
