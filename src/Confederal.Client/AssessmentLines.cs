using System.Net;
using Microsoft.Kiota.Serialization.Json;
using Confederal.Client.Generated.Models;

namespace Confederal.Client;

/// <summary>A bulk import's body as NDJSON, written while the assessments are enumerated (sent chunked, never held
/// whole). Each send enumerates them again, so a retry sends the same lines.</summary>
internal sealed class AssessmentLines(IAsyncEnumerable<AssessTaxBody> assessments) : HttpContent
{
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await foreach (var assessment in assessments.WithCancellation(cancellationToken))
        {
            // The generated model writes itself, as the generated client writes a single assessment.
            using var writer = new JsonSerializationWriter();
            writer.WriteObjectValue(null, assessment);
            await using var line = writer.GetSerializedContent();
            await line.CopyToAsync(stream, cancellationToken);
            await stream.WriteAsync(NewLine, cancellationToken);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
