using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Persons;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using Confederal.Api.Infrastructure;
using Confederal.Benchmarks;
using Confederal.Testing;
using Npgsql;
using Xunit.Abstractions;

namespace Confederal.Api.Tests;

/// <summary>The API process killed (SIGKILL) in the middle of a bulk import: the batch is wholly present or wholly
/// absent, and re-sending it with the same Idempotency-Key records it exactly once.</summary>
public sealed class BulkImportKillTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Canton = "kill-home";
    private const int Lines = 100_000;
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("confederal-kill-tests-").FullName;
    private string _connectionString = "";
    private NpgsqlDataSource _db = null!;

    public async Task InitializeAsync()
    {
        _connectionString = await TestPostgres.CreateDatabaseAsync(Database.Migrations);
        _db = NpgsqlDataSource.Create(_connectionString);
    }

    public async Task DisposeAsync()
    {
        await _db.DisposeAsync();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    private static byte[] Batch(string tag) => Encoding.UTF8.GetBytes(string.Concat(Enumerable.Range(0, Lines).Select(i =>
        $$"""{"personId": "{{tag}}-{{i}}", "fiscalYear": 2026, "amountMinor": {{1000 + i % 977}}}""" + "\n")));

    private async Task<long> RecordedAsync(string tag)
    {
        var audit = AuditKeys.LoadOrCreate(_dataDirectory);
        var keys = new PersonKeys(_db, audit, TimeProvider.System);
        return (await Assessed.OfAsync(keys, new Features.Fiscal.FiscalYearKeys(_db, audit, TimeProvider.System), _db, Enumerable.Range(0, Lines).Select(i => $"{tag}-{i}"))).Values.Sum();
    }

    /// <summary>The import's transaction is open and has appended: its last statement copied events into Marten's table or
    /// took their positions from Marten's sequence (after the last chunk it sets the stream's version, then commits).</summary>
    private async Task<bool> CopyingAsync()
    {
        await using var command = _db.CreateCommand("""
            SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL
              AND query LIKE '%marten.mt\_events%'
            """);
        return (long)(await command.ExecuteScalarAsync())! > 0;
    }

    private static HttpRequestMessage Import(string key, HttpContent body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/cantons/{Canton}/tax-assessments/batch") { Content = body };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-ndjson");
        request.Headers.Add(Idempotency.Header, key);
        return request;
    }

    /// <summary>Re-sends <paramref name="batch"/> after a restart: recorded once, and a second retry is a replay.</summary>
    private async Task ResendAsync(string tag, string key, byte[] batch)
    {
        await using var api = await ApiProcess.StartAsync(_connectionString, dataDirectory: _dataDirectory);
        var municipality = Client(api, Roles.Municipality, "kill-home-admin", Canton);
        var resent = await municipality.SendAsync(Import(key, new ByteArrayContent(batch)));
        Assert.True(resent.StatusCode == HttpStatusCode.Created, $"{(int)resent.StatusCode} {await resent.Content.ReadAsStringAsync()}");
        var again = await municipality.SendAsync(Import(key, new ByteArrayContent(batch)));
        Assert.Equal(HttpStatusCode.Created, again.StatusCode);
        Assert.True(again.Headers.Contains(Idempotency.ReplayedHeader));
        Assert.Equal(await resent.Content.ReadAsStringAsync(), await again.Content.ReadAsStringAsync());
        Assert.Equal(Lines, await RecordedAsync(tag));
    }

    [Fact]
    public async Task Killed_mid_import_the_batch_is_absent_and_a_keyed_retry_records_it_once()
    {
        var batch = Batch("mid");
        await using (var api = await ApiProcess.StartAsync(_connectionString, dataDirectory: _dataDirectory))
        {
            await Fiscal.Ok(Client(api, Roles.Admin, "admin").PutAsJsonAsync($"/api/v1/cantons/{Canton}", new { name = "Kill", currency = "CHF" }));
            var pipe = new Pipe();
            var sending = Client(api, Roles.Municipality, "kill-home-admin", Canton)
                .SendAsync(Import("import-mid", new StreamContent(pipe.Reader.AsStream())));
            await pipe.Writer.WriteAsync(batch.AsMemory(0, batch.Length / 2));
            await WaitUntilAsync(CopyingAsync, api);

            await api.KillAsync();
            await pipe.Writer.CompleteAsync(new IOException("the rest of the batch was never sent"));
            Assert.NotNull(await Record.ExceptionAsync(() => sending));
        }

        var afterKill = await RecordedAsync("mid");
        output.WriteLine($"killed with half of {Lines} lines sent: {afterKill} recorded");
        Assert.Equal(0, afterKill);
        await ResendAsync("mid", "import-mid", batch);
    }

    [Fact]
    public async Task Killed_around_the_commit_the_batch_is_wholly_present_or_absent_and_a_keyed_retry_records_it_once()
    {
        var batch = Batch("end");
        await using (var api = await ApiProcess.StartAsync(_connectionString, dataDirectory: _dataDirectory))
        {
            await Fiscal.Ok(Client(api, Roles.Admin, "admin").PutAsJsonAsync($"/api/v1/cantons/{Canton}", new { name = "Kill", currency = "CHF" }));
            var sending = Client(api, Roles.Municipality, "kill-home-admin", Canton).SendAsync(Import("import-end", new ByteArrayContent(batch)));
            await WaitUntilAsync(CopyingAsync, api);
            await WaitUntilAsync(async () => !await CopyingAsync(), api);

            await api.KillAsync();
            try
            {
                output.WriteLine($"the import answered {(int)(await sending).StatusCode} before the kill");
            }
            catch (HttpRequestException)
            {
                output.WriteLine("the import had not answered when it was killed");
            }
        }

        var afterKill = await RecordedAsync("end");
        output.WriteLine($"killed after sending all {Lines} lines: {afterKill} recorded");
        Assert.True(afterKill is 0 or Lines, $"{afterKill} of {Lines} lines recorded: a partial batch");
        await ResendAsync("end", "import-end", batch);
    }

    private static HttpClient Client(ApiProcess api, string role, string subject, string? canton = null)
    {
        var client = api.Client();
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", api.Token(role, subject, canton));
        return client;
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, ApiProcess api)
    {
        for (var waited = 0; !await condition(); waited += 10)
        {
            Assert.True(waited < 60_000 && !api.HasExited, $"the import never reached that point{Environment.NewLine}{api.Output}");
            await Task.Delay(10);
        }
    }
}
