using System.Net;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Tests;

/// <summary>The kinds of caller the authorization matrix tries on every operation.</summary>
public enum Caller
{
    Anonymous,
    /// <summary>The person in the route, or a resident who votes, is assessed and designates.</summary>
    Person,
    /// <summary>A resident of another canton.</summary>
    AnotherPerson,
    /// <summary>The municipality of the route's canton.</summary>
    Municipality,
    AnotherMunicipality,
    Auditor,
    /// <summary>The organization in the route, or one recognized organization.</summary>
    Organization,
    AnotherOrganization,
    Admin,
}

/// <summary>
/// Every operation of the committed OpenAPI document × every kind of caller: who may call what is stated once, in
/// <see cref="Allowed"/>, from DESIGN.md's Roles. An allowed caller passes authorization (any answer but 401, 403 or
/// 5xx); anybody else is refused, anonymous with 401 and a bearer challenge, the others with 403, both as problem
/// details, whether the body is valid or not.
/// </summary>
public sealed class AuthorizationMatrixTests(AuthorizationMatrixTests.World world) : IClassFixture<AuthorizationMatrixTests.World>
{
    private static readonly Caller[] Everyone = Enum.GetValues<Caller>();
    private static readonly Caller[] Persons = [Caller.Person, Caller.AnotherPerson];

    /// <summary>Operation ("METHOD /path/{template}") → the callers allowed to call it.</summary>
    public static readonly IReadOnlyDictionary<string, Caller[]> Allowed = new Dictionary<string, Caller[]>(StringComparer.Ordinal)
    {
        ["GET /api/v1/cantons"] = Everyone,
        ["GET /api/v1/cantons/{cantonId}"] = Everyone,
        ["PUT /api/v1/cantons/{cantonId}"] = [Caller.Admin],

        ["GET /api/v1/organizations"] = Everyone,
        ["GET /api/v1/organizations/{organizationId}"] = Everyone,
        ["PUT /api/v1/organizations/{organizationId}"] = [Caller.Admin],
        ["POST /api/v1/organizations/{organizationId}/suspension"] = [Caller.Admin],
        ["POST /api/v1/organizations/{organizationId}/reinstatement"] = [Caller.Admin],
        ["GET /api/v1/organizations/{organizationId}/receipts/{year}"] = [Caller.Organization, Caller.Auditor, Caller.Admin],

        ["GET /api/v1/cantons/{cantonId}/fiscal-years/{year}/policy"] = Everyone,
        ["PUT /api/v1/cantons/{cantonId}/fiscal-years/{year}/policy"] = [Caller.Municipality],
        ["POST /api/v1/cantons/{cantonId}/tax-assessments"] = [Caller.Municipality],
        ["POST /api/v1/cantons/{cantonId}/tax-assessments/batch"] = [Caller.Municipality],
        ["GET /api/v1/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}"] = [Caller.Person],
        ["PUT /api/v1/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}"] = [Caller.Person],
        ["DELETE /api/v1/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}"] = [Caller.Person],
        ["GET /api/v1/cantons/{cantonId}/budgets/{year}"] = Everyone,

        ["POST /api/v1/cantons/{cantonId}/residents"] = [Caller.Municipality],
        ["POST /api/v1/cantons/{cantonId}/residents/{personId}/departure"] = [Caller.Municipality],
        ["GET /api/v1/cantons/{cantonId}/census"] = Everyone,
        ["GET /api/v1/cantons/{cantonId}/voting-rules"] = Everyone,
        ["PUT /api/v1/cantons/{cantonId}/voting-rules"] = [Caller.Municipality],

        ["POST /api/v1/cantons/{cantonId}/ballots"] = [Caller.Municipality],
        ["GET /api/v1/cantons/{cantonId}/ballots"] = Everyone,
        ["GET /api/v1/cantons/{cantonId}/ballots/{ballotId}"] = Everyone,
        ["GET /api/v1/cantons/{cantonId}/ballots/{ballotId}/eligibility"] = Persons,
        ["POST /api/v1/cantons/{cantonId}/ballots/{ballotId}/votes"] = [Caller.Person],
        ["GET /api/v1/cantons/{cantonId}/ballots/{ballotId}/participation"] = Persons,
        ["POST /api/v1/cantons/{cantonId}/ballots/{ballotId}/close"] = [Caller.Municipality],
        ["GET /api/v1/cantons/{cantonId}/ballots/{ballotId}/results"] = Everyone,

        ["GET /api/v1/pacts/{pactId}"] = Everyone,
        ["PUT /api/v1/pacts/{pactId}"] = [Caller.Admin],

        ["DELETE /api/v1/persons/{personId}"] = [Caller.Admin],

        ["GET /api/v1/audit/events"] = [Caller.Auditor],
        ["GET /api/v1/audit/seals"] = Everyone,
    };

    /// <summary>Each operation × caller with a valid body, and each refused caller of a write again with an invalid one.</summary>
    public static TheoryData<string, Caller, bool> Cases()
    {
        var cases = new TheoryData<string, Caller, bool>();
        foreach (var operation in Document.Operations())
        {
            foreach (var caller in Everyone)
            {
                cases.Add(operation, caller, true);
                if (World.HasBody(operation) && Allowed.TryGetValue(operation, out var allowed) && !allowed.Contains(caller))
                {
                    cases.Add(operation, caller, false);
                }
            }
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Each_operation_answers_each_caller_as_the_matrix_says(string operation, Caller caller, bool validBody)
    {
        Assert.True(Allowed.TryGetValue(operation, out var allowed),
            $"{operation} is in openapi/confederal.v1.json but has no rule in {nameof(AuthorizationMatrixTests)}.{nameof(Allowed)}.");

        using var response = await world.SendAsync(operation, caller, validBody);

        var status = (int)response.StatusCode;
        var body = await response.Content.ReadAsStringAsync();
        var problem = response.Content.Headers.ContentType?.MediaType == "application/problem+json";
        var (expected, met) = allowed.Contains(caller)
            ? ("authorized (not 401, 403 or 5xx)", status is not (401 or 403) and < 500)
            : caller == Caller.Anonymous
                ? ("401 problem with a Bearer challenge", status == 401 && problem && response.Headers.WwwAuthenticate.Any(h => h.Scheme == "Bearer"))
                : ("403 problem", status == 403 && problem);
        Assert.True(met, $"{operation} as {caller} ({(validBody ? "valid" : "invalid")} body): expected {expected}, got {status} " +
            $"{response.Content.Headers.ContentType} {response.Headers.WwwAuthenticate} {body}");
    }

    [Fact]
    public void Every_rule_names_an_operation_of_the_document_and_every_operation_has_a_rule()
    {
        var operations = Document.Operations().ToHashSet(StringComparer.Ordinal);

        var unruled = operations.Where(o => !Allowed.ContainsKey(o)).Order(StringComparer.Ordinal).ToList();
        var orphans = Allowed.Keys.Where(o => !operations.Contains(o)).Order(StringComparer.Ordinal).ToList();

        Assert.True(unruled.Count == 0 && orphans.Count == 0,
            $"Operations without a rule: [{string.Join(", ", unruled)}]. Rules without an operation in the document: [{string.Join(", ", orphans)}].");
    }

    /// <summary>The operations of openapi/confederal.v1.json, as "METHOD /path/{template}".</summary>
    private static class Document
    {
        private static readonly string[] Methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

        public static List<string> Operations()
        {
            using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(HostTests.RepositoryRoot(), "openapi", "confederal.v1.json")));
            return document.RootElement.GetProperty("paths").EnumerateObject()
                .SelectMany(path => path.Value.EnumerateObject()
                    .Where(operation => Methods.Contains(operation.Name, StringComparer.Ordinal))
                    .Select(operation => $"{operation.Name.ToUpperInvariant()} {path.Name}"))
                .ToList();
        }
    }

    /// <summary>A canton with its municipality, residents, a fiscal year, an open ballot; a second canton with a resident of
    /// its own; two recognized organizations and a pact: route values that reach the handlers, and a valid body for
    /// every write.</summary>
    public sealed class World : IAsyncLifetime, IAsyncDisposable
    {
        private const string Canton = "am-ur";
        private const string OtherCanton = "am-gl";
        private const string Organization = "am-linux";
        private const string OtherOrganization = "am-oceans";
        private const string Pact = "am-alps";
        private const string Resident = "am-resident";
        private const string Leaver = "am-leaver";
        private const string Stranger = "am-stranger";
        private const int Year = 2030;
        private static readonly DateOnly Long = new(2015, 1, 1);

        private readonly ApiFactory _api = new();
        private DateTimeOffset _now;
        private DateTimeOffset _deadline;
        private Guid _ballot;

        public async Task InitializeAsync()
        {
            await ((IAsyncLifetime)_api).InitializeAsync();
            _now = _api.Clock.GetUtcNow();
            _deadline = _now.AddDays(30);
            var d = new Democracy(_api);
            await d.Fiscal.CantonAsync(Canton);
            await d.Fiscal.CantonAsync(OtherCanton);
            await d.Fiscal.OrganizationAsync(Organization);
            await d.Fiscal.OrganizationAsync(OtherOrganization);
            await d.Fiscal.PactAsync(Pact);
            await d.Fiscal.PolicyAsync(Canton, Year, rateBp: 70, deadline: _deadline);
            await Fiscal.Ok(d.ResideAsync(Canton, Resident, Long));
            await Fiscal.Ok(d.ResideAsync(Canton, Leaver, Long));
            await Fiscal.Ok(d.ResideAsync(OtherCanton, Stranger, Long));
            await d.Fiscal.AssessAsync(Canton, Resident, Year, 1_000_000);
            await Fiscal.Ok(d.Fiscal.DesignateAsync(Canton, Year, Resident, standing: false, (Organization, 10_000)));
            _ballot = await d.BallotAsync(Canton);
        }

        public static bool HasBody(string operation) => Body(operation, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch) is not null;

        public async Task<HttpResponseMessage> SendAsync(string operation, Caller caller, bool validBody)
        {
            var (method, template) = (operation[..operation.IndexOf(' ', StringComparison.Ordinal)], operation[(operation.IndexOf(' ', StringComparison.Ordinal) + 1)..]);
            var person = template.EndsWith("/departure", StringComparison.Ordinal) ? Leaver : Resident;
            var path = System.Text.RegularExpressions.Regex.Replace(template, "{([^}]+)}", parameter => parameter.Groups[1].Value switch
            {
                "cantonId" => Canton,
                "organizationId" => Organization,
                "pactId" => Pact,
                "year" => Year.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "personId" => person,
                "ballotId" => _ballot.ToString(),
                var name => throw new InvalidOperationException($"{operation}: the matrix has no value for the route parameter {{{name}}}."),
            });
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            if (Body(operation, _now, _deadline) is var (json, mediaType))
            {
                request.Content = new StringContent(validBody ? json : "{}", Encoding.UTF8, validBody ? mediaType : "application/json");
            }

            return await Client(caller, person).SendAsync(request);
        }

        private HttpClient Client(Caller caller, string person) => caller switch
        {
            Caller.Anonymous => _api.CreateClient(),
            Caller.Person => _api.ClientAs(Roles.Person, subject: person),
            Caller.AnotherPerson => _api.ClientAs(Roles.Person, subject: Stranger),
            Caller.Municipality => _api.ClientAs(Roles.Municipality, subject: $"{Canton}-admin", canton: Canton),
            Caller.AnotherMunicipality => _api.ClientAs(Roles.Municipality, subject: $"{OtherCanton}-admin", canton: OtherCanton),
            Caller.Auditor => _api.ClientAs(Roles.Auditor, subject: "am-auditor"),
            Caller.Organization => _api.ClientAs(Roles.Organization, subject: Organization),
            Caller.AnotherOrganization => _api.ClientAs(Roles.Organization, subject: OtherOrganization),
            Caller.Admin => _api.Admin(),
            _ => throw new ArgumentOutOfRangeException(nameof(caller), caller, null),
        };

        /// <summary>A body the operation accepts from an allowed caller (the same one again is a retry); null when it takes none.</summary>
        private static (string Json, string MediaType)? Body(string operation, DateTimeOffset now, DateTimeOffset deadline) => operation switch
        {
            "POST /api/v1/cantons/{cantonId}/tax-assessments/batch" =>
                ($$"""{"personId": "{{Resident}}", "fiscalYear": {{Year}}, "amountMinor": 250000}""" + "\n", "application/x-ndjson"),
            _ => Json(operation, now, deadline) is { } body ? (JsonSerializer.Serialize(body), "application/json") : null,
        };

        private static object? Json(string operation, DateTimeOffset now, DateTimeOffset deadline) => operation switch
        {
            "PUT /api/v1/cantons/{cantonId}" => new { name = Canton.ToUpperInvariant(), currency = "CHF" },
            "PUT /api/v1/organizations/{organizationId}" => new { name = Organization, kind = "commons", acceptsRedistribution = true },
            "PUT /api/v1/cantons/{cantonId}/fiscal-years/{year}/policy" => new
            {
                designationRateBp = 70, maxOrganizations = 3, unallocatedPolicy = "retain", deadline, eligibleOrganizations = "all",
            },
            "POST /api/v1/cantons/{cantonId}/tax-assessments" => new { personId = Resident, fiscalYear = Year, amountMinor = 1_000_000 },
            "PUT /api/v1/cantons/{cantonId}/fiscal-years/{year}/designations/{personId}" => new
            {
                choices = new[] { new { organizationId = Organization, shareBp = 10_000 } }, standing = false,
            },
            "POST /api/v1/cantons/{cantonId}/residents" => new
            {
                personId = "am-newcomer", residentSince = new DateOnly(2020, 1, 1), birthDate = new DateOnly(1990, 1, 1),
            },
            "POST /api/v1/cantons/{cantonId}/residents/{personId}/departure" => new { leftOn = DateOnly.FromDateTime(now.UtcDateTime).AddDays(-1) },
            "PUT /api/v1/cantons/{cantonId}/voting-rules" => new { votingAge = 16, minimumResidenceDays = 0 },
            "POST /api/v1/cantons/{cantonId}/ballots" => new
            {
                question = "Shall the canton do it?", options = new[] { "alpha-choice", "beta-choice" },
                censusDate = DateOnly.FromDateTime(now.AddMinutes(-1).UtcDateTime), opensAt = now.AddMinutes(-1), closesAt = now.AddHours(1),
            },
            "POST /api/v1/cantons/{cantonId}/ballots/{ballotId}/votes" => new { option = "alpha-choice" },
            "PUT /api/v1/pacts/{pactId}" => new { name = Pact.ToUpperInvariant(), currency = "CHF", distribution = "equal" },
            "DELETE /api/v1/persons/{personId}" => new { basis = "court-order", reference = "case 2026/1" },
            _ => null,
        };

        Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();

        public ValueTask DisposeAsync() => _api.DisposeAsync();
    }
}
