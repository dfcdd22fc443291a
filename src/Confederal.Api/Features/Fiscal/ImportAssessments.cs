using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using MediatR;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;
using Microsoft.OpenApi;

namespace Confederal.Api.Features.Fiscal;

/// <summary>
/// POST /api/v1/cantons/{cantonId}/tax-assessments/batch: the canton's municipality imports assessments in bulk, as
/// NDJSON (one {personId, fiscalYear, amountMinor} object a line) or CSV (header personId,fiscalYear,amountMinor).
/// The body is parsed as it streams in and copied straight into the event log (binary COPY, one transaction): all lines
/// are recorded, or, if any line is bad, none, and the answer lists the first bad lines with their reasons.
/// </summary>
public static class ImportAssessments
{
    public const long MaxBodyBytes = 8L * 1024 * 1024 * 1024;
    public const int MaxReportedErrors = 100;
    private const int MaxLineBytes = 4096;
    private const string CsvHeader = "personId,fiscalYear,amountMinor";

    public enum Format
    {
        Ndjson,
        Csv,
    }

    public sealed record Command(string CantonId, Format Format, PipeReader Body, EventMetadata Metadata) : IRequest<ImportView>;

    public sealed record ImportView(string CantonId, string FilingId, long Assessments);

    public sealed class Handler(Placement placement, PersonKeys persons, FiscalYearKeys years, DesignationCarrier carrier)
        : IRequestHandler<Command, ImportView>
    {
        // Lines whose taxpayers are looked up (and given keys) in one round trip to the key table.
        private const int KeysPerLookup = 2_000;

        public async Task<ImportView> Handle(Command command, CancellationToken cancellationToken)
        {
            var events = placement.Of(command.CantonId).Log;
            await Cantons.RequireAsync(events, command.CantonId, cancellationToken);
            var filing = Guid.CreateVersion7();
            var bulk = await events.BeginBulkAppendAsync(TaxAssessed.FilingStreamId(command.CantonId, filing), command.Metadata, cancellationToken);
            var keyed = new KeyedLines(persons, years, command.CantonId);
            try
            {
                var parser = new Parser(command.CantonId, command.Format);
                var lines = new List<TaxAssessed>(KeysPerLookup);
                await foreach (var line in parser.ReadAsync(command.Body, cancellationToken))
                {
                    if (parser.Errors.Count == 0)
                    {
                        lines.Add(line);
                        if (lines.Count == KeysPerLookup)
                        {
                            await keyed.AddAsync(bulk!, lines, cancellationToken);
                            lines = new List<TaxAssessed>(KeysPerLookup);
                        }
                    }
                    else if (bulk is not null)
                    {
                        await bulk.DisposeAsync(); // a bad line: stop copying, keep reading to report
                        bulk = null;
                        lines.Clear();
                    }
                }

                if (parser.Errors.Count == 0)
                {
                    await keyed.AddAsync(bulk!, lines, cancellationToken);
                    await keyed.FlushAsync(bulk!, cancellationToken);
                }

                if (parser.Errors.Count == 0 && parser.Valid == 0)
                {
                    parser.Errors.Add(new LineError(0, "the batch holds no assessments"));
                    parser.InvalidLines = 1;
                }

                if (parser.Errors.Count > 0)
                {
                    throw new InvalidLinesException(parser.Errors, parser.InvalidLines, parser.Valid + parser.InvalidLines);
                }

                var count = await bulk!.CommitAsync(cancellationToken);
                if (keyed.OpenedYears)
                {
                    await carrier.CarryIntoOpenedYearAsync(command.CantonId, command.Metadata, cancellationToken);
                }

                return new ImportView(command.CantonId, filing.ToString("N"), count);
            }
            finally
            {
                await keyed.ForgetAsync();
                if (bulk is not null)
                {
                    await bulk.DisposeAsync();
                }
            }
        }
    }

    /// <summary>Lines name people by person id, events by their handle in the line's year. The taxpayer handles of a chunk
    /// of lines are looked up (and created for newcomers) in one round trip to the key table, while the chunk before is
    /// being copied; each year's handles are derived from its key, obtained once.</summary>
    private sealed class KeyedLines(PersonKeys persons, FiscalYearKeys years, string cantonId)
    {
        // Chunks are keyed while the one before is copied: two lookups may be under way at once.
        private readonly ConcurrentDictionary<int, Task<(YearHandles Handles, bool Opened)>> _years = new();

        /// <summary>Whether a year of the import got its key (its standing designations are then carried into it).</summary>
        public bool OpenedYears => _years.Values.Any(y => y.IsCompletedSuccessfully && y.Result.Opened);

        private Task<List<TaxAssessed>>? _pending;

        public async Task AddAsync(BulkAppend bulk, List<TaxAssessed> lines, CancellationToken ct)
        {
            var next = lines.Count == 0 ? null : KeysAsync(lines, ct);
            await FlushAsync(bulk, ct);
            _pending = next;
        }

        public async Task FlushAsync(BulkAppend bulk, CancellationToken ct)
        {
            if (Interlocked.Exchange(ref _pending, null) is { } pending)
            {
                foreach (var line in await pending)
                {
                    await bulk.WriteAsync(line, ct);
                }
            }
        }

        /// <summary>Waits for a lookup still under way when the import ends otherwise (a bad line, a failure).</summary>
        public async Task ForgetAsync()
        {
            if (Interlocked.Exchange(ref _pending, null) is { } pending)
            {
                await pending.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }

        private async Task<List<TaxAssessed>> KeysAsync(List<TaxAssessed> lines, CancellationToken ct)
        {
            var taxpayers = await persons.TaxpayersAsync([.. lines.Select(l => l.Taxpayer)], ct);
            YearHandles? year = null;
            for (var i = 0; i < lines.Count; i++)
            {
                var line = lines[i];
                if (year?.Year != line.FiscalYear)
                {
                    year = (await _years.GetOrAdd(line.FiscalYear, y => years.ObtainAsync(cantonId, y, ct))).Handles;
                }

                lines[i] = line with { Taxpayer = year.Of(taxpayers[line.Taxpayer]) };
            }

            return lines;
        }
    }

    /// <summary>Reads lines as they stream in; valid ones come out as events naming the person by their person id (which
    /// the handler replaces by their taxpayer handle), bad ones are collected.</summary>
    private sealed class Parser(string cantonId, Format format)
    {
        private static readonly byte[] Bom = [0xEF, 0xBB, 0xBF];
        private bool _headerSeen;

        public List<LineError> Errors { get; } = [];

        public long InvalidLines { get; set; }

        public long Valid { get; private set; }

        public async IAsyncEnumerable<TaxAssessed> ReadAsync(PipeReader body, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
        {
            long number = 0;
            var skippingLongLine = false;
            var batch = new List<TaxAssessed>(256);
            while (true)
            {
                var read = await body.ReadAsync(ct);
                var buffer = read.Buffer;
                while (true)
                {
                    var newline = buffer.PositionOf((byte)'\n');
                    if (newline is null)
                    {
                        break;
                    }

                    var line = buffer.Slice(0, newline.Value);
                    buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
                    number++;
                    if (skippingLongLine)
                    {
                        skippingLongLine = false;
                        continue;
                    }

                    if (line.Length > MaxLineBytes) // whole in this read: too long all the same
                    {
                        Fail(number, $"the line is longer than {MaxLineBytes} bytes");
                    }
                    else if (Line(number, line) is { } assessed)
                    {
                        batch.Add(assessed);
                    }
                }

                if (!skippingLongLine && buffer.Length > MaxLineBytes)
                {
                    Fail(number + 1, $"the line is longer than {MaxLineBytes} bytes");
                    skippingLongLine = true;
                }

                if (skippingLongLine)
                {
                    buffer = buffer.Slice(buffer.End);
                }

                if (read.IsCompleted && buffer.Length > 0)
                {
                    if (Line(++number, buffer) is { } last)
                    {
                        batch.Add(last);
                    }

                    buffer = buffer.Slice(buffer.End);
                }

                body.AdvanceTo(buffer.Start, buffer.End);
                foreach (var assessed in batch)
                {
                    yield return assessed;
                }

                batch.Clear();
                if (read.IsCompleted)
                {
                    break;
                }
            }

            await body.CompleteAsync();
            if (format == Format.Csv && !_headerSeen)
            {
                Fail(1, $"the CSV header must be {CsvHeader}");
            }
        }

        private TaxAssessed? Line(long number, ReadOnlySequence<byte> sequence)
        {
            Span<byte> copy = stackalloc byte[MaxLineBytes];
            var bytes = sequence.IsSingleSegment ? sequence.FirstSpan : Copy(sequence, copy);
            if (number == 1 && bytes.StartsWith(Bom))
            {
                bytes = bytes[Bom.Length..];
            }

            if (bytes.EndsWith((byte)'\r'))
            {
                bytes = bytes[..^1];
            }

            if (bytes.Trim((byte)' ').IsEmpty)
            {
                return null;
            }

            if (format == Format.Csv && !_headerSeen)
            {
                _headerSeen = true;
                if (!bytes.SequenceEqual(Encoding.ASCII.GetBytes(CsvHeader)))
                {
                    Fail(number, $"the CSV header must be {CsvHeader}");
                }

                return null;
            }

            var (personId, year, amount, problem) = format == Format.Csv ? Csv(bytes) : Json(bytes);
            problem ??= TaxAssessed.Problem(personId, year, amount);
            if (problem is not null)
            {
                Fail(number, problem);
                return null;
            }

            Valid++;
            return new TaxAssessed(cantonId, personId!, year!.Value, amount!.Value);
        }

        private static ReadOnlySpan<byte> Copy(ReadOnlySequence<byte> sequence, Span<byte> into)
        {
            sequence.CopyTo(into);
            return into[..(int)sequence.Length];
        }

        private void Fail(long line, string reason)
        {
            InvalidLines++;
            if (Errors.Count < MaxReportedErrors)
            {
                Errors.Add(new LineError(line, reason));
            }
        }

        private static (string?, int?, long?, string?) Csv(ReadOnlySpan<byte> line)
        {
            var first = line.IndexOf((byte)',');
            var second = first < 0 ? -1 : line[(first + 1)..].IndexOf((byte)',') + first + 1;
            if (first < 0 || second <= first || line[(second + 1)..].Contains((byte)','))
            {
                return (null, null, null, "a CSV line needs exactly 3 fields: personId,fiscalYear,amountMinor");
            }

            ReadOnlySpan<Range> fields = [new Range(0, first), new Range(first + 1, second), new Range(second + 1, line.Length)];

            var person = line[fields[0]];
            var personId = person.Length is > 0 and <= 64 ? Encoding.ASCII.GetString(person) : null;
            int? year = Utf8Parser.TryParse(line[fields[1]], out int y, out var used) && used == line[fields[1]].Length ? y : null;
            if (year is null)
            {
                return (personId, null, null, "fiscalYear must be an integer from 2000 to 2100");
            }

            long? amount = Utf8Parser.TryParse(line[fields[2]], out long a, out used) && used == line[fields[2]].Length ? a : null;
            return (personId, year, amount, amount is null ? "amountMinor must be an integer number of minor units" : null);
        }

        private static (string?, int?, long?, string?) Json(ReadOnlySpan<byte> line)
        {
            if (!System.Text.Unicode.Utf8.IsValid(line)) // the reader leaves strings unchecked until they are read
            {
                return (null, null, null, "the line is not valid UTF-8");
            }

            string? personId = null;
            int? year = null;
            long? amount = null;
            try
            {
                var reader = new Utf8JsonReader(line);
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    return (null, null, null, "each line must be one JSON object {personId, fiscalYear, amountMinor}");
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var name = reader.ValueSpan.ToArray();
                    reader.Read();
                    if (name.AsSpan().SequenceEqual("personId"u8) && personId is null)
                    {
                        personId = reader.TokenType == JsonTokenType.String ? reader.GetString() : "";
                    }
                    else if (name.AsSpan().SequenceEqual("fiscalYear"u8) && year is null)
                    {
                        year = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var y) ? y : int.MinValue;
                    }
                    else if (name.AsSpan().SequenceEqual("amountMinor"u8) && amount is null)
                    {
                        amount = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var a) ? a : long.MinValue;
                    }
                    else
                    {
                        return (null, null, null, $"unexpected or repeated member '{Encoding.UTF8.GetString(name)}'");
                    }
                }

                if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
                {
                    return (null, null, null, "each line must be exactly one JSON object");
                }
            }
            catch (JsonException e)
            {
                return (null, null, null, $"not valid JSON: {e.Message}");
            }

            return (personId, year, amount, null);
        }
    }

    public static void Map(IEndpointRouteBuilder api) =>
        api.MapPost("/cantons/{cantonId}/tax-assessments/batch", async Task<Created<ImportView>> (
                string cantonId, HttpRequest request, IMediator mediator, CancellationToken ct) =>
            {
                var format = MediaTypeHeaderValue.TryParse(request.ContentType, out var type) ? type.MediaType.Value?.ToLowerInvariant() switch
                {
                    "application/x-ndjson" => Format.Ndjson,
                    "text/csv" => Format.Csv,
                    _ => (Format?)null,
                } : null;
                if (format is null)
                {
                    throw new BadHttpRequestException(
                        "A batch is application/x-ndjson (one assessment object a line) or text/csv (header personId,fiscalYear,amountMinor).",
                        StatusCodes.Status415UnsupportedMediaType);
                }

                return TypedResults.Created((string?)null,
                    await mediator.Send(new Command(cantonId, format.Value, request.BodyReader, request.HttpContext.Metadata()), ct));
            })
            .RequireAuthorization(Scopes.CantonMunicipality)
            .AcceptsBodiesUpTo("ImportBytes", MaxBodyBytes)
            .AddOpenApiOperationTransformer((operation, _, _) =>
            {
                // The media types are told to the document only: as routing metadata (Accepts) a request of another
                // type would be answered 415 before its caller is authenticated; the handler answers it after.
                var text = new OpenApiMediaType { Schema = new OpenApiSchema { Type = JsonSchemaType.String } };
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Content = new Dictionary<string, OpenApiMediaType>(StringComparer.Ordinal) { ["application/x-ndjson"] = text, ["text/csv"] = text },
                };
                return Task.CompletedTask;
            })
            .WithName("ImportTaxAssessments")
            .WithSummary("Import tax assessments in bulk")
            .WithDescription("Imports many assessments at once, as application/x-ndjson (one {personId, fiscalYear, amountMinor} object " +
                             "a line) or text/csv (header personId,fiscalYear,amountMinor); any other content type is refused (415). " +
                             "Only the canton's municipality may call it. All lines are recorded in one transaction, or none: with any " +
                             "bad line the answer is 400, listing the first 100 bad lines with their reasons and counting them all. " +
                             "Bodies may reach 8 GiB (by default); send an Idempotency-Key so that a retry after a lost answer records " +
                             "the batch once.")
            .WithTags("Tax assessments")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .WithRequestTimeout(RequestDeadlines.Import);
}
