using System.Text.Json;
using System.Text.Json.Serialization;
using Confederal.Domain.Ballots;
using Confederal.Domain.Cantons;
using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.Domain.Pacts;
using Confederal.EventStore;

namespace Confederal.Api.Infrastructure;

/// <summary>Every domain event under its stored name. A name and version, once used, is never reused for another shape:
/// change a shape by registering version + 1 with an upcaster from the old one.</summary>
public static class Events
{
    public static EventTypes Types() => new EventTypes(new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false) },
        })
        .Register<CantonRegistered>("canton-registered")
        .Register<CantonRenamed>("canton-renamed")
        .Register<OrganizationRecognized>("organization-recognized")
        .Register<OrganizationUpdated>("organization-updated")
        .Register<OrganizationSuspended>("organization-suspended")
        .Register<OrganizationReinstated>("organization-reinstated")
        .Register<FiscalPolicySet>("fiscal-policy-set")
        .Register<TaxAssessed>("tax-assessed")
        .Register<DesignationChosen>("designation-chosen")
        .Register<DesignationWithdrawn>("designation-withdrawn")
        .Register<ResidentRegistered>("resident-registered")
        .Register<ResidentDeparted>("resident-departed")
        .Register<VotingRulesSet>("voting-rules-set")
        .Register<BallotCalled>("ballot-called")
        .Register<BallotsCounted>("ballots-counted")
        .Register<ParticipationsRecorded>("participations-recorded")
        .Register<BallotCertified>("ballot-certified")
        .Register<PactFounded>("pact-founded")
        .Register<PactRenamed>("pact-renamed")
        .Register<PactJoined>("pact-joined")
        .Register<PactLeft>("pact-left");

    /// <summary>Correlation (the caller's X-Correlation-Id or the trace id) and actor of the current request.</summary>
    public static EventMetadata Metadata(this HttpContext http) => new(
        CorrelationId: http.Request.Headers["X-Correlation-Id"].FirstOrDefault() is { Length: > 0 and <= 128 } id ? id : http.TraceIdentifier,
        Actor: http.User.Actor());
}
