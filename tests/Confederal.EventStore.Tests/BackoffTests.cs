using Microsoft.Extensions.Logging;
using Npgsql;

namespace Confederal.EventStore.Tests;

public sealed class BackoffTests
{
    private static readonly NpgsqlException Outage = new("Failed to connect", new System.Net.Sockets.SocketException(111));

    [Fact]
    public void While_the_database_is_down_a_loop_retries_within_five_seconds_warns_once_and_says_when_it_resumed()
    {
        var log = new Lines();
        var backoff = new Backoff(log, "Projection budgets");

        var delays = Enumerable.Range(0, 40).Select(_ => backoff.Failed(Outage)).ToList();
        backoff.Succeeded();

        Assert.Equal([500, 1_000, 2_000, 4_000, 5_000, 5_000], delays.Take(6).Select(d => d.TotalMilliseconds));
        Assert.All(delays, d => Assert.True(d <= TimeSpan.FromSeconds(5)));
        Assert.Single(log.Entries, e => e.Level == LogLevel.Warning);
        Assert.Equal(LogLevel.Information, log.Entries[^1].Level);
        Assert.Contains("resumed after", log.Entries[^1].Message, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromMilliseconds(500), backoff.Failed(Outage));
    }

    [Fact]
    public void A_multi_host_data_source_without_a_primary_to_give_is_an_outage()
    {
        Assert.True(Backoff.IsUnavailable(new NpgsqlException("No suitable host was found.")));
        Assert.True(Backoff.IsUnavailable(new InvalidOperationException("wrapped", new NpgsqlException("No suitable host was found."))));
        Assert.False(Backoff.IsUnavailable(new NpgsqlException("relation \"budgets\" does not exist")));
    }

    [Fact]
    public void A_failure_that_is_not_an_outage_is_logged_as_an_error_each_time_and_backs_off_to_a_minute()
    {
        var log = new Lines();
        var backoff = new Backoff(log, "Projection budgets");

        var delays = Enumerable.Range(0, 9).Select(_ => backoff.Failed(new InvalidOperationException("unreadable event"))).ToList();

        Assert.Equal([1, 2, 4, 8, 16, 32, 60, 60, 60], delays.Select(d => d.TotalSeconds));
        Assert.Equal(9, log.Entries.Count(e => e.Level == LogLevel.Error));
    }
}

/// <summary>A logger that keeps what it was told.</summary>
internal sealed class Lines : ILogger
{
    public List<(LogLevel Level, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (Entries)
        {
            Entries.Add((logLevel, formatter(state, exception)));
        }
    }
}
