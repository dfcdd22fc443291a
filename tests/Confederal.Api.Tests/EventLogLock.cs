using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>A transaction of the test holding ACCESS EXCLUSIVE on marten.mt_events: every statement of the API that touches the
/// log waits until it is disposed (a long vacuum, a stuck migration, a slow disk, as the API sees them).</summary>
public sealed class EventLogLock : IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;

    private EventLogLock(NpgsqlDataSource dataSource, NpgsqlConnection connection, NpgsqlTransaction transaction) =>
        (_dataSource, _connection, _transaction) = (dataSource, connection, transaction);

    public static async Task<EventLogLock> TakeAsync(ApiFactory api)
    {
        var dataSource = api.Services.GetRequiredService<NpgsqlDataSource>();
        var connection = await dataSource.OpenConnectionAsync();
        var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand("LOCK TABLE marten.mt_events IN ACCESS EXCLUSIVE MODE", connection, transaction);
        await command.ExecuteNonQueryAsync();
        return new EventLogLock(dataSource, connection, transaction);
    }

    /// <summary>Waits until <paramref name="statements"/> statements whose text is like <paramref name="pattern"/> wait
    /// for the lock.</summary>
    public async Task WaitForBlockedAsync(int statements, string pattern)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            await using var command = _dataSource.CreateCommand("""
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE $1
                """);
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = pattern });
            if ((long)(await command.ExecuteScalarAsync(timeout.Token))! >= statements)
            {
                return;
            }

            await Task.Delay(20, timeout.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _transaction.RollbackAsync();
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
