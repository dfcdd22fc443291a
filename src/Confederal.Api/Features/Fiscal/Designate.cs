using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.EventStore;
using FluentValidation;
using FluentValidation.Results;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Npgsql;

namespace Confederal.Api.Features.Fiscal;

public sealed record ChoiceView(string OrganizationId, int ShareBp, long? AmountMinor);

/// <summary>A person's designation for one canton and year, as only that person sees it: the choices that apply (their
/// own for the year, or a standing one carried from <see cref="CarriedFromYear"/>), and what they amount to.</summary>
public sealed record DesignationView(
    string CantonId, int FiscalYear, string PersonId, IReadOnlyList<ChoiceView> Choices, bool Standing, int? CarriedFromYear,
    DateTimeOffset? Deadline, bool Open, int? DesignationRateBp, long? AssessedTaxMinor, long? DesignableMinor);

/// <summary>PUT, GET and DELETE /api/v1/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}: a person
/// chooses, reads or withdraws their designation. Only that person (the token's subject): it is special-category data.</summary>
public static class Designate
{
    public sealed record Body(IReadOnlyList<Choice>? Choices, bool? Standing);

    public sealed record Command(string CantonId, int FiscalYear, string PersonId, Body Body, EventMetadata Metadata) : IRequest<Result>;

    public sealed record Withdraw(string CantonId, int FiscalYear, string PersonId, EventMetadata Metadata) : IRequest<Unit>;

    public sealed record Query(string CantonId, int FiscalYear, string PersonId) : IRequest<DesignationView>;

    public sealed record Result(bool Created, DesignationView Designation);

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.FiscalYear).FiscalYear();
            RuleFor(c => c.PersonId).PersonId();
            RuleFor(c => c.Body.Choices).Custom((choices, context) =>
            {
                if (choices is not null && choices.Any(c => c is null))
                {
                    context.AddFailure(new ValidationFailure("choices", "every choice must be an object {organizationId, shareBp}.") { ErrorCode = "invalid-choices" });
                    return;
                }

                foreach (var problem in Designation.Problems(choices))
                {
                    context.AddFailure(new ValidationFailure("choices", problem.Message + ".") { ErrorCode = problem.Code });
                }
            });
        }
    }

    public sealed class WithdrawValidator : AbstractValidator<Withdraw>
    {
        public WithdrawValidator()
        {
            RuleFor(c => c.FiscalYear).FiscalYear();
            RuleFor(c => c.PersonId).PersonId();
        }
    }

    public sealed class QueryValidator : AbstractValidator<Query>
    {
        public QueryValidator()
        {
            RuleFor(c => c.FiscalYear).FiscalYear();
            RuleFor(c => c.PersonId).PersonId();
        }
    }

    public sealed class Handler(Placement placement, PersonKeys persons, FiscalYearKeys years, DesignationCarrier carrier, TimeProvider clock)
        : IRequestHandler<Command, Result>, IRequestHandler<Withdraw, Unit>, IRequestHandler<Query, DesignationView>
    {
        public async Task<Result> Handle(Command command, CancellationToken cancellationToken)
        {
            var choices = command.Body.Choices!;
            var person = await persons.ObtainAsync(command.PersonId, cancellationToken);
            // A year nobody was recorded in gets its key only once the choice is decided: a refusal records nothing.
            var year = await years.FindAsync(command.CantonId, command.FiscalYear, cancellationToken);
            var state = await ReadAsync(command.CantonId, command.FiscalYear, year?.Of(person.Taxpayer),
                choices.Select(c => c.OrganizationId).Distinct(StringComparer.Ordinal).ToList(), cancellationToken);
            var opened = false;
            if (year is null)
            {
                state.History.Choose(command.CantonId, "", command.FiscalYear, choices, command.Body.Standing ?? false, state.Policy, state.Organizations, clock.GetUtcNow());
                (year, opened) = await years.ObtainAsync(command.CantonId, command.FiscalYear, cancellationToken);
            }

            var taxpayer = year.Of(person.Taxpayer);
            var decided = state.History.Choose(
                command.CantonId, taxpayer, command.FiscalYear, choices, command.Body.Standing ?? false,
                state.Policy, state.Organizations, clock.GetUtcNow());
            var created = !state.History.IsOwn(command.FiscalYear);
            var before = state.History.EffectiveFor(command.FiscalYear).Designation;
            var recordedBefore = state.History.Records.ContainsKey(command.FiscalYear);
            var history = await AppendAsync(command.CantonId, taxpayer, state, decided, command.Metadata, cancellationToken);
            // Later years carry what this year's record carries: restated when a standing choice is made or replaced, or
            // when the year had no record yet (a carry into it may still be pending).
            var standing = command.Body.Standing == true || before?.Standing == true;
            if (decided.Count > 0 && (standing || !recordedBefore))
            {
                await carrier.ChangedAsync(person, command.CantonId, standing,
                    new DesignationCarrier.Appended(Designation.StreamId(command.CantonId, taxpayer), history, state.Version + decided.Count),
                    command.Metadata, cancellationToken);
            }

            if (opened)
            {
                await carrier.CarryIntoOpenedYearAsync(command.CantonId, command.Metadata, cancellationToken);
            }

            return new Result(created, await ViewAsync(command.CantonId, command.FiscalYear, command.PersonId, taxpayer, history, state.Policy, cancellationToken));
        }

        public async Task<Unit> Handle(Withdraw command, CancellationToken cancellationToken)
        {
            // Someone never recorded (or a year nobody was recorded in) has nothing to withdraw; the year's policy still
            // decides whether withdrawing is open.
            var person = await persons.FindAsync(command.PersonId, cancellationToken);
            var taxpayer = await HandleAsync(person, command.CantonId, command.FiscalYear, cancellationToken);
            var state = await ReadAsync(command.CantonId, command.FiscalYear, taxpayer, [], cancellationToken);
            var decided = state.History.Withdraw(command.CantonId, taxpayer ?? "", command.FiscalYear, state.Policy, clock.GetUtcNow());
            var before = state.History.EffectiveFor(command.FiscalYear).Designation;
            var history = await AppendAsync(command.CantonId, taxpayer!, state, decided, command.Metadata, cancellationToken);
            if (decided.Count > 0 && before?.Standing == true)
            {
                await carrier.ChangedAsync(person!, command.CantonId, standing: true,
                    new DesignationCarrier.Appended(Designation.StreamId(command.CantonId, taxpayer!), history, state.Version + decided.Count),
                    command.Metadata, cancellationToken);
            }

            return Unit.Value;
        }

        public async Task<DesignationView> Handle(Query query, CancellationToken cancellationToken)
        {
            var taxpayer = await HandleAsync(await persons.FindAsync(query.PersonId, cancellationToken), query.CantonId, query.FiscalYear, cancellationToken);
            var state = await ReadAsync(query.CantonId, query.FiscalYear, taxpayer, [], cancellationToken);
            return await ViewAsync(query.CantonId, query.FiscalYear, query.PersonId, taxpayer, state.History, state.Policy, cancellationToken);
        }

        /// <summary>The person's handle in the year, without creating anything: null when they were never recorded, or
        /// nobody was recorded in the year, or its key is deleted (its records lead to nobody).</summary>
        private async Task<string?> HandleAsync(PersonKey? person, string cantonId, int year, CancellationToken ct) =>
            person is null ? null : (await years.FindAsync(cantonId, year, ct))?.Of(person.Taxpayer);

        private sealed record State(DesignationHistory History, long Version, FiscalPolicy? Policy, IReadOnlyDictionary<string, Organization?> Organizations);

        // One round trip: the canton, the year's policy, the taxpayer's designations (none for someone never recorded)
        // and the chosen organizations.
        private async Task<State> ReadAsync(string cantonId, int year, string? taxpayer, IReadOnlyList<string> organizationIds, CancellationToken ct)
        {
            var events = placement.Of(cantonId).Log;
            var designations = taxpayer is null ? null : Designation.StreamId(cantonId, taxpayer);
            var policy = FiscalPolicy.StreamId(cantonId, year);
            var read = await events.ReadStreamsAsync(
                [Canton.StreamId(cantonId), policy, .. designations is null ? [] : new[] { designations }, .. organizationIds.Select(Organization.StreamId)], ct);
            if (!read.ContainsKey(Canton.StreamId(cantonId)))
            {
                throw new NotFoundException("Canton", cantonId);
            }

            var (history, version) = (designations is null ? null : read.GetValueOrDefault(designations)).Fold<DesignationHistory>(DesignationHistory.Apply);
            return new State(
                history ?? new DesignationHistory(),
                version,
                read.GetValueOrDefault(policy).Fold<FiscalPolicy>(FiscalPolicy.Apply).State,
                organizationIds.ToDictionary(id => id, id => read.GetValueOrDefault(Organization.StreamId(id)).Fold<Organization>(Organization.Apply).State));
        }

        private async Task<DesignationHistory> AppendAsync(
            string cantonId, string taxpayer, State state, IReadOnlyList<object> decided, EventMetadata metadata, CancellationToken ct)
        {
            if (decided.Count > 0)
            {
                await placement.Of(cantonId).Log.AppendAsync(Designation.StreamId(cantonId, taxpayer), ExpectedVersion.Exactly(state.Version), decided, metadata, ct);
            }

            return decided.Aggregate(state.History, DesignationHistory.Apply);
        }

        private async Task<DesignationView> ViewAsync(
            string cantonId, int year, string personId, string? taxpayer, DesignationHistory history, FiscalPolicy? policy, CancellationToken ct)
        {
            var (designation, from) = history.EffectiveFor(year);
            var carriedFrom = designation is null ? null
                : history.CarriedFrom.TryGetValue(year, out var carried) ? carried
                : from is { } f && f != year ? f : (int?)null;
            var tax = taxpayer is null ? null : await BudgetProjection.AssessedTaxAsync(placement.Of(cantonId).DataSource, cantonId, year, taxpayer, ct);
            long? designable = tax is { } t && policy is not null ? Money.Designable(t, policy.DesignationRateBp) : null;
            var choices = designation?.Choices ?? [];
            var amounts = designable is { } d && designation is not null ? designation.Amounts(d) : null;
            return new DesignationView(
                cantonId, year, personId,
                [.. choices.Select((c, i) => new ChoiceView(c.OrganizationId, c.ShareBp, amounts?[i]))],
                designation?.Standing ?? false,
                carriedFrom,
                policy?.Deadline,
                policy is not null && policy.IsOpenAt(clock.GetUtcNow()),
                policy?.DesignationRateBp,
                tax,
                designable);
        }
    }

    private const string Route = "/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}";

    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapPut(Route, async Task<Results<Created<DesignationView>, Ok<DesignationView>>> (
                string cantonId, int year, string personId, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var result = await mediator.Send(new Command(cantonId, year, personId, body, http.Metadata()), ct);
                return result.Created
                    ? TypedResults.Created($"/api/v1/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}", result.Designation)
                    : TypedResults.Ok(result.Designation);
            })
            .RequireAuthorization(Scopes.Self)
            .WithName("Designate")
            .WithSummary("Choose or change a designation")
            .WithDescription("Chooses, for a canton and fiscal year, 1 to the policy's maxOrganizations recognized, non-suspended, " +
                             "eligible organizations, each with a share in basis points, the shares summing to exactly 10000; with " +
                             "standing set to true the choice carries over to later years until changed or withdrawn. Only that person " +
                             "may call it (a person token whose subject is personId), nobody else, the admin included: designations are " +
                             "special-category data. Refused before the canton has set the year's policy (409 no-fiscal-policy) and " +
                             "after its deadline (409 deadline-passed). The person's first choice of their own for the year answers " +
                             "201; repeating the same choice records nothing.")
            .WithTags("Designations")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        api.MapGet(Route, async Task<Ok<DesignationView>> (string cantonId, int year, string personId, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, year, personId), ct)))
            .RequireAuthorization(Scopes.Self)
            .WithName("GetDesignation")
            .WithSummary("Get a designation")
            .WithDescription("Returns the person's designation for a canton and fiscal year: the choices that apply (their own, or a " +
                             "standing one carried from an earlier year), the deadline, and, once their tax is assessed, what each " +
                             "choice amounts to. Only that person may call it (a person token whose subject is personId): designations " +
                             "are special-category data. Someone with nothing recorded gets an empty list of choices; 404 for a canton " +
                             "never registered.")
            .WithTags("Designations")
            .ProducesProblem(StatusCodes.Status404NotFound);

        api.MapDelete(Route, async Task<NoContent> (string cantonId, int year, string personId, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                await mediator.Send(new Withdraw(cantonId, year, personId, http.Metadata()), ct);
                return TypedResults.NoContent();
            })
            .RequireAuthorization(Scopes.Self)
            .WithName("WithdrawDesignation")
            .WithSummary("Withdraw a designation")
            .WithDescription("Withdraws the designation that applies to the person for a canton and fiscal year, their own or a " +
                             "standing one carried over; their designable amount then counts as unallocated. Only that person may call " +
                             "it (a person token whose subject is personId). Refused before the canton has set the year's policy and " +
                             "after its deadline (409); with nothing to withdraw it records nothing and still answers 204.")
            .WithTags("Designations")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
    }
}
