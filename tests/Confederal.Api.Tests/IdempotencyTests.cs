using Confederal.Api.Features.Persons;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Idempotency-Key: a retry gets the first answer and records nothing; the key's record commits with the
/// events it produced; the stored record gives nothing away.</summary>
public sealed class IdempotencyTests(ApiFactory api) : IClassFixture<ApiFactory>, IAsyncLifetime
{
    private readonly Democracy _d = new(api);

    private Fiscal Fiscal => _d.Fiscal;

    public async Task InitializeAsync()
    {
        await Fiscal.CantonAsync("id-home");
        await Fiscal.CantonAsync("id-other");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    private static HttpRequestMessage Keyed(HttpMethod method, string path, string key, object? body)
    {
        var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        request.Headers.Add(Idempotency.Header, key);
        return request;
    }

    private Task<HttpResponseMessage> AssessAsync(string key, string person, long amountMinor, string canton = "id-home") =>
        Fiscal.Municipality(canton).SendAsync(Keyed(HttpMethod.Post, $"/api/v1/cantons/{canton}/tax-assessments", key,
            new { personId = person, fiscalYear = 2026, amountMinor }));

    private async Task<long> CountAsync(string sql, params object[] values)
    {
        await using var command = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        return (long)(await command.ExecuteScalarAsync())!;
    }

    private async Task<long> AssessmentsOfAsync(params string[] persons) =>
        (await Assessed.OfAsync(api.Services.GetRequiredService<PersonKeys>(), api.Services.GetRequiredService<Features.Fiscal.FiscalYearKeys>(), api.Services.GetRequiredService<NpgsqlDataSource>(), persons)).Values.Sum();

    [Fact]
    public async Task A_retry_with_the_same_key_gets_the_first_answer_and_records_nothing()
    {
        var first = await AssessAsync("assess-1", "id-p1", 120_000);
        var events = await api.CountEventsAsync();

        var retry = await AssessAsync("assess-1", "id-p1", 120_000);

        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(first.StatusCode, retry.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(first.Content.Headers.ContentType, retry.Content.Headers.ContentType);
        Assert.False(first.Headers.Contains(Idempotency.ReplayedHeader));
        Assert.Equal("true", retry.Headers.GetValues(Idempotency.ReplayedHeader).Single());
        Assert.Equal(events, await api.CountEventsAsync());
        Assert.Equal(1, await AssessmentsOfAsync("id-p1"));
    }

    [Fact]
    public async Task The_same_key_with_another_body_is_a_422_and_records_nothing()
    {
        await Fiscal.Ok(AssessAsync("assess-2", "id-p2", 50_000));
        var events = await api.CountEventsAsync();

        var other = await AssessAsync("assess-2", "id-p2", 50_001);
        await api.AssertRefusedAsync(other, HttpStatusCode.UnprocessableEntity, "idempotency-key-reused", events);

        var elsewhere = await Fiscal.Municipality("id-home").SendAsync(Keyed(HttpMethod.Post, "/api/v1/cantons/id-home/residents", "assess-2",
            new { personId = "id-p2", residentSince = new DateOnly(2020, 1, 1), birthDate = new DateOnly(1990, 1, 1) }));
        await api.AssertRefusedAsync(elsewhere, HttpStatusCode.UnprocessableEntity, "idempotency-key-reused", events);
    }

    [Fact]
    public async Task Keys_belong_to_their_caller()
    {
        await Fiscal.Ok(AssessAsync("shared-key", "id-p3", 10_000));
        await Fiscal.Ok(AssessAsync("shared-key", "id-p3", 10_000, canton: "id-other"));

        Assert.Equal(2, await AssessmentsOfAsync("id-p3"));
    }

    [Fact]
    public async Task A_refused_request_is_not_remembered_and_its_retry_is_judged_afresh()
    {
        var refused = await AssessAsync("assess-4", "id-p4", 10_000, canton: "id-later");
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        await Fiscal.Ok(Fiscal.Admin.PutAsJsonAsync("/api/v1/cantons/id-later", new { name = "Later", currency = "CHF" }));

        var municipality = Fiscal.Municipality("id-later");
        var retry = await municipality.SendAsync(Keyed(HttpMethod.Post, "/api/v1/cantons/id-later/tax-assessments", "assess-4",
            new { personId = "id-p4", fiscalYear = 2026, amountMinor = 10_000 }));

        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal(1, await AssessmentsOfAsync("id-p4"));
    }

    [Fact]
    public async Task Concurrent_retries_record_once_and_all_get_the_same_answer()
    {
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            var response = await AssessAsync("assess-5", "id-p5", 77_000);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Contains(Idempotency.ReplayedHeader));
        }));

        Assert.All(answers, a => Assert.Equal((201, answers[0].Item2), (a.Item1, a.Item2)));
        Assert.Single(answers, a => !a.Item3);
        Assert.Equal(1, await AssessmentsOfAsync("id-p5"));
    }

    [Fact]
    public async Task A_retried_bulk_import_is_recorded_once_with_the_same_filing()
    {
        var lines = string.Join('\n', Enumerable.Range(0, 500).Select(i => $$"""{"personId": "id-bulk-{{i}}", "fiscalYear": 2026, "amountMinor": {{1000 + i}}}"""));
        HttpRequestMessage Import()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/cantons/id-home/tax-assessments/batch")
            {
                Content = new StringContent(lines, Encoding.UTF8, "application/x-ndjson"),
            };
            request.Headers.Add(Idempotency.Header, "import-2026-11-21");
            return request;
        }

        var first = await Fiscal.Ok(Fiscal.Municipality("id-home").SendAsync(Import()));
        var retry = await Fiscal.Ok(Fiscal.Municipality("id-home").SendAsync(Import()));

        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal(500, await AssessmentsOfAsync([.. Enumerable.Range(0, 500).Select(i => $"id-bulk-{i}")]));
    }

    [Fact]
    public async Task A_retried_vote_returns_the_same_receipt_and_the_record_names_neither_voter_nor_receipt_nor_choice()
    {
        await Fiscal.Ok(_d.ResideAsync("id-home", "id-voter", new DateOnly(2010, 1, 1)));
        var ballot = await _d.BallotAsync("id-home", options: ["sunflower-option", "thistle-option"]);
        var vote = () => Fiscal.Person("id-voter").SendAsync(Keyed(HttpMethod.Post, $"/api/v1/cantons/id-home/ballots/{ballot}/votes", "vote-1",
            new { option = "thistle-option" }));

        var first = await Fiscal.Ok(vote());
        var retry = await Fiscal.Ok(vote());

        var receipt = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("receipt").GetString()!;
        Assert.Equal(receipt, (await retry.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("receipt").GetString());
        Assert.Equal(1, await CountAsync("SELECT count(*) FROM ballot_participations WHERE ballot_id = $1", ballot));
        Assert.Equal(1, await CountAsync("SELECT count(*) FROM ballot_box WHERE ballot_id = $1", ballot));
        foreach (var secret in new[] { "id-voter", receipt, "thistle-option", "vote-1" })
        {
            Assert.Equal(0, await CountAsync(
                "SELECT count(*) FROM idempotency_keys WHERE position(convert_to($1, 'UTF8') in id || answer) > 0", secret));
        }
    }

    [Fact]
    public async Task A_keyed_close_answers_the_result_it_certified_and_its_retry_the_same()
    {
        var ballot = await _d.BallotAsync("id-home", options: ["oak-option", "elm-option"]);
        var receipts = new List<string>();
        foreach (var (voter, option) in new[] { ("id-closer-1", "oak-option"), ("id-closer-2", "elm-option"), ("id-closer-3", "oak-option") })
        {
            await Fiscal.Ok(_d.ResideAsync("id-home", voter, new DateOnly(2010, 1, 1)));
            receipts.Add(await _d.ReceiptAsync("id-home", ballot, voter, option));
        }

        api.Clock.Advance(TimeSpan.FromHours(2));
        var close = () => Fiscal.Municipality("id-home").SendAsync(Keyed(HttpMethod.Post, $"/api/v1/cantons/id-home/ballots/{ballot}/close", "close-1", null));

        var first = await Fiscal.Ok(close());
        var retry = await Fiscal.Ok(close());

        var result = await first.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(3, result.GetProperty("votes").GetInt64());
        Assert.Equal([2, 1], result.GetProperty("tallies").EnumerateArray().Select(t => t.GetProperty("votes").GetInt64()));
        Assert.Equal(receipts.Order(StringComparer.Ordinal), result.GetProperty("ballots").EnumerateArray().Select(b => b.GetProperty("receipt").GetString()!));
        Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        Assert.Equal("true", retry.Headers.GetValues(Idempotency.ReplayedHeader).Single());
        Assert.Equal(result.ToString(), (await _d.ResultsAsync("id-home", ballot)).ToString());
        Assert.Equal(1, await CountAsync("SELECT count(*) FROM marten.mt_events WHERE type = 'ballot-certified.v1' AND data->>'ballotId' = $1", ballot.ToString()));
    }

    [Fact]
    public async Task The_key_commits_with_the_events_it_produced()
    {
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();
        var before = await AssessmentsOfAsync("id-p7");
        Task<HttpResponseMessage> pending;
        await using (var connection = await db.OpenConnectionAsync())
        await using (var tx = await connection.BeginTransactionAsync())
        {
            await using (var command = new NpgsqlCommand("LOCK TABLE idempotency_keys IN EXCLUSIVE MODE", connection, tx))
            {
                await command.ExecuteNonQueryAsync();
            }

            pending = AssessAsync("assess-7", "id-p7", 9_000);
            await WaitUntilAsync(() => CountAsync(
                "SELECT count(*) FROM pg_locks WHERE relation = 'idempotency_keys'::regclass AND NOT granted"));
            Assert.Equal(before, await AssessmentsOfAsync("id-p7"));
            Assert.False(pending.IsCompleted);
        }

        Assert.Equal(HttpStatusCode.Created, (await pending).StatusCode);
        Assert.Equal(before + 1, await AssessmentsOfAsync("id-p7"));
    }

    [Fact]
    public async Task When_the_key_cannot_be_stored_nothing_is_recorded()
    {
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();
        await using (var command = db.CreateCommand("""
            CREATE FUNCTION refuse_keys() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'serialization_failure'; END $$;
            CREATE TRIGGER refuse_keys BEFORE INSERT ON idempotency_keys FOR EACH ROW EXECUTE FUNCTION refuse_keys();
            """))
        {
            await command.ExecuteNonQueryAsync();
        }

        HttpResponseMessage refused;
        long events;
        try
        {
            events = await api.CountEventsAsync();
            refused = await AssessAsync("assess-8", "id-p8", 8_000);
        }
        finally
        {
            await using var drop = db.CreateCommand("DROP TRIGGER refuse_keys ON idempotency_keys; DROP FUNCTION refuse_keys();");
            await drop.ExecuteNonQueryAsync();
        }

        await api.AssertRefusedAsync(refused, HttpStatusCode.ServiceUnavailable, code: null, events);
        Assert.NotNull(refused.Headers.RetryAfter);
        await Fiscal.Ok(AssessAsync("assess-8", "id-p8", 8_000));
        Assert.Equal(1, await AssessmentsOfAsync("id-p8"));
    }

    [Fact]
    public async Task A_key_is_kept_for_the_retention_and_forgotten_after_it()
    {
        await Fiscal.Ok(AssessAsync("assess-10", "id-p10", 1_000));
        var retention = api.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<IdempotencyRetention>().Single();
        var db = api.Services.GetRequiredService<NpgsqlDataSource>();
        await using (var age = db.CreateCommand("UPDATE idempotency_keys SET recorded_at = now() - interval '167 hours'"))
        {
            await age.ExecuteNonQueryAsync();
        }

        await retention.ForgetExpiredAsync(db, CancellationToken.None);
        Assert.True((await AssessAsync("assess-10", "id-p10", 1_000)).Headers.Contains(Idempotency.ReplayedHeader));

        await using (var age = db.CreateCommand("UPDATE idempotency_keys SET recorded_at = now() - interval '169 hours'"))
        {
            await age.ExecuteNonQueryAsync();
        }

        Assert.True(await retention.ForgetExpiredAsync(db, CancellationToken.None) >= 1);
        Assert.False((await Fiscal.Ok(AssessAsync("assess-10", "id-p10", 1_000))).Headers.Contains(Idempotency.ReplayedHeader));
        Assert.Equal(2, await AssessmentsOfAsync("id-p10"));
    }

    public static TheoryData<string, string[]> BadKeys => new()
    {
        { "a tab inside", ["tab\tkey"] },
        { "too long", [new string('k', Idempotency.MaxKeyLength + 1)] },
        { "a space", ["two words"] },
        { "not ASCII", ["clé"] },
        { "two keys", ["one", "two"] },
    };

    [Theory]
    [MemberData(nameof(BadKeys))]
    public async Task A_malformed_key_is_a_400_and_records_nothing(string why, string[] keys)
    {
        var events = await api.CountEventsAsync();
        var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/cantons/id-home/tax-assessments")
        {
            Content = JsonContent.Create(new { personId = "id-p9", fiscalYear = 2026, amountMinor = 1 }),
        };
        request.Headers.TryAddWithoutValidation(Idempotency.Header, keys);

        var response = await Fiscal.Municipality("id-home").SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{why}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, "invalid-idempotency-key", events);
    }

    [Fact]
    public async Task An_empty_key_over_the_wire_is_a_400_and_records_nothing()
    {
        await using var server = await ApiFactory.StartAsync();
        server.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        server.StartServer();
        var address = new Uri(server.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First());
        await new Fiscal(server).CantonAsync("id-wire");
        var events = await server.CountEventsAsync();
        var body = """{"personId": "id-wire-1", "fiscalYear": 2026, "amountMinor": 1}""";
        var token = DevTokens.Issue(server.SigningKey, Roles.Municipality, "id-wire-admin", "id-wire");

        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /api/v1/cantons/id-wire/tax-assessments HTTP/1.1\r\nHost: {address.Authority}\r\nAuthorization: Bearer {token}\r\n" +
            $"Idempotency-Key: \r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"));
        var answer = await new StreamReader(stream).ReadToEndAsync();

        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        Assert.Contains("invalid-idempotency-key", answer, StringComparison.Ordinal);
        Assert.Equal(events, await server.CountEventsAsync());
    }

    private static async Task WaitUntilAsync(Func<Task<long>> count)
    {
        for (var waited = 0; await count() == 0; waited += 20)
        {
            Assert.True(waited < 30_000, "the keyed request never reached the key's table");
            await Task.Delay(20);
        }
    }
}
