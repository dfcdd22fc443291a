using System.Security.Cryptography;
using System.Text;
using Confederal.Api.Infrastructure;

namespace Confederal.Api.Features.Audit;

/// <summary>
/// The platform's audit secrets, never served: Audit:Secret (base64, at least 32 bytes), from which the events'
/// authentication key, the pseudonym key, the idempotency records' key and the person key table's keys are derived, and Audit:SealKey (a PEM ECDSA P-256 private key) that signs
/// seals; its public half is served with the seals. In Development and with the embedded database they are generated
/// into the data folder on first run; Production refuses to start without them.
/// </summary>
public sealed class AuditKeys
{
    private const string SecretFile = "audit-secret.key";
    private const string SealKeyFile = "audit-seal-key.pem";

    public AuditKeys(byte[] secret, ECDsa sealKey)
    {
        if (secret.Length < 32)
        {
            throw new InvalidOperationException("Audit:Secret must hold at least 32 bytes (base64).");
        }

        EventKey = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes("confederal/event-codes"));
        PseudonymKey = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes("confederal/pseudonyms"));
        IdempotencyKey = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes("confederal/idempotency"));
        PersonLookupKey = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes("confederal/person-lookup"));
        PersonWrapKey = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes("confederal/person-key-wrap"));
        SealKey = sealKey;
        PublicKey = Convert.ToBase64String(sealKey.ExportSubjectPublicKeyInfo());
    }

    /// <summary>The key of the events' authentication codes.</summary>
    public byte[] EventKey { get; }

    /// <summary>The key of the person pseudonyms.</summary>
    public byte[] PseudonymKey { get; }

    /// <summary>The key of the idempotency records' ids and answers.</summary>
    public byte[] IdempotencyKey { get; }

    /// <summary>The key of the person key table's lookups (HMAC of the person id).</summary>
    public byte[] PersonLookupKey { get; }

    /// <summary>The key that wraps each person's own key in the person key table.</summary>
    public byte[] PersonWrapKey { get; }

    /// <summary>Signs seals (ES256).</summary>
    public ECDsa SealKey { get; }

    /// <summary>The seal key's public half: base64 SubjectPublicKeyInfo.</summary>
    public string PublicKey { get; }

    public static AuditKeys Load(IConfiguration configuration, IHostEnvironment environment)
    {
        var section = configuration.GetSection("Audit");
        var secret = section["Secret"];
        var sealKey = section["SealKey"];
        if (!string.IsNullOrWhiteSpace(secret) && !string.IsNullOrWhiteSpace(sealKey))
        {
            var ecdsa = ECDsa.Create();
            ecdsa.ImportFromPem(sealKey);
            return new AuditKeys(Convert.FromBase64String(secret), ecdsa);
        }

        if (environment.IsProduction() || !(environment.IsDevelopment() || Database.IsEmbedded(configuration)))
        {
            throw new InvalidOperationException(
                "No audit keys configured: set Audit:Secret (base64, 32 bytes or more) and Audit:SealKey (PEM ECDSA P-256 private key). " +
                "Generated development keys are never used in Production.");
        }

        return LoadOrCreate(DataDirectory.Resolve(configuration));
    }

    /// <summary>The development keys in <paramref name="dataDirectory"/>, created on first use.</summary>
    public static AuditKeys LoadOrCreate(string dataDirectory)
    {
        var secret = SecretFiles.LoadOrCreate(Path.Combine(dataDirectory, SecretFile), () => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        var pem = SecretFiles.LoadOrCreate(Path.Combine(dataDirectory, SealKeyFile), () =>
        {
            using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            return fresh.ExportPkcs8PrivateKeyPem();
        });
        var ecdsa = ECDsa.Create();
        ecdsa.ImportFromPem(pem);
        return new AuditKeys(Convert.FromBase64String(secret.Trim()), ecdsa);
    }
}
