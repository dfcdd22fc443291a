namespace Confederal.EventStore.Tests;

public sealed class BulkAppendTests
{
    [Fact]
    public async Task A_committed_bulk_append_records_every_event_in_order_with_its_metadata_across_chunks()
    {
        const int count = 2 * BulkAppend.ChunkSize + 17;
        await using var t = await TestStore.CreateAsync();
        var metadata = new EventMetadata("corr-bulk", null, "municipality:ge");

        await using (var bulk = await t.Store.BeginBulkAppendAsync("filing-1", metadata))
        {
            for (var i = 1; i <= count; i++)
            {
                await bulk.WriteAsync(new Deposited($"a{i % 7}", i));
            }

            Assert.Equal(count, bulk.Count);
            Assert.Equal(count, await bulk.CommitAsync());
        }

        var events = await t.ReadAllAsync();
        Assert.Equal(Enumerable.Range(1, count).Select(i => (long)i), events.Select(e => e.Version));
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Position < p.Second.Position), "positions increase with versions");
        Assert.Equal(new Deposited("a3", 10), events[9].Data);
        Assert.All(events, e => Assert.Equal(metadata, e.Metadata));
        Assert.Equal(count, await t.Store.StreamVersionAsync("filing-1"));

        // Written with COPY beside Marten: Marten's own reads and appends take it as a stream of its own.
        Assert.Equal(events.Select(e => e.Data), await t.Store.ReadStreamAsync("filing-1").Select(e => e.Data).ToListAsync());
        await using (var session = t.Open.Marten.QuerySession())
        {
            var state = await session.Events.FetchStreamStateAsync("filing-1");
            Assert.Equal(count, state!.Version);
            Assert.Equal(count, (await session.Events.FetchStreamAsync("filing-1")).Count);
        }

        await t.Store.AppendAsync("filing-1", ExpectedVersion.Exactly(count), [new Deposited("after", 1)]);
        await Assert.ThrowsAsync<ConcurrencyException>(() => t.Store.AppendAsync("filing-1", ExpectedVersion.Exactly(count), [new Deposited("late", 1)]));
        Assert.Equal(count + 1, await t.Store.StreamVersionAsync("filing-1"));
    }

    [Fact]
    public async Task A_bulk_append_disposed_without_commit_records_nothing()
    {
        await using var t = await TestStore.CreateAsync();

        await using (var bulk = await t.Store.BeginBulkAppendAsync("filing-2"))
        {
            for (var i = 0; i < 5_000; i++)
            {
                await bulk.WriteAsync(new Deposited("a", i));
            }
        }

        Assert.Equal(0L, await t.ScalarAsync<long>($"SELECT count(*) FROM {EventLog.Table}"));
        Assert.Equal(0L, await t.ScalarAsync<long>($"SELECT count(*) FROM {MartenStore.Schema}.mt_streams"));
    }

    [Fact]
    public async Task A_bulk_append_to_an_existing_stream_is_a_concurrency_conflict_and_records_nothing()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("filing-3", ExpectedVersion.NoStream, [new Deposited("a", 1)]);

        await using var bulk = await t.Store.BeginBulkAppendAsync("filing-3");
        await bulk.WriteAsync(new Deposited("a", 2));
        await bulk.WriteAsync(new Deposited("a", 3));

        await Assert.ThrowsAsync<ConcurrencyException>(() => bulk.CommitAsync());
        Assert.Equal(1L, await t.ScalarAsync<long>($"SELECT count(*) FROM {EventLog.Table}"));
    }

    [Fact]
    public async Task Of_two_bulk_appends_to_one_new_stream_the_second_to_commit_is_a_concurrency_conflict()
    {
        await using var t = await TestStore.CreateAsync();

        await using (var first = await t.Store.BeginBulkAppendAsync("filing-4"))
        await using (var second = await t.Store.BeginBulkAppendAsync("filing-4"))
        {
            await first.WriteAsync(new Deposited("first", 1));
            await second.WriteAsync(new Deposited("second", 1));
            await second.WriteAsync(new Deposited("second", 2));
            await first.CommitAsync();

            await Assert.ThrowsAsync<ConcurrencyException>(() => second.CommitAsync());
        }

        await using (var third = await t.Store.BeginBulkAppendAsync("filing-4"))
        {
            await third.WriteAsync(new Deposited("third", 1));
            await Assert.ThrowsAsync<ConcurrencyException>(() => third.CommitAsync());
        }

        Assert.Equal([new Deposited("first", 1)], await t.Store.ReadStreamAsync("filing-4").Select(e => e.Data).ToListAsync());
    }

    [Fact]
    public async Task A_bulk_append_needs_an_event_and_is_done_once_committed()
    {
        await using var t = await TestStore.CreateAsync();
        await using var bulk = await t.Store.BeginBulkAppendAsync("filing-5");
        await Assert.ThrowsAsync<InvalidOperationException>(() => bulk.CommitAsync());

        await bulk.WriteAsync(new Deposited("a", 1));
        await bulk.CommitAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => bulk.WriteAsync(new Deposited("a", 2)).AsTask());
        Assert.Equal(1, await t.Store.StreamVersionAsync("filing-5"));
    }

    [Fact]
    public async Task Several_streams_read_in_one_round_trip_each_in_version_order()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("x", ExpectedVersion.NoStream, [new Deposited("x", 1), new Withdrawn("x", 1)]);
        await t.Store.AppendAsync("y", ExpectedVersion.NoStream, [new Deposited("y", 2)]);
        await t.Store.AppendAsync("z", ExpectedVersion.NoStream, [new Deposited("z", 3)]);

        var read = await t.Store.ReadStreamsAsync(["y", "x", "missing"]);

        Assert.Equal(["x", "y"], read.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([new Deposited("x", 1), new Withdrawn("x", 1)], read["x"].Select(e => e.Data));
        var (balance, version) = read["x"].Fold<List<object>>((state, e) => [.. state ?? [], e]);
        Assert.Equal(2, version);
        Assert.Equal(2, balance!.Count);
        Assert.Equal((null, 0L), read.GetValueOrDefault("missing").Fold<List<object>>((s, _) => s));
    }
}
