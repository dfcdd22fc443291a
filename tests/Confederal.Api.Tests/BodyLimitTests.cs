using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Confederal.Api.Infrastructure;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Confederal.Api.Tests;

/// <summary>A body over its endpoint's limit is a 413 problem and records nothing, whether its length is declared up front
/// or it streams in chunks and grows past the limit; the bulk import has a larger limit of its own. Over real sockets
/// (Kestrel enforces the limit on streamed bodies as they are read).</summary>
public sealed class BodyLimitTests : IAsyncLifetime
{
    private const long ImportLimit = 4 * 1024 * 1024;
    private ApiFactory _api = null!;
    private Fiscal _fiscal = null!;
    private Uri _address = null!;

    public async Task InitializeAsync()
    {
        _api = await ApiFactory.StartAsync(("BodyLimits:ImportBytes", ImportLimit.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        _api.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        _api.StartServer();
        _address = new Uri(_api.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        _fiscal = new Fiscal(_api);
        await _fiscal.CantonAsync("ge");
    }

    public async Task DisposeAsync() => await _api.DisposeAsync();

    private HttpClient Client(string role, string? subject = null, string? canton = null)
    {
        var client = new HttpClient { BaseAddress = _address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", DevTokens.Issue(_api.SigningKey, role, subject, canton));
        return client;
    }

    private async Task AssertTooLargeAsync(HttpResponseMessage response, long eventsBefore)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.RequestEntityTooLarge, $"{(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(413, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(eventsBefore, await _api.CountEventsAsync());
    }

    /// <summary>A JSON object whose name member is <paramref name="nameBytes"/> long: valid but for its size.</summary>
    private static byte[] Canton(long nameBytes) =>
        Encoding.UTF8.GetBytes($$"""{"currency": "CHF", "name": "{{new string('x', (int)nameBytes)}}"}""");

    /// <summary>Assessment lines, NDJSON, at least <paramref name="bytes"/> in all.</summary>
    private static byte[] Assessments(long bytes)
    {
        var text = new StringBuilder();
        for (var i = 0; text.Length < bytes; i++)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $$"""{"personId": "person-{{i}}", "fiscalYear": 2026, "amountMinor": 1000}""").Append('\n');
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_body_over_the_default_limit_is_413_and_records_nothing(bool chunked)
    {
        var events = await _api.CountEventsAsync();
        var content = Body(Canton(BodyLimits.DefaultBytes), "application/json", chunked);

        var response = await Client(Roles.Admin, subject: "admin").PutAsync("/api/v1/cantons/vd", content);

        await AssertTooLargeAsync(response, events);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_bulk_import_over_its_own_limit_is_413_and_records_nothing(bool chunked)
    {
        var events = await _api.CountEventsAsync();
        var content = Body(Assessments(ImportLimit + 1), "application/x-ndjson", chunked);

        var response = await Client(Roles.Municipality, subject: "ge-admin", canton: "ge").PostAsync("/api/v1/cantons/ge/tax-assessments/batch", content);

        await AssertTooLargeAsync(response, events);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_bulk_import_larger_than_the_default_limit_but_within_its_own_is_recorded(bool chunked)
    {
        var lines = Assessments(2 * BodyLimits.DefaultBytes);
        var content = Body(lines, "application/x-ndjson", chunked);

        var response = await Client(Roles.Municipality, subject: "ge-admin", canton: "ge").PostAsync("/api/v1/cantons/ge/tax-assessments/batch", content);

        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        using var import = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(lines.Count(b => b == '\n'), import.RootElement.GetProperty("assessments").GetInt64());
    }

    /// <summary>With a Content-Length, or streamed in 64 KiB chunks of unknown total length (Transfer-Encoding: chunked).</summary>
    private static HttpContent Body(byte[] bytes, string mediaType, bool chunked)
    {
        HttpContent content = chunked ? new ChunkedContent(bytes) : new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return content;
    }

    private sealed class ChunkedContent(byte[] bytes) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var offset = 0; offset < bytes.Length; offset += 64 * 1024)
            {
                await stream.WriteAsync(bytes.AsMemory(offset, Math.Min(64 * 1024, bytes.Length - offset)));
                await stream.FlushAsync();
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
