using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
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
            TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { NeverWriteOpened } },
        })
        .Register<CantonRegistered>("canton-registered", version: 2)
        .Upcast("canton-registered", fromVersion: 1, CantonRegisteredV2)
        .Register<CantonRenamed>("canton-renamed")
        .Register<CantonLocaleSet>("canton-locale-set")
        .Register<CantonRetentionSet>("canton-retention-set")
        .Register<OrganizationRecognized>("organization-recognized")
        .Register<OrganizationUpdated>("organization-updated")
        .Register<OrganizationSuspended>("organization-suspended")
        .Register<OrganizationReinstated>("organization-reinstated")
        .Register<FiscalPolicySet>("fiscal-policy-set", version: 2)
        .Upcast("fiscal-policy-set", fromVersion: 1, FiscalPolicySetV2)
        .Register<TaxAssessed>("tax-assessed", version: 2)
        .Upcast("tax-assessed", fromVersion: 1, v1 => Renamed(v1, "personId", "taxpayer"))
        .Register<DesignationChosen>("designation-chosen", version: 3)
        .Upcast("designation-chosen", fromVersion: 1, v1 => Renamed(v1, "personId", "taxpayer"))
        .Upcast("designation-chosen", fromVersion: 2, OwnChoice)
        .Register<DesignationWithdrawn>("designation-withdrawn", version: 3)
        .Upcast("designation-withdrawn", fromVersion: 1, v1 => Renamed(v1, "personId", "taxpayer"))
        .Upcast("designation-withdrawn", fromVersion: 2, OwnChoice)
        .Register<ResidentRegistered>("resident-registered", version: 2)
        .Upcast("resident-registered", fromVersion: 1, ResidentRegisteredV2)
        .Register<ResidentDeparted>("resident-departed", version: 2)
        .Upcast("resident-departed", fromVersion: 1, v1 => Renamed(v1, "personId", "resident"))
        .Register<PersonErased>("person-erased")
        .Register<VotingRulesSet>("voting-rules-set")
        .Register<BallotCalled>("ballot-called")
        .Register<BallotsCounted>("ballots-counted")
        .Register<ParticipationsRecorded>("participations-recorded", version: 2)
        .Upcast("participations-recorded", fromVersion: 1, v1 => Renamed(v1, "personIds", "residents"))
        .Register<BallotCertified>("ballot-certified")
        .Register<PactFounded>("pact-founded")
        .Register<PactRenamed>("pact-renamed")
        .Register<PactJoined>("pact-joined")
        .Register<PactLeft>("pact-left");

    /// <summary>Person events of version 1 were written before handles: they name the person by their person id in clear,
    /// which stays their handle (their key table row says so), so that folds join their old events and their new ones.</summary>
    private static JsonObject Renamed(JsonObject v1, string from, string to)
    {
        if (v1[from] is not { } value)
        {
            throw new JsonException($"'{from}' is missing or null");
        }

        v1.Remove(from);
        v1[to] = value;
        return v1;
    }

    /// <summary>Designations of version 2 and before were all the person's own: the platform restates standing ones, with
    /// the year they come from, since per-year taxpayer handles (version 3).</summary>
    private static JsonObject OwnChoice(JsonObject v2)
    {
        v2["carriedFrom"] = null;
        return v2;
    }

    /// <summary>resident-registered v1 holds the birth date in clear, which the event keeps in memory as if opened.</summary>
    private static JsonObject ResidentRegisteredV2(JsonObject v1)
    {
        if (v1["birthDate"] is null)
        {
            throw new JsonException("'birthDate' is missing or null");
        }

        Renamed(v1, "personId", "resident");
        v1["sealedBirthDate"] = null;
        return v1;
    }

    /// <summary>What an event holds only once opened with a person's key is never written: the stored payload keeps it
    /// sealed.</summary>
    private static void NeverWriteOpened(JsonTypeInfo type)
    {
        if (type.Type == typeof(ResidentRegistered))
        {
            type.Properties.Single(p => p.Name == "birthDate").ShouldSerialize = static (_, _) => false;
        }
    }

    private static readonly string[] CantonRegisteredV1 = ["cantonId", "name", "currency"];

    private static readonly string[] FiscalPolicySetV1 =
        ["cantonId", "fiscalYear", "designationRateBp", "maxOrganizations", "unallocatedPolicy", "deadline", "eligibleOrganizations"];

    /// <summary>canton-registered v1 was written before cantons had a locale and a time zone; v2 always holds both, and a
    /// v1 canton has the defaults (en, UTC). A v1 payload without one of its fields, or with a null, is corrupt.</summary>
    private static JsonObject CantonRegisteredV2(JsonObject v1)
    {
        if (CantonRegisteredV1.FirstOrDefault(f => v1[f] is null) is { } missing)
        {
            throw new JsonException($"'{missing}' is missing or null");
        }

        v1["locale"] = Canton.DefaultLocale;
        v1["timeZone"] = Canton.DefaultTimeZone;
        return v1;
    }

    /// <summary>fiscal-policy-set v1 wrote "every recognized organization" as <c>"eligibleOrganizations": null</c>; v2 says
    /// so in <c>"eligibility": "all"</c> (else <c>"listed"</c>) and always holds a list, empty for all. A v1 list, even an
    /// empty one, stays listed. A v1 payload without one of its fields (only the list may be null) is corrupt.</summary>
    private static JsonObject FiscalPolicySetV2(JsonObject v1)
    {
        if (FiscalPolicySetV1.FirstOrDefault(f => !v1.ContainsKey(f)) is { } missing)
        {
            throw new JsonException($"'{missing}' is missing");
        }

        if (FiscalPolicySetV1.FirstOrDefault(f => v1[f] is null && f != "eligibleOrganizations") is { } nulled)
        {
            throw new JsonException($"'{nulled}' is null");
        }

        var listed = v1["eligibleOrganizations"];
        v1["eligibility"] = listed is null ? "all" : "listed";
        if (listed is null)
        {
            v1["eligibleOrganizations"] = new JsonArray();
        }

        return v1;
    }

    /// <summary>Correlation (the caller's X-Correlation-Id if it is 1 to 128 visible ASCII characters, else the trace id)
    /// and actor of the current request. The log keeps what it is given: a NUL was a 500 (PostgreSQL text refuses it),
    /// control characters and line breaks would reach the audit feed.</summary>
    public static EventMetadata Metadata(this HttpContext http) => new(
        CorrelationId: http.Request.Headers["X-Correlation-Id"].FirstOrDefault() is { Length: > 0 and <= 128 } id && id.All(c => c is >= '!' and <= '~')
            ? id
            : http.TraceIdentifier,
        Actor: http.User.Actor());
}
