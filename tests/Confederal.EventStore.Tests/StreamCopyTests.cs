using System.Security.Cryptography;
using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed class StreamCopyTests
{
    /// <summary>A store over two databases: the source (the directory) and the target.</summary>
    private sealed class Pair : IAsyncDisposable
    {
        private NpgsqlDataSource _source = null!;
        private NpgsqlDataSource _target = null!;

        public OpenStore Store { get; private set; } = null!;

        public EventLog Source => Store.Shards.Directory.Log;

        public EventLog Target => Store.Shards["canton"].Log;

        public static async Task<Pair> CreateAsync()
        {
            var pair = new Pair
            {
                _source = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(TestStore.Migrations)),
                _target = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(TestStore.Migrations)),
            };
            pair.Store = new OpenStore(
                [new LedgerDatabase(LedgerDatabase.DirectoryId, pair._source), new LedgerDatabase("canton", pair._target)], TestStore.NewTypes(), [],
                new EventAuthenticator(RandomNumberGenerator.GetBytes(32)));
            return pair;
        }

        /// <summary>Streams named "shared-…", and any stream once one of its events is for account "here".</summary>
        public StreamCopy Copy() => new(Source, Target, e => e.StreamId.StartsWith("shared-", StringComparison.Ordinal) || e.Json.Contains("\"here\"", StringComparison.Ordinal))
        {
            Poll = TimeSpan.FromMilliseconds(10),
        };

        public async ValueTask DisposeAsync()
        {
            Store.Dispose();
            await _source.DisposeAsync();
            await _target.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_copy_holds_every_selected_stream_whole_and_verbatim_and_each_event_once()
    {
        await using var t = await Pair.CreateAsync();
        var (source, target, store) = (t.Source, t.Target, t.Store);
        await source.AppendAsync("shared-1", ExpectedVersion.NoStream, [new Deposited("a", 1)], new EventMetadata("corr", "cause", "admin"));
        await source.AppendAsync("own-1", ExpectedVersion.NoStream, [new Deposited("a", 2)]);
        await source.AppendAsync("person-1", ExpectedVersion.NoStream, [new Deposited("elsewhere", 3), new Deposited("here", 4)]);
        await target.AppendAsync("local", ExpectedVersion.NoStream, [new Withdrawn("z", 9)]);
        await store.Shards.Directory.Daemon.CatchUpAsync();

        var copy = t.Copy();
        Assert.Equal(4, await copy.CopyAsync());
        // Picked at its second event, person-1 is copied from its first; own-1 is not copied.
        Assert.Equal(["local:1", "shared-1:1", "person-1:1", "person-1:2"], await StreamsAsync(target));
        var original = await source.ReadStoredAsync(0).ToListAsync();
        foreach (var copied in (await target.ReadStoredAsync(0).ToListAsync()).Where(e => e.StreamId != "local"))
        {
            var stored = original.Single(e => e.EventId == copied.EventId);
            Assert.Equal(stored with { Position = copied.Position }, copied, new StoredEventComparer());
        }

        // Later events of a copied stream follow it, whoever they name; a second round copies nothing again.
        await source.AppendAsync("person-1", ExpectedVersion.Exactly(2), [new Withdrawn("elsewhere", 1)]);
        await source.AppendAsync("own-1", ExpectedVersion.Exactly(1), [new Deposited("a", 5)]);
        await store.Shards.Directory.Daemon.CatchUpAsync();
        Assert.Equal(6, await copy.CopyAsync());
        Assert.Equal(6, await t.Copy().CopyAsync());
        Assert.Equal(["local:1", "shared-1:1", "person-1:1", "person-1:2", "person-1:3"], await StreamsAsync(target));
        Assert.Equal(6, await copy.ReadProgressAsync());

        // Marten reads the copies in the target, each saying where it was recorded, and appends after them there.
        Assert.Equal(3, await target.StreamVersionAsync("person-1"));
        var person = await target.ReadStreamAsync("person-1").ToListAsync();
        Assert.Equal([3L, 4L, 1L], person.Select(e => e.Data switch { Deposited d => d.Amount, Withdrawn w => w.Amount, _ => 0 }));
        long[] recordedAt = [.. original.Where(e => e.StreamId == "person-1").Select(e => e.Position), 5];
        Assert.Equal(recordedAt.Select(p => (LedgerPosition?)new LedgerPosition(source.DatabaseId, p)), person.Select(e => e.Source));
        await target.AppendAsync("shared-1", ExpectedVersion.Exactly(1), [new Deposited("a", 6)]);
        Assert.Null((await target.ReadStreamAsync("shared-1").ToListAsync())[^1].Source); // recorded here
        Assert.All(await source.ReadAllAsync(0).ToListAsync(), e => Assert.Null(e.Source));
    }

    [Fact]
    public async Task Copiers_running_together_copy_each_event_once_in_the_order_of_the_source()
    {
        await using var t = await Pair.CreateAsync();
        var (source, target, store) = (t.Source, t.Target, t.Store);
        using var stop = new CancellationTokenSource();
        var log = new Lines();
        var copiers = Enumerable.Range(0, 2).Select(_ => t.Copy()).ToList();
        var running = copiers.Select(c => c.RunAsync(new Backoff(log, "Copy"), stop.Token)).ToList();
        await using (new RunningDaemon(store.Shards.Directory.Daemon))
        {
            for (var i = 0; i < 200; i++)
            {
                await source.AppendAsync($"shared-{i % 7}", ExpectedVersion.Any, [new Deposited("a", i)]);
            }

            var last = await source.ReadLastCommittedAsync();
            await store.Shards.Directory.Daemon.WaitForHighWaterMarkAsync(last).WaitAsync(TimeSpan.FromSeconds(30));
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (await copiers[0].ReadProgressAsync(patience.Token) < last)
            {
                await Task.Delay(20, patience.Token);
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(running);
        Assert.Empty(log.Entries); // no round failed
        Assert.Equal(200, (await target.ReadStoredAsync(0).ToListAsync()).Count);
        Assert.Equal(
            (await source.ReadStoredAsync(0).ToListAsync()).Select(e => $"{e.StreamId}:{e.Version}"),
            (await target.ReadStoredAsync(0).ToListAsync()).Select(e => $"{e.StreamId}:{e.Version}"));
    }

    [Fact]
    public async Task A_copy_of_some_streams_reads_only_those_on_the_source_and_still_reads_to_the_head()
    {
        await using var t = await Pair.CreateAsync();
        var (source, target, store) = (t.Source, t.Target, t.Store);
        await source.AppendAsync("shared-1", ExpectedVersion.NoStream, [new Deposited("a", 1)]);
        await source.AppendAsync("sha%red", ExpectedVersion.NoStream, [new Deposited("here", 2)]);
        await source.AppendAsync("person-1", ExpectedVersion.NoStream, [new Deposited("here", 3)]);
        await store.Shards.Directory.Daemon.CatchUpAsync();

        // The selection would take person-1 (its event names "here"); the source never hands it over.
        // "sha%" is that prefix, not a pattern that would also take shared-1.
        var copy = new StreamCopy(source, target, e => true) { StreamPrefixes = ["sha%", "nothing-"] };
        Assert.Equal(3, await copy.CopyAsync());
        Assert.Equal(["sha%red:1"], await StreamsAsync(target));
        Assert.Equal(3, await copy.ReadProgressAsync());
        Assert.Equal(3, await copy.CopyAsync()); // nothing new: nothing written
        Assert.Single(await target.ReadStoredAsync(0).ToListAsync());
    }

    private static async Task<List<string>> StreamsAsync(EventLog log) =>
        await log.ReadStoredAsync(0).Select(e => $"{e.StreamId}:{e.Version}").ToListAsync();

    private sealed class StoredEventComparer : IEqualityComparer<StoredEvent>
    {
        public bool Equals(StoredEvent? x, StoredEvent? y) =>
            x is not null && y is not null && x with { Code = null } == y with { Code = null } && x.Code!.AsSpan().SequenceEqual(y.Code);

        public int GetHashCode(StoredEvent obj) => obj.EventId.GetHashCode();
    }
}
