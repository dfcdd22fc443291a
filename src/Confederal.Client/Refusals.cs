using Confederal.Client.Generated.Models;
using Microsoft.Kiota.Abstractions;
using Microsoft.Kiota.Abstractions.Serialization;
using Microsoft.Kiota.Abstractions.Store;

namespace Confederal.Client;

/// <summary>The request a refusal answers, e.g. <c>PUT /api/v1/cantons/ge</c>: every <see cref="ApiException"/> a
/// <see cref="ConfederalClient"/> throws names it (<see cref="Of"/>), so that a message or a log says what was refused.</summary>
public sealed record RefusedRequest(string Method, string PathAndQuery)
{
    private const string Key = "Confederal.RefusedRequest";

    /// <summary>The request <paramref name="refusal"/> answers; null when no <see cref="ConfederalClient"/> threw it.</summary>
    public static RefusedRequest? Of(ApiException refusal) => refusal.Data[Key] as RefusedRequest;

    public override string ToString() => $"{Method} {PathAndQuery}";

    internal static void Name(ApiException refusal, string method, Uri? uri) =>
        refusal.Data[Key] = new RefusedRequest(method, uri?.PathAndQuery ?? "");
}

/// <summary>
/// The generated client's request adapter, with what its refusals lack: one whose status the OpenAPI document does not
/// list for the operation (a 403, a 500) is read as <see cref="ProblemDetails"/> all the same, as the API answers every
/// refusal with one; and each names its request (<see cref="RefusedRequest"/>).
/// </summary>
internal sealed class RefusalsAdapter(IRequestAdapter inner) : IRequestAdapter
{
    public ISerializationWriterFactory SerializationWriterFactory => inner.SerializationWriterFactory;

    public string? BaseUrl
    {
        get => inner.BaseUrl;
        set => inner.BaseUrl = value;
    }

    public void EnableBackingStore(IBackingStoreFactory backingStoreFactory) => inner.EnableBackingStore(backingStoreFactory);

    public Task<T?> ConvertToNativeRequestAsync<T>(RequestInformation requestInfo, CancellationToken cancellationToken = default) =>
        inner.ConvertToNativeRequestAsync<T>(requestInfo, cancellationToken);

    public Task<ModelType?> SendAsync<ModelType>(
        RequestInformation requestInfo, ParsableFactory<ModelType> factory, Dictionary<string, ParsableFactory<IParsable>>? errorMapping = null,
        CancellationToken cancellationToken = default)
        where ModelType : IParsable =>
        NamedAsync(requestInfo, () => inner.SendAsync(requestInfo, factory, Problems(errorMapping), cancellationToken));

    public Task<IEnumerable<ModelType>?> SendCollectionAsync<ModelType>(
        RequestInformation requestInfo, ParsableFactory<ModelType> factory, Dictionary<string, ParsableFactory<IParsable>>? errorMapping = null,
        CancellationToken cancellationToken = default)
        where ModelType : IParsable =>
        NamedAsync(requestInfo, () => inner.SendCollectionAsync(requestInfo, factory, Problems(errorMapping), cancellationToken));

    public Task<ModelType?> SendPrimitiveAsync<ModelType>(
        RequestInformation requestInfo, Dictionary<string, ParsableFactory<IParsable>>? errorMapping = null, CancellationToken cancellationToken = default) =>
        NamedAsync(requestInfo, () => inner.SendPrimitiveAsync<ModelType>(requestInfo, Problems(errorMapping), cancellationToken));

    public Task<IEnumerable<ModelType>?> SendPrimitiveCollectionAsync<ModelType>(
        RequestInformation requestInfo, Dictionary<string, ParsableFactory<IParsable>>? errorMapping = null, CancellationToken cancellationToken = default) =>
        NamedAsync(requestInfo, () => inner.SendPrimitiveCollectionAsync<ModelType>(requestInfo, Problems(errorMapping), cancellationToken));

    public Task SendNoContentAsync(
        RequestInformation requestInfo, Dictionary<string, ParsableFactory<IParsable>>? errorMapping = null, CancellationToken cancellationToken = default) =>
        NamedAsync(requestInfo, async () =>
        {
            await inner.SendNoContentAsync(requestInfo, Problems(errorMapping), cancellationToken);
            return true;
        });

    // The operation's own mapping first; any other refusal status ("XXX") as a problem.
    private static Dictionary<string, ParsableFactory<IParsable>> Problems(Dictionary<string, ParsableFactory<IParsable>>? errorMapping)
    {
        var problems = new Dictionary<string, ParsableFactory<IParsable>>(errorMapping ?? []);
        problems.TryAdd("XXX", ProblemDetails.CreateFromDiscriminatorValue);
        return problems;
    }

    private static async Task<T> NamedAsync<T>(RequestInformation request, Func<Task<T>> send)
    {
        try
        {
            return await send();
        }
        catch (ApiException refusal)
        {
            RefusedRequest.Name(refusal, request.HttpMethod.ToString(), request.URI);
            throw;
        }
    }
}
