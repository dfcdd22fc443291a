using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Confederal.Client.Generated;
using Confederal.Client.Generated.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Kiota.Abstractions;
using Microsoft.Kiota.Abstractions.Authentication;
using Microsoft.Kiota.Abstractions.Serialization;
using Microsoft.Kiota.Http.HttpClientLibrary;
using Microsoft.Kiota.Serialization.Json;
using Polly;
using Polly.Timeout;

namespace Confederal.Client;

/// <summary>
/// Confederal's REST API for a program: <see cref="Api"/> is the client Kiota generates from the committed OpenAPI
/// document (every operation, typed, with its documentation); this class adds what generation does not give. Every
/// request goes through one HttpClient: an Idempotency-Key for each write that has none, then retries with exponential
/// backoff and jitter on network failures, timeouts, 408, 429, 502, 503 and 504 (Retry-After honoured), each attempt
/// with the bearer token of <see cref="ConfederalClientOptions.Token"/>. A refusal is thrown as
/// <see cref="ProblemDetails"/> (its <c>Code</c> is stable, its title and detail are for people; an answer without a
/// problem as a bare <see cref="ApiException"/>), naming the request it answers (<see cref="RefusedRequest"/>).
/// </summary>
public sealed class ConfederalClient : IDisposable
{
    /// <summary>The name of the HttpClient <see cref="AddConfederalClient"/> configures.</summary>
    public const string HttpClientName = "Confederal";

    /// <summary>The largest page of the audit feed the API serves.</summary>
    public const int MaxAuditPage = 1000;

    private static readonly HttpRequestOptionsKey<bool> Import = new("Confederal.Import");

    private readonly HttpClient _http;
    private readonly ServiceProvider? _owned;
    private readonly HttpClientRequestAdapter _adapter;

    /// <summary>A client on <paramref name="http"/>, an HttpClient configured by <see cref="AddConfederalClient"/> (from
    /// IHttpClientFactory, named <see cref="HttpClientName"/>).</summary>
    public ConfederalClient(HttpClient http)
        : this(http, null)
    {
    }

    private ConfederalClient(HttpClient http, ServiceProvider? owned)
    {
        _http = http;
        _owned = owned;
        _adapter = new HttpClientRequestAdapter(new AnonymousAuthenticationProvider(), httpClient: http)
        {
            BaseUrl = http.BaseAddress?.ToString().TrimEnd('/'),
        };
        Api = new ConfederalApi(new RefusalsAdapter(_adapter));
    }

    /// <summary>A client of its own, outside dependency injection (a command-line tool, a script); dispose it.</summary>
    public static ConfederalClient Create(ConfederalClientOptions options)
    {
        var services = new ServiceCollection();
        services.AddConfederalClient(o =>
        {
            o.BaseAddress = options.BaseAddress;
            o.Token = options.Token;
            o.MaxRetries = options.MaxRetries;
            o.FirstRetryDelay = options.FirstRetryDelay;
            o.AttemptTimeout = options.AttemptTimeout;
            o.ImportAttemptTimeout = options.ImportAttemptTimeout;
            o.PrimaryHandler = options.PrimaryHandler;
        });
        var provider = services.BuildServiceProvider();
        return new ConfederalClient(provider.GetRequiredService<IHttpClientFactory>().CreateClient(HttpClientName), provider);
    }

    /// <summary>The generated client: <c>Api.Api.V1.Cantons["ge"].Budgets[2026].GetAsync()</c>.</summary>
    public ConfederalApi Api { get; }

    /// <summary>Sets the Idempotency-Key of one request, for a caller whose writes must be recognized across runs (a
    /// key of its own, e.g. derived from its source record): <c>PostAsync(body, WithKey("assess-2026-0042"))</c>.</summary>
    public static Action<RequestConfiguration<T>> WithKey<T>(string idempotencyKey)
        where T : class, new() =>
        c => c.Headers.Add(IdempotencyKeys.Header, idempotencyKey);

    /// <summary>Imports a file of assessments in one transaction: <c>.csv</c> (header personId,fiscalYear,amountMinor)
    /// or <c>.ndjson</c>/<c>.jsonl</c>, streamed (never read whole into memory) and sent again from its start on a retry,
    /// with the same Idempotency-Key.</summary>
    public Task<ImportAssessmentsImportView> ImportAssessmentsAsync(string cantonId, string path, string? idempotencyKey = null, CancellationToken ct = default)
    {
        var contentType = Path.GetExtension(path).ToUpperInvariant() switch
        {
            ".CSV" => "text/csv",
            ".NDJSON" or ".JSONL" => "application/x-ndjson",
            _ => throw new ArgumentException($"'{path}': a bulk import is a .csv, .ndjson or .jsonl file.", nameof(path)),
        };
        return ImportAsync(cantonId, () => new StreamContent(File.OpenRead(path)), contentType, Keyed(idempotencyKey), ct);
    }

    /// <summary>Imports <paramref name="assessments"/> in one transaction, streamed as NDJSON while they are enumerated. A
    /// retry enumerates them again (as an iterator method or a query does), with the same Idempotency-Key: they must be
    /// the same assessments each time.</summary>
    public Task<ImportAssessmentsImportView> ImportAssessmentsAsync(
        string cantonId, IAsyncEnumerable<AssessTaxBody> assessments, string? idempotencyKey = null, CancellationToken ct = default) =>
        ImportAsync(cantonId, () => new AssessmentLines(assessments), "application/x-ndjson", Keyed(idempotencyKey), ct);

    /// <summary>Imports <paramref name="assessments"/> as the overload with a key does, the request configured as a
    /// generated call's is: its Idempotency-Key (<see cref="WithKey"/>) and headers of its own, e.g. the bearer token of a
    /// caller that acts for several (a client with no <see cref="ConfederalClientOptions.Token"/>).</summary>
    public Task<ImportAssessmentsImportView> ImportAssessmentsAsync(
        string cantonId, IAsyncEnumerable<AssessTaxBody> assessments, Action<RequestConfiguration<DefaultQueryParameters>> requestConfiguration,
        CancellationToken ct = default) =>
        ImportAsync(cantonId, () => new AssessmentLines(assessments), "application/x-ndjson", requestConfiguration, ct);

    private static Action<RequestConfiguration<DefaultQueryParameters>>? Keyed(string? idempotencyKey) =>
        idempotencyKey is null ? null : WithKey<DefaultQueryParameters>(idempotencyKey);

    private async Task<ImportAssessmentsImportView> ImportAsync(
        string cantonId, Func<HttpContent> content, string contentType, Action<RequestConfiguration<DefaultQueryParameters>>? requestConfiguration,
        CancellationToken ct)
    {
        var information = Api.Api.V1.Cantons[cantonId].TaxAssessments.Batch.ToPostRequestInformation(Stream.Null, contentType, requestConfiguration);
        using var request = new HttpRequestMessage(HttpMethod.Post, information.URI) { Content = content() };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        foreach (var (name, values) in information.Headers)
        {
            if (!name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase))
            {
                request.Headers.TryAddWithoutValidation(name, values); // Accept, and the caller's Idempotency-Key and headers
            }
        }

        request.Options.Set(Import, true);
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        using var json = await ReadAsync(response, ct);
        return new JsonParseNode(json.RootElement).GetObjectValue(ImportAssessmentsImportView.CreateFromDiscriminatorValue)!;
    }

    /// <summary>The audit feed from <paramref name="after"/> up to its last sealed position, a page at a time (of
    /// <paramref name="pageSize"/> events), as typed events.</summary>
    public async IAsyncEnumerable<AuditEvent> AuditEventsAsync(
        long after = 0, string? canton = null, string? type = null, string? ledger = null, int pageSize = MaxAuditPage,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var e in AuditEventsAsJsonAsync(after, canton, type, ledger, pageSize, ct))
        {
            yield return new JsonParseNode(e).GetObjectValue(AuditEvent.CreateFromDiscriminatorValue)!;
        }
    }

    /// <summary>The audit feed as served, each event's JSON exactly as the API wrote it (an auditor's copy, whose hashes
    /// and timestamps must not pass through a model), from <paramref name="after"/> up to its last sealed position.</summary>
    public async IAsyncEnumerable<JsonElement> AuditEventsAsJsonAsync(
        long after = 0, string? canton = null, string? type = null, string? ledger = null, int pageSize = MaxAuditPage,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pageSize);
        while (true)
        {
            var from = after;
            var information = Api.Api.V1.Audit.Events.ToGetRequestInformation(c =>
            {
                c.QueryParameters.After = from;
                c.QueryParameters.Limit = pageSize;
                c.QueryParameters.Canton = canton;
                c.QueryParameters.Type = type;
                c.QueryParameters.Ledger = ledger;
            });
            using var page = await GetJsonAsync(information, ct);
            foreach (var e in page.RootElement.GetProperty("events").EnumerateArray())
            {
                yield return e.Clone();
            }

            after = page.RootElement.GetProperty("next").GetInt64();
            if (after <= from || after >= page.RootElement.GetProperty("sealedThrough").GetInt64())
            {
                yield break;
            }
        }
    }

    /// <summary>Sends a request the generated client built and returns its JSON answer as served.</summary>
    public async Task<JsonDocument> GetJsonAsync(RequestInformation information, CancellationToken ct)
    {
        using var request = await _adapter.ConvertToNativeRequestAsync<HttpRequestMessage>(information, ct)
                            ?? throw new InvalidOperationException("Kiota built no HTTP request.");
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        return await ReadAsync(response, ct);
    }

    private static async Task<JsonDocument> ReadAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStreamAsync(ct);
        if (response.IsSuccessStatusCode)
        {
            return await JsonDocument.ParseAsync(body, cancellationToken: ct);
        }

        ProblemDetails problem;
        try
        {
            using var json = await JsonDocument.ParseAsync(body, cancellationToken: ct);
            problem = new JsonParseNode(json.RootElement).GetObjectValue(ProblemDetails.CreateFromDiscriminatorValue)!;
        }
        catch (JsonException)
        {
            problem = new ProblemDetails { Title = $"{(int)response.StatusCode} {response.ReasonPhrase}", Status = (int)response.StatusCode };
        }

        problem.ResponseStatusCode = (int)response.StatusCode;
        RefusedRequest.Name(problem, response.RequestMessage?.Method.Method ?? "", response.RequestMessage?.RequestUri);
        throw problem;
    }

    public void Dispose()
    {
        _adapter.Dispose();
        if (_owned is not null)
        {
            _http.Dispose();
            _owned.Dispose();
        }
    }

    /// <summary>Whether an attempt's outcome is worth another: the network failed or timed out, or the API answered that
    /// it could not take the request now (408, 429, 502, 503, 504). A 503 "outcome-unknown" write is among them: sent
    /// again with its key, it is recorded once.</summary>
    internal static bool IsTransient(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException or TimeoutRejectedException } => true,
        { Result.StatusCode: HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway
            or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout } => true,
        _ => false,
    };

    internal static TimeSpan AttemptTimeout(HttpRequestMessage? request, ConfederalClientOptions options) =>
        request is not null && request.Options.TryGetValue(Import, out var import) && import ? options.ImportAttemptTimeout : options.AttemptTimeout;
}

/// <summary>Registers the HttpClient a <see cref="ConfederalClient"/> needs, and the client.</summary>
public static class ConfederalClientServices
{
    public static IHttpClientBuilder AddConfederalClient(this IServiceCollection services, Action<ConfederalClientOptions> configure)
    {
        var options = new ConfederalClientOptions();
        configure(options);
        options.Validate();
        var builder = services.AddHttpClient(ConfederalClient.HttpClientName, http =>
        {
            http.BaseAddress = options.BaseAddress;
            http.Timeout = Timeout.InfiniteTimeSpan; // each attempt has its own (AttemptTimeout)
        });
        builder.AddHttpMessageHandler(() => new IdempotencyKeys());
        builder.AddResilienceHandler("confederal", pipeline => pipeline
            .AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = Math.Max(1, options.MaxRetries),
                Delay = options.FirstRetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldRetryAfterHeader = true,
                ShouldHandle = args => ValueTask.FromResult(options.MaxRetries > 0 && ConfederalClient.IsTransient(args.Outcome)),
            })
            .AddTimeout(new HttpTimeoutStrategyOptions
            {
                TimeoutGenerator = args => ValueTask.FromResult(ConfederalClient.AttemptTimeout(args.Context.GetRequestMessage(), options)),
            }));
        if (options.Token is { } token)
        {
            builder.AddHttpMessageHandler(() => new BearerTokens(token));
        }

        if (options.PrimaryHandler is { } primary)
        {
            builder.ConfigurePrimaryHttpMessageHandler(primary);
        }

        services.AddTransient(sp => new ConfederalClient(sp.GetRequiredService<IHttpClientFactory>().CreateClient(ConfederalClient.HttpClientName)));
        return builder;
    }
}
