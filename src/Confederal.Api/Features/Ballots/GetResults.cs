using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Ballots;
using Confederal.EventStore;
using FluentValidation;
using FluentValidation.Results;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Ballots;

public sealed record TallyView(string Option, long Votes);

public sealed record CountedBallotView(string Receipt, string Option);

/// <summary>A certified ballot's record: the roll's size, the votes, turnout (votes × 10000 / eligible, floored), the
/// tallies, for a proposal whether it carried and was enacted, and one page of the counted ballots in receipt order
/// (pages of <see cref="BallotBox.PageSize"/>): anyone can recount the tallies from the pages.</summary>
public sealed record BallotResultsView(
    Guid BallotId, string CantonId, string Question, DateOnly CensusDate, long Eligible, long Votes, long TurnoutBp, IReadOnlyList<TallyView> Tallies,
    Proposal? Proposal, bool? Carried, bool? Enacted, string? NotEnacted, int Page, int Pages, IReadOnlyList<CountedBallotView> Ballots)
{
    public static async Task<BallotResultsView> ReadAsync(EventLog events, Ballot ballot, int page, CancellationToken ct)
    {
        var (called, certified) = (ballot.Called, ballot.Certified!);
        if (page < 0 || page >= Math.Max(certified.Pages, 1))
        {
            throw new ValidationException([new ValidationFailure("page", $"page is 0..{Math.Max(certified.Pages, 1) - 1}.")]);
        }

        var ballots = new List<CountedBallotView>();
        await foreach (var e in events.ReadStreamAsync(Ballot.BoxStreamId(called.BallotId), page + 1, page + 1, ct))
        {
            ballots.AddRange(Counted(called, (BallotsCounted)e.Data));
        }

        return From(ballot, page, ballots);
    }

    /// <summary>The counted ballot with <paramref name="receipt"/>, or null when no counted ballot has it: a binary search
    /// over the pages, which hold the receipts in ordinal order.</summary>
    public static async Task<CountedBallotView?> FindAsync(EventLog events, Ballot ballot, string receipt, CancellationToken ct)
    {
        var (low, high) = (0, ballot.Certified!.Pages - 1);
        while (low <= high)
        {
            var page = low + ((high - low) / 2);
            BallotsCounted? counted = null;
            await foreach (var e in events.ReadStreamAsync(Ballot.BoxStreamId(ballot.Called.BallotId), page + 1, page + 1, ct))
            {
                counted = (BallotsCounted)e.Data;
            }

            if (counted is not { Receipts.Count: > 0 })
            {
                return null;
            }

            if (string.CompareOrdinal(receipt, counted.Receipts[0]) < 0)
            {
                high = page - 1;
            }
            else if (string.CompareOrdinal(receipt, counted.Receipts[^1]) > 0)
            {
                low = page + 1;
            }
            else
            {
                var i = counted.Receipts.ToList().BinarySearch(receipt, StringComparer.Ordinal);
                return i < 0 ? null : new CountedBallotView(receipt, ballot.Called.Options[counted.Options[i]]);
            }
        }

        return null;
    }

    /// <summary>The ballots of one sealed page, with their options by name.</summary>
    public static IEnumerable<CountedBallotView> Counted(BallotCalled called, BallotsCounted counted) =>
        counted.Receipts.Select((receipt, i) => new CountedBallotView(receipt, called.Options[counted.Options[i]]));

    /// <summary>The record of a certified ballot with the counted <paramref name="ballots"/> of <paramref name="page"/>.</summary>
    public static BallotResultsView From(Ballot ballot, int page, IReadOnlyList<CountedBallotView> ballots)
    {
        var (called, certified) = (ballot.Called, ballot.Certified!);
        return new BallotResultsView(
            called.BallotId, called.CantonId, called.Question, called.CensusDate, certified.Eligible, certified.Votes,
            certified.Eligible == 0 ? 0 : certified.Votes * 10_000 / certified.Eligible,
            [.. called.Options.Select((o, i) => new TallyView(o, certified.Tallies[i]))],
            called.Proposal, certified.Carried, certified.Carried is true ? certified.NotEnacted is null : null, certified.NotEnacted,
            page, certified.Pages, ballots);
    }
}

/// <summary>GET /api/v1/cantons/{cantonId}/ballots/{ballotId}/results?page={n}: public once the ballot is certified.</summary>
public static class GetResults
{
    /// <summary>Read on a streaming standby of the canton's database when it has one. A certified record is final: a
    /// standby that has replayed the certification serves exactly what the primary would, and one that has not yet
    /// passes the read to the primary, so no reader (the municipality that just closed the ballot included) is served a
    /// stale answer.</summary>
    public sealed record Query(string CantonId, Guid BallotId, int Page) : IRequest<BallotResultsView>;

    public sealed class Handler(Placement placement, Database database) : IRequestHandler<Query, BallotResultsView>
    {
        public async Task<BallotResultsView> Handle(Query query, CancellationToken cancellationToken)
        {
            var shard = placement.Of(query.CantonId);
            var standby = shard.Log.OnStandby(database.ReadsOf(shard.Id));
            if (standby != shard.Log && await CertifiedAsync(standby, query, cancellationToken) is { } ballot)
            {
                return await BallotResultsView.ReadAsync(standby, ballot, query.Page, cancellationToken);
            }

            var (read, _) = await Ballots.ReadAsync(shard.Log, query.CantonId, query.BallotId, cancellationToken);
            return read.Certified is null
                ? throw new DomainException("results-not-published", "The ballot has not been closed and certified yet.")
                : await BallotResultsView.ReadAsync(shard.Log, read, query.Page, cancellationToken);
        }

        /// <summary>The ballot, when this log has it certified.</summary>
        private static async Task<Ballot?> CertifiedAsync(EventLog events, Query query, CancellationToken ct)
        {
            var (ballot, _) = await events.AggregateStreamAsync<Ballot>(Ballot.StreamId(query.BallotId), Ballot.Apply, ct);
            return ballot is { Certified: not null } && ballot.Called.CantonId == query.CantonId ? ballot : null;
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapGet("/cantons/{cantonId}/ballots/{ballotId:guid}/results", async Task<Ok<BallotResultsView>> (
                string cantonId, Guid ballotId, int? page, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, ballotId, page ?? 0), ct)))
            .AllowAnonymous()
            .WithName("GetBallotResults")
            .WithSummary("Get a ballot's certified results")
            .WithDescription("Returns a certified ballot's record: eligible voters, votes, turnout in basis points, tallies, whether a " +
                             "proposal carried and was enacted, and one page of the counted ballots (the page parameter, from 0; 10,000 " +
                             "a page), receipt and option, from which anyone can recount. Public: no token needed. Refused until the " +
                             "ballot is closed and certified (409 results-not-published).")
            .WithTags("Ballots")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
}
