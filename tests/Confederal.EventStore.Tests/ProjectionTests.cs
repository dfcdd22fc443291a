namespace Confederal.EventStore.Tests;

public sealed class ProjectionTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task The_daemon_resumes_from_its_stored_checkpoint_after_a_restart()
    {
        await using var t = await TestStore.CreateAsync();
        await AppendDepositsAsync(t.Store, "first", 100);
        var first = new BalancesProjection();
        await RunDaemonUntilAsync(t.Store, first, await t.Store.Sequencer.SequenceAsync());

        await AppendDepositsAsync(t.Store, "second", 50);
        var restarted = new BalancesProjection();
        var head = await t.Store.Sequencer.SequenceAsync();
        var daemon = new ProjectionDaemon(t.Store, [restarted]);
        Assert.Equal(100, await daemon.ReadCheckpointAsync("balances"));
        await RunDaemonUntilAsync(t.Store, restarted, head, daemon);

        // Had the restarted daemon begun again from 0, "first" would be counted twice.
        Assert.Equal(150, head);
        Assert.Equal(100, await t.ScalarAsync<long>("SELECT events FROM balances WHERE account = 'first'"));
        Assert.Equal(50, await t.ScalarAsync<long>("SELECT events FROM balances WHERE account = 'second'"));
        Assert.Equal(head, await daemon.ReadCheckpointAsync("balances"));
    }

    [Fact]
    public async Task A_rebuild_from_position_zero_reproduces_the_same_read_model()
    {
        await using var t = await TestStore.CreateAsync();
        for (var i = 0; i < 40; i++)
        {
            await t.Store.AppendAsync($"s{i % 7}", ExpectedVersion.Any,
                [new Deposited($"acc{i % 5}", i * 10), new Withdrawn($"acc{(i + 2) % 5}", i)]);
        }

        await t.Store.Sequencer.SequenceAsync();
        var daemon = new ProjectionDaemon(t.Store, [new BalancesProjection()]) { BatchSize = 7 };
        await daemon.CatchUpAsync("balances");
        var before = await ReadBalancesAsync(t);

        await t.ExecuteAsync("UPDATE balances SET balance = balance + 1"); // drift a rebuild must wipe out
        await daemon.RebuildAsync("balances");

        Assert.Equal(before, await ReadBalancesAsync(t));
        Assert.Equal(80, await daemon.ReadCheckpointAsync("balances"));
    }

    [Fact]
    public async Task A_daemon_is_woken_by_notifications_from_another_process()
    {
        await using var t = await TestStore.CreateAsync();
        var projection = new BalancesProjection();
        // Polling so slow that only LISTEN/NOTIFY can deliver the event within the test's patience.
        var daemon = new ProjectionDaemon(t.Store, [projection]) { IdlePoll = TimeSpan.FromHours(1) };
        using var stop = new CancellationTokenSource();
        var running = daemon.RunAsync(stop.Token);
        await daemon.WaitForAsync("balances", 0);

        var other = t.OtherProcess();
        await other.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("x", 42)]);
        var head = await other.Sequencer.SequenceAsync();

        await daemon.WaitForAsync("balances", head).WaitAsync(Patience);
        Assert.Equal(42, await t.ScalarAsync<long>("SELECT balance FROM balances WHERE account = 'x'"));
        await stop.CancelAsync();
        await running.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task A_projection_that_meets_an_unreadable_event_stops_there_and_names_its_position()
    {
        await using var t = await TestStore.CreateAsync();
        await AppendDepositsAsync(t.Store, "a", 3);
        await t.Store.Sequencer.SequenceAsync();
        await t.ExecuteAsync("UPDATE es.events SET type = 'no-such-event' WHERE position = 2");
        var daemon = new ProjectionDaemon(t.Store, [new BalancesProjection()]) { BatchSize = 1 };

        var error = await Assert.ThrowsAsync<EventStoreException>(() => daemon.CatchUpAsync("balances"));

        Assert.Equal(2, error.Position);
        Assert.Equal(1, await daemon.ReadCheckpointAsync("balances"));
    }

    [Fact]
    public async Task A_projection_reads_only_its_event_types_and_its_checkpoint_moves_past_the_others()
    {
        await using var t = await TestStore.CreateAsync();
        for (var i = 0; i < 10; i++)
        {
            await t.Store.AppendAsync($"w-{i}", ExpectedVersion.NoStream, [new Deposited("a", 10), new Withdrawn("a", 1), new Deposited("b", 5)]);
        }

        var head = await t.Store.Sequencer.SequenceAsync();
        var projection = new BalancesProjection(eventsRead: [typeof(Withdrawn)], pageSize: 3);
        var daemon = new ProjectionDaemon(t.Store, [projection]);

        Assert.Equal(head, await daemon.CatchUpAsync("balances"));

        Assert.Equal(10, projection.EventsApplied);
        Assert.Equal(4, projection.PagesApplied); // 3 + 3 + 3 + 1 withdrawals
        Assert.Equal([("a", -10L, 10L)], await ReadBalancesAsync(t));
        Assert.Equal(head, await daemon.ReadCheckpointAsync("balances"));
        await t.Store.AppendAsync("w-x", ExpectedVersion.NoStream, [new Deposited("c", 1)]);
        var later = await t.Store.Sequencer.SequenceAsync();
        Assert.Equal(later, await daemon.CatchUpAsync("balances"));
        Assert.Equal(10, projection.EventsApplied);
    }

    private static async Task AppendDepositsAsync(EventLog store, string account, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await store.AppendAsync($"{account}-{i % 3}", ExpectedVersion.Any, [new Deposited(account, 1)]);
        }
    }

    private static async Task RunDaemonUntilAsync(EventLog store, BalancesProjection projection, long head, ProjectionDaemon? daemon = null)
    {
        daemon ??= new ProjectionDaemon(store, [projection]);
        using var stop = new CancellationTokenSource();
        var running = daemon.RunAsync(stop.Token);
        await daemon.WaitForAsync(projection.Name, head).WaitAsync(Patience);
        await stop.CancelAsync();
        await running.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private static async Task<List<(string, long, long)>> ReadBalancesAsync(TestStore t)
    {
        await using var command = t.DataSource.CreateCommand("SELECT account, balance, events FROM balances ORDER BY account");
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(string, long, long)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
        }

        return rows;
    }
}
