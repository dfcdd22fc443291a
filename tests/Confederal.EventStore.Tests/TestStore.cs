using Confederal.Testing;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed record Deposited(string Account, long Amount);

public sealed record Withdrawn(string Account, long Amount);

/// <summary>A store on a database of its own, for one test.</summary>
public sealed class TestStore : IAsyncDisposable
{
    public static readonly IReadOnlyList<Migration> Migrations =
    [
        .. Schema.EventStore,
        new("test-0001-balances", "CREATE TABLE balances (account text PRIMARY KEY, balance bigint NOT NULL, events bigint NOT NULL)"),
    ];

    private TestStore(NpgsqlDataSource dataSource, EventLog store)
    {
        DataSource = dataSource;
        Store = store;
    }

    public NpgsqlDataSource DataSource { get; }

    public EventLog Store { get; }

    public static EventTypes NewTypes() => new EventTypes()
        .Register<Deposited>("deposited")
        .Register<Withdrawn>("withdrawn");

    public static async Task<TestStore> CreateAsync(IEnumerable<IInlineProjection>? inline = null)
    {
        var dataSource = NpgsqlDataSource.Create(await TestPostgres.CreateDatabaseAsync(Migrations));
        return new TestStore(dataSource, new EventLog(dataSource, NewTypes(), inline));
    }

    /// <summary>A second store on the same database, as another process would have.</summary>
    public EventLog OtherProcess(EventTypes? types = null) => new(DataSource, types ?? NewTypes());

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

    public async Task<List<RecordedEvent>> ReadAllAsync(long after = 0)
    {
        var events = new List<RecordedEvent>();
        await foreach (var e in Store.ReadAllAsync(after))
        {
            events.Add(e);
        }

        return events;
    }

    public async ValueTask DisposeAsync() => await DataSource.DisposeAsync();
}

/// <summary>A multi-stream projection: balances per account, whatever stream the events came from.</summary>
public sealed class BalancesProjection(IReadOnlyCollection<Type>? eventsRead = null, int? pageSize = null) : IProjection
{
    public string Name => "balances";

    public int PagesApplied { get; private set; }

    public int EventsApplied { get; private set; }

    public IReadOnlyCollection<Type>? EventsRead => eventsRead;

    public int? PageSize => pageSize;

    public async Task ResetAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand("TRUNCATE balances", connection);
        await command.ExecuteNonQueryAsync(ct);
    }

    public async Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
    {
        PagesApplied++;
        EventsApplied += events.Count;
        var changes = new Dictionary<string, (long Balance, long Events)>(StringComparer.Ordinal);
        foreach (var e in events)
        {
            var (account, delta) = e.Data switch
            {
                Deposited d => (d.Account, d.Amount),
                Withdrawn w => (w.Account, -w.Amount),
                _ => (null, 0L),
            };
            if (account is not null)
            {
                var current = changes.GetValueOrDefault(account);
                changes[account] = (current.Balance + delta, current.Events + 1);
            }
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
}
