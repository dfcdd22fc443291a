using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed class GlobalOrderTests
{
    [Fact]
    public async Task Tailing_readers_see_every_event_exactly_once_in_one_order_while_eight_writers_append()
    {
        const int writers = 8, appendsPerWriter = 625, eventsPerAppend = 2, total = writers * appendsPerWriter * eventsPerAppend;
        await using var t = await TestStore.CreateAsync();
        using var stop = new CancellationTokenSource();
        var sequencer = t.Store.Sequencer.RunAsync(stop.Token);

        var readers = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            var seen = new List<(long Position, Guid Id)>(total);
            while (seen.Count < total)
            {
                var after = seen.Count == 0 ? 0 : seen[^1].Position;
                await foreach (var e in t.Store.ReadAllAsync(after, limit: 500))
                {
                    seen.Add((e.Position, e.EventId));
                }
            }

            return seen;
        })).ToList();

        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < appendsPerWriter; i++)
            {
                await t.Store.AppendAsync($"w{w}-{i % 50}", ExpectedVersion.Any,
                    [new Deposited($"w{w}", i), new Deposited($"w{w}", -i)]);
            }
        })));

        var seenByReaders = await Task.WhenAll(readers).WaitAsync(TimeSpan.FromMinutes(2));
        await stop.CancelAsync();
        await sequencer.ContinueWith(_ => { }, TaskScheduler.Default);

        var expected = Enumerable.Range(1, total).Select(p => (long)p).ToList();
        foreach (var seen in seenByReaders)
        {
            Assert.Equal(expected, seen.Select(s => s.Position));
            Assert.Equal(total, seen.Select(s => s.Id).Distinct().Count());
            Assert.Equal(seenByReaders[0].Select(s => s.Id), seen.Select(s => s.Id));
        }
    }

    [Fact]
    public async Task An_event_committed_after_a_later_one_is_not_skipped_it_holds_the_later_one_back()
    {
        var slow = new BlockingInlineProjection();
        await using var t = await TestStore.CreateAsync([slow]);

        // A inserts first (lower transaction id) and stays open; B inserts later and commits first.
        var a = t.Store.AppendAsync("a", ExpectedVersion.NoStream, [new Deposited("a", 1)]);
        await slow.Entered.Task;
        var b = t.OtherProcess();
        await b.AppendAsync("b", ExpectedVersion.NoStream, [new Deposited("b", 2)]);

        var (numbered, head, more) = await t.Store.Sequencer.NumberBatchAsync(CancellationToken.None);
        Assert.Equal((0, 0L, true), (numbered, head, more));
        Assert.Empty(await t.ReadAllAsync());

        slow.Release.SetResult();
        await a;
        Assert.Equal(2, await t.Store.Sequencer.SequenceAsync());
        var all = await t.ReadAllAsync();
        Assert.Equal(["a", "b"], all.Select(e => e.StreamId));
        Assert.Equal([1L, 2L], all.Select(e => e.Position));
    }

    [Fact]
    public async Task Aborted_appends_leave_no_gap_in_positions()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1)]);
        await Assert.ThrowsAsync<ConcurrencyException>(() => t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 2)]));
        await t.Store.AppendAsync("s", ExpectedVersion.Exactly(1), [new Deposited("a", 3)]);

        await t.Store.Sequencer.SequenceAsync();

        Assert.Equal([1L, 2L], (await t.ReadAllAsync()).Select(e => e.Position));
        Assert.Equal(2, await t.Store.ReadHeadAsync());
    }

    [Fact]
    public async Task A_prefix_read_returns_the_events_of_its_types_up_to_the_position_in_global_order_across_pages()
    {
        await using var t = await TestStore.CreateAsync();
        for (var i = 1; i <= 30; i++)
        {
            await t.Store.AppendAsync($"s{i % 4}", ExpectedVersion.Any, [i % 3 == 0 ? new Withdrawn("a", i) : new Deposited("a", i)]);
        }

        await t.Store.Sequencer.SequenceAsync();
        var all = await t.ReadAllAsync();

        foreach (var (to, pageSize) in new[] { (0L, 4), (1L, 4), (17L, 3), (17L, 1), (17L, 100), (30L, 4), (31L, 7) })
        {
            var read = await t.Store.ReadUpToAsync(to, [typeof(Withdrawn)], pageSize).ToListAsync();
            Assert.Equal(
                all.Where(e => e.Position <= to && e.Data is Withdrawn).Select(e => (e.Position, e.Data)),
                read.Select(e => (e.Position, e.Data)));
        }

        Assert.Equal(17, (await t.Store.ReadUpToAsync(17, [typeof(Deposited), typeof(Withdrawn)], pageSize: 2).ToListAsync()).Count);
    }

    [Fact]
    public async Task Unnumbered_events_restored_from_another_cluster_are_numbered_on_start()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1)]);
        // As after pg_restore into a new cluster: the row keeps a transaction id from the old cluster's future.
        await t.ExecuteAsync("UPDATE es.events SET tx_id = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000)::text::xid8");

        await t.Store.Sequencer.AdoptRestoredEventsAsync(CancellationToken.None);

        Assert.Equal(1, await t.Store.Sequencer.SequenceAsync().WaitAsync(TimeSpan.FromSeconds(30)));
    }

    private sealed class BlockingInlineProjection : IInlineProjection
    {
        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task ApplyAsync(NpgsqlConnection connection, string streamId, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
        {
            Entered.TrySetResult();
            await Release.Task;
        }
    }
}
