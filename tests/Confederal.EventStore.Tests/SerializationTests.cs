namespace Confederal.EventStore.Tests;

public sealed class SerializationTests
{
    public sealed record DepositedV2(string Account, long AmountMinor, string Currency);

    [Fact]
    public async Task Events_are_stored_under_their_registered_name_and_version_not_the_clr_type()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1)]);

        Assert.Equal("deposited/1", await t.ScalarAsync<string>("SELECT type || '/' || type_version FROM es.events"));
        Assert.Equal("""{"amount": 1, "account": "a"}""", await t.ScalarAsync<string>("SELECT data::text FROM es.events"));
    }

    [Fact]
    public async Task An_event_stored_in_an_older_version_is_upcast_when_read()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 250)]);

        var v2 = new EventTypes()
            .Register<DepositedV2>("deposited", version: 2)
            .Upcast("deposited", fromVersion: 1, v1 => new System.Text.Json.Nodes.JsonObject
            {
                ["account"] = v1["account"]!.GetValue<string>(),
                ["amountMinor"] = v1["amount"]!.GetValue<long>(),
                ["currency"] = "CHF",
            });
        var events = await t.OtherProcess(v2).ReadStreamAsync("s").ToListAsync();

        Assert.Equal(new DepositedV2("a", 250, "CHF"), Assert.Single(events).Data);
    }

    [Fact]
    public async Task A_corrupt_payload_fails_with_an_error_naming_its_position()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Deposited("a", 2)]);
        await t.Store.Sequencer.SequenceAsync();
        await t.ExecuteAsync("""UPDATE es.events SET data = '{"account": "a", "amount": "lots"}' WHERE position = 2""");

        var error = await Assert.ThrowsAsync<EventStoreException>(() => t.ReadAllAsync());

        Assert.Equal(2, error.Position);
        Assert.Contains("position 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_event_type_fails_with_an_error_naming_its_position()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1)]);
        await t.Store.Sequencer.SequenceAsync();
        await t.ExecuteAsync("UPDATE es.events SET type = 'vanished' WHERE position = 1");

        var error = await Assert.ThrowsAsync<EventStoreException>(() => t.ReadAllAsync());

        Assert.Equal(1, error.Position);
        Assert.Contains("unknown event type 'vanished'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Registering_a_name_twice_is_refused() =>
        Assert.Throws<InvalidOperationException>(() => new EventTypes().Register<Deposited>("x").Register<Withdrawn>("x"));
}
