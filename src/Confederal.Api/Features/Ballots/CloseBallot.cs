using Confederal.Api.Features.Pacts;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Ballots;
using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Pacts;
using Confederal.EventStore;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Ballots;

/// <summary>
/// POST /api/v1/cantons/{cantonId}/ballots/{ballotId}/close: the canton's municipality closes a ballot after closesAt.
/// In one transaction, holding the ballot's lock so no vote is in flight: the ballot box and the participation register
/// are sealed into the log, the result is certified, and a carried binding proposal is enacted with the certification as
/// its cause. A retried or concurrent close finds it certified and answers the same result: it certifies once.
/// </summary>
public static class CloseBallot
{
    public sealed record Command(string CantonId, Guid BallotId, EventMetadata Metadata) : IRequest<BallotResultsView>;

    public sealed class Handler(Placement placement, TimeProvider clock) : IRequestHandler<Command, BallotResultsView>
    {
        public async Task<BallotResultsView> Handle(Command command, CancellationToken cancellationToken)
        {
            var (events, db) = placement.Ledger(command.CantonId);
            var (ballot, _) = await Ballots.ReadAsync(events, command.CantonId, command.BallotId, cancellationToken);
            if (ballot.Certified is null)
            {
                var now = clock.GetUtcNow();
                if (now < ballot.Called.ClosesAt)
                {
                    throw new DomainException("ballot-still-open", $"Voting runs until {ballot.Called.ClosesAt:O}; the ballot closes after that.");
                }

                // Answered from what this close wrote rather than read back: under an Idempotency-Key its transaction
                // commits only after the answer is made, and a read would not see the certification yet.
                if (await events.TransactAsync(tx => CertifyAsync(tx, command, now, cancellationToken), cancellationToken) is { } closed)
                {
                    return closed;
                }

                (ballot, _) = await Ballots.ReadAsync(events, command.CantonId, command.BallotId, cancellationToken);
            }

            return await BallotResultsView.ReadAsync(events, ballot, 0, cancellationToken);
        }

        /// <summary>Certifies the ballot and returns its record's first page; null when a concurrent close certified it
        /// while this one waited for the lock.</summary>
        private async Task<BallotResultsView?> CertifyAsync(NpgsqlTransaction tx, Command command, DateTimeOffset now, CancellationToken ct)
        {
            var events = placement.Of(command.CantonId).Log;
            var id = command.BallotId;
            await BallotBox.LockAsync(tx, id, ct);
            var (ballot, version) = await Ballots.ReadAsync(events, command.CantonId, id, ct);
            if (ballot.Certified is not null)
            {
                return null;
            }

            var called = ballot.Called;
            var (receipts, options, tallies) = await BallotBox.ReadBoxAsync(tx, id, called.Options.Count, ct);
            var roll = await BallotBox.ReadRollAsync(tx, id, ct);
            var eligible = await BallotBox.CountRollAsync(placement.Directory.DataSource, called, ct);
            var pages = receipts.Chunk(BallotBox.PageSize).Zip(options.Chunk(BallotBox.PageSize))
                .Select((chunk, page) => (object)new BallotsCounted(id, page, chunk.First, chunk.Second)).ToList();
            if (pages.Count > 0)
            {
                await events.AppendAsync(tx, Ballot.BoxStreamId(id), ExpectedVersion.NoStream, pages, command.Metadata, ct);
                await events.AppendAsync(tx, Ballot.RollStreamId(id), ExpectedVersion.NoStream,
                    [.. roll.Chunk(BallotBox.PageSize).Select((chunk, page) => (object)new ParticipationsRecorded(id, page, chunk))], command.Metadata, ct);
            }

            var carried = ballot.IsCarried(tallies);
            var enactment = carried is true ? await EnactAsync(called, now, ct) : null;
            var certified = new BallotCertified(id, called.CantonId, eligible, receipts.Count, tallies, pages.Count, carried, enactment?.NotEnacted);
            var cause = await events.AppendAsync(tx, Ballot.StreamId(id), ExpectedVersion.Exactly(version), [certified], command.Metadata, ct);
            if (enactment is { Events.Count: > 0 } change)
            {
                await events.AppendAsync(tx, change.StreamId, ExpectedVersion.Exactly(change.Version), change.Events,
                    command.Metadata with { CausationId = cause.EventIds[0].ToString() }, ct);
            }

            await BallotBox.EmptyAsync(tx, id, ct);
            return BallotResultsView.From(ballot with { Certified = certified }, 0,
                pages.Count > 0 ? [.. BallotResultsView.Counted(called, (BallotsCounted)pages[0])] : []);
        }

        private sealed record Enactment(string StreamId, long Version, IReadOnlyList<object> Events, string? NotEnacted);

        // The carried proposal's change, decided by the same rules as any other change of that policy or pact. A rule
        // that refuses it (the fiscal year closed meanwhile, a pact's terms) is recorded as the reason it was not enacted.
        private async Task<Enactment> EnactAsync(BallotCalled called, DateTimeOffset now, CancellationToken ct)
        {
            var (events, db) = placement.Ledger(called.CantonId);
            var proposal = called.Proposal!;
            if (proposal.Kind == ProposalKind.SetDesignationRate)
            {
                var stream = FiscalPolicy.StreamId(called.CantonId, proposal.FiscalYear!.Value);
                var (policy, version) = await events.AggregateStreamAsync<FiscalPolicy>(stream, FiscalPolicy.Apply, ct);
                return Decide(stream, version, () => SetRate(policy, called, now));
            }

            var memberships = await Memberships.OfCantonAsync(events, db, called.CantonId, proposal.PactId, ct);
            var pact = memberships.Pacts.GetValueOrDefault(proposal.PactId!);
            var canton = proposal.Kind == ProposalKind.JoinPact ? await Fiscal.Cantons.RequireAsync(events, called.CantonId, ct) : null;
            return Decide(Pact.MembershipsStreamId(called.CantonId), memberships.Version, () => proposal.Kind == ProposalKind.JoinPact
                ? Pact.Join(pact, proposal.PactId!, called.CantonId, canton!.Currency, proposal.ContributionRateBp!.Value, proposal.FromFiscalYear!.Value,
                    called.BallotId, memberships.Pacts.Values)
                : Pact.Leave(pact, proposal.PactId!, called.CantonId, proposal.FromFiscalYear!.Value, called.BallotId));
        }

        private static Enactment Decide(string stream, long version, Func<IReadOnlyList<object>> decide)
        {
            try
            {
                return new Enactment(stream, version, decide(), null);
            }
            catch (DomainException e)
            {
                return new Enactment(stream, version, [], e.Code);
            }
            catch (NotFoundException)
            {
                return new Enactment(stream, version, [], "pact-unknown");
            }
        }

        private static IReadOnlyList<object> SetRate(FiscalPolicy? policy, BallotCalled called, DateTimeOffset now)
        {
            var proposal = called.Proposal!;
            if (policy is null)
            {
                throw new DomainException("no-fiscal-policy", $"Canton '{called.CantonId}' has no policy for {proposal.FiscalYear} to change.");
            }

            return FiscalPolicy.Set(
                policy, (policy with { DesignationRateBp = proposal.DesignationRateBp!.Value }).ToEvent(called.CantonId, proposal.FiscalYear!.Value), now);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPost("/cantons/{cantonId}/ballots/{ballotId:guid}/close", async Task<Ok<BallotResultsView>> (
                string cantonId, Guid ballotId, IMediator mediator, HttpContext http, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Command(cantonId, ballotId, http.Metadata()), ct)))
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("CloseBallot")
            .WithSummary("Close and certify a ballot")
            .WithDescription("Closes a ballot once closesAt has passed (409 ballot-still-open before): in one transaction the ballot " +
                             "box and the participation register are sealed into the log, the result is certified, and a binding " +
                             "proposal that carried (more yes than no) is enacted. Only the canton's municipality may call it. A " +
                             "retried or concurrent close appends nothing and answers the same result. The answer is the first page of " +
                             "the results.")
            .WithTags("Ballots")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
}
