using System.CommandLine;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.Cli.Audit;
using Confederal.EventStore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting.Internal;
using Npgsql;
using Spectre.Console;

namespace Confederal.Cli;

/// <summary>`confederal audit export | verify | replay`.</summary>
public static class AuditCommands
{
    public static Command Build(CliContext context) => new("audit", "Export, verify and replay the audit trail.")
    {
        Export(context),
        Verify(context),
        Replay(context),
    };

    private static Command Export(CliContext context)
    {
        var api = ApiOption();
        var token = new Option<string>("--token") { Description = "An auditor's bearer token.", Required = true };
        var output = new Option<string>("--out") { Description = "The export file: created, or continued after its last complete line.", Required = true };
        var ledger = new Option<string?>("--ledger")
        {
            Description = "A canton id: export the log that keeps its ledger (its own database when it is placed). Default: the directory's, " +
                          "which also holds copies of every placed canton's log.",
        };
        var command = new Command("export", "Copy the sealed audit feed and its seals into an NDJSON export file; run again to continue it.") { api, token, output, ledger };
        command.SetAction(Cli.Guarded(context, async (parse, ct) =>
        {
            var path = parse.GetValue(output)!;
            using var client = context.Client(new Uri(parse.GetValue(api)!), parse.GetValue(token));
            var result = await Cli.ProgressAsync(context.Console, "export", "events",
                report => FeedExporter.ExportAsync(client, path, report, parse.GetValue(ledger), ct));
            context.Console.MarkupLineInterpolated(
                $"{(result.ResumedAfter > 0 ? $"Continued after position {result.ResumedAfter:N0}: " : "")}wrote {result.Events:N0} events and {result.Seals:N0} seals to {path}; it now ends at position {result.LastPosition:N0} (the server has sealed through {result.SealedThrough:N0}).");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Verify(CliContext context)
    {
        var (file, database) = Sources();
        var known = new Option<string?>("--known") { Description = "An earlier export of the same log: each of its seals must still be there, unchanged." };
        var publicKey = new Option<string?>("--public-key") { Description = "The platform's seal key (base64 SubjectPublicKeyInfo, as GET /api/v1/audit/seals serves it) to pin." };
        var command = new Command("verify", "Check a trail from position 1: every event present once and unchanged, each stream's chain, each seal's Merkle root, chain and signature. Exit 0: it holds; 1: it does not; 2: usage or I/O error.")
        {
            file, database, known, publicKey,
        };
        command.Validators.Add(result => OneSource(result, file, database));
        command.SetAction(Cli.Guarded(context, async (parse, ct) =>
        {
            var pinned = parse.GetValue(publicKey);
            var knownSeals = parse.GetValue(known) is { } earlier ? await SealsOfAsync(earlier, ct) : null;
            await using var trail = await OpenAsync(context, parse.GetValue(file), parse.GetValue(database), ct);
            if (pinned is null && trail.FromFile)
            {
                context.Console.MarkupLine(
                    "[yellow]Note: the public key is the one the export's own header names, so a forged export signed with its own key would pass. " +
                    "Pin the platform's key with --public-key (GET /api/v1/audit/seals serves it).[/]");
            }

            using var key = PublicKey(pinned ?? trail.PublicKey);
            var verifier = new AuditVerifier(key, knownSeals);
            VerifyReport report;
            try
            {
                report = await Cli.ProgressAsync(context.Console, "verify", "events",
                    report => verifier.VerifyAsync(trail.Entries, new Progress(trail.Total, report), ct));
            }
            catch (InvalidDataException e)
            {
                context.Console.MarkupLineInterpolated($"[red]The trail does not hold: {e.Message}[/]");
                return ExitCodes.Failed;
            }

            context.Console.MarkupLineInterpolated(
                $"{trail.Source}: {report.Events:N0} events, {report.Seals:N0} seals, sealed through position {report.SealedThrough:N0}, {report.Unsealed:N0} events not sealed yet{(knownSeals is null ? "" : $", {knownSeals.Count:N0} seals known from the earlier export")}.");
            if (report.Failure is { } failure)
            {
                context.Console.MarkupLineInterpolated($"[red]The trail does not hold: position {failure.Position}: {failure.Reason}[/]");
                return ExitCodes.Failed;
            }

            context.Console.MarkupLine("[green]The trail holds.[/]");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Replay(CliContext context)
    {
        var (file, database) = Sources();
        var api = ApiOption();
        var token = new Option<string?>("--token") { Description = "An auditor's bearer token: organization receipts are compared only with one." };
        var command = new Command("replay", "Replay a trail with the platform's rules (budgets, organization receipts, certified ballots) and compare every number with what the API serves. It does not verify the trail: run verify for that. Exit 0: everything matches; 1: differences; 2: usage or I/O error.")
        {
            file, database, api, token,
        };
        command.Validators.Add(result => OneSource(result, file, database));
        command.SetAction(Cli.Guarded(context, async (parse, ct) =>
        {
            await using var trail = await OpenAsync(context, parse.GetValue(file), parse.GetValue(database), ct);
            var replay = new AuditReplay(Events.Types());
            var clock = Stopwatch.StartNew();
            var result = await Cli.ProgressAsync(context.Console, "replay", "events",
                report => replay.RunAsync(trail.Entries, new Progress(trail.Total, report), ct));
            context.Console.MarkupLineInterpolated(
                $"Replayed {result.Events:N0} events through position {result.LastPosition:N0} in {clock.Elapsed.TotalSeconds:0.0} s: {result.Budgets.Count:N0} budgets, {result.Receipts.Count:N0} organization receipts, {result.Ballots.Count:N0} certified ballots.");

            var uri = new Uri(parse.GetValue(api)!);
            using var client = context.Client(uri, null);
            using var auditor = parse.GetValue(token) is { } bearer ? context.Client(uri, bearer) : null;
            var report = await Cli.ProgressAsync(context.Console, "compare", "views",
                progress => ServedComparison.CompareAsync(result, client, auditor, context.ServedWait, progress, ct));
            foreach (var note in report.Notes)
            {
                context.Console.MarkupLineInterpolated($"[yellow]Note: {note}[/]");
            }

            var differences = result.Differences.Concat(report.Differences).ToList();
            context.Console.MarkupLineInterpolated(
                $"Compared {report.Budgets:N0} budgets, {report.Receipts:N0} organization receipts and {report.Ballots:N0} certified ballots ({report.ResultPages:N0} pages of counted ballots) with {uri}.");
            if (differences.Count == 0)
            {
                context.Console.MarkupLine("[green]No differences: everything matches to the minor unit.[/]");
                return ExitCodes.Ok;
            }

            var table = new Table().AddColumns("what", "field", "replayed", "served");
            foreach (var d in differences)
            {
                table.AddRow(Markup.Escape(d.What), Markup.Escape(d.Field), Markup.Escape(d.Replayed), Markup.Escape(d.Served));
            }

            context.Console.Write(table);
            context.Console.MarkupLineInterpolated($"[red]{differences.Count:N0} differences.[/]");
            return ExitCodes.Failed;
        }));
        return command;
    }

    private static Option<string> ApiOption()
    {
        var api = new Option<string>("--api") { Description = "The API's base address, e.g. http://127.0.0.1:5080.", Required = true };
        api.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                result.AddError($"--api must be an http(s) address, e.g. http://127.0.0.1:5080 (not '{value}').");
            }
        });
        return api;
    }

    private static (Option<string?> File, Option<string?> Database) Sources() =>
        (new Option<string?>("--file") { Description = "An export file written by `audit export`." },
         new Option<string?>("--database") { Description = "A PostgreSQL connection string: the platform's own database, read with the platform's keys (Audit__Secret and Audit__SealKey, or the development keys of the data folder)." });

    private static void OneSource(System.CommandLine.Parsing.CommandResult result, Option<string?> file, Option<string?> database)
    {
        if ((result.GetValue(file) is null) == (result.GetValue(database) is null))
        {
            result.AddError("Give exactly one of --file <export> or --database <connection string>.");
        }
    }

    private static ECDsa PublicKey(string subjectPublicKeyInfo)
    {
        try
        {
            return Seal.PublicKey(subjectPublicKeyInfo);
        }
        catch (Exception e) when (e is FormatException or CryptographicException)
        {
            throw new CliException($"The public key is not a base64 SubjectPublicKeyInfo of an ECDSA key: {e.Message}");
        }
    }

    private static async Task<List<Seal>> SealsOfAsync(string path, CancellationToken ct)
    {
        await ReadHeaderAsync(path, ct);
        var seals = new List<Seal>();
        await foreach (var entry in AuditExportFile.ReadAsync(path, ct: ct))
        {
            if (entry.Seal is { } seal)
            {
                seals.Add(seal);
            }
        }

        return seals;
    }

    private static async Task<AuditExportFile.Header> ReadHeaderAsync(string path, CancellationToken ct)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        var line = await reader.ReadLineAsync(ct);
        AuditExportFile.Header? header = null;
        try
        {
            header = line is null ? null : JsonSerializer.Deserialize<AuditExportFile.Header>(line, AuditExportFile.Json);
        }
        catch (JsonException)
        {
        }

        return header?.Format == AuditExportFile.Format && !string.IsNullOrEmpty(header.PublicKey)
            ? header
            : throw new CliException($"{path} is not an audit export: its first line is not a {AuditExportFile.Format} header.");
    }

    // Where an export ends, from its last kilobytes: the total a progress bar needs, without reading the whole file.
    private static long LastPositionOf(string path)
    {
        const string Marker = "{\"event\":{\"position\":";
        using var file = File.OpenRead(path);
        var length = (int)Math.Min(file.Length, 1 << 20);
        file.Seek(-length, SeekOrigin.End);
        var buffer = new byte[length];
        file.ReadExactly(buffer);
        var text = Encoding.UTF8.GetString(buffer);
        var at = text.LastIndexOf(Marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return 0;
        }

        var digits = text.AsSpan(at + Marker.Length);
        var end = 0;
        while (end < digits.Length && char.IsAsciiDigit(digits[end]))
        {
            end++;
        }

        return long.TryParse(digits[..end], out var position) ? position : 0;
    }

    private static async Task<TrailSource> OpenAsync(CliContext context, string? file, string? database, CancellationToken ct)
    {
        if (file is not null)
        {
            var header = await ReadHeaderAsync(file, ct);
            return new TrailSource(AuditExportFile.ReadAsync(file, ct: ct), header.PublicKey, LastPositionOf(file), file, FromFile: true, null);
        }

        var configuration = new ConfigurationBuilder()
            .AddConfiguration(context.Configuration)
            .AddInMemoryCollection([new($"ConnectionStrings:{Database.ConnectionStringName}", database)])
            .Build();
        AuditKeys keys;
        try
        {
            keys = AuditKeys.Load(configuration, new HostingEnvironment { EnvironmentName = context.EnvironmentName });
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or CryptographicException)
        {
            throw new CliException($"The platform's audit keys could not be loaded: {e.Message}");
        }

        NpgsqlDataSource db;
        try
        {
            db = NpgsqlDataSource.Create(database!);
        }
        catch (ArgumentException e)
        {
            throw new CliException($"--database is not a valid connection string: {e.Message}");
        }

        long head;
        try
        {
            await using var command = db.CreateCommand(Confederal.EventStore.EventLog.HeadSql);
            head = (long)(await command.ExecuteScalarAsync(ct))!;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
            await db.DisposeAsync();
            throw new CliException($"The database could not be read: {e.Message}");
        }

        // The key table is the directory's: read from it, the trail says who each handle names (or that they are erased).
        var entries = DatabaseTrail.ReadAsync(db, new EventAuthenticator(keys.EventKey), Events.Types(), new Pseudonyms(keys.PseudonymKey),
            new Confederal.Api.Features.Persons.PersonKeys(db, keys, TimeProvider.System), ct);
        return new TrailSource(entries, keys.PublicKey, head, "the database", FromFile: false, db);
    }

    private sealed record TrailSource(
        IAsyncEnumerable<AuditEntry> Entries, string PublicKey, long Total, string Source, bool FromFile, NpgsqlDataSource? Db) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            if (Db is not null)
            {
                await Db.DisposeAsync();
            }
        }
    }

    /// <summary>Reports counts to a progress bar synchronously (<see cref="Progress{T}"/> would post them to the thread pool).</summary>
    private sealed class Progress(long total, Action<long, long> report) : IProgress<long>
    {
        public void Report(long value) => report(value, total);
    }
}
