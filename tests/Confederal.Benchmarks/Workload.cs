using System.Data;
using System.Diagnostics;
using System.Text.Json;
using Confederal.EventStore;
using Npgsql;
using NpgsqlTypes;

namespace Confederal.Benchmarks;

/// <summary>The shape of event the platform appends most: a tax assessment.</summary>
public sealed record TaxAssessed(string CantonId, string PersonId, int FiscalYear, long AmountMinor);

public static class Workload
{
    public sealed record Run(double EventsPerSecond, double P50Ms, double P99Ms, long Operations = 0);

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        // Raw PostgreSQL: the same columns an event needs, without the event store around them.
        new("bench-0001-raw", """
            CREATE TABLE raw_events (
                id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                stream_id   text NOT NULL,
                version     bigint NOT NULL,
                event_id    uuid NOT NULL,
                type        text NOT NULL,
                data        jsonb NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE bench_totals (
                canton_id   text NOT NULL,
                fiscal_year int NOT NULL,
                amount      bigint NOT NULL,
                events      bigint NOT NULL,
                PRIMARY KEY (canton_id, fiscal_year));
            """),
    ];

    private static readonly string[] Cantons = ["ge", "vd", "ti", "zh", "be", "bs", "ur", "sz", "ne", "ju"];

    public static TaxAssessed Event(long i) =>
        new(Cantons[i % Cantons.Length], $"p-{i % 100_000:D6}", 2030 + (int)(i % 5), 100_000 + i % 977 * 13);

    public static async Task<string> ServerVersionAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SHOW server_version");
        return (string)(await command.ExecuteScalarAsync())!;
    }

    public static async Task<Run> AppendAsync(EventLog log, int writers, int perCommit, int seconds)
    {
        using var stop = new CancellationTokenSource();
        var sequencer = log.Sequencer.RunAsync(stop.Token);
        var run = Guid.NewGuid().ToString("N")[..8];
        var result = await MeasureAsync(writers, seconds, async (writer, i) =>
        {
            // Each writer owns 100 streams and appends at the version it expects, as a command handler does.
            var stream = $"bench-{run}-{writer}-{i % 100}";
            var version = i / 100 * perCommit;
            var events = new object[perCommit];
            for (var e = 0; e < perCommit; e++)
            {
                events[e] = Event(i * perCommit + e);
            }

            await log.AppendAsync(stream, ExpectedVersion.Exactly(version), events);
            return perCommit;
        });
        await stop.CancelAsync();
        await sequencer.ContinueWith(_ => { }, TaskScheduler.Default);
        await log.Sequencer.SequenceAsync();
        return result;
    }

    public static async Task<Run> RawInsertAsync(NpgsqlDataSource dataSource, int writers, int perCommit, int seconds)
    {
        var sql = "INSERT INTO raw_events (stream_id, version, event_id, type, data) VALUES " +
                  string.Join(", ", Enumerable.Range(0, perCommit).Select(e => $"(${e * 5 + 1}, ${e * 5 + 2}, ${e * 5 + 3}, ${e * 5 + 4}, ${e * 5 + 5})"));
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        return await MeasureAsync(writers, seconds, async (writer, i) =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = new NpgsqlCommand(sql, connection);
            for (var e = 0; e < perCommit; e++)
            {
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"raw-{writer}-{i % 100}" });
                command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = i / 100 * perCommit + e + 1 });
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "tax-assessed" });
                command.Parameters.Add(new NpgsqlParameter<string>
                {
                    TypedValue = JsonSerializer.Serialize(Event(i * perCommit + e), options),
                    NpgsqlDbType = NpgsqlDbType.Jsonb,
                });
            }

            await command.ExecuteNonQueryAsync();
            return perCommit;
        });
    }

    /// <summary>Fills both logs with the same <paramref name="count"/> events, numbered, outside the timed part.</summary>
    public static async Task LoadForRebuildAsync(NpgsqlDataSource dataSource, int count)
    {
        await using var command = dataSource.CreateCommand($"""
            TRUNCATE es.events, raw_events, es.projection_checkpoints;
            INSERT INTO es.events (position, stream_id, version, event_id, type, type_version, data, actor)
            SELECT g, 'assessment-' || (g % 50000), g / 50000 + 1, gen_random_uuid(), 'tax-assessed', 1,
                   jsonb_build_object('cantonId', (ARRAY[{string.Join(",", Cantons.Select(c => $"'{c}'"))}])[g % {Cantons.Length} + 1],
                                      'personId', 'p-' || lpad((g % 100000)::text, 6, '0'),
                                      'fiscalYear', 2030 + g % 5,
                                      'amountMinor', 100000 + g % 977 * 13),
                   'municipality:bench'
            FROM generate_series(1, {count}) AS g;
            INSERT INTO raw_events (stream_id, version, event_id, type, data)
            SELECT stream_id, version, event_id, type, data FROM es.events ORDER BY position;
            """);
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync();
        foreach (var table in (string[])["es.events", "raw_events"])
        {
            await using var vacuum = dataSource.CreateCommand($"VACUUM ANALYZE {table}");
            vacuum.CommandTimeout = 0;
            await vacuum.ExecuteNonQueryAsync();
        }
    }

    /// <summary>Raw PostgreSQL reading the same events in order, with the same JSON parsing and the same totals.</summary>
    public static async Task<double> RawReadAsync(NpgsqlDataSource dataSource, JsonSerializerOptions options)
    {
        var started = Stopwatch.GetTimestamp();
        var totals = new Totals();
        long read = 0;
        await using var connection = await dataSource.OpenConnectionAsync();
        await using (var command = new NpgsqlCommand("SELECT id, stream_id, data FROM raw_events ORDER BY id", connection))
        await using (var reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess))
        {
            while (await reader.ReadAsync())
            {
                reader.GetInt64(0);
                reader.GetString(1);
                totals.Add(JsonSerializer.Deserialize<TaxAssessed>(reader.GetString(2), options)!);
                read++;
            }
        }

        await totals.WriteAsync(connection, CancellationToken.None);

        return read / Stopwatch.GetElapsedTime(started).TotalSeconds;
    }

    /// <summary>Rebuilds the totals projection from position 0 through the daemon; returns events/s and peak MiB.</summary>
    public static async Task<(double Rate, double PeakMiB)> RebuildAsync(EventLog log, int count)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        using var process = Process.GetCurrentProcess();
        var peak = 0L;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                process.Refresh();
                peak = Math.Max(peak, process.WorkingSet64);
                await Task.Delay(10, CancellationToken.None);
            }
        });

        var daemon = new ProjectionDaemon(log, [new TotalsProjection()]);
        var started = Stopwatch.GetTimestamp();
        var checkpoint = await daemon.RebuildAsync("bench-totals");
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        await sampling.CancelAsync();
        await sampler;
        if (checkpoint != count)
        {
            throw new InvalidOperationException($"The rebuild stopped at {checkpoint}, not {count}.");
        }

        return (count / elapsed, peak / 1024.0 / 1024.0);
    }

    /// <summary>Runs <paramref name="writers"/> concurrent loops of <paramref name="operation"/> (writer, iteration) → events done, for
    /// <paramref name="seconds"/>; the rate and the latency percentiles of the operations.</summary>
    public static Task<Run> MeasureAsync(int writers, int seconds, Func<int, long, Task<int>> operation)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * Stopwatch.Frequency);
        return MeasureAsync(writers, _ => Stopwatch.GetTimestamp() < deadline, operation);
    }

    /// <summary>Each writer runs <paramref name="operationsPerWriter"/> operations: a fixed amount of work, timed.</summary>
    public static Task<Run> MeasureCountAsync(int writers, long operationsPerWriter, Func<int, long, Task<int>> operation) =>
        MeasureAsync(writers, i => i < operationsPerWriter, operation);

    private static async Task<Run> MeasureAsync(int writers, Func<long, bool> more, Func<int, long, Task<int>> operation)
    {
        var latencies = new List<double>[writers];
        var events = new long[writers];
        var started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            latencies[w] = [];
            for (long i = 0; more(i); i++)
            {
                var before = Stopwatch.GetTimestamp();
                events[w] += await operation(w, i);
                latencies[w].Add(Stopwatch.GetElapsedTime(before).TotalMilliseconds);
            }
        })));
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var all = latencies.SelectMany(l => l).Order().ToList();
        return new Run(events.Sum() / elapsed, all[all.Count / 2], all[(int)(all.Count * 0.99)], all.Count);
    }

    /// <summary>Totals per canton and fiscal year: a multi-stream projection of the shape of a budget.</summary>
    private sealed class TotalsProjection : IProjection
    {
        public string Name => "bench-totals";

        public IReadOnlyList<string> Tables { get; } = ["public.bench_totals"];

        public async Task ApplyAsync(NpgsqlConnection connection, IReadOnlyList<RecordedEvent> events, CancellationToken ct)
        {
            var totals = new Totals();
            foreach (var e in events)
            {
                if (e.Data is TaxAssessed assessed)
                {
                    totals.Add(assessed);
                }
            }

            await totals.WriteAsync(connection, ct);
        }
    }

    private sealed class Totals
    {
        private readonly Dictionary<(string Canton, int Year), (long Amount, long Events)> _rows = [];

        public void Add(TaxAssessed e)
        {
            var current = _rows.GetValueOrDefault((e.CantonId, e.FiscalYear));
            _rows[(e.CantonId, e.FiscalYear)] = (current.Amount + e.AmountMinor, current.Events + 1);
        }

        public async Task WriteAsync(NpgsqlConnection connection, CancellationToken ct)
        {
            await using var command = new NpgsqlCommand("""
                INSERT INTO bench_totals (canton_id, fiscal_year, amount, events)
                SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[])
                ON CONFLICT (canton_id, fiscal_year) DO UPDATE
                SET amount = bench_totals.amount + excluded.amount, events = bench_totals.events + excluded.events
                """, connection);
            command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. _rows.Keys.Select(k => k.Canton)] });
            command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = [.. _rows.Keys.Select(k => k.Year)] });
            command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. _rows.Values.Select(v => v.Amount)] });
            command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. _rows.Values.Select(v => v.Events)] });
            await command.ExecuteNonQueryAsync(ct);
        }
    }
}
