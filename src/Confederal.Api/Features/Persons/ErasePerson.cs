using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Census;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Persons;

/// <summary>
/// DELETE /api/v1/persons/{personId}: the confederation admin erases a person, on a stated lawful basis. Their key row is
/// deleted (and with it every link from their handles to them, and the key their birth date is sealed under) and the
/// census register forgets their birth date; a <see cref="PersonErased"/> event, naming only their residence handle,
/// records the basis. No event is changed or deleted, so every seal still verifies and every number stays as it was.
/// <para>Refused (409, nothing recorded) while the person has an open fiscal year (a record in a year whose designation
/// deadline has not passed), is on the roll of a ballot not yet certified, is still resident somewhere, or has tax records
/// a canton must still keep (its <c>taxRetentionYears</c> after their year; a court order overrides it); and for people
/// first recorded before handles, whom the log names in clear. An erased person is unknown afterwards (404): a retry
/// gets the first answer again only with the same Idempotency-Key, since nothing may remember who was erased.</para>
/// </summary>
public static class ErasePerson
{
    public sealed record Body(string? Basis, string? Reference);

    public sealed record Command(string PersonId, Body Body, EventMetadata Metadata) : IRequest<Unit>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.PersonId).PersonId();
            RuleFor(c => c.Body.Basis).Must(Erasure.IsBasis).WithName("basis")
                .WithMessage($"basis must be '{Erasure.Request}' or '{Erasure.CourtOrder}'.");
            RuleFor(c => c.Body.Reference).NotEmpty().MaximumLength(200).WithName("reference");
            RuleFor(c => c.Body.Reference).Must((c, reference) => reference is null || !reference.Contains(c.PersonId, StringComparison.OrdinalIgnoreCase))
                .WithName("reference").WithMessage("reference must not contain the person id: it is recorded in the log, which names nobody.");
        }
    }

    public sealed class Handler(Placement placement, PersonKeys persons, Fiscal.FiscalYearKeys years, TimeProvider clock) : IRequestHandler<Command, Unit>
    {
        public async Task<Unit> Handle(Command command, CancellationToken cancellationToken)
        {
            var ct = cancellationToken;
            var key = await persons.FindAsync(command.PersonId, ct) ?? throw new NotFoundException("Person", command.PersonId);
            if (key.RecordedInClear)
            {
                throw new DomainException("recorded-in-clear",
                    "This person was first recorded before handles: the log names them by their person id in clear, which destroying a key cannot forget.");
            }

            // The fiscal records and ballots are read from read models: first every log's projections catch up with it.
            foreach (var shard in placement.All)
            {
                var head = await shard.Log.ReadLastCommittedAsync(ct);
                await shard.Daemon.WaitForAsync(BudgetProjection.ProjectionName, head, ct);
                await shard.Daemon.WaitForAsync(BallotDirectory.ProjectionName, head, ct);
            }

            var directory = placement.Directory;
            var residenceStream = Residence.StreamId(key.Resident);
            var (residence, version) = await directory.Log.AggregateStreamAsync<Residence>(residenceStream, (s, e) => Residence.Apply(s, Residences.Opened(key, e)), ct);
            if (residence?.Current is { } current)
            {
                throw new DomainException("still-resident",
                    $"The person has been resident in '{current.CantonId}' since {current.Since:O}: their departure is recorded first.");
            }

            await RequireClosedAndPastRetentionAsync(key.Taxpayer, command.Body.Basis == Erasure.CourtOrder, ct);
            var eligibleIn = residence is null ? [] : await CertifiedRollsAsync(residence, ct);

            var erased = new PersonErased(key.Resident, command.Body.Basis!, command.Body.Reference!, eligibleIn);
            await directory.Log.TransactAsync(async tx =>
            {
                await directory.Log.AppendAsync(tx, residenceStream, ExpectedVersion.Exactly(version), [erased], command.Metadata, ct);
                await using var batch = new NpgsqlBatch(tx.Connection, tx)
                {
                    BatchCommands =
                    {
                        Sql.Command("UPDATE residences SET birth_date = NULL WHERE resident = $1", key.Resident),
                        Sql.Command("DELETE FROM person_keys WHERE lookup = $1", PersonKeys.Bytes(persons.Lookup(command.PersonId))),
                        Sql.Command("DELETE FROM designation_carries WHERE lookup = $1", PersonKeys.Bytes(persons.Lookup(command.PersonId))),
                    },
                };
                return await batch.ExecuteNonQueryAsync(ct);
            }, ct);
            persons.Forget(key);
            return Unit.Value;
        }

        /// <summary>Refuses while a (canton, year) the taxpayer has a record in is open, or within the canton's
        /// retention of tax records (unless a court ordered the erasure). Only the years still linked can be looked at:
        /// the others are past their retention, and lead to nobody already.</summary>
        private async Task RequireClosedAndPastRetentionAsync(string taxpayer, bool courtOrder, CancellationToken ct)
        {
            var now = clock.GetUtcNow();
            var today = DateOnly.FromDateTime(now.UtcDateTime);
            var linked = await years.LinkedAsync(null, ct);
            var records = new SortedSet<(string CantonId, int Year)>();
            foreach (var shard in placement.All)
            {
                records.UnionWith(await Sql.ListAsync(shard.DataSource, """
                    SELECT t.canton_id, t.year FROM fiscal_taxpayers t JOIN unnest($1::text[], $2::text[], $3::int[]) AS h(canton_id, taxpayer, year)
                    ON t.canton_id = h.canton_id AND t.taxpayer = h.taxpayer AND t.year = h.year
                    """, r => (r.GetString(0), r.GetInt32(1)), ct,
                    linked.Select(y => y.CantonId).ToArray(), linked.Select(y => y.Of(taxpayer)).ToArray(), linked.Select(y => y.Year).ToArray()));
            }

            foreach (var (cantonId, year) in records)
            {
                var log = placement.Of(cantonId).Log;
                var read = await log.ReadStreamsAsync([Canton.StreamId(cantonId), FiscalPolicy.StreamId(cantonId, year)], ct);
                var policy = read.GetValueOrDefault(FiscalPolicy.StreamId(cantonId, year)).Fold<FiscalPolicy>(FiscalPolicy.Apply).State;
                if (policy is null || policy.IsOpenAt(now))
                {
                    throw new DomainException("open-fiscal-year",
                        $"The person has a record in {cantonId}'s fiscal year {year}, which is open until its designation deadline" +
                        (policy is null ? " (the year has no policy yet)." : $" ({Audit.AuditEvent.FormatInstant(policy.Deadline)})."));
                }

                var canton = read.GetValueOrDefault(Canton.StreamId(cantonId)).Fold<Canton>(Canton.Apply).State!;
                if (!courtOrder && today <= canton.RetainedUntil(year))
                {
                    throw new DomainException("retention-period",
                        $"{cantonId} keeps the tax records of {year} until {canton.RetainedUntil(year):O} ({canton.TaxRetentionYears} years): " +
                        $"before then only a '{Erasure.CourtOrder}' erases the person.");
                }
            }
        }

        /// <summary>The certified ballots whose roll the person was on; refuses when they are on the roll of one not yet
        /// certified.</summary>
        private async Task<IReadOnlyList<Guid>> CertifiedRollsAsync(Residence residence, CancellationToken ct)
        {
            var cantons = residence.Periods.Select(p => p.CantonId).Distinct(StringComparer.Ordinal).ToArray();
            var ballots = new SortedSet<(string CantonId, Guid BallotId)>();
            foreach (var shard in placement.All)
            {
                ballots.UnionWith(await Sql.ListAsync(shard.DataSource,
                    "SELECT canton_id, ballot_id FROM ballots WHERE canton_id = ANY($1)", r => (r.GetString(0), r.GetGuid(1)), ct, (object)cantons));
            }

            var eligibleIn = new List<Guid>();
            foreach (var (cantonId, ballotId) in ballots)
            {
                var (ballot, _) = await Features.Ballots.Ballots.ReadAsync(placement.Of(cantonId).Log, cantonId, ballotId, ct);
                if (ballot.Ineligible(residence) is not null)
                {
                    continue;
                }

                if (ballot.Certified is null)
                {
                    throw new DomainException("open-ballot-roll",
                        $"The person is on the roll of ballot {ballotId} of {cantonId}, which is not certified yet.");
                }

                eligibleIn.Add(ballotId);
            }

            return eligibleIn;
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapDelete("/persons/{personId}", async Task<NoContent> (string personId, [Microsoft.AspNetCore.Mvc.FromBody] Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                await mediator.Send(new Command(personId, body, http.Metadata()), ct);
                return TypedResults.NoContent();
            })
            .RequireAuthorization(Roles.Admin)
            .WithName("ErasePerson")
            .WithSummary("Erase a person")
            .WithDescription("Erases a person on a stated lawful basis (erasure-request or court-order) with a reference that must not " +
                             "contain their person id: the key to their personal data is destroyed, and no event is changed or deleted. " +
                             "Only the confederation admin may call it. Refused (409, nothing recorded) while the person has an open " +
                             "fiscal year, is on the roll of a ballot not yet certified, is still resident, or has tax records a canton " +
                             "must still keep (a court order overrides that), and for people recorded before handles. An erased person " +
                             "is unknown afterwards (404): send an Idempotency-Key so that a retry gets the first 204.")
            .WithTags("Persons")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
}
