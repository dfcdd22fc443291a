using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.Cli;
using Confederal.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

/// <summary>`confederal audit export` continues an export without writing an event twice, and `audit verify` tells a good
/// export (0) from an altered or cut one (1) and from bad input (2).</summary>
public sealed class AuditExportTests(ApiFactory api) : IClassFixture<ApiFactory>, IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("confederal-export-").FullName;
    private readonly Fiscal _fiscal = new(api);
    private int _people;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private string NewPath(string name) => Path.Combine(_directory, $"{name}-{Guid.NewGuid():N}.ndjson");

    /// <summary>More history (a canton of its own, assessments, a designation, a resident), sealed.</summary>
    private async Task<long> MoreHistoryAsync()
    {
        var canton = $"ex-{Interlocked.Increment(ref _people)}";
        await _fiscal.CantonAsync(canton);
        await _fiscal.OrganizationAsync("ex-linux");
        await _fiscal.PolicyAsync(canton, 2026, 70);
        for (var i = 0; i < 3; i++)
        {
            await _fiscal.AssessAsync(canton, $"{canton}-p{i}", 2026, 100_000 + i);
        }

        await Fiscal.Ok(_fiscal.DesignateAsync(canton, 2026, $"{canton}-p0", true, ("ex-linux", 10000)));
        await _fiscal.ResidentAsync($"{canton}-p1", canton, new DateOnly(2020, 1, 1));
        return await api.SealedAsync();
    }

    private static async Task<List<long>> PositionsAsync(string path)
    {
        var positions = new List<long>();
        await foreach (var entry in AuditExportFile.ReadAsync(path))
        {
            if (entry.Event is not null)
            {
                positions.Add(entry.Position);
            }
        }

        return positions;
    }

    private Task<(int Code, string Output)> VerifyAsync(params string[] args) => CliRunner.RunAsync(api, ["audit", "verify", .. args]);

    private Task<(int Code, string Output)> ExportAsync(string path) =>
        CliRunner.RunAsync(api, "audit", "export", "--api", "http://localhost", "--token", CliRunner.AuditorToken(api), "--out", path);

    private static async Task<int> SealLinesAsync(string path) =>
        (await File.ReadAllLinesAsync(path)).Count(l => l.StartsWith("{\"seal\":", StringComparison.Ordinal));

    [Fact]
    public async Task A_resumed_export_holds_every_event_exactly_once_and_verifies_even_after_a_cut_mid_line()
    {
        await MoreHistoryAsync();
        var path = NewPath("resumed");
        await CliRunner.ExportAsync(api, path);
        var first = await PositionsAsync(path);

        var sealedThrough = await MoreHistoryAsync();
        var (code, output) = await ExportAsync(path);
        Assert.True(code == ExitCodes.Ok, output);
        Assert.Contains($"Continued after position {first[^1]:N0}", output, StringComparison.Ordinal);
        Assert.Equal(Enumerable.Range(1, (int)sealedThrough).Select(p => (long)p), await PositionsAsync(path));
        var seals = await SealLinesAsync(path);
        Assert.True(seals >= 2);
        Assert.Equal(ExitCodes.Ok, (await VerifyAsync("--file", path)).Code);

        // An interrupted run: the last line (a seal) is cut, then the event line before it too, in the middle.
        foreach (var cut in new[] { 5, 0 })
        {
            var bytes = await File.ReadAllBytesAsync(path);
            var end = cut > 0 ? bytes.Length - cut : Array.LastIndexOf(bytes, (byte)'\n', Array.LastIndexOf(bytes, (byte)'\n', bytes.Length - 2) - 1) + 20;
            await File.WriteAllBytesAsync(path, bytes[..end]);

            (code, output) = await ExportAsync(path);
            Assert.True(code == ExitCodes.Ok, output);
            Assert.Equal(Enumerable.Range(1, (int)sealedThrough).Select(p => (long)p), await PositionsAsync(path));
            Assert.Equal(seals, await SealLinesAsync(path));
            (code, output) = await VerifyAsync("--file", path);
            Assert.True(code == ExitCodes.Ok, output);
        }
    }

    [Fact]
    public async Task An_export_is_not_continued_from_a_server_whose_seal_key_is_not_the_one_of_its_header()
    {
        await MoreHistoryAsync();
        var path = NewPath("other-key");
        await CliRunner.ExportAsync(api, path);
        var lines = await File.ReadAllLinesAsync(path);
        using var other = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        lines[0] = AuditExportFile.HeaderLine(Convert.ToBase64String(other.ExportSubjectPublicKeyInfo()));
        await File.WriteAllLinesAsync(path, lines);
        var length = new FileInfo(path).Length;
        await MoreHistoryAsync();

        var (code, output) = await ExportAsync(path);

        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains("signed by another key", output, StringComparison.Ordinal);
        Assert.Equal(length, new FileInfo(path).Length);
    }

    [Fact]
    public async Task An_export_is_not_continued_when_its_last_seal_or_its_end_contradicts_the_server()
    {
        await MoreHistoryAsync();
        var good = NewPath("good");
        await CliRunner.ExportAsync(api, good);
        var lines = await File.ReadAllLinesAsync(good);

        var resealed = NewPath("resealed");
        var seal = JsonNode.Parse(lines[^1])!;
        seal["seal"]!["root"] = new string('a', 64);
        await File.WriteAllLinesAsync(resealed, [.. lines[..^1], seal.ToJsonString()]);
        var (code, output) = await ExportAsync(resealed);
        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains("is not the server's seal", output, StringComparison.Ordinal);

        var longer = NewPath("longer");
        var last = JsonNode.Parse(lines[^2])!;
        last["event"]!["position"] = last["event"]!["position"]!.GetValue<long>() + 1_000;
        await File.WriteAllLinesAsync(longer, [.. lines, last.ToJsonString()]);
        (code, output) = await ExportAsync(longer);
        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains("but the server has sealed only through", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_exporter_refuses_to_write_a_position_the_feed_serves_twice()
    {
        await MoreHistoryAsync();
        using var client = ConfederalClient.Create(new ConfederalClientOptions
        {
            BaseAddress = api.Server.BaseAddress,
            Token = _ => ValueTask.FromResult(CliRunner.AuditorToken(api)),
            PrimaryHandler = () => new RepeatingFeed(api.Server.CreateHandler()),
        });

        var refused = await Assert.ThrowsAsync<CliException>(() => Cli.Audit.FeedExporter.ExportAsync(client, NewPath("twice")));

        Assert.Equal(ExitCodes.Failed, refused.ExitCode);
        Assert.Contains("refusing to write an event twice", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_export_the_api_refuses_says_so_in_one_line_naming_the_request_and_why()
    {
        var path = NewPath("refused");
        var municipality = DevTokens.Issue(api.SigningKey, Roles.Municipality, "ex-office", "ex-1");

        var (forbidden, output) = await CliRunner.RunAsync(api, "audit", "export", "--api", "http://localhost", "--token", municipality, "--out", path);
        Assert.True(forbidden == ExitCodes.Usage, output);
        Assert.Contains("GET /api/v1/audit/events?limit=1: 403 (the token's role may not read this: the audit feed needs an auditor's token).",
            output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);

        (var unauthorized, output) = await CliRunner.RunAsync(api, "audit", "export", "--api", "http://localhost", "--token", "not-a-token", "--out", path);
        Assert.True(unauthorized == ExitCodes.Usage, output);
        Assert.Contains("GET /api/v1/audit/events?limit=1: 401 (the token is missing, expired or not signed by the API's issuer).", output, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    /// <summary>A feed that serves the first event of each page twice.</summary>
    private sealed class RepeatingFeed(HttpMessageHandler inner) : DelegatingHandler(inner)
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            if (request.RequestUri!.AbsolutePath != "/api/v1/audit/events" || !response.IsSuccessStatusCode)
            {
                return response;
            }

            var page = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken))!;
            var events = page["events"]!.AsArray();
            if (events.Count > 0)
            {
                events.Insert(1, events[0]!.DeepClone());
            }

            response.Content = new StringContent(page.ToJsonString(), System.Text.Encoding.UTF8, "application/json");
            return response;
        }
    }

    [Fact]
    public async Task Verify_exits_0_for_a_good_export_1_naming_the_position_of_an_edited_amount_and_2_on_usage_errors()
    {
        await MoreHistoryAsync();
        var path = NewPath("good");
        await CliRunner.ExportAsync(api, path);

        var (code, output) = await VerifyAsync("--file", path);
        Assert.True(code == ExitCodes.Ok, output);
        Assert.Contains("The trail holds", output, StringComparison.Ordinal);
        Assert.Contains("Note: the public key is the one the export's own header names", output, StringComparison.Ordinal);
        var key = api.Services.GetRequiredService<AuditKeys>().PublicKey;
        (code, output) = await VerifyAsync("--file", path, "--public-key", key);
        Assert.True(code == ExitCodes.Ok, output);
        Assert.DoesNotContain("Note:", output, StringComparison.Ordinal);

        var lines = await File.ReadAllLinesAsync(path);
        var at = Array.FindIndex(lines, l => l.Contains("\"type\":\"tax-assessed\"", StringComparison.Ordinal));
        var edited = JsonNode.Parse(lines[at])!;
        var position = edited["event"]!["position"]!.GetValue<long>();
        var amount = edited["event"]!["data"]!["amountMinor"]!.GetValue<long>();
        edited["event"]!["data"]!["amountMinor"] = amount + 100;
        lines[at] = edited.ToJsonString();
        var altered = NewPath("altered");
        await File.WriteAllLinesAsync(altered, lines);

        (code, output) = await VerifyAsync("--file", altered, "--public-key", key);
        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains($"position {position}: the event does not match its recorded hash", output, StringComparison.Ordinal);

        foreach (var usage in new[]
                 {
                     new[] { "audit", "verify" },
                     ["audit", "verify", "--file", path, "--database", "Host=localhost"],
                     ["audit", "verify", "--file", Path.Combine(_directory, "missing.ndjson")],
                     ["audit", "verify", "--file", path, "--public-key", "not-a-key"],
                     ["audit", "frobnicate"],
                     ["audit", "export", "--api", "localhost:5080", "--token", "t", "--out", path],
                 })
        {
            (code, output) = await CliRunner.RunAsync(api, usage);
            Assert.True(code == ExitCodes.Usage, $"{string.Join(' ', usage)} → {code}: {output}");
            Assert.DoesNotContain("   at ", output, StringComparison.Ordinal); // no stack trace
        }

        var garbled = NewPath("garbled");
        var original = await File.ReadAllLinesAsync(path);
        await File.WriteAllLinesAsync(garbled, [.. original[..3], "{\"event\": not json", .. original[3..]]);
        (code, output) = await VerifyAsync("--file", garbled);
        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains("Line 4 is not valid", output, StringComparison.Ordinal);

        var notAnExport = NewPath("not-an-export");
        await File.WriteAllTextAsync(notAnExport, "hello\n");
        (code, output) = await VerifyAsync("--file", notAnExport);
        Assert.True(code == ExitCodes.Usage, output);
        Assert.Contains("is not an audit export", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_log_cut_short_verifies_alone_but_fails_against_the_seals_of_an_earlier_export()
    {
        await MoreHistoryAsync();
        await MoreHistoryAsync();
        var earlier = NewPath("earlier");
        await CliRunner.ExportAsync(api, earlier);
        var lines = await File.ReadAllLinesAsync(earlier);
        var firstSeal = Array.FindIndex(lines, l => l.StartsWith("{\"seal\":", StringComparison.Ordinal));
        var cut = NewPath("cut");
        await File.WriteAllLinesAsync(cut, lines[..(firstSeal + 1)]);

        Assert.Equal(ExitCodes.Ok, (await VerifyAsync("--file", cut)).Code);
        var (code, output) = await VerifyAsync("--file", cut, "--known", earlier);

        Assert.True(code == ExitCodes.Failed, output);
        Assert.Contains("known from an earlier export", output, StringComparison.Ordinal);
        Assert.Contains("the log was cut", output, StringComparison.Ordinal);
    }
}
