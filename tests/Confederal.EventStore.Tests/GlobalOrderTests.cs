using System.Diagnostics;

namespace Confederal.EventStore.Tests;

/// <summary>
/// The global order readers rely on, on Marten's async daemon as we configure it: every reader sees every committed
/// event exactly once, in position order; a transaction still open holds readers at its position however long it takes
/// (never skipped); a number taken by a transaction that rolled back is passed over within seconds.
/// </summary>
public sealed class GlobalOrderTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Readers_see_every_event_exactly_once_and_in_position_order_while_eight_writers_commit_ten_thousand_appends()
    {
        const int writers = 8, appendsPerWriter = 1_250, streamsPerWriter = 50, total = writers * appendsPerWriter;
        SeenProjection[] projections = [new("reader-a"), new("reader-b")];
        await using var t = await TestStore.CreateAsync(projections);
        List<(long Position, Guid EventId)> tailed;

        await using (t.RunDaemon())
        {
            // A reader of the log itself, tailing it below the high-water mark while the writers write.
            var tailing = Task.Run(async () =>
            {
                var seen = new List<(long, Guid)>(total);
                var after = 0L;
                while (seen.Count < total)
                {
                    var before = seen.Count;
                    await foreach (var e in t.Store.ReadAllAsync(after, limit: 500))
                    {
                        seen.Add((e.Position, e.EventId));
                        after = e.Position;
                    }

                    if (seen.Count == before)
                    {
                        await Task.Delay(20);
                    }
                }

                return seen;
            });

            await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (var i = 0; i < appendsPerWriter; i++)
                {
                    await t.Store.AppendAsync($"w{w}-{i % streamsPerWriter}", ExpectedVersion.Exactly(i / streamsPerWriter), [new Deposited($"w{w}", i)]);
                }
            })));

            foreach (var projection in projections)
            {
                await t.ProjectedAsync(projection.Name, Patience);
            }

            tailed = await tailing.WaitAsync(Patience);
        }

        var logged = await t.LoggedAsync();
        Assert.Equal(total, logged.Count);
        Assert.True(logged.Zip(logged.Skip(1)).All(p => p.First.Position < p.Second.Position), "positions strictly increase");
        Assert.Equal(total, logged.Select(e => e.EventId).Distinct().Count());
        foreach (var projection in projections)
        {
            Assert.Equal(logged, await projection.SeenAsync(t.DataSource));
        }

        Assert.Equal(logged, tailed);
    }

    [Fact]
    public async Task A_transaction_left_open_past_the_stale_threshold_holds_readers_at_its_position_and_is_applied_once_in_order_when_it_commits()
    {
        var seen = new SeenProjection();
        await using var t = await TestStore.CreateAsync([seen]);
        await t.Store.AppendAsync("before", ExpectedVersion.NoStream, [new Deposited("before", 1)]);

        await using (t.RunDaemon())
        {
            await t.ProjectedAsync(seen.Name);

            await using var connection = await t.DataSource.OpenConnectionAsync();
            await using var open = await connection.BeginTransactionAsync();
            await t.Store.AppendAsync(open, "slow", ExpectedVersion.NoStream, [new Deposited("slow", 1)]);
            await using var position = new Npgsql.NpgsqlCommand($"SELECT seq_id FROM {EventLog.Table} WHERE stream_id = 'slow'", connection, open);
            var slow = (long)(await position.ExecuteScalarAsync())!;
            for (var i = 0; i < 5; i++)
            {
                await t.Store.AppendAsync($"after-{i}", ExpectedVersion.NoStream, [new Deposited($"after-{i}", 1)]);
            }

            var last = await t.Store.ReadLastCommittedAsync();
            Assert.True(last > slow, "later appends committed above the open transaction's position");

            // Six times the 500 ms stale threshold: long enough that a daemon that skips stale gaps would have.
            await Task.Delay(TimeSpan.FromSeconds(3));

            Assert.InRange(await t.Daemon.ReadHighWaterMarkAsync(), 1, slow - 1);
            Assert.InRange(await t.Daemon.ReadCheckpointAsync(seen.Name), 1, slow - 1);
            Assert.Equal(["before"], await t.Store.ReadAllAsync(0).Select(e => e.StreamId).ToListAsync());
            Assert.Equal([(await t.LoggedAsync())[0]], await seen.SeenAsync(t.DataSource));

            await open.CommitAsync();
            await t.ProjectedAsync(seen.Name, Patience);
        }

        var logged = await t.LoggedAsync();
        Assert.Equal(7, logged.Count);
        Assert.Equal(logged, await seen.SeenAsync(t.DataSource));
        Assert.Equal(["before", "slow", "after-0", "after-1", "after-2", "after-3", "after-4"],
            await t.Store.ReadAllAsync(0).Select(e => e.StreamId).ToListAsync());
    }

    [Fact]
    public async Task A_position_left_empty_by_a_rolled_back_append_or_a_version_conflict_is_passed_over_within_seconds()
    {
        var seen = new SeenProjection();
        await using var t = await TestStore.CreateAsync([seen]);

        await using (t.RunDaemon())
        {
            await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("s", 1)]);
            await using (var connection = await t.DataSource.OpenConnectionAsync())
            await using (var rolledBack = await connection.BeginTransactionAsync())
            {
                await t.Store.AppendAsync(rolledBack, "rolled-back", ExpectedVersion.NoStream, [new Deposited("rolled-back", 1), new Deposited("rolled-back", 2)]);
                await rolledBack.RollbackAsync();
            }

            await Assert.ThrowsAsync<ConcurrencyException>(() => t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("s", 2)]));
            await t.Store.AppendAsync("s", ExpectedVersion.Exactly(1), [new Deposited("s", 3)]);
            await t.Store.AppendAsync("t", ExpectedVersion.NoStream, [new Deposited("t", 4)]);

            var clock = Stopwatch.StartNew();
            await t.ProjectedAsync(seen.Name, TimeSpan.FromSeconds(10));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"reached the last committed position in {clock.Elapsed}");
        }

        var logged = await t.LoggedAsync();
        Assert.Equal(3, logged.Count);
        Assert.True(logged[^1].Position > logged.Count, "the rolled-back append left a hole in the positions");
        Assert.Equal(logged, await seen.SeenAsync(t.DataSource));
    }

    [Fact]
    public async Task Catching_up_passes_over_a_hole_and_the_head_reaches_the_last_committed_event()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1)]);
        await Assert.ThrowsAnyAsync<Exception>(() => t.Store.TransactAsync<int>(async tx =>
        {
            await t.Store.AppendAsync(tx, "undone", ExpectedVersion.NoStream, [new Deposited("undone", 1)]);
            throw new InvalidOperationException("changed my mind");
        }));
        await t.Store.AppendAsync("s", ExpectedVersion.Exactly(1), [new Deposited("a", 3)]);

        var all = await t.ReadAllAsync();

        Assert.Equal((await t.LoggedAsync()).Select(e => e.Position), all.Select(e => e.Position));
        Assert.Equal([1L, 2L], all.Select(e => e.Version));
        Assert.Equal(await t.Store.ReadLastCommittedAsync(), await t.Store.ReadHeadAsync());
        Assert.True(await t.Store.ReadHeadAsync() > all.Count, "the undone append left a hole");
    }

    [Fact]
    public async Task A_prefix_read_returns_the_events_of_its_types_up_to_the_position_in_global_order()
    {
        await using var t = await TestStore.CreateAsync();
        for (var i = 1; i <= 30; i++)
        {
            await t.Store.AppendAsync($"s{i % 4}", ExpectedVersion.Any, [i % 3 == 0 ? new Withdrawn("a", i) : new Deposited("a", i)]);
        }

        var all = await t.ReadAllAsync();

        foreach (var to in new[] { 0L, 1L, all[16].Position, all[^1].Position, all[^1].Position + 1 })
        {
            var read = await t.Store.ReadUpToAsync(to, [typeof(Withdrawn)]).ToListAsync();
            Assert.Equal(
                all.Where(e => e.Position <= to && e.Data is Withdrawn).Select(e => (e.Position, e.Data)),
                read.Select(e => (e.Position, e.Data)));
        }

        Assert.Equal(17, (await t.Store.ReadUpToAsync(all[16].Position, [typeof(Deposited), typeof(Withdrawn)]).ToListAsync()).Count);
    }

    [Fact]
    public async Task A_read_of_the_log_pages_after_a_position_with_a_limit()
    {
        await using var t = await TestStore.CreateAsync();
        for (var i = 1; i <= 10; i++)
        {
            await t.Store.AppendAsync("s", ExpectedVersion.Exactly(i - 1), [new Deposited("a", i)]);
        }

        var all = await t.ReadAllAsync();
        var page = await t.Store.ReadAllAsync(all[3].Position, limit: 4).ToListAsync();

        Assert.Equal(all.Skip(4).Take(4).Select(e => e.EventId), page.Select(e => e.EventId));
    }
}
