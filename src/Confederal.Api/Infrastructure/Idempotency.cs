using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.EventStore;
using Npgsql;

namespace Confederal.Api.Infrastructure;

/// <summary>An Idempotency-Key that cannot be honoured: malformed, reused for another request, or too many at once.</summary>
public sealed class IdempotencyException(int status, string code, string title, string detail) : Exception(detail)
{
    public int Status { get; } = status;

    public string Code { get; } = code;

    public string Title { get; } = title;
}

/// <summary>
/// <c>Idempotency-Key</c> on POST, PUT and DELETE, for callers that retry. A keyed request runs in one
/// <see cref="WriteScope"/>: everything it writes and the record of its answer (status, Location, ETag, content type,
/// body) commit in one transaction, after the answer is produced and before it is sent, so an acknowledged write and
/// its record exist together or not at all. A retry with the same key and the same request (method, path, query,
/// content type, If-Match and body, compared by SHA-256) gets the recorded answer again, marked
/// <c>Idempotent-Replayed: true</c>, and records nothing; the same key with another request is a 422. A retry that
/// arrives while the first is running waits for it (a lock on the key). Only successful answers are recorded: a refused
/// request recorded nothing, and its retry is judged afresh.
/// <para>Keys belong to the caller (role and subject) and are kept <see cref="RetentionSetting"/> hours (7 days by
/// default). The table alone says nothing: a row's id is a keyed hash of caller and key, and the answer is encrypted
/// (AES-GCM) under a key derived from both, so a vote's receipt can be read back only by whoever holds its key.</para>
/// </summary>
public sealed class Idempotency : IDisposable
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    public const int MaxKeyLength = 255;
    public const string RetentionSetting = "Idempotency:RetentionHours";

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("app-0008-idempotency", """
            CREATE TABLE idempotency_keys (
                id          bytea PRIMARY KEY,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                answer      bytea NOT NULL
            );
            CREATE INDEX idempotency_keys_recorded_at ON idempotency_keys (recorded_at);
            """),
    ];

    private readonly RequestDelegate _next;
    private readonly Placement _placement;
    private readonly byte[] _key;

    // A keyed request holds a connection for its whole run and may borrow a second one to read: at most half the pool
    // at once, so that the pool can never be all held by requests waiting for their second connection.
    private readonly SemaphoreSlim _slots;
    private readonly ConfederalMetrics _metrics;

    public Idempotency(RequestDelegate next, Placement placement, AuditKeys keys, ConfederalMetrics metrics)
    {
        _next = next;
        _metrics = metrics;
        _placement = placement;
        _key = keys.IdempotencyKey;
        var pool = new NpgsqlConnectionStringBuilder(placement.Directory.DataSource.ConnectionString).MaxPoolSize;
        _slots = new SemaphoreSlim(Math.Max(1, pool / 2));
    }

    public void Dispose() => _slots.Dispose();

    public async Task InvokeAsync(HttpContext http)
    {
        if (!(HttpMethods.IsPost(http.Request.Method) || HttpMethods.IsPut(http.Request.Method) || HttpMethods.IsDelete(http.Request.Method))
            || !http.Request.Headers.TryGetValue(Header, out var values) || http.GetEndpoint() is null)
        {
            await _next(http);
            return;
        }

        if (values is not [{ } key] || !IsValid(key))
        {
            throw new IdempotencyException(StatusCodes.Status400BadRequest, "invalid-idempotency-key", "The Idempotency-Key header is not valid.",
                $"Send one Idempotency-Key of 1 to {MaxKeyLength} visible ASCII characters, new for each new request.");
        }

        if (!await _slots.WaitAsync(TimeSpan.FromSeconds(10), http.RequestAborted))
        {
            throw new IdempotencyException(StatusCodes.Status503ServiceUnavailable, "busy", "Too many keyed writes at once; nothing was recorded.", "Retry later.");
        }

        try
        {
            await RunAsync(http, new Keys(_key, IdempotencyScope(http.User), key));
        }
        finally
        {
            _slots.Release();
        }
    }

    // Whose keys: each caller's own. A person's actor in the log no longer names them, so the scope takes their subject.
    private static string IdempotencyScope(System.Security.Claims.ClaimsPrincipal user) =>
        user.FindFirst("role")?.Value == Roles.Person ? $"person:{user.FindFirst("sub")?.Value}" : user.Actor() ?? "anonymous";

    private async Task RunAsync(HttpContext http, Keys keys)
    {
        var ct = http.RequestAborted;
        // The answer is recorded in the database the request writes to, with what it wrote.
        await using var scope = WriteScope.Enter(_placement.Of(http).Log);
        var transaction = await scope.TransactionAsync(ct);
        using var fingerprint = new Fingerprint(http.Request);
        if (await FindAsync(transaction, keys, ct) is { } recorded)
        {
            var same = await fingerprint.OfWholeBodyAsync(ct);
            if (!CryptographicOperations.FixedTimeEquals(recorded.Fingerprint, same))
            {
                throw new IdempotencyException(StatusCodes.Status422UnprocessableEntity, "idempotency-key-reused",
                    "This Idempotency-Key was used for another request.",
                    "A retry must repeat the first request exactly (method, path, query, If-Match and body); a new request needs a new key.");
            }

            await ReplayAsync(http, recorded);
            _metrics.Replayed();
            return;
        }

        var sent = http.Response.Body;
        using var answer = new MemoryStream();
        http.Response.Body = answer;
        try
        {
            await _next(http);
            if (http.Response.StatusCode is >= 200 and < 300)
            {
                var headers = http.Response.Headers;
                await StoreAsync(transaction, keys, new Answer(
                    await fingerprint.OfWholeBodyAsync(ct), http.Response.StatusCode, http.Response.ContentType,
                    headers.Location.FirstOrDefault(), headers.ETag.FirstOrDefault(), answer.ToArray()), ct);
                try
                {
                    await scope.CommitAsync(ct);
                }
                catch (Exception e) when (Backoff.IsUnavailable(e))
                {
                    throw new OutcomeUnknownException(e);
                }
            }
        }
        finally
        {
            http.Response.Body = sent;
        }

        answer.Position = 0;
        await answer.CopyToAsync(sent, ct);
    }

    private static bool IsValid(string key) =>
        key.Length is >= 1 and <= MaxKeyLength && key.All(c => c is >= '!' and <= '~');

    private static async Task<Answer?> FindAsync(NpgsqlTransaction transaction, Keys keys, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(transaction.Connection, transaction)
        {
            BatchCommands =
            {
                Sql.Command("SELECT pg_advisory_xact_lock($1)", BitConverter.ToInt64(keys.Id)),
                Sql.Command("SELECT answer FROM idempotency_keys WHERE id = $1", keys.Id),
            },
        };
        await using var reader = await batch.ExecuteReaderAsync(ct);
        await reader.NextResultAsync(ct);
        return await reader.ReadAsync(ct) ? keys.Open(reader.GetFieldValue<byte[]>(0)) : null;
    }

    private static async Task StoreAsync(NpgsqlTransaction transaction, Keys keys, Answer answer, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("INSERT INTO idempotency_keys (id, answer) VALUES ($1, $2)", transaction.Connection, transaction)
        {
            Parameters = { new NpgsqlParameter<byte[]> { TypedValue = keys.Id }, new NpgsqlParameter<byte[]> { TypedValue = keys.Seal(answer) } },
        };
        await command.ExecuteNonQueryAsync(ct);
    }

    private static async Task ReplayAsync(HttpContext http, Answer answer)
    {
        http.Response.StatusCode = answer.Status;
        http.Response.ContentType = answer.ContentType;
        if (answer.Location is not null)
        {
            http.Response.Headers.Location = answer.Location;
        }

        if (answer.ETag is not null)
        {
            http.Response.Headers.ETag = answer.ETag;
        }

        http.Response.Headers[ReplayedHeader] = "true";
        await http.Response.Body.WriteAsync(answer.Body, http.RequestAborted);
    }

    /// <summary>What a retry gets back.</summary>
    private sealed record Answer(byte[] Fingerprint, int Status, string? ContentType, string? Location, string? ETag, byte[] Body);

    /// <summary>The row id and the answer's encryption key of one caller's key, both derived with the platform secret.</summary>
    private sealed class Keys
    {
        private readonly byte[] _seal;

        public Keys(byte[] secret, string owner, string key)
        {
            Id = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes($"id\n{owner}\n{key}"));
            _seal = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes($"seal\n{owner}\n{key}"));
        }

        public byte[] Id { get; }

        public byte[] Seal(Answer answer)
        {
            var plain = JsonSerializer.SerializeToUtf8Bytes(answer);
            var sealedAnswer = new byte[12 + 16 + plain.Length];
            RandomNumberGenerator.Fill(sealedAnswer.AsSpan(0, 12));
            using var aes = new AesGcm(_seal, 16);
            aes.Encrypt(sealedAnswer.AsSpan(0, 12), plain, sealedAnswer.AsSpan(28), sealedAnswer.AsSpan(12, 16), Id);
            return sealedAnswer;
        }

        public Answer Open(byte[] sealedAnswer)
        {
            var plain = new byte[sealedAnswer.Length - 28];
            using var aes = new AesGcm(_seal, 16);
            aes.Decrypt(sealedAnswer.AsSpan(0, 12), sealedAnswer.AsSpan(28), sealedAnswer.AsSpan(12, 16), plain, Id);
            return JsonSerializer.Deserialize<Answer>(plain)!;
        }
    }

    /// <summary>SHA-256 of what makes two requests the same request. The body is hashed as the endpoint reads it (a bulk
    /// import streams gigabytes through), and whatever it left unread is read at the end.</summary>
    private sealed class Fingerprint : IDisposable
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly HttpRequest _request;

        public Fingerprint(HttpRequest request)
        {
            _request = request;
            _hash.AppendData(Encoding.UTF8.GetBytes(string.Join('\n',
                request.Method, request.Path.Value, request.QueryString.Value, request.ContentType, request.Headers.IfMatch.ToString(), "")));
            request.Body = new HashingStream(request.Body, _hash);
        }

        public void Dispose() => _hash.Dispose();

        public async Task<byte[]> OfWholeBodyAsync(CancellationToken ct)
        {
            await _request.Body.CopyToAsync(Stream.Null, ct);
            return _hash.GetHashAndReset();
        }
    }

    private sealed class HashingStream(Stream inner, IncrementalHash hash) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Hashed(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            return Hashed(buffer.Span[..read]);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Hashed(ReadOnlySpan<byte> read)
        {
            hash.AppendData(read);
            return read.Length;
        }
    }
}

/// <summary>Forgets idempotency keys older than the retention (Idempotency:RetentionHours, 168 by default), hourly.</summary>
internal sealed partial class IdempotencyRetention(Shards shards, IConfiguration configuration, ILogger<IdempotencyRetention> logger) : BackgroundService
{
    private readonly TimeSpan _retention = TimeSpan.FromHours(configuration.GetValue(Idempotency.RetentionSetting, 168.0));

    /// <summary>Deletes the expired keys of one database now (each records the answers of the writes made in it);
    /// returns how many.</summary>
    public async Task<int> ForgetExpiredAsync(NpgsqlDataSource db, CancellationToken ct)
    {
        await using var command = db.CreateCommand("DELETE FROM idempotency_keys WHERE recorded_at < now() - $1");
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = _retention });
        return await command.ExecuteNonQueryAsync(ct);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1));
        do
        {
            foreach (var shard in shards) // a database that is down is swept at the next tick
            {
                try
                {
                    Forgotten(logger, await ForgetExpiredAsync(shard.DataSource, stoppingToken), shard.Id);
                }
                catch (Exception e) when (e is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
                {
                    Failed(logger, e);
                }
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Forgot {Count} expired idempotency keys in database {Database}")]
    private static partial void Forgotten(ILogger logger, int count, string database);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not forget expired idempotency keys; retrying in an hour")]
    private static partial void Failed(ILogger logger, Exception exception);
}
