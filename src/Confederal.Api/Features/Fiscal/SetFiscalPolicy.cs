using System.Text.Json;
using Confederal.Api.Infrastructure;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.EventStore;
using FluentValidation;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Confederal.Api.Features.Fiscal;

/// <summary>A fiscal year's policy as served. <see cref="EligibleOrganizations"/> is "all" or a list of ids.</summary>
public sealed record FiscalPolicyView(
    string CantonId, int FiscalYear, int DesignationRateBp, int MaxOrganizations, UnallocatedPolicy UnallocatedPolicy,
    DateTimeOffset Deadline, object EligibleOrganizations, bool Open)
{
    public static FiscalPolicyView From(string cantonId, int year, FiscalPolicy p, DateTimeOffset now) => new(
        cantonId, year, p.DesignationRateBp, p.MaxOrganizations, p.UnallocatedPolicy, p.Deadline,
        (object?)p.EligibleOrganizations ?? "all", p.IsOpenAt(now));
}

/// <summary>PUT and GET /api/v1/cantons/{cantonId}/fiscal-years/{year}/policy: the canton's municipality sets the
/// designation rules of a year (until its deadline); anyone reads them.</summary>
public static class SetFiscalPolicy
{
    public const int MaxEligibleOrganizations = 1000;

    public sealed record Body(
        int? DesignationRateBp, int? MaxOrganizations, UnallocatedPolicy? UnallocatedPolicy, DateTimeOffset? Deadline,
        JsonElement? EligibleOrganizations);

    public sealed record Command(string CantonId, int FiscalYear, Body Body, EventMetadata Metadata) : IRequest<Result>;

    public sealed record Result(bool Created, FiscalPolicyView Policy);

    public sealed record Query(string CantonId, int FiscalYear) : IRequest<FiscalPolicyView>;

    public sealed class Validator : AbstractValidator<Command>
    {
        public Validator()
        {
            RuleFor(c => c.FiscalYear).FiscalYear();
            RuleFor(c => c.Body.DesignationRateBp).NotNull().InclusiveBetween(0, Money.BasisPoints).WithName("designationRateBp");
            RuleFor(c => c.Body.MaxOrganizations).InclusiveBetween(1, FiscalPolicy.MaxOrganizationsLimit).WithName("maxOrganizations");
            RuleFor(c => c.Body.UnallocatedPolicy).NotNull().WithName("unallocatedPolicy")
                .WithMessage("unallocatedPolicy must be retain or proportional.");
            RuleFor(c => c.Body.Deadline).NotNull().WithName("deadline")
                .WithMessage("deadline must be an instant, e.g. 2027-03-31T23:59:59Z.");
            RuleFor(c => c.Body.EligibleOrganizations).Must(e => Eligible(e, out _)).WithName("eligibleOrganizations")
                .WithMessage($"eligibleOrganizations must be \"all\" or a list of 1 to {MaxEligibleOrganizations} distinct organization ids.");
        }
    }

    /// <summary>"all" (or absent) → null; a list of distinct slugs → the list.</summary>
    public static bool Eligible(JsonElement? element, out IReadOnlyList<string>? eligible)
    {
        eligible = null;
        if (element is not { } e || e.ValueKind == JsonValueKind.Null || (e.ValueKind == JsonValueKind.String && Text(e) == "all"))
        {
            return true;
        }

        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() is 0 or > MaxEligibleOrganizations
            || e.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String || !Identifiers.IsSlug(Text(x))))
        {
            return false;
        }

        var ids = e.EnumerateArray().Select(x => x.GetString()!).ToList();
        eligible = ids;
        return ids.Distinct(StringComparer.Ordinal).Count() == ids.Count;
    }

    // A JsonElement keeps a string's bytes as sent and transcodes them when read: invalid UTF-8 throws only then.
    private static string? Text(JsonElement s)
    {
        try
        {
            return s.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    public sealed class Handler(Placement placement, TimeProvider clock) : IRequestHandler<Command, Result>, IRequestHandler<Query, FiscalPolicyView>
    {
        public async Task<Result> Handle(Command command, CancellationToken cancellationToken)
        {
            var events = placement.Of(command.CantonId).Log;
            Eligible(command.Body.EligibleOrganizations, out var eligible);
            var stream = FiscalPolicy.StreamId(command.CantonId, command.FiscalYear);
            var read = await events.ReadStreamsAsync(
                [Canton.StreamId(command.CantonId), stream, .. (eligible ?? []).Select(Organization.StreamId)], cancellationToken);
            _ = read.GetValueOrDefault(Canton.StreamId(command.CantonId)).Fold<Canton>(Canton.Apply).State
                ?? throw new NotFoundException("Canton", command.CantonId);
            var unknown = (eligible ?? []).FirstOrDefault(id => !read.ContainsKey(Organization.StreamId(id)));
            if (unknown is not null)
            {
                throw new DomainException("organization-unknown", $"Organization '{unknown}' is not recognized by the confederation.");
            }

            var (state, version) = read.GetValueOrDefault(stream).Fold<FiscalPolicy>(FiscalPolicy.Apply);
            var now = clock.GetUtcNow();
            var body = command.Body;
            var asked = new FiscalPolicy(body.DesignationRateBp!.Value, body.MaxOrganizations ?? FiscalPolicy.DefaultMaxOrganizations,
                body.UnallocatedPolicy!.Value, body.Deadline!.Value.ToUniversalTime(), eligible);
            var decided = FiscalPolicy.Set(state, asked.ToEvent(command.CantonId, command.FiscalYear), now);
            if (decided.Count > 0)
            {
                await events.AppendAsync(stream, ExpectedVersion.Exactly(version), decided, command.Metadata, cancellationToken);
                state = decided.Aggregate(state, FiscalPolicy.Apply);
            }

            return new Result(Created: version == 0, FiscalPolicyView.From(command.CantonId, command.FiscalYear, state!, now));
        }

        public async Task<FiscalPolicyView> Handle(Query query, CancellationToken cancellationToken)
        {
            var events = placement.Of(query.CantonId).Log;
            var (state, _) = await events.AggregateStreamAsync<FiscalPolicy>(
                FiscalPolicy.StreamId(query.CantonId, query.FiscalYear), FiscalPolicy.Apply, cancellationToken);
            return state is null
                ? throw new NotFoundException("Fiscal policy", $"{query.CantonId}/{query.FiscalYear}")
                : FiscalPolicyView.From(query.CantonId, query.FiscalYear, state, clock.GetUtcNow());
        }
    }

    public static void Map(IEndpointRouteBuilder api)
    {
        api.MapPut("/cantons/{cantonId}/fiscal-years/{year}/policy", async Task<Results<Created<FiscalPolicyView>, Ok<FiscalPolicyView>>> (
                string cantonId, int year, Body body, IMediator mediator, HttpContext http, CancellationToken ct) =>
            {
                var result = await mediator.Send(new Command(cantonId, year, body, http.Metadata()), ct);
                return result.Created
                    ? TypedResults.Created($"/api/v1/cantons/{cantonId}/fiscal-years/{year}/policy", result.Policy)
                    : TypedResults.Ok(result.Policy);
            })
            .RequireAuthorization(Scopes.CantonMunicipality)
            .WithName("SetFiscalPolicy")
            .WithSummary("Set a fiscal year's designation policy")
            .WithDescription("Sets a canton's designation policy for one fiscal year: the designation rate in basis points, how many " +
                             "organizations a taxpayer may choose (3 unless given), whether unallocated money is retained or shared out " +
                             "proportionally, the deadline, and which organizations are eligible (all recognized ones unless listed). " +
                             "Only the canton's municipality may call it. The deadline must lie in the future and, once it has passed, " +
                             "the policy no longer changes (409 fiscal-year-closed); listing an organization never recognized is " +
                             "refused (409 organization-unknown). The first policy of the year answers 201; setting the same policy " +
                             "again records nothing.")
            .WithTags("Fiscal years")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);

        api.MapGet("/cantons/{cantonId}/fiscal-years/{year}/policy", async Task<Ok<FiscalPolicyView>> (
                string cantonId, int year, IMediator mediator, CancellationToken ct) =>
                TypedResults.Ok(await mediator.Send(new Query(cantonId, year), ct)))
            .AllowAnonymous()
            .WithName("GetFiscalPolicy")
            .WithSummary("Get a fiscal year's designation policy")
            .WithDescription("Returns the designation policy a canton set for a fiscal year, and whether designations are still open " +
                             "(its deadline not passed). Public: no token needed. Read from the event log, not from a read model; 404 " +
                             "while the canton has set no policy for the year.")
            .WithTags("Fiscal years")
            .ProducesProblem(StatusCodes.Status404NotFound);
    }
}
