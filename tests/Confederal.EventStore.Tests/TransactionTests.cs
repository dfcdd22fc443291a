namespace Confederal.EventStore.Tests;

/// <summary>Appends to several streams in one transaction: all of them or none.</summary>
public sealed class TransactionTests
{
    [Fact]
    public async Task Appends_to_several_streams_in_one_transaction_commit_together_in_the_order_written()
    {
        await using var t = await TestStore.CreateAsync();

        await t.Store.TransactAsync(async tx =>
        {
            await t.Store.AppendAsync(tx, "from", ExpectedVersion.NoStream, [new Withdrawn("from", 40)]);
            return await t.Store.AppendAsync(tx, "to", ExpectedVersion.NoStream, [new Deposited("to", 40)], new EventMetadata(CausationId: "transfer-1"));
        });

        var all = await t.ReadAllAsync();
        Assert.Equal(["from", "to"], all.Select(e => e.StreamId));
        Assert.True(all[0].Position < all[1].Position);
        Assert.Equal("transfer-1", all[1].Metadata.CausationId);
    }

    [Fact]
    public async Task A_conflict_on_one_stream_rolls_back_the_appends_to_the_others()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("to", ExpectedVersion.NoStream, [new Deposited("to", 1)]);

        await Assert.ThrowsAsync<ConcurrencyException>(() => t.Store.TransactAsync(async tx =>
        {
            await t.Store.AppendAsync(tx, "from", ExpectedVersion.NoStream, [new Withdrawn("from", 40)]);
            return await t.Store.AppendAsync(tx, "to", ExpectedVersion.NoStream, [new Deposited("to", 40)]);
        }));

        Assert.Equal(0, await t.Store.StreamVersionAsync("from"));
        Assert.Equal(1, await t.Store.StreamVersionAsync("to"));
    }

    [Fact]
    public async Task An_exception_in_the_work_rolls_everything_back()
    {
        await using var t = await TestStore.CreateAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => t.Store.TransactAsync<int>(async tx =>
        {
            await t.Store.AppendAsync(tx, "from", ExpectedVersion.NoStream, [new Withdrawn("from", 40)]);
            throw new InvalidOperationException("changed my mind");
        }));

        Assert.Equal(0, await t.Store.StreamVersionAsync("from"));
    }

    [Fact]
    public async Task A_stream_reads_between_two_versions()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [.. Enumerable.Range(1, 5).Select(i => (object)new Deposited("s", i))]);

        var middle = await t.Store.ReadStreamAsync("s", fromVersion: 2, toVersion: 3).ToListAsync();

        Assert.Equal([new Deposited("s", 2), new Deposited("s", 3)], middle.Select(e => e.Data));
    }
}
