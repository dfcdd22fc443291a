using Npgsql;

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
    }

    [Theory]
    [InlineData(1)] // behind the stream
    [InlineData(3)] // ahead of the stream
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
    public async Task Any_version_appends_after_whatever_the_stream_holds_even_when_racing()
    {
        await using var t = await TestStore.CreateAsync();
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            t.Store.AppendAsync("s", ExpectedVersion.Any, [new Deposited("a", i)])));

        var versions = await t.Store.ReadStreamAsync("s").Select(e => e.Version).ToListAsync();
        Assert.Equal(Enumerable.Range(1, 20).Select(v => (long)v), versions);
    }

    [Fact]
    public async Task A_multi_event_append_is_atomic_and_adjacent_in_the_global_order()
    {
        var failing = new FailingInlineProjection();
        await using var t = await TestStore.CreateAsync([failing]);
        await t.Store.AppendAsync("other", ExpectedVersion.NoStream, [new Deposited("o", 1)]);

        failing.Fail = true;
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 1), new Deposited("a", 2), new Deposited("a", 3)]));
        Assert.Equal(0, await t.Store.StreamVersionAsync("s"));

        failing.Fail = false;
        var writes = Enumerable.Range(0, 8).Select(i => t.Store.AppendAsync($"s-{i}", ExpectedVersion.NoStream,
            [new Deposited($"{i}", 1), new Deposited($"{i}", 2), new Deposited($"{i}", 3)]));
        await Task.WhenAll(writes);
        await t.Store.Sequencer.SequenceAsync();

        var all = await t.ReadAllAsync();
        Assert.Equal(25, all.Count);
        foreach (var stream in all.Skip(1).Chunk(3))
        {
            Assert.Single(stream.Select(e => e.StreamId).Distinct());
            Assert.Equal([1L, 2L, 3L], stream.Select(e => e.Version));
        }
    }

    [Fact]
    public async Task Inline_projections_see_the_appended_events_inside_the_transaction()
    {
        var seen = new RecordingInlineProjection();
        await using var t = await TestStore.CreateAsync([seen]);

        await t.Store.AppendAsync("s", ExpectedVersion.NoStream, [new Deposited("a", 7), new Withdrawn("a", 2)]);

        Assert.Equal([1L, 2L], seen.Versions);
        Assert.Equal(2, seen.RowsVisibleInTransaction);
    }

    [Fact]
    public async Task An_empty_append_is_refused()
    {
        await using var t = await TestStore.CreateAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => t.Store.AppendAsync("s", ExpectedVersion.Any, []));
    }

    private sealed class FailingInlineProjection : IInlineProjection
    {
        public bool Fail { get; set; }

        public Task ApplyAsync(NpgsqlConnection connection, string streamId, IReadOnlyList<RecordedEvent> events, CancellationToken ct) =>
            Fail ? throw new InvalidOperationException("rule broken") : Task.CompletedTask;
    }

    private sealed class RecordingInlineProjection : IInlineProjection
    {
        public List<long> Versions { get; } = [];

        public long RowsVisibleInTransaction { get; private set; }

        public async Task ApplyAsync(NpgsqlConnection connection, string streamId, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
        {
            Versions.AddRange(events.Select(e => e.Version));
            await using var command = new NpgsqlCommand("SELECT count(*) FROM es.events WHERE stream_id = $1", connection);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = streamId });
            RowsVisibleInTransaction = (long)(await command.ExecuteScalarAsync(ct))!;
        }
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
        Assert.Equal(1L, await t.ScalarAsync<long>("SELECT count(*) FROM es.events"));
    }
}
