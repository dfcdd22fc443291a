using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed record Noted(string Text, long Amount, string[] Tags, Dictionary<string, long> Counts, bool Flag);

public sealed class AuthenticationTests(AuthenticationTests.NotesLog notes) : IClassFixture<AuthenticationTests.NotesLog>
{
    private static readonly EventAuthenticator Authenticator = new(RandomNumberGenerator.GetBytes(32));

    private static EventTypes Types() => TestStore.NewTypes().Register<Noted>("noted");

    private static async Task<(TestStore Test, EventLog Log)> StoreAsync()
    {
        var test = await TestStore.CreateAsync(types: Types(), authenticator: Authenticator);
        return (test, test.Store);
    }

    private static async Task<List<StoredEvent>> StoredAsync(EventLog log)
    {
        var stored = new List<StoredEvent>();
        await foreach (var e in log.ReadStoredAsync(0))
        {
            stored.Add(e);
        }

        return stored;
    }

    private static bool Verifies(StoredEvent e) =>
        e.Code is { } code && Authenticator.Verify(code, e.StreamId, e.Version, e.EventId, e.Type, e.TypeVersion, CanonicalJson.Serialize(e.Json), e.Metadata);

    [Fact]
    public async Task Every_way_of_appending_stores_a_code_that_verifies_against_the_row_as_read_back()
    {
        var (test, log) = await StoreAsync();
        await using var _ = test;
        var metadata = new EventMetadata("corr-1", "cause-1", "municipality:ge");
        await log.AppendAsync("account-a", ExpectedVersion.NoStream, [new Deposited("a", 10), new Deposited("a", 5)], metadata);
        await log.AppendAsync("account-a", ExpectedVersion.Exactly(2), [new Withdrawn("a", 3)]);
        await log.AppendAsync("account-a", ExpectedVersion.Any, [new Withdrawn("a", 1)]);
        await log.TransactAsync(async tx =>
        {
            await log.AppendAsync(tx, "account-b", ExpectedVersion.NoStream, [new Deposited("b", 7)]);
            return await log.AppendAsync(tx, "account-b", ExpectedVersion.Any, [new Deposited("b", 8)]);
        });
        await using (var bulk = await log.BeginBulkAppendAsync("account-c", metadata))
        {
            await bulk.WriteAsync(new Deposited("c", 1));
            await bulk.WriteAsync(new Noted("é\"\\\n\u2028 ☃ 𝄞", long.MinValue, ["x", ""], new() { ["b"] = 1, ["a"] = -2 }, true));
            await bulk.CommitAsync();
        }

        var stored = await StoredAsync(log);
        Assert.Equal(8, stored.Count);
        Assert.All(stored, e => Assert.True(Verifies(e), $"{e.StreamId} v{e.Version}"));
    }

    [Theory]
    [InlineData($"UPDATE {EventLog.Table} SET data = jsonb_set(data, '{{amount}}', '11')")]
    [InlineData($"INSERT INTO {MartenStore.Schema}.mt_streams (id, version) VALUES ('account-z', 1); UPDATE {EventLog.Table} SET stream_id = 'account-z'")]
    [InlineData($"UPDATE {EventLog.Table} SET version = 9")]
    [InlineData($"UPDATE {EventLog.Table} SET type = 'withdrawn.v1'")]
    [InlineData($"UPDATE {EventLog.Table} SET type = 'deposited.v2'")]
    [InlineData($"UPDATE {EventLog.Table} SET id = gen_random_uuid()")]
    [InlineData($"UPDATE {EventLog.Table} SET user_name = 'confederation-admin:mallory'")]
    [InlineData($"UPDATE {EventLog.Table} SET correlation_id = NULL")]
    [InlineData($"UPDATE {EventLog.Table} SET causation_id = 'other'")]
    [InlineData($"UPDATE {EventLog.Table} SET headers = jsonb_set(headers, '{{mac}}', to_jsonb(encode(sha256('forged'), 'base64')))")]
    public async Task A_code_no_longer_verifies_once_any_recorded_field_changes(string change)
    {
        var (test, log) = await StoreAsync();
        await using var _ = test;
        await log.AppendAsync("account-a", ExpectedVersion.NoStream, [new Deposited("a", 10)], new EventMetadata("corr-1", "cause-1", "municipality:ge"));
        Assert.True(Verifies((await StoredAsync(log)).Single()));

        await test.ExecuteAsync(change);
        Assert.False(Verifies((await StoredAsync(log)).Single()));
    }

    [Fact]
    public async Task Without_an_authenticator_events_are_stored_without_a_code()
    {
        await using var test = await TestStore.CreateAsync();
        await test.Store.AppendAsync("account-a", ExpectedVersion.NoStream, [new Deposited("a", 10)]);
        Assert.Null((await StoredAsync(test.Store)).Single().Code);
    }

    private static readonly Gen<string> Text = Gen.Frequency(
        (3, ArbMap.Default.GeneratorFor<string>().Where(s => s is not null && !s.Contains('\0', StringComparison.Ordinal))),
        (1, Gen.Elements("", "é", "\"quoted\"", "back\\slash", "line\nbreak", "\u2028", "😀", "<script>&amp;")));

    /// <summary>The notes drawn for a <see cref="Noted"/> parameter: any text (escapes, line separators, astral
    /// characters), any amount, up to four tags and three keys.</summary>
    public static Arbitrary<Noted> Notes { get; } = Arb.From(
        from t in Text
        from amount in ArbMap.Default.GeneratorFor<long>()
        from count in Gen.Choose(0, 4)
        from tags in Gen.ArrayOf(Text, count)
        from keys in Gen.ArrayOf(Text, 3)
        from flag in ArbMap.Default.GeneratorFor<bool>()
        select new Noted(t, amount, tags, keys.Distinct().ToDictionary(k => k, k => (long)k.Length), flag));

    [Property(MaxTest = 200, Arbitrary = [typeof(AuthenticationTests)])]
    public async Task Canonical_json_of_what_the_serializer_wrote_equals_that_of_what_jsonb_returns(Noted note)
    {
        await notes.Log.AppendAsync("notes", ExpectedVersion.Exactly(notes.Version), [note]);
        notes.Version++;
        await using var command = notes.Test.DataSource.CreateCommand($"SELECT data::text FROM {EventLog.Table} WHERE stream_id = 'notes' AND version = $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = notes.Version });
        var fromDatabase = (string)(await command.ExecuteScalarAsync())!;
        var written = System.Text.Json.JsonSerializer.Serialize(note, notes.Types.SerializerOptions);
        Assert.Equal(CanonicalJson.Serialize(written), CanonicalJson.Serialize(fromDatabase));
    }

    /// <summary>One store for every note the property appends, one after the other to one stream.</summary>
    public sealed class NotesLog : IAsyncLifetime
    {
        public TestStore Test { get; private set; } = null!;

        public EventLog Log { get; private set; } = null!;

        public EventTypes Types { get; } = AuthenticationTests.Types();

        /// <summary>The stream's version: the number of notes appended so far.</summary>
        public long Version { get; set; }

        public async Task InitializeAsync() => (Test, Log) = await StoreAsync();

        public async Task DisposeAsync() => await Test.DisposeAsync();
    }
}
