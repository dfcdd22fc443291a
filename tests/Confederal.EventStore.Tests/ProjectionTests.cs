using Npgsql;

namespace Confederal.EventStore.Tests;

/// <summary>Our projections, run by Marten's async daemon: progress kept across restarts, rebuilds, the event types a
/// projection reads, a page applied with its progress or not at all, and an event that cannot be read never passed over.</summary>
public sealed class ProjectionTests
{
    [Fact]
    public async Task The_daemon_resumes_from_its_stored_progress_after_a_restart()
    {
        await using var t = await TestStore.CreateAsync([new BalancesProjection()]);
        await AppendDepositsAsync(t.Store, "first", 100);
        await using (t.RunDaemon())
        {
            await t.ProjectedAsync("balances");
        }

        var first = await t.Store.ReadLastCommittedAsync();
        await AppendDepositsAsync(t.Store, "second", 50);
        var restarted = t.OtherProcess(projections: [new BalancesProjection()]);
        Assert.Equal(first, await restarted.Daemon.ReadCheckpointAsync("balances"));
        await using (new RunningDaemon(restarted.Daemon))
        {
            await restarted.Daemon.WaitForAsync("balances", await t.Store.ReadLastCommittedAsync()).WaitAsync(TimeSpan.FromSeconds(60));
        }

        // Had the restarted daemon begun again from 0, "first" would be counted twice.
        Assert.Equal([("first", 100L, 100L), ("second", 50L, 50L)], await BalancesProjection.ReadAsync(t.DataSource));
        Assert.Equal(await t.Store.ReadLastCommittedAsync(), await restarted.Daemon.ReadCheckpointAsync("balances"));
    }

    [Fact]
    public async Task A_rebuild_empties_the_read_model_and_reproduces_it_from_the_start_of_the_log()
    {
        await using var t = await TestStore.CreateAsync([new BalancesProjection(pageSize: 7)]);
        for (var i = 0; i < 40; i++)
        {
            await t.Store.AppendAsync($"s{i % 7}", ExpectedVersion.Any,
                [new Deposited($"acc{i % 5}", i * 10), new Withdrawn($"acc{(i + 2) % 5}", i)]);
        }

        await t.Daemon.CatchUpAsync();
        var before = await BalancesProjection.ReadAsync(t.DataSource);

        await t.ExecuteAsync("UPDATE balances SET balance = balance + 1; INSERT INTO balances VALUES ('stray', 1, 1)"); // drift a rebuild must wipe out
        var reached = await t.Daemon.RebuildAsync("balances");

        Assert.Equal(5, before.Count);
        Assert.Equal(before, await BalancesProjection.ReadAsync(t.DataSource));
        Assert.Equal(await t.Store.ReadLastCommittedAsync(), reached);
        Assert.Equal(reached, await t.Daemon.ReadCheckpointAsync("balances"));
    }

    [Fact]
    public async Task A_projection_reads_only_its_event_types_a_page_at_a_time_and_its_progress_moves_past_the_others()
    {
        var projection = new BalancesProjection(eventsRead: [typeof(Withdrawn)], pageSize: 3);
        await using var t = await TestStore.CreateAsync([projection]);
        for (var i = 0; i < 10; i++)
        {
            await t.Store.AppendAsync($"w-{i}", ExpectedVersion.NoStream, [new Deposited("a", 10), new Withdrawn("a", 1), new Deposited("b", 5)]);
        }

        var head = await t.Daemon.CatchUpAsync();

        Assert.Equal(await t.Store.ReadLastCommittedAsync(), head);
        Assert.Equal(10, projection.EventsApplied);
        Assert.InRange(projection.LargestPage, 1, 3);
        Assert.Equal([("a", -10L, 10L)], await BalancesProjection.ReadAsync(t.DataSource));
        Assert.Equal(head, await t.Daemon.ReadCheckpointAsync("balances"));

        await t.Store.AppendAsync("w-x", ExpectedVersion.NoStream, [new Deposited("c", 1)]);
        var later = await t.Daemon.CatchUpAsync();
        Assert.Equal(later, await t.Daemon.ReadCheckpointAsync("balances"));
        Assert.True(later > head);
        Assert.Equal(10, projection.EventsApplied);
    }

    [Fact]
    public async Task A_page_that_fails_for_a_transient_reason_is_undone_with_its_progress_and_applied_again()
    {
        var failing = new FailingOnce();
        await using var t = await TestStore.CreateAsync([failing]);
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Deposited("a", 2)]);

        await using (t.RunDaemon())
        {
            try
            {
                await t.ProjectedAsync(failing.Name, TimeSpan.FromSeconds(15));
            }
            catch (TimeoutException)
            {
                Assert.Fail($"The failed page was never applied again: {failing.Tries} tries in 15 s, progress at {await t.Daemon.ReadCheckpointAsync(failing.Name)}.");
            }
        }

        // The first try wrote its rows and then failed: they were rolled back with the page; the retry applied it once.
        Assert.Equal(2, failing.Tries);
        Assert.Equal([("a", 3L, 2L)], await BalancesProjection.ReadAsync(t.DataSource));
    }

    [Fact]
    public async Task A_projection_that_meets_an_unreadable_event_stops_before_it_and_does_not_pass_over_it()
    {
        var projection = new BalancesProjection(pageSize: 1);
        await using var t = await TestStore.CreateAsync([projection]);
        await AppendDepositsAsync(t.Store, "a", 3);
        var logged = await t.LoggedAsync();
        await t.ExecuteAsync($$"""UPDATE {{EventLog.Table}} SET data = '{"account": "a", "amount": "lots"}' WHERE seq_id = {{logged[1].Position}}""");

        await using (t.RunDaemon())
        {
            await t.Daemon.WaitForAsync("balances", logged[0].Position).WaitAsync(TimeSpan.FromSeconds(30));
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.Equal(logged[0].Position, await t.Daemon.ReadCheckpointAsync("balances"));
        }

        Assert.Equal([("a", 1L, 1L)], await BalancesProjection.ReadAsync(t.DataSource));
        await Assert.ThrowsAnyAsync<Exception>(() => t.Daemon.CatchUpAsync());
        Assert.Equal(logged[0].Position, await t.Daemon.ReadCheckpointAsync("balances"));
    }

    [Fact]
    public async Task A_daemon_is_woken_by_a_notification_from_another_process_not_by_polling()
    {
        var projection = new BalancesProjection();
        await using var t = await TestStore.CreateAsync();
        // The daemon's polling made so slow that only LISTEN/NOTIFY can bring the event within the test's patience.
        var options = MartenStore.Options(t.DataSource, TestStore.NewTypes(), [projection]);
        options.Projections.SlowPollingTime = TimeSpan.FromHours(1);
        options.Projections.FastPollingTime = TimeSpan.FromHours(1);
        using var marten = new Marten.DocumentStore(options);
        var daemon = new ProjectionDaemon(marten, new LedgerDatabase(LedgerDatabase.DirectoryId, t.DataSource), [projection]);
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("x", 40)]);
        await using (new RunningDaemon(daemon))
        {
            // The first event is found when the daemon starts; the second only if it is told.
            await daemon.WaitForAsync("balances", await t.Store.ReadLastCommittedAsync()).WaitAsync(TimeSpan.FromSeconds(60));
            await t.OtherProcess().Log.AppendAsync("s", ExpectedVersion.Exactly(1), [new Deposited("x", 2)]);

            await daemon.WaitForAsync("balances", await t.Store.ReadLastCommittedAsync()).WaitAsync(TimeSpan.FromSeconds(20));
        }

        Assert.Equal([("x", 42L, 2L)], await BalancesProjection.ReadAsync(t.DataSource));
    }

    [Fact]
    public async Task Asking_for_a_projection_that_does_not_exist_is_refused()
    {
        await using var t = await TestStore.CreateAsync([new BalancesProjection()]);
        await Assert.ThrowsAsync<ArgumentException>(() => t.Daemon.ReadCheckpointAsync("no-such-projection"));
        await Assert.ThrowsAsync<ArgumentException>(() => t.Daemon.RebuildAsync("no-such-projection"));
    }

    private static async Task AppendDepositsAsync(EventLog store, string account, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await store.AppendAsync($"{account}-{i % 3}", ExpectedVersion.Any, [new Deposited(account, 1)]);
        }
    }

    /// <summary>Balances whose first page fails after its writes, as a page does that loses a serialization conflict.</summary>
    private sealed class FailingOnce : IProjection
    {
        private readonly BalancesProjection _balances = new();

        public string Name => "failing-once";

        public IReadOnlyList<string> Tables => _balances.Tables;

        public int Tries { get; private set; }

        public async Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
        {
            Tries++;
            await _balances.ApplyAsync(connection, events, ct);
            if (Tries == 1)
            {
                await using var conflict = new NpgsqlCommand(
                    "DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure'; END $$", connection);
                await conflict.ExecuteNonQueryAsync(ct);
            }
        }
    }
}
