using System.Text.Json;
using System.Text.Json.Nodes;
using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed class SerializationTests
{
    public sealed record DepositedV2(string Account, long AmountMinor, string Currency);

    /// <summary>deposited v2 beside withdrawn v1; a stored deposited v1 is upcast to v2.</summary>
    private static EventTypes V2Types() => new EventTypes()
        .Register<DepositedV2>("deposited", version: 2)
        .Register<Withdrawn>("withdrawn")
        .Upcast("deposited", fromVersion: 1, v1 => new JsonObject
        {
            ["account"] = v1["account"]?.GetValue<string>() ?? throw new JsonException("'account' is missing"),
            ["amountMinor"] = (v1["amount"]?.GetValue<long>() ?? throw new JsonException("'amount' is missing")) * 100,
            ["currency"] = "CHF",
        });

    [Fact]
    public async Task Events_are_stored_under_their_registered_name_and_version_never_under_the_clr_type()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Withdrawn("a", 1)]);
        await t.OtherProcess(V2Types()).Log.AppendAsync("s", ExpectedVersion.Exactly(2), [new DepositedV2("a", 100, "CHF")]);

        Assert.Equal("deposited.v1,withdrawn.v1,deposited.v2", await t.ScalarAsync<string>($"SELECT string_agg(type, ',' ORDER BY seq_id) FROM {EventLog.Table}"));
        Assert.Equal("""{"amount": 1, "account": "a"}""", await t.ScalarAsync<string>($"SELECT data::text FROM {EventLog.Table} WHERE version = 1"));
        Assert.Equal(0L, await t.ScalarAsync<long>($"""
            SELECT count(*) FROM {EventLog.Table}
            WHERE type LIKE '%{nameof(Deposited)}%' OR type LIKE '%{nameof(Withdrawn)}%' OR type LIKE '%{typeof(Deposited).Namespace}%'
            """));
    }

    [Fact]
    public async Task An_event_stored_in_an_older_version_is_upcast_by_every_read_and_every_projection_and_stays_as_stored()
    {
        var seen = new RecordingProjection();
        await using var t = await TestStore.CreateAsync([seen], V2Types());
        var old = await StoredRows.InsertAsync(t.DataSource, t.Store, "s", new EventName("deposited", 1), """{"account": "a", "amount": 250}""");
        await t.Store.AppendAsync("s", ExpectedVersion.Exactly(1), [new DepositedV2("a", 5, "EUR")]);
        DepositedV2[] expected = [new("a", 25_000, "CHF"), new("a", 5, "EUR")];

        var all = await t.ReadAllAsync();
        Assert.Equal(expected, all.Select(e => e.Data));
        Assert.Equal(old, all[0].Position);
        Assert.Equal(["deposited", "deposited"], all.Select(e => e.Type));
        Assert.Equal(expected, await t.Store.ReadStreamAsync("s").Select(e => e.Data).ToListAsync());
        Assert.Equal(expected, (await t.Store.ReadStreamsAsync(["s"]))["s"].Select(e => e.Data));
        Assert.Equal(expected, await t.Store.ReadUpToAsync(all[^1].Position, [typeof(DepositedV2)]).Select(e => e.Data).ToListAsync());
        Assert.Equal(expected, seen.Data);
        Assert.Equal("deposited.v1,deposited.v2", await t.ScalarAsync<string>($"SELECT string_agg(type, ',' ORDER BY seq_id) FROM {EventLog.Table}"));
        Assert.Equal("""{"amount": 250, "account": "a"}""", await t.ScalarAsync<string>($"SELECT data::text FROM {EventLog.Table} WHERE version = 1"));
    }

    [Fact]
    public async Task An_event_appended_by_an_older_version_of_the_code_is_upcast_when_read_by_the_newer()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 250), new Withdrawn("a", 1)]);

        var newer = t.OtherProcess(V2Types()).Log;

        Assert.Equal([new DepositedV2("a", 25_000, "CHF"), new Withdrawn("a", 1)], await newer.ReadStreamAsync("s").Select(e => e.Data).ToListAsync());
        await t.Daemon.CatchUpAsync();
        Assert.Equal([new DepositedV2("a", 25_000, "CHF"), new Withdrawn("a", 1)], await newer.ReadAllAsync(0).Select(e => e.Data).ToListAsync());
    }

    [Theory]
    [InlineData("withdrawn.v1", """{"account": "a", "amount": "lots"}""")] // the registered version
    [InlineData("deposited.v1", """{"account": "a"}""")] // an older version, upcast
    public async Task A_corrupt_payload_fails_with_an_error_naming_its_position(string alias, string json)
    {
        await using var t = await TestStore.CreateAsync(types: V2Types());
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Withdrawn("a", 1)]);
        var position = await StoredRows.InsertAsync(t.DataSource, t.Store, "s", EventName.FromAlias(alias), json);

        foreach (var read in new Func<Task>[]
                 {
                     () => t.ReadAllAsync(),
                     () => t.Store.ReadStreamAsync("s").ToListAsync().AsTask(),
                     () => t.Store.ReadUpToAsync(position, [typeof(DepositedV2), typeof(Withdrawn)]).ToListAsync().AsTask(),
                 })
        {
            var error = await Assert.ThrowsAsync<EventStoreException>(read);
            Assert.Equal(position, error.Position);
            Assert.Contains($"position {position} (stream 's')", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Marten_reads_an_event_as_the_other_registered_type_a_changed_clr_name_beside_it_names_and_MisreadAs_says_which()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Deposited("a", 2)]);
        // What Marten writes beside our alias (and the bulk import with it).
        Assert.Equal(EventTypes.ClrNameOf(typeof(Deposited)), await t.ScalarAsync<string>($"SELECT mt_dotnet_type FROM {EventLog.Table} WHERE version = 1"));
        await t.ExecuteAsync($"UPDATE {EventLog.Table} SET mt_dotnet_type = '{EventTypes.ClrNameOf(typeof(Withdrawn))}' WHERE version = 2");

        Assert.Equal([new Deposited("a", 1), new Withdrawn("a", 2)], await t.Store.ReadStreamAsync("s").Select(e => e.Data).ToListAsync());
        var stored = await t.Store.ReadStoredAsync(0).ToListAsync();
        Assert.Equal(["deposited", "deposited"], stored.Select(e => e.Type));
        Assert.Equal([null, new EventName("withdrawn", 1)], stored.Select(e => t.Store.Types.MisreadAs(e.Type, e.TypeVersion, e.ClrName)));
    }

    [Fact]
    public async Task Marten_never_swaps_the_type_of_an_older_version_it_upcasts_and_MisreadAs_agrees()
    {
        await using var t = await TestStore.CreateAsync(types: V2Types());
        await StoredRows.InsertAsync(t.DataSource, t.Store, "s", new EventName("deposited", 1), """{"account": "a", "amount": 250}""");
        var withdrawn = EventTypes.ClrNameOf(typeof(Withdrawn));
        await t.ExecuteAsync($"UPDATE {EventLog.Table} SET mt_dotnet_type = '{withdrawn}'");

        Assert.Equal([new DepositedV2("a", 25_000, "CHF")], await t.Store.ReadStreamAsync("s").Select(e => e.Data).ToListAsync());
        var types = t.Store.Types;
        Assert.Null(types.MisreadAs("deposited", 1, withdrawn));
        Assert.Null(types.MisreadAs("deposited", 2, null));
        Assert.Null(types.MisreadAs("deposited", 2, EventTypes.ClrNameOf(typeof(DepositedV2))));
        Assert.Null(types.MisreadAs("deposited", 2, "Not.A.Registered.Type, Nowhere"));
        Assert.Equal(new EventName("withdrawn", 1), types.MisreadAs("deposited", 2, withdrawn));
        // An alias Marten does not know is read by the CLR name alone.
        Assert.Equal(new EventName("withdrawn", 1), types.MisreadAs("vanished", 1, withdrawn));
        Assert.Equal(new EventName("deposited", 2), types.MisreadAs("deposited", 3, EventTypes.ClrNameOf(typeof(DepositedV2))));
    }

    [Fact]
    public void Registering_a_name_twice_is_refused() =>
        Assert.Throws<InvalidOperationException>(() => new EventTypes().Register<Deposited>("x").Register<Withdrawn>("x"));

    [Fact]
    public void An_alias_reads_back_into_its_name_and_version_and_a_clr_name_is_not_an_alias()
    {
        Assert.Equal(new EventName("canton-registered", 2), EventName.FromAlias("canton-registered.v2"));
        Assert.Equal(new EventName("a.v1.b", 10), EventName.FromAlias(new EventName("a.v1.b", 10).Alias));
        Assert.Throws<FormatException>(() => EventName.FromAlias(typeof(Deposited).FullName!));
        Assert.Throws<FormatException>(() => EventName.FromAlias("deposited.v0"));
    }

    /// <summary>Keeps the payloads it is given, in order.</summary>
    private sealed class RecordingProjection : IProjection
    {
        public string Name => "recording";

        public IReadOnlyList<string> Tables => [];

        public List<object> Data { get; } = [];

        public Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
        {
            Data.AddRange(events.Select(e => e.Data));
            return Task.CompletedTask;
        }
    }
}
