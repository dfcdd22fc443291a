using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>
/// Thousands of malformed requests, drawn from a seed, to every operation of the OpenAPI document, each carrying a token
/// of a role allowed to call it (for the route's canton, person or organization) so that it reaches binding and
/// validation. Each starts from a valid request that would record something and carries at least one defect no valid
/// request has: a malformed body (truncated, wrong types, nulls, huge numbers or strings, deep nesting, unknown or
/// repeated members, invalid UTF-8, empty, a wrong Content-Type, an array or a scalar for an object), a malformed route
/// value, query parameter or Idempotency-Key (empty, too long, control characters, two of them); on top of it, noise
/// that is not itself a defect (odd If-Match values, fresh Idempotency-Keys, huge headers, unknown query parameters). Whatever arrives: never a 5xx, always a 4xx problem, and not a row more or
/// less in any table. CONFEDERAL_FUZZ_SEED replays a run; CONFEDERAL_FUZZ_REQUESTS sets its length.
/// </summary>
public sealed class FuzzTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("CONFEDERAL_FUZZ_SEED"), out var seed) ? seed : Random.Shared.Next();

    private static readonly int Count = int.TryParse(Environment.GetEnvironmentVariable("CONFEDERAL_FUZZ_REQUESTS"), out var count) ? count : 5000;

    [Fact]
    public async Task Malformed_requests_to_every_endpoint_are_4xx_problems_and_record_nothing()
    {
        var world = await World.BuildAsync(api);
        var operations = await Operation.ReadAsync(api.CreateClient());
        var unseeded = operations.Where(o => !Seeds.ContainsKey(o.Id)).Select(o => o.Id).ToList();
        Assert.True(unseeded.Count == 0, $"Operations the fuzzer has no valid request for: {string.Join(", ", unseeded)}");
        var rows = await RowsAsync();

        var generator = new Generator(new Random(Seed), world, api.Clock.GetUtcNow());
        var requests = Enumerable.Range(0, Count).Select(_ => generator.Next(operations)).ToList();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var client = api.CreateClient();
        await Parallel.ForEachAsync(requests, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (request, ct) =>
        {
            using var message = request.ToMessage(world.Key);
            using var response = await client.SendAsync(message, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            var status = (int)response.StatusCode;
            statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
            if (Problem(request.Invalid, status, response.Content.Headers.ContentType?.MediaType, body) is { } problem)
            {
                failures.Enqueue($"{problem}: {request}\n    → {status} {Cut(body, 300)}");
            }
        });

        var after = await RowsAsync();
        var changed = rows.Where(r => after.GetValueOrDefault(r.Key) != r.Value).Select(r => $"{r.Key}: {r.Value} → {after.GetValueOrDefault(r.Key)}").ToList();
        var summary = $"Seed {Seed} (replay with CONFEDERAL_FUZZ_SEED={Seed}), {requests.Count} requests, statuses " +
                      string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Value}"));
        Assert.True(failures.IsEmpty, $"{summary}\n{failures.Count} failures, the first:\n{string.Join("\n", failures.Take(15))}");
        Assert.True(changed.Count == 0, $"{summary}\nRows recorded: {string.Join(", ", changed)}");
        Assert.True(new[] { 400, 403, 404, 413, 415 }.All(statuses.ContainsKey), summary); // the defects reach each kind of refusal
    }

    [Fact]
    public async Task Every_request_the_fuzzer_starts_from_is_valid_even_with_noise()
    {
        await using var fresh = await ApiFactory.StartAsync();
        var world = await World.BuildAsync(fresh);
        var operations = await Operation.ReadAsync(fresh.CreateClient());
        var generator = new Generator(new Random(Seed), world, fresh.Clock.GetUtcNow());
        var client = fresh.CreateClient();

        // Reads first, then writes: a write may change what a read finds (a withdrawn designation is gone).
        foreach (var operation in operations.OrderBy(o => o.Method != "GET").ThenBy(o => o.Id, StringComparer.Ordinal))
        {
            var request = generator.Valid(operation); // with noise: odd headers and query parameters change nothing
            using var message = request.ToMessage(world.Key);
            using var response = await client.SendAsync(message);
            var expected = operation.Id == "CloseBallot" ? HttpStatusCode.Conflict : (HttpStatusCode?)null; // open until closesAt
            Assert.True(expected is { } e ? response.StatusCode == e : response.IsSuccessStatusCode,
                $"{request} → {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    private static string? Problem(bool invalid, int status, string? mediaType, string body)
    {
        if (status >= 500)
        {
            return "server error";
        }

        if (status < 400)
        {
            return invalid ? "accepted" : null;
        }

        if (mediaType != "application/problem+json")
        {
            return $"not a problem ({mediaType})";
        }

        try
        {
            using var problem = JsonDocument.Parse(body);
            return problem.RootElement.TryGetProperty("status", out var s) && s.GetInt32() == status ? null : "problem without its status";
        }
        catch (JsonException)
        {
            return "problem that is not JSON";
        }
    }

    private static string Cut(string text, int length) => text.Length <= length ? text : text[..length] + $"…({text.Length} chars)";

    /// <summary>The number of rows of every table of the database.</summary>
    private async Task<Dictionary<string, long>> RowsAsync()
    {
        foreach (var projection in api.Services.GetServices<IProjection>())
        {
            await api.ProjectedAsync(projection.Name);
        }

        await api.SealedAsync();
        var dataSource = api.Services.GetRequiredService<NpgsqlDataSource>();
        var tables = new List<string>();
        await using (var list = dataSource.CreateCommand("""
                         SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                         """))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        Assert.Contains("marten.mt_events", tables);
        var rows = new Dictionary<string, long>();
        foreach (var table in tables)
        {
            // Marten's daemon keeps its own marks there (HighWaterMark, HighWaterAllocationFence, HighWaterStuckGap), and adds
            // them when its polling finds the store so: bookkeeping of its own, not rows a request recorded.
            await using var command = dataSource.CreateCommand(table == "marten.mt_event_progression"
                ? $"SELECT count(*) FROM {table} WHERE name NOT LIKE 'HighWater%'"
                : $"SELECT count(*) FROM {table}");
            rows[table] = (long)(await command.ExecuteScalarAsync())!;
        }

        return rows;
    }

    /// <summary>A valid request per operation: the role that may send it and what it sends. The route values not named
    /// here are the world's (canton fz, organization org-a, pact pact-a, person p-1, year 2026, the open ballot).</summary>
    private sealed record SeedRequest(string Role, string? Body = null, Dictionary<string, string>? Route = null, string[]? Nullable = null, bool Batch = false);

    private static readonly Dictionary<string, SeedRequest> Seeds = new(StringComparer.Ordinal)
    {
        ["RegisterCanton"] = new(Roles.Admin, """{"name": "Fuzz canton", "currency": "CHF", "locale": "fr-CH", "timeZone": "Europe/Zurich"}""",
            new() { ["cantonId"] = "fz-new" }, ["locale", "timeZone"]),
        ["GetCanton"] = new(""),
        ["ListCantons"] = new(""),
        ["RecognizeOrganization"] = new(Roles.Admin, """{"name": "Fuzz organization", "kind": "commons", "acceptsRedistribution": true}""",
            new() { ["organizationId"] = "org-new" }),
        ["GetOrganization"] = new(""),
        ["SuspendOrganization"] = new(Roles.Admin, Route: new() { ["organizationId"] = "org-b" }),
        ["ReinstateOrganization"] = new(Roles.Admin, Route: new() { ["organizationId"] = "org-c" }),
        ["ListOrganizations"] = new(""),
        ["GetOrganizationReceipts"] = new(Roles.Organization),
        ["SetFiscalPolicy"] = new(Roles.Municipality,
            """{"designationRateBp": 80, "maxOrganizations": 3, "unallocatedPolicy": "retain", "deadline": "{deadline}", "eligibleOrganizations": "all"}""",
            new() { ["year"] = "2027" }, ["maxOrganizations", "eligibleOrganizations"]),
        ["GetFiscalPolicy"] = new(""),
        ["AssessTax"] = new(Roles.Municipality, """{"personId": "p-3", "fiscalYear": 2026, "amountMinor": 500000}"""),
        ["ImportTaxAssessments"] = new(Roles.Municipality, Batch: true),
        ["Designate"] = new(Roles.Person, """{"choices": [{"organizationId": "org-b", "shareBp": 6000}, {"organizationId": "org-a", "shareBp": 4000}], "standing": true}""",
            Nullable: ["standing"]),
        ["GetDesignation"] = new(Roles.Person),
        ["WithdrawDesignation"] = new(Roles.Person),
        ["GetBudget"] = new(""),
        ["RegisterResident"] = new(Roles.Municipality, """{"personId": "p-2", "residentSince": "2020-01-01", "birthDate": "1990-06-15"}"""),
        ["RecordDeparture"] = new(Roles.Municipality, """{"leftOn": "{yesterday}"}"""),
        ["GetCensus"] = new(""),
        ["SetVotingRules"] = new(Roles.Municipality, """{"votingAge": 18, "minimumResidenceDays": 30}"""),
        ["GetVotingRules"] = new(""),
        ["CallBallot"] = new(Roles.Municipality,
            """{"question": "Shall the fuzzer pass?", "options": ["yes-option", "no-option"], "censusDate": "{today}", "opensAt": "{opensAt}", "closesAt": "{closesAt}", "proposal": null}""",
            Nullable: ["proposal"]),
        ["GetBallot"] = new(""),
        ["ListBallots"] = new(""),
        ["GetEligibility"] = new(Roles.Person),
        ["CastVote"] = new(Roles.Person, """{"option": "alpha-choice"}"""),
        ["GetParticipation"] = new(Roles.Person),
        ["CloseBallot"] = new(Roles.Municipality),
        ["GetBallotResults"] = new("", Route: new() { ["ballotId"] = "{certified}" }),
        ["FoundPact"] = new(Roles.Admin, """{"name": "Fuzz pact", "currency": "CHF", "distribution": "equal"}""", new() { ["pactId"] = "pact-new" }),
        ["GetPact"] = new(""),
        ["ErasePerson"] = new(Roles.Admin, """{"basis": "erasure-request", "reference": "case 2026/1"}""", new() { ["personId"] = "p-gone" }),
        ["GetAuditEvents"] = new(Roles.Auditor),
        ["GetAuditSeals"] = new(""),
    };

    /// <summary>An operation of the OpenAPI document.</summary>
    private sealed record Operation(string Id, string Method, string Path, IReadOnlyList<string> RouteParameters, IReadOnlyList<string> QueryParameters)
    {
        public static async Task<List<Operation>> ReadAsync(HttpClient client)
        {
            using var document = JsonDocument.Parse(await client.GetStringAsync("/openapi/v1.json"));
            var operations = new List<Operation>();
            foreach (var path in document.RootElement.GetProperty("paths").EnumerateObject())
            {
                foreach (var operation in path.Value.EnumerateObject())
                {
                    var parameters = operation.Value.TryGetProperty("parameters", out var p) ? p.EnumerateArray().ToList() : [];
                    operations.Add(new Operation(
                        operation.Value.GetProperty("operationId").GetString()!, operation.Name.ToUpperInvariant(), path.Name,
                        [.. parameters.Where(x => x.GetProperty("in").GetString() == "path").Select(x => x.GetProperty("name").GetString()!)],
                        [.. parameters.Where(x => x.GetProperty("in").GetString() == "query").Select(x => x.GetProperty("name").GetString()!)]));
                }
            }

            Assert.True(operations.Count >= 30, $"only {operations.Count} operations in the document");
            return operations;
        }
    }

    /// <summary>What the valid requests refer to.</summary>
    private sealed record World(Guid OpenBallot, Guid CertifiedBallot, SecurityKey Key)
    {
        public static async Task<World> BuildAsync(ApiFactory api)
        {
            var democracy = new Democracy(api);
            var fiscal = democracy.Fiscal;
            await fiscal.CantonAsync("fz");
            await fiscal.OrganizationAsync("org-a");
            await fiscal.OrganizationAsync("org-b");
            await fiscal.OrganizationAsync("org-c");
            await Fiscal.Ok(fiscal.Admin.PostAsync("/api/v1/organizations/org-c/suspension", null));
            await fiscal.PolicyAsync("fz", 2026, 70);
            await fiscal.AssessAsync("fz", "p-1", 2026, 1_000_000);
            await Fiscal.Ok(fiscal.DesignateAsync("fz", 2026, "p-1", false, ("org-a", 10000)));
            await fiscal.PactAsync("pact-a");
            await fiscal.ResidentAsync("p-1", "fz", new DateOnly(2000, 1, 1));
            await fiscal.ResidentAsync("p-gone", "fz", new DateOnly(2000, 1, 1)); // left long ago, paid no tax here: erasable
            await fiscal.DepartAsync("p-gone", "fz", new DateOnly(2005, 1, 1));
            var certified = await democracy.BallotAsync("fz");
            await democracy.ReceiptAsync("fz", certified, "p-1", "alpha-choice");
            await democracy.CloseAsync("fz", certified);
            var open = await democracy.BallotAsync("fz", closesAt: api.Clock.GetUtcNow().AddDays(1));
            // The reads expect it projected: under load a budget read first was a 404 behind the projection.
            foreach (var projection in api.Services.GetServices<IProjection>())
            {
                await api.ProjectedAsync(projection.Name);
            }

            return new World(open, certified, api.SigningKey);
        }
    }

    /// <summary>One request as sent, and what was done to it.</summary>
    private sealed record Request(
        string Operation, string Method, string Url, byte[]? Body, string? ContentType, List<(string Name, string Value)> Headers,
        string Role, string? Subject, string? Canton, bool Invalid, List<string> Defects)
    {
        public HttpRequestMessage ToMessage(SecurityKey key)
        {
            var message = new HttpRequestMessage(new HttpMethod(Method), Url);
            if (Role.Length > 0)
            {
                message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", DevTokens.Issue(key, Role, Subject, Canton));
            }

            if (Body is not null)
            {
                message.Content = new ByteArrayContent(Body);
                if (ContentType is not null)
                {
                    message.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
                }
            }

            foreach (var (name, value) in Headers)
            {
                message.Headers.TryAddWithoutValidation(name, value);
            }

            return message;
        }

        public override string ToString() =>
            $"{Operation} {Method} {Cut(Url, 200)} as {(Role.Length > 0 ? Role : "anonymous")} [{string.Join("; ", Defects)}]" +
            (Body is null ? "" : $" {ContentType}: {Cut(Encoding.UTF8.GetString(Body), 200)}");
    }

    /// <summary>Draws requests: a valid one, one or two defects, and noise.</summary>
    private sealed class Generator(Random random, World world, DateTimeOffset now)
    {
        // Route values: no NUL, which servers refuse before the application sees the request (TestServer throws to the
        // client); no valid slug such as "ab-" (a canton would be registered); no "." or "..", which the client removes.
        private static readonly string[] BadSlugs =
        [
            "A", "a", "-ab", "ab_c", "ab.c", "Ab", "AB", "a b", "ab/cd", "ab\\cd", "é-canton", new('a', 64), new('x', 3000),
            "ab\u0001", "\u200Bab", "🙂🙂", "ab%", "a?b", "a#b", "a&b=c", "'; DROP TABLE es.events; --", "<script>", "ab\r\ncd",
        ];

        private static readonly string[] BadPersons = ["a b", new('p', 65), "é", "p/1", "p\u0001", "p#1", "p?1", "p%1", "p,1", "p;1", "<p>", new('p', 3000), "p\n1", "🙂"];

        private static readonly string[] RawJunk = ["%01", "%FF%FE", "%C3%28", "%E2%82", "%%", "%zz", "%2F", "%2e%2e%2fetc", "%25%30", "%C0%AF", "%ED%A0%80"];

        private static readonly string[] BadYears = ["1999", "2101", "0", "-2026", "99999999999", "abc", "2026.5", "2026a", "1e3", "٢٠٢٦", "0x7EA", "2026%01"];

        private static readonly string[] BadGuids = ["not-a-guid", "1234", "00000000-0000-0000-0000-00000000000g", "%01", "{0}", "00000000-0000-0000-0000-000000000000"];

        private static readonly Dictionary<string, string[]> BadQueries = new(StringComparer.Ordinal)
        {
            ["asOf"] = ["abc", "0", "-1", "99999999999999999999", "999999999", "2026-13-45T00:00:00Z", "2999-01-01T00:00:00Z", "1.5",
                "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+25:00", new('9', 5000), "%FF", "%00", "1%2C2"],
            ["on"] = ["abc", "2026-02-30", "1800-01-01", "99999-01-01", "2026/01/01", "%FF", "26-01-01", new('1', 3000)],
            ["page"] = ["-1", "abc", "99999999999", "1.5", "%00", "100000"],
            ["after"] = ["-1", "abc", "99999999999999999999", "1.5", "%FF"],
            ["limit"] = ["0", "-1", "100000000", "abc", "99999999999", "1001"],
            ["canton"] = ["A", "a b", "ab_c", "%FF", new('a', 64), "%00"],
            ["ledger"] = ["A", "a b", "ab_c", "%FF", new('a', 64), "%00", "*DEFAULT*"],
            ["type"] = ["no-such-event", "%00", new('t', 3000), "%FF", "Tax-Assessed"],
            ["kind"] = ["no-such-kind", "%FF", "%00", "12", new('k', 3000)],
            ["status"] = ["closed", "Open", "", "open,closing", "%FF", "%00", new('s', 3000)],
        };

        // Not "" nor " ": the client drops an empty header, and the request goes without a key.
        private static readonly string[][] BadKeys =
        [
            [new('k', Idempotency.MaxKeyLength + 1)], [new('k', 300)], ["a b"], ["k\u0001"], ["ключ"], ["\u007f"], ["k\tk"], ["é"],
            ["one-key", "another-key"],
        ];

        private static readonly string[] WrongContentTypes =
            ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz", "application/octet-stream", "json", "application/jsonx"];

        private static readonly string[] HugeNumbers = ["1e400", "-1e400", "123456789012345678901234567890", "9223372036854775808", "-9223372036854775809", "1.5", "-0.5"];

        private static readonly byte[][] InvalidUtf8 = [[0xFF], [0xC3, 0x28], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF], [0x80]];

        private static readonly Dictionary<string, JsonValueKind[]> Kinds = new(StringComparer.Ordinal)
        {
            ["eligibleOrganizations"] = [JsonValueKind.String, JsonValueKind.Array],
            ["proposal"] = [JsonValueKind.Object],
        };

        public Request Next(IReadOnlyList<Operation> operations)
        {
            var operation = operations[random.Next(operations.Count)];
            var draft = Draft.Of(operation, Seeds[operation.Id], world, now);
            var kinds = new List<Action<Draft>>();
            if (operation.RouteParameters.Count > 0)
            {
                kinds.Add(BadRoute);
            }

            if (operation.QueryParameters.Count > 0)
            {
                kinds.Add(BadQuery);
            }

            if (operation.Method is "POST" or "PUT" or "DELETE")
            {
                kinds.Add(BadIdempotencyKey);
            }

            if (draft.Seed.Batch)
            {
                kinds.Add(BadBatch);
            }
            else if (draft.Json is not null)
            {
                kinds.Add(BadBody);
                kinds.Add(BadBody);
            }

            if (kinds.Count > 0)
            {
                kinds[random.Next(kinds.Count)](draft);
                if (random.NextDouble() < 0.2)
                {
                    kinds[random.Next(kinds.Count)](draft);
                }
            }

            for (var noise = random.Next(4); noise > 0; noise--)
            {
                Noise(draft);
            }

            return draft.ToRequest(kinds.Count > 0);
        }

        public Request Valid(Operation operation)
        {
            var draft = Draft.Of(operation, Seeds[operation.Id], world, now);
            for (var noise = 1 + random.Next(3); noise > 0; noise--)
            {
                Noise(draft);
            }

            return draft.ToRequest(invalid: false);
        }

        private T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];

        private void BadRoute(Draft draft)
        {
            var name = Pick(draft.Operation.RouteParameters);
            if (random.NextDouble() < 0.15)
            {
                var junk = Pick(RawJunk) + (random.NextDouble() < 0.5 ? "x" : "");
                draft.Route[name] = (junk, Uri.UnescapeDataString(junk));
                draft.Defects.Add($"route {name} {junk}");
                return;
            }

            var value = name switch
            {
                "cantonId" or "organizationId" or "pactId" => Pick(BadSlugs),
                "personId" => Pick(BadPersons),
                "year" => Pick(BadYears),
                "ballotId" => random.NextDouble() < 0.3 ? Guid.NewGuid().ToString() : Pick(BadGuids).Replace("{0}", "{" + world.OpenBallot + "x}", StringComparison.Ordinal),
                _ => throw new InvalidOperationException($"The fuzzer has no bad values for the route parameter {name}."),
            };
            draft.Route[name] = name == "year" ? (value, value) : (Uri.EscapeDataString(value), value);
            draft.Defects.Add($"route {name} {Cut(value, 40)}");
        }

        private void BadIdempotencyKey(Draft draft)
        {
            var keys = Pick(BadKeys);
            draft.Headers.AddRange(keys.Select(k => (Idempotency.Header, k)));
            draft.Defects.Add($"Idempotency-Key {string.Join(" + ", keys.Select(k => $"'{Cut(k, 20)}'"))}");
        }

        private void BadQuery(Draft draft)
        {
            var name = Pick(draft.Operation.QueryParameters);
            var value = BadQueries.TryGetValue(name, out var values)
                ? Pick(values)
                : throw new InvalidOperationException($"The fuzzer has no bad values for the query parameter {name}.");
            draft.Query.Add((name, value.Contains('%', StringComparison.Ordinal) ? value : Uri.EscapeDataString(value)));
            draft.Defects.Add($"query {name}={Cut(value, 40)}");
        }

        private void BadBody(Draft draft)
        {
            if (draft.Body is not null)
            {
                return; // already cut, repeated or made invalid byte by byte: the document is no longer what is sent
            }

            while (!TryBadBody(draft, random.Next(14)))
            {
            }
        }

        /// <summary>One defect of the body, if it applies; a value already made wrong is never touched again (a second
        /// defect could make it right).</summary>
        private bool TryBadBody(Draft draft, int defect)
        {
            var json = draft.Json!;
            var members = Members(json).Where(m => !draft.Touched.Any(t => Path(m.Parent, m.Key).StartsWith(t, StringComparison.Ordinal))).ToList();
            (JsonNode Parent, object Key, JsonNode? Value) Touch((JsonNode Parent, object Key, JsonNode? Value) member)
            {
                draft.Touched.Add(Path(member.Parent, member.Key));
                return member;
            }

            switch (defect)
            {
                case 0:
                    var whole = draft.Bytes();
                    draft.Body = whole[..random.Next(whole.Length)];
                    draft.Defects.Add($"truncated to {draft.Body.Length} bytes");
                    return true;
                case 1 when members.Count > 0:
                    var (parent, key, value) = Touch(Pick(members));
                    var kind = value?.GetValueKind() ?? JsonValueKind.Null;
                    var accepted = Kinds.GetValueOrDefault(Name(parent, key)) ?? [kind is JsonValueKind.False ? JsonValueKind.True : kind];
                    var wrong = new (string Text, JsonValueKind Kind)[]
                        {
                            ("\"fuzz\"", JsonValueKind.String), ("12", JsonValueKind.Number), ("true", JsonValueKind.True), ("{}", JsonValueKind.Object),
                            ("[]", JsonValueKind.Array), ("[\"x\", 1]", JsonValueKind.Array),
                        }
                        .Where(w => !accepted.Contains(w.Kind)).ToList();
                    var replacement = Pick(wrong);
                    Set(parent, key, JsonNode.Parse(replacement.Text));
                    draft.Defects.Add($"{Name(parent, key)} of the wrong type ({replacement.Text})");
                    return true;
                case 2:
                    var nonNullable = members.Where(m => m.Value is not null && !draft.Seed.Nullable.OrEmpty().Contains(Name(m.Parent, m.Key))).ToList();
                    if (nonNullable.Count == 0)
                    {
                        return false;
                    }

                    var (p, k, _) = Touch(Pick(nonNullable));
                    Set(p, k, null);
                    draft.Defects.Add($"{Name(p, k)} null");
                    return true;
                case 3 when members.Count > 0:
                    RawMember(draft, Touch(Pick(members)), Pick(HugeNumbers), "a huge number");
                    return true;
                case 4 when members.Count > 0:
                    var length = random.Next(5_000, 200_000);
                    var (sp, sk, _) = Touch(Pick(members));
                    Set(sp, sk, JsonValue.Create(string.Concat(Enumerable.Repeat("xé🙂", length / 4))));
                    draft.Defects.Add($"{Name(sp, sk)} a string of {length} chars");
                    return true;
                case 5 when members.Count > 0:
                    var (op, ok, _) = Touch(Pick(members));
                    Set(op, ok, JsonValue.Create(new string('x', (int)BodyLimits.DefaultBytes + 1)));
                    draft.Defects.Add($"{Name(op, ok)} over the body limit");
                    return true;
                case 6 when members.Count > 0:
                    var depth = random.Next(65, 2000);
                    RawMember(draft, Touch(Pick(members)), random.NextDouble() < 0.5
                        ? new string('[', depth) + new string(']', depth)
                        : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth), $"nested {depth} deep");
                    return true;
                case 7:
                    var objects = Members(json).Select(m => m.Value).OfType<JsonObject>().Prepend(json).ToList();
                    var into = Pick(objects);
                    var unknown = Pick(new[] { "zz", "nationality", "id", "_links", "$type", "personid_", "eventId" }) + random.Next(100);
                    into[unknown] = JsonValue.Create(1);
                    draft.Defects.Add($"unknown member {unknown}");
                    return true;
                case 8:
                    var repeated = Pick(json.Select(m => m.Key).ToList());
                    var text = json.ToJsonString();
                    var copy = $"\"{(random.NextDouble() < 0.3 ? char.ToUpperInvariant(repeated[0]) + repeated[1..] : repeated)}\": {json[repeated]?.ToJsonString() ?? "null"}";
                    draft.Body = Encoding.UTF8.GetBytes(random.NextDouble() < 0.5 ? text[..^1] + ", " + copy + "}" : "{" + copy + ", " + text[1..]);
                    draft.Defects.Add($"member {repeated} repeated");
                    return true;
                case 9:
                    var bytes = draft.Bytes().ToList();
                    var quotes = bytes.Select((b, i) => (b, i)).Where(x => x.b == '"').Select(x => x.i).ToList();
                    var at = quotes.Count > 0 ? Pick(quotes) + 1 : random.Next(bytes.Count);
                    var invalid = Pick(InvalidUtf8);
                    bytes.InsertRange(at, invalid);
                    draft.Body = [.. bytes];
                    draft.Defects.Add($"invalid UTF-8 {Convert.ToHexString(invalid)} at byte {at}");
                    return true;
                case 10:
                    draft.Body = [];
                    draft.Defects.Add("empty body");
                    return true;
                case 11:
                    draft.ContentType = random.NextDouble() < 0.15 ? null : Pick(WrongContentTypes);
                    draft.Defects.Add($"Content-Type {draft.ContentType ?? "missing"}");
                    return true;
                case 12:
                    draft.Body = Encoding.UTF8.GetBytes("[" + Encoding.UTF8.GetString(draft.Bytes()) + "]");
                    draft.Defects.Add("an array for an object");
                    return true;
                case 13:
                    var scalar = Pick(new[] { "\"text\"", "12", "true", "null", "[]", "\"{}\"" });
                    draft.Body = Encoding.UTF8.GetBytes(scalar);
                    draft.Defects.Add($"{scalar} for an object");
                    return true;
                default:
                    return false;
            }
        }

        private void BadBatch(Draft draft)
        {
            var csv = random.NextDouble() < 0.3;
            var lines = Enumerable.Range(0, random.Next(0, 20)).Select(i => csv ? $"p-{i},2026,{i * 100}" : $$"""{"personId": "p-{{i}}", "fiscalYear": 2026, "amountMinor": {{i * 100}}}""").ToList();
            string[] badJson =
            [
                """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": 1.5}""", """{"personId": 12, "fiscalYear": 2026, "amountMinor": 1}""",
                """{"personId": "a b", "fiscalYear": 2026, "amountMinor": 1}""", """{"personId": "p-x", "fiscalYear": 1999, "amountMinor": 1}""",
                """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": -1}""", """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": "100"}""",
                """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": 1e400}""", """{"personId": "p-x", "fiscalYear": 2026}""",
                """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": 1, "nationality": "x"}""",
                """{"personId": "p-x", "personId": "p-y", "fiscalYear": 2026, "amountMinor": 1}""", "{}", "[]", "null", "\"text\"",
                """{"personId": "p-x", "fiscal""", """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": 1} trailing""",
                $$"""{"personId": "{{new string('p', 5000)}}", "fiscalYear": 2026, "amountMinor": 1}""", """{"personId": null, "fiscalYear": 2026, "amountMinor": 1}""",
                """{"personId": "p-x", "fiscalYear": 2026, "amountMinor": 99999999999999999999}""", """{"personId": "p-x", "fiscalYear": {"a": 1}, "amountMinor": 1}""",
            ];
            string[] badCsv = ["p-x,2026", "p-x,2026,1,2", "p-x,abc,1", "p-x,2026,1.5", "a b,2026,1", "p-x,1999,1", "p-x,2026,-1", ",2026,1", new string('p', 5000) + ",2026,1"];
            var bad = csv ? Pick(badCsv) : Pick(badJson);
            var invalidUtf8 = random.NextDouble() < 0.15;
            lines.Insert(random.Next(lines.Count + 1), invalidUtf8 ? "\u0001" : bad);
            var text = (csv ? "personId,fiscalYear,amountMinor\n" : "") + string.Join('\n', lines) + (random.NextDouble() < 0.5 ? "\n" : "");
            var body = Encoding.UTF8.GetBytes(text).ToList();
            if (invalidUtf8)
            {
                var at = body.IndexOf(1);
                body.RemoveAt(at);
                body.InsertRange(at, csv ? [.. "p-"u8.ToArray(), 0xFF, .. ",2026,1"u8.ToArray()] : [.. """{"personId": "p-"""u8.ToArray(), 0xC3, 0x28, .. "\", \"fiscalYear\": 2026, \"amountMinor\": 1}"u8.ToArray()]);
            }

            draft.Body = [.. body];
            draft.ContentType = csv ? "text/csv" : "application/x-ndjson";
            switch (random.Next(10))
            {
                case 0:
                    draft.Body = [];
                    draft.Defects.Add("an empty batch");
                    return;
                case 1:
                    draft.ContentType = Pick(new[] { "application/json", "text/plain", "application/xml" });
                    draft.Defects.Add($"a batch as {draft.ContentType}");
                    return;
                case 2 when csv:
                    draft.Body = Encoding.UTF8.GetBytes("person,year,amount\np-1,2026,1\n");
                    draft.Defects.Add("a CSV batch with another header");
                    return;
                default:
                    draft.Defects.Add($"a batch with the bad line {(invalidUtf8 ? "(invalid UTF-8)" : Cut(bad, 60))}");
                    return;
            }
        }

        private void Noise(Draft draft)
        {
            var (queries, headers) = (draft.Query.Count, draft.Headers.Count);
            AddNoise(draft);
            draft.Defects.AddRange(draft.Query.Skip(queries).Select(q => $"noise: ?{Cut(q.Name, 20)}={Cut(q.Value, 20)}"));
            draft.Defects.AddRange(draft.Headers.Skip(headers).Select(h => $"noise: {h.Name}: {Cut(h.Value, 20)}"));
        }

        private void AddNoise(Draft draft)
        {
            switch (random.Next(7))
            {
                case 0:
                    draft.Query.Add(("zz" + random.Next(1000), Pick(new[] { "", "%FF", "a%00b", new string('q', 2000), "%E2%82" })));
                    break;
                case 1:
                    draft.Headers.Add(("If-Match", Pick(new[] { "garbage", "*", "W/\"1\"", "\"999999\"", "\"\"", new string('m', 5000), "\"1\", \"2\"" })));
                    break;
                case 2:
                    // One valid key, new each time, does not make an invalid write valid; an invalid one on a read is ignored.
                    if (draft.Headers.All(h => h.Name != Idempotency.Header))
                    {
                        draft.Headers.Add((Idempotency.Header, draft.Operation.Method == "GET" ? Pick(Pick(BadKeys)) : Guid.NewGuid().ToString()));
                    }

                    break;
                case 3:
                    draft.Headers.Add(("X-Fuzz", new string('h', random.Next(1, 40_000))));
                    break;
                case 4:
                    draft.Headers.Add(("Accept", Pick(new[] { "application/xml", "text/html", "*/*;q=abc", "application/json;q=0", "image/png" })));
                    break;
                case 5:
                    draft.Headers.Add((Pick(new[] { "Content-Encoding", "Range", "X-Forwarded-For", "Cookie", "Accept-Language" }), Pick(new[] { "gzip", "bytes=junk", "999.999.1.1", "a=\u0001", "xx-ZZ;q=2" })));
                    break;
                default:
                    draft.Headers.Add(("X-Correlation-Id", Pick(new[] { "", new string('c', 3000), "\u0000", "🙂" })));
                    break;
            }
        }

        private static void RawMember(Draft draft, (JsonNode Parent, object Key, JsonNode? Value) member, string raw, string what)
        {
            var (parent, key, _) = member;
            const string Marker = "__fuzz_raw__";
            Set(parent, key, JsonValue.Create(Marker));
            draft.Body = Encoding.UTF8.GetBytes(draft.Json!.ToJsonString().Replace($"\"{Marker}\"", raw, StringComparison.Ordinal));
            draft.Defects.Add($"{Name(parent, key)} {Cut(raw, 30)} ({what})");
        }

        private static List<(JsonNode Parent, object Key, JsonNode? Value)> Members(JsonNode node)
        {
            var members = new List<(JsonNode, object, JsonNode?)>();
            switch (node)
            {
                case JsonObject o:
                    foreach (var (name, value) in o.ToList())
                    {
                        members.Add((o, name, value));
                        if (value is not null)
                        {
                            members.AddRange(Members(value));
                        }
                    }

                    break;
                case JsonArray a:
                    for (var i = 0; i < a.Count; i++)
                    {
                        members.Add((a, i, a[i]));
                        if (a[i] is { } element)
                        {
                            members.AddRange(Members(element));
                        }
                    }

                    break;
            }

            return members;
        }

        private static string Path(JsonNode parent, object key) => parent.GetPath() + (key is string name ? "." + name : $"[{key}]");

        private static string Name(JsonNode parent, object key) => key as string ?? $"{parent.GetPath()[2..]}[{key}]";

        private static void Set(JsonNode parent, object key, JsonNode? value)
        {
            if (parent is JsonObject o)
            {
                o[(string)key] = value;
            }
            else
            {
                ((JsonArray)parent)[(int)key] = value;
            }
        }
    }

    /// <summary>A request being drawn: route values (as sent, and as the token names them), query, body, headers.</summary>
    private sealed class Draft
    {
        public required Operation Operation { get; init; }

        public required SeedRequest Seed { get; init; }

        public Dictionary<string, (string Sent, string Decoded)> Route { get; } = new(StringComparer.Ordinal);

        public List<(string Name, string Value)> Query { get; } = [];

        public List<(string Name, string Value)> Headers { get; } = [];

        public List<string> Defects { get; } = [];

        /// <summary>The members a defect has replaced (JSON paths).</summary>
        public HashSet<string> Touched { get; } = new(StringComparer.Ordinal);

        public JsonObject? Json { get; set; }

        public byte[]? Body { get; set; }

        public string? ContentType { get; set; }

        public static Draft Of(Operation operation, SeedRequest seed, World world, DateTimeOffset now)
        {
            var draft = new Draft { Operation = operation, Seed = seed };
            foreach (var name in operation.RouteParameters)
            {
                var value = seed.Route?.GetValueOrDefault(name) ?? name switch
                {
                    "cantonId" => "fz",
                    "organizationId" => "org-a",
                    "pactId" => "pact-a",
                    "personId" => "p-1",
                    "year" => "2026",
                    "ballotId" => world.OpenBallot.ToString(),
                    _ => throw new InvalidOperationException($"No value for the route parameter {name}."),
                };
                value = value.Replace("{certified}", world.CertifiedBallot.ToString(), StringComparison.Ordinal);
                draft.Route[name] = (value, value);
            }

            if (seed.Batch)
            {
                draft.Body = Encoding.UTF8.GetBytes("""{"personId": "p-5", "fiscalYear": 2026, "amountMinor": 700}""" + "\n");
                draft.ContentType = "application/x-ndjson";
            }
            else if (seed.Body is not null)
            {
                draft.Json = JsonNode.Parse(seed.Body
                    .Replace("{deadline}", now.AddDays(60).ToString("O", CultureInfo.InvariantCulture), StringComparison.Ordinal)
                    .Replace("{yesterday}", DateOnly.FromDateTime(now.UtcDateTime).AddDays(-1).ToString("O", CultureInfo.InvariantCulture), StringComparison.Ordinal)
                    .Replace("{today}", DateOnly.FromDateTime(now.UtcDateTime).ToString("O", CultureInfo.InvariantCulture), StringComparison.Ordinal)
                    .Replace("{opensAt}", now.AddMinutes(-1).ToString("O", CultureInfo.InvariantCulture), StringComparison.Ordinal)
                    .Replace("{closesAt}", now.AddHours(1).ToString("O", CultureInfo.InvariantCulture), StringComparison.Ordinal))!.AsObject();
                draft.ContentType = "application/json";
            }

            return draft;
        }

        public byte[] Bytes() => Body ?? Encoding.UTF8.GetBytes(Json!.ToJsonString());

        public Request ToRequest(bool invalid)
        {
            var path = Operation.Path;
            foreach (var (name, (sent, _)) in Route)
            {
                path = path.Replace("{" + name + "}", sent, StringComparison.Ordinal);
            }

            var url = Query.Count == 0 ? path : path + "?" + string.Join('&', Query.Select(q => $"{q.Name}={q.Value}"));
            string? Decoded(string name) => Route.TryGetValue(name, out var value) ? value.Decoded : null;
            var (subject, canton) = Seed.Role switch
            {
                Roles.Municipality => ("fz-admin", Decoded("cantonId") ?? "fz"),
                Roles.Person => (Decoded("personId") ?? "p-1", null),
                Roles.Organization => (Decoded("organizationId") ?? "org-a", null),
                Roles.Admin => ("admin", null),
                Roles.Auditor => ("auditor-1", null),
                _ => ((string?)null, (string?)null),
            };
            return new Request(Operation.Id, Operation.Method, url, Json is null && Body is null ? null : Bytes(), ContentType, Headers,
                Seed.Role, subject, canton, invalid, Defects);
        }
    }
}

internal static class Enumerables
{
    public static IEnumerable<T> OrEmpty<T>(this IEnumerable<T>? items) => items ?? [];
}
