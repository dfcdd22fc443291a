using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Confederal.EventStore;

/// <summary>
/// How a background loop of ours (the notary) lives through
/// failures. While the database is unreachable it retries soon (half a second, doubling up to five seconds), so that it
/// resumes within seconds of the database's return; it logs the outage when it begins, once a minute while it lasts and
/// when it ends, instead of a stack trace at every try. Any other failure (an event a projection cannot apply, say)
/// fails again at each try: it is logged as an error each time and retried after 1, 2, 4 … up to 60 seconds.
/// </summary>
public sealed class Backoff(ILogger logger, string loop)
{
    private static readonly TimeSpan Reminder = TimeSpan.FromMinutes(1);
    private int _failures;
    private long _since;
    private long _reported;

    // What Npgsql's multi-host data source says when none of its hosts is of the kind asked for (a primary, while its
    // standby is being promoted) or none answers. It has no exception type or code of its own for that.
    private const string NoSuitableHost = "No suitable host was found.";
    private const string NoHostAnswered = "Unable to connect to a suitable host. Check inner exception for more details.";

    /// <summary>The database did not answer or broke off: worth retrying as is.</summary>
    public static bool IsUnavailable(Exception e) =>
        e is NpgsqlException { IsTransient: true } or TimeoutException or DatabaseUnavailableException
        || e is NpgsqlException { Message: NoSuitableHost or NoHostAnswered }
        || e.InnerException is { } inner && IsUnavailable(inner); // Marten wraps what Npgsql threw

    /// <summary>Logs the failure as the policy says and waits before the next try.</summary>
    public Task FailedAsync(Exception e, CancellationToken ct) => Task.Delay(Failed(e), ct);

    /// <summary>Logs the failure as the policy says; returns how long to wait before the next try.</summary>
    internal TimeSpan Failed(Exception e)
    {
        var now = Stopwatch.GetTimestamp();
        if (_failures++ == 0)
        {
            _since = now;
        }

        if (!IsUnavailable(e))
        {
            var delay = TimeSpan.FromSeconds(Math.Min(60, 1 << Math.Min(_failures - 1, 6)));
            logger.LogError(e, "{Loop} failed; retrying in {Delay}", loop, delay);
            return delay;
        }

        if (_failures == 1)
        {
            _reported = now;
            logger.LogWarning(e, "{Loop}: the database is unavailable; retrying until it answers", loop);
        }
        else if (Stopwatch.GetElapsedTime(_reported, now) >= Reminder)
        {
            _reported = now;
            logger.LogWarning("{Loop}: the database is still unavailable after {Elapsed} and {Failures} tries: {Reason}",
                loop, Stopwatch.GetElapsedTime(_since, now), _failures, e.Message);
        }

        return TimeSpan.FromMilliseconds(Math.Min(5_000, 500 << Math.Min(_failures - 1, 4)));
    }

    /// <summary>A try succeeded: ends an outage (logging how long it lasted) and the back-off.</summary>
    public void Succeeded()
    {
        if (_failures == 0)
        {
            return;
        }

        logger.LogInformation("{Loop} resumed after {Elapsed} and {Failures} failed tries", loop, Stopwatch.GetElapsedTime(_since), _failures);
        _failures = 0;
    }
}

/// <summary>
/// Whether a unit of work (an API request) has sent a commit, so that its failure can be described truthfully: once a
/// commit is on its way, a broken connection leaves its outcome unknown, and what a commit recorded stays recorded
/// whatever fails after it. Tracked along the asynchronous flow that called <see cref="Track"/>; every commit of the
/// event store calls <see cref="CommitSending"/> (writes in a <see cref="WriteScope"/> commit only with the scope), and
/// so must any other write of such a unit.
/// </summary>
public sealed class WriteOutcome
{
    private static readonly AsyncLocal<WriteOutcome?> Current = new();
    private volatile bool _mayHaveRecorded;

    private WriteOutcome()
    {
    }

    /// <summary>True once a commit was sent: something may be recorded, whatever happened next.</summary>
    public bool MayHaveRecorded => _mayHaveRecorded;

    /// <summary>Tracks the commits of the calling flow from now on (joining the tracking of an enclosing flow).</summary>
    public static WriteOutcome Track() => Current.Value ??= new WriteOutcome();

    /// <summary>Called just before a commit (or a statement that commits by itself) is sent.</summary>
    public static void CommitSending()
    {
        if (Current.Value is { } outcome)
        {
            outcome._mayHaveRecorded = true;
        }
    }
}

/// <summary>A database of the store that cannot take requests yet: it did not answer when the application started, and
/// its schema is migrated when it does.</summary>
public sealed class DatabaseUnavailableException(string databaseId)
    : Exception($"The database of '{databaseId}' is not available yet: it did not answer when the application started.")
{
    public string DatabaseId { get; } = databaseId;
}
