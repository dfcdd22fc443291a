using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed record Deposited(string Account, long Amount);

public sealed record Withdrawn(string Account, long Amount);

/// <summary>A store on a database of its own, for one test: Marten's schema and the test's read-model tables.</summary>
public sealed class TestStore : IAsyncDisposable
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        new("test-0001-balances", "CREATE TABLE balances (account text PRIMARY KEY, balance bigint NOT NULL, events bigint NOT NULL)"),
        new("test-0002-seen", "CREATE TABLE seen (ordinal bigserial PRIMARY KEY, projection text NOT NULL, position bigint NOT NULL, event_id uuid NOT NULL)"),
    ];

    private readonly List<OpenStore> _opened = [];

    private TestStore(NpgsqlDataSource dataSource) => DataSource = dataSource;

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The store the test works with.</summary>
    public OpenStore Open { get; private set; } = null!;

    public EventLog Store => Open.Log;

    public ProjectionDaemon Daemon => Open.Daemon;

    public static EventTypes NewTypes() => new EventTypes()
        .Register<Deposited>("deposited")
        .Register<Withdrawn>("withdrawn");

    public static async Task<TestStore> CreateAsync(
        IReadOnlyList<IProjection>? projections = null, EventTypes? types = null, EventAuthenticator? authenticator = null)
    {
        var test = new TestStore(NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(Migrations)));
        test.Open = test.OtherProcess(types, projections, authenticator);
        // Marten's whole schema up front, as Schema.MigrateAsync should leave it (SchemaTests shows that it does not
        // yet), so that no test depends on which of its readers happens to make Marten create a table first.
        await test.Open.Marten.Storage.ApplyAllConfiguredChangesToDatabaseAsync();
        return test;
    }

    /// <summary>Another store on the same database, as another process (or a later run of this one) would open it.</summary>
    public OpenStore OtherProcess(EventTypes? types = null, IReadOnlyList<IProjection>? projections = null, EventAuthenticator? authenticator = null)
    {
        var store = new OpenStore(DataSource, types ?? NewTypes(), projections ?? [], authenticator);
        _opened.Add(store);
        return store;
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Every event in the events table, in position order, as the database holds it: (position, event id).</summary>
    public async Task<List<(long Position, Guid EventId)>> LoggedAsync()
    {
        await using var command = DataSource.CreateCommand($"SELECT seq_id, id FROM {EventLog.Table} ORDER BY seq_id");
        await using var reader = await command.ExecuteReaderAsync();
        var logged = new List<(long, Guid)>();
        while (await reader.ReadAsync())
        {
            logged.Add((reader.GetInt64(0), reader.GetGuid(1)));
        }

        return logged;
    }

    /// <summary>Moves the high-water mark over everything committed, then reads the whole log.</summary>
    public async Task<List<RecordedEvent>> ReadAllAsync(long after = 0)
    {
        await Daemon.CatchUpAsync();
        return await Store.ReadAllAsync(after).ToListAsync();
    }

    /// <summary>Runs the daemon of <see cref="Open"/> in the background until disposed.</summary>
    public RunningDaemon RunDaemon() => new(Daemon);

    /// <summary>Waits until the projection has applied everything committed so far.</summary>
    public async Task ProjectedAsync(string projection, TimeSpan? patience = null)
    {
        var last = await Store.ReadLastCommittedAsync();
        await Daemon.WaitForAsync(projection, last).WaitAsync(patience ?? TimeSpan.FromSeconds(60));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var store in _opened)
        {
            store.Dispose();
        }

        await DataSource.DisposeAsync();
    }
}

/// <summary>Marten's async daemon running in the background; disposing stops it and surfaces its failure.</summary>
public sealed class RunningDaemon : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;

    public RunningDaemon(ProjectionDaemon daemon) => _running = Task.Run(() => daemon.RunAsync(_stop.Token));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _running;
        }
        finally
        {
            _stop.Dispose();
        }
    }
}

/// <summary>A multi-stream projection: balances per account, whatever stream the events came from.</summary>
public sealed class BalancesProjection(IReadOnlyCollection<Type>? eventsRead = null, int? pageSize = null) : IProjection
{
    public string Name => "balances";

    public IReadOnlyList<string> Tables { get; } = ["public.balances"];

    public int PagesApplied { get; private set; }

    public int EventsApplied { get; private set; }

    public int LargestPage { get; private set; }

    public IReadOnlyCollection<Type>? EventsRead => eventsRead;

    public int? PageSize => pageSize;

    public async Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
    {
        PagesApplied++;
        EventsApplied += events.Count;
        LargestPage = Math.Max(LargestPage, events.Count);
        var changes = new Dictionary<string, (long Balance, long Events)>(StringComparer.Ordinal);
        foreach (var e in events)
        {
            var (account, delta) = e.Data switch
            {
                Deposited d => (d.Account, d.Amount),
                Withdrawn w => (w.Account, -w.Amount),
                _ => throw new InvalidOperationException($"Unexpected event {e.Type} at position {e.Position}."),
            };
            var current = changes.GetValueOrDefault(account);
            changes[account] = (current.Balance + delta, current.Events + 1);
        }

        await using var command = new NpgsqlCommand("""
            INSERT INTO balances (account, balance, events)
            SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
            ON CONFLICT (account) DO UPDATE
            SET balance = balances.balance + excluded.balance, events = balances.events + excluded.events
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. changes.Keys] });
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. changes.Values.Select(v => v.Balance)] });
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. changes.Values.Select(v => v.Events)] });
        await command.ExecuteNonQueryAsync(ct);
    }

    public static async Task<List<(string Account, long Balance, long Events)>> ReadAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SELECT account, balance, events FROM balances ORDER BY account");
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<(string, long, long)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
        }

        return rows;
    }
}

/// <summary>A reader that writes down, in its read model, every event it is given, in the order it is given them: what
/// it saw, how often, and in which order. Rows written in a page that is later rolled back vanish with it, as the
/// read model's own rows would.</summary>
public sealed class SeenProjection(string name = "seen") : IProjection
{
    public string Name => name;

    public IReadOnlyList<string> Tables { get; } = ["public.seen"];

    public async Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("""
            INSERT INTO seen (projection, position, event_id)
            SELECT $1, p, i FROM unnest($2::bigint[], $3::uuid[]) WITH ORDINALITY AS e(p, i, o) ORDER BY o
            """, connection);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. events.Select(e => e.Position)] });
        command.Parameters.Add(new NpgsqlParameter<Guid[]> { TypedValue = [.. events.Select(e => e.EventId)] });
        await command.ExecuteNonQueryAsync(ct);
    }

    /// <summary>What the reader saw, in the order it saw it: (position, event id).</summary>
    public async Task<List<(long Position, Guid EventId)>> SeenAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SELECT position, event_id FROM seen WHERE projection = $1 ORDER BY ordinal");
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = name });
        await using var reader = await command.ExecuteReaderAsync();
        var seen = new List<(long, Guid)>();
        while (await reader.ReadAsync())
        {
            seen.Add((reader.GetInt64(0), reader.GetGuid(1)));
        }

        return seen;
    }
}
