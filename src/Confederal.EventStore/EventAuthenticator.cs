using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Confederal.EventStore;

/// <summary>
/// Seals each event as it is written with an HMAC-SHA256 of everything the writer decided: stream, version, id, type,
/// type version, payload (canonical JSON) and metadata. The key never reaches the database, so a row inserted or
/// altered there directly carries no valid code: whoever holds the key finds it.
/// </summary>
public sealed class EventAuthenticator(byte[] key)
{
    private readonly byte[] _key = key.Length >= 32 ? key : throw new ArgumentException("An event key needs at least 32 bytes.", nameof(key));

    public byte[] Compute(string streamId, long version, Guid eventId, string type, int typeVersion, ReadOnlySpan<byte> canonicalData, EventMetadata metadata)
    {
        var message = new MessageWriter();
        message.Text(streamId);
        message.Int64(version);
        message.Guid(eventId);
        message.Text(type);
        message.Int64(typeVersion);
        message.Bytes(canonicalData);
        message.Text(metadata.CorrelationId);
        message.Text(metadata.CausationId);
        message.Text(metadata.Actor);
        return HMACSHA256.HashData(_key, message.Written);
    }

    /// <summary>Computes the code of an event serialized by this process (its payload is canonicalized first).</summary>
    internal byte[] Compute(string streamId, long version, Guid eventId, EventName name, string json, EventMetadata metadata) =>
        Compute(streamId, version, eventId, name.Name, name.Version, CanonicalJson.Serialize(json), metadata);

    public bool Verify(ReadOnlySpan<byte> code, string streamId, long version, Guid eventId, string type, int typeVersion,
        ReadOnlySpan<byte> canonicalData, EventMetadata metadata) =>
        CryptographicOperations.FixedTimeEquals(code, Compute(streamId, version, eventId, type, typeVersion, canonicalData, metadata));

    // Every field is length-prefixed, so no two different events share a message.
    private sealed class MessageWriter
    {
        private byte[] _buffer = new byte[512];
        private int _length;

        public ReadOnlySpan<byte> Written => _buffer.AsSpan(0, _length);

        public void Text(string? value)
        {
            if (value is null)
            {
                Int32(-1);
                return;
            }

            var count = Encoding.UTF8.GetByteCount(value);
            Int32(count);
            Ensure(count);
            _length += Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_length));
        }

        public void Bytes(ReadOnlySpan<byte> value)
        {
            Int32(value.Length);
            Ensure(value.Length);
            value.CopyTo(_buffer.AsSpan(_length));
            _length += value.Length;
        }

        public void Int64(long value)
        {
            Ensure(8);
            BinaryPrimitives.WriteInt64BigEndian(_buffer.AsSpan(_length), value);
            _length += 8;
        }

        public void Guid(Guid value)
        {
            Ensure(16);
            value.TryWriteBytes(_buffer.AsSpan(_length), bigEndian: true, out _);
            _length += 16;
        }

        private void Int32(int value)
        {
            Ensure(4);
            BinaryPrimitives.WriteInt32BigEndian(_buffer.AsSpan(_length), value);
            _length += 4;
        }

        private void Ensure(int more)
        {
            if (_length + more > _buffer.Length)
            {
                Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, _length + more));
            }
        }
    }
}
