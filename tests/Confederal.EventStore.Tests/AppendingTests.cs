namespace Confederal.EventStore.Tests;

public sealed class AppendingTests
{
    [Fact]
    public async Task Appended_events_read_back_in_stream_order_with_their_metadata()
    {
        await using var t = await TestStore.CreateAsync();
        var metadata = new EventMetadata("corr-1", "cause-1", "municipality:ge");

        var result = await t.Store.AppendAsync("account-a", ExpectedVersion.NoStream,
            [new Deposited("a", 100), new Withdrawn("a", 30)], metadata);
        await t.Store.AppendAsync("account-a", ExpectedVersion.Exactly(2), [new Deposited("a", 5)]);

        Assert.Equal(2, result.StreamVersion);
        var events = await t.Store.ReadStreamAsync("account-a").ToListAsync();
        Assert.Equal([1L, 2L, 3L], events.Select(e => e.Version));
        Assert.Equal([new Deposited("a", 100), new Withdrawn("a", 30), new Deposited("a", 5)], events.Select(e => e.Data));
        Assert.Equal(["deposited", "withdrawn", "deposited"], events.Select(e => e.Type));
        Assert.Equal(metadata, events[0].Metadata);
        Assert.Equal(EventMetadata.None, events[2].Metadata);
        Assert.Equal(result.EventIds, events.Take(2).Select(e => e.EventId));
        Assert.All(events, e => Assert.InRange(e.RecordedAt, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1)));
        // Recorded in Marten's own columns, where an auditor's SQL finds them.
        Assert.Equal("corr-1|cause-1|municipality:ge", await t.ScalarAsync<string>(
            $"SELECT concat_ws('|', correlation_id, causation_id, user_name) FROM {EventLog.Table} WHERE stream_id = 'account-a' AND version = 2"));
        Assert.Equal(0L, await t.ScalarAsync<long>(
            $"SELECT count(*) FROM {EventLog.Table} WHERE version = 3 AND (correlation_id IS NOT NULL OR causation_id IS NOT NULL OR user_name IS NOT NULL)"));
    }

    [Theory]
    [InlineData(1)] // behind the stream
    [InlineData(3)] // ahead of the stream
    [InlineData(10)] // far ahead
    [InlineData(0)] // "no stream", but it exists
    public async Task Appending_at_another_version_than_the_stream_has_is_a_concurrency_conflict(long expected)
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Deposited("a", 2)]);

        var conflict = await Assert.ThrowsAsync<ConcurrencyException>(() =>
            t.Store.AppendAsync("s", new ExpectedVersion(expected), [new Deposited("a", 3)]));

        Assert.Equal(2, conflict.ActualVersion);
        Assert.Equal(2, await t.Store.StreamVersionAsync("s"));
    }

    [Fact]
    public async Task Of_two_racing_appends_at_the_same_version_exactly_one_wins()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1)]);

        var attempts = Enumerable.Range(0, 8).Select(async i =>
        {
            try
            {
                await t.Store.AppendAsync("s", ExpectedVersion.Exactly(1), [new Deposited("a", i)]);
                return true;
            }
            catch (ConcurrencyException)
            {
                return false;
            }
        });

        var outcomes = await Task.WhenAll(attempts);
        Assert.Single(outcomes, won => won);
        Assert.Equal(2, await t.Store.StreamVersionAsync("s"));
    }

    [Fact]
    public async Task Of_two_transactions_that_start_the_same_stream_the_second_to_commit_is_a_concurrency_conflict()
    {
        await using var t = await TestStore.CreateAsync();
        await using var connection = await t.DataSource.OpenConnectionAsync();
        await using var first = await connection.BeginTransactionAsync();
        await t.Store.AppendAsync(first, "s", ExpectedVersion.NoStream, [new Deposited("first", 1)]);

        // The second waits for the first's lock on the new stream, then finds the stream taken.
        var second = t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("second", 1)]);
        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Assert.False(second.IsCompleted);
        await first.CommitAsync();

        var conflict = await Assert.ThrowsAsync<ConcurrencyException>(() => second);
        Assert.Equal(1, conflict.ActualVersion);
        Assert.Equal([new Deposited("first", 1)], await t.Store.ReadStreamAsync("s").Select(e => e.Data).ToListAsync());
    }

    [Fact]
    public async Task Any_version_appends_after_whatever_the_stream_holds_even_when_racing_to_start_it()
    {
        // Each conflict means another of the racers has appended, so none of 8 can lose more than 7 times: within the
        // retries an append at any version makes.
        const int racers = 8;
        await using var t = await TestStore.CreateAsync();
        for (var round = 0; round < 3; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, racers).Select(i => Task.Run(() =>
                t.Store.AppendAsync($"s{round}", ExpectedVersion.Any, [new Deposited("a", i)]))));
        }

        for (var round = 0; round < 3; round++)
        {
            var versions = await t.Store.ReadStreamAsync($"s{round}").Select(e => e.Version).ToListAsync();
            Assert.Equal(Enumerable.Range(1, racers).Select(v => (long)v), versions);
        }
    }

    [Fact]
    public async Task A_multi_event_append_is_all_or_nothing_and_keeps_its_order_in_the_global_log()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("other", ExpectedVersion.NoStream, [new Deposited("o", 1)]);
        // The database refuses the third event of the append, after the first two were inserted.
        await t.ExecuteAsync($"""
            CREATE FUNCTION refuse_negative() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF (NEW.data ->> 'amount')::bigint < 0 THEN RAISE EXCEPTION 'negative amount'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_negative BEFORE INSERT ON {EventLog.Table} FOR EACH ROW EXECUTE FUNCTION refuse_negative();
            """);

        await Assert.ThrowsAnyAsync<Exception>(() =>
            t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Deposited("a", 2), new Deposited("a", -3)]));

        Assert.Equal(0, await t.Store.StreamVersionAsync("s"));
        Assert.Equal(0L, await t.ScalarAsync<long>($"SELECT count(*) FROM {EventLog.Table} WHERE stream_id = 's'"));
        Assert.Equal(0L, await t.ScalarAsync<long>($"SELECT count(*) FROM {MartenStore.Schema}.mt_streams WHERE id = 's'"));

        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => t.Store.AppendAsync($"s-{i}", ExpectedVersion.NoStream,
            [new Deposited($"{i}", 1), new Deposited($"{i}", 2), new Deposited($"{i}", 3)])));

        var all = await t.ReadAllAsync();
        Assert.Equal(25, all.Count);
        Assert.True(all.Zip(all.Skip(1)).All(p => p.First.Position < p.Second.Position), "positions increase");
        foreach (var stream in all.Skip(1).GroupBy(e => e.StreamId))
        {
            Assert.Equal([1L, 2L, 3L], stream.Select(e => e.Version));
        }
    }

    [Fact]
    public async Task An_empty_append_is_refused()
    {
        await using var t = await TestStore.CreateAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => t.Store.AppendAsync("s", ExpectedVersion.Any, []));
    }

    private sealed record Balance(long Amount)
    {
        public static Balance? Apply(Balance? state, object e) =>
            new((state?.Amount ?? 0) + (e is Deposited d ? d.Amount : -((Withdrawn)e).Amount));

        public static IReadOnlyList<object> TopUpTo100(Balance? state) =>
            (state?.Amount ?? 0) < 100 ? [new Deposited("a", 100 - (state?.Amount ?? 0))] : [];
    }

    [Fact]
    public async Task A_decision_appends_at_the_version_it_was_made_on_and_an_empty_one_appends_nothing()
    {
        await using var t = await TestStore.CreateAsync();

        var first = await t.Store.DecideAsync<Balance>("a", Balance.Apply, Balance.TopUpTo100);
        var retried = await t.Store.DecideAsync<Balance>("a", Balance.Apply, Balance.TopUpTo100);

        Assert.Equal((new Balance(100), 1L), (first.State, first.Version));
        Assert.Single(first.Events);
        Assert.Empty(retried.Events);
        Assert.Equal((new Balance(100), 1L), (retried.State, retried.Version));
        Assert.Equal(1L, await t.ScalarAsync<long>($"SELECT count(*) FROM {EventLog.Table}"));
    }
}
