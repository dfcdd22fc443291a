using System.Data;
using System.Diagnostics;
using System.Text.Json;
using Confederal.EventStore;
using JasperFx.Events;
using Marten;
using Npgsql;
using NpgsqlTypes;

namespace Confederal.Benchmarks;

/// <summary>The shape of event the platform appends most: a tax assessment.</summary>
public sealed record TaxAssessed(string CantonId, string PersonId, int FiscalYear, long AmountMinor);

/// <summary>A taxpayer's account, folded by plain Marten from its stream: the aggregate a command handler fetches for
/// writing, as Marten's documentation writes one (a self-aggregating record with Create and Apply).</summary>
public sealed record Account(string Id, long Assessments, long AmountMinor)
{
    public static Account Create(IEvent<TaxAssessed> e) => new(e.StreamKey!, 1, e.Data.AmountMinor);

    public Account Apply(TaxAssessed e) => this with { Assessments = Assessments + 1, AmountMinor = AmountMinor + e.AmountMinor };
}

public static class Workload
{
    public sealed record Run(double EventsPerSecond, double P50Ms, double P99Ms, long Operations = 0);

    public static readonly IReadOnlyList<Migration> Migrations =
    [
        RawEventsTable("bench-0001-raw", "raw_events"),
        new("bench-0002-totals", """
            CREATE TABLE bench_totals (
                canton_id   text NOT NULL,
                fiscal_year int NOT NULL,
                amount      bigint NOT NULL,
                events      bigint NOT NULL,
                PRIMARY KEY (canton_id, fiscal_year));
            """),
    ];

    private static readonly string[] Cantons = ["ge", "vd", "ti", "zh", "be", "bs", "ur", "sz", "ne", "ju"];

    /// <summary>Raw PostgreSQL's table for events: marten.mt_events' columns, constraints and indexes (not its foreign key
    /// to the streams), numbered by a sequence of its own as Marten numbers by its own, recorded at now() as Marten's
    /// append records them. A plain INSERT or COPY of the same row as ours, without the event store around it.</summary>
    public static Migration RawEventsTable(string id, string table) => new(id, $"""
        CREATE TABLE {table} (LIKE {EventLog.Table} INCLUDING ALL);
        CREATE SEQUENCE {table}_seq OWNED BY {table}.seq_id;
        ALTER TABLE {table} ALTER COLUMN seq_id SET DEFAULT nextval('{table}_seq'), ALTER COLUMN timestamp SET DEFAULT now();
        """);

    /// <summary>What Marten stores in mt_dotnet_type for an event of <paramref name="type"/>.</summary>
    public static string DotnetType(Type type) => $"{type.FullName}, {type.Assembly.GetName().Name}";

    /// <summary>An event's headers as ours are stored: its authentication code (32 bytes, base64), here random.</summary>
    public static string CodeHeaders() =>
        JsonSerializer.Serialize(new Dictionary<string, string> { [MartenStore.CodeHeader] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) });

    public static TaxAssessed Event(long i) =>
        new(Cantons[i % Cantons.Length], $"p-{i % 100_000:D6}", 2030 + (int)(i % 5), 100_000 + i % 977 * 13);

    public static async Task<string> ServerVersionAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SHOW server_version");
        return (string)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>A document store as Marten's documentation configures one, in a schema of its own: string stream keys, the
    /// <see cref="Account"/> aggregate folded live, <paramref name="appendMode"/> (null: Marten's default), everything else
    /// Marten's defaults (no metadata columns, no authentication codes).</summary>
    public static DocumentStore PlainMarten(NpgsqlDataSource dataSource, string schema, EventAppendMode? appendMode) => DocumentStore.For(options =>
    {
        options.Connection(dataSource);
        options.DatabaseSchemaName = schema;
        options.Events.StreamIdentity = StreamIdentity.AsString;
        if (appendMode is { } mode)
        {
            options.Events.AppendMode = mode;
        }

        options.Projections.LiveStreamAggregation<Account>();
    });

    /// <summary>Our appends: <see cref="EventLog.AppendAsync(string, ExpectedVersion, IReadOnlyList{object}, EventMetadata?, CancellationToken)"/>
    /// at the expected version, each event with its authentication code, as the API appends. Afterwards (not timed) Marten's
    /// high-water mark is brought past the last event, so that no run leaves work to the next.</summary>
    public static async Task<Run> AppendAsync(OpenStore store, int writers, int perCommit, int seconds)
    {
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

            await store.Log.AppendAsync(stream, ExpectedVersion.Exactly(version), events);
            return perCommit;
        });
        var last = await store.Log.ReadLastCommittedAsync();
        if (await store.Daemon.CatchUpAsync() < last)
        {
            throw new InvalidOperationException($"Marten's high-water mark did not reach the last appended event, {last}.");
        }

        return result;
    }

    /// <summary>Plain Marten's appends as its documentation writes a command: a lightweight session per command, the
    /// stream fetched for writing (its aggregate folded from its events), the events appended, the session saved.</summary>
    public static async Task<Run> PlainMartenAppendAsync(IDocumentStore store, int writers, int perCommit, int seconds)
    {
        var run = Guid.NewGuid().ToString("N")[..8];
        var result = await MeasureAsync(writers, seconds, async (writer, i) =>
        {
            await using var session = store.LightweightSession();
            var stream = await session.Events.FetchForWriting<Account>($"plain-{run}-{writer}-{i % 100}");
            for (var e = 0; e < perCommit; e++)
            {
                stream.AppendOne(Event(i * perCommit + e));
            }

            await session.SaveChangesAsync();
            return perCommit;
        });

        // Not timed: Marten folded the aggregate it fetched, so the line measures what Marten's documentation does.
        await using var query = store.QuerySession();
        var account = await query.Events.AggregateStreamAsync<Account>($"plain-{run}-0-0");
        var version = (await query.Events.FetchStreamStateAsync($"plain-{run}-0-0"))?.Version;
        if (account is null || account.Assessments != version)
        {
            throw new InvalidOperationException($"Marten folded {account?.Assessments} assessments from a stream at version {version}.");
        }

        return result;
    }

    /// <summary>Raw PostgreSQL: one INSERT of the same rows (the columns Marten writes for ours, the same payloads, a
    /// code-sized header) into <c>raw_events</c>, one statement per commit.</summary>
    public static async Task<Run> RawInsertAsync(NpgsqlDataSource dataSource, int writers, int perCommit, int seconds)
    {
        const int Columns = 7;
        var sql = "INSERT INTO raw_events (id, stream_id, version, type, data, mt_dotnet_type, headers) VALUES " +
                  string.Join(", ", Enumerable.Range(0, perCommit).Select(e => $"({string.Join(", ", Enumerable.Range(1, Columns).Select(c => $"${e * Columns + c}"))})"));
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        var dotnetType = DotnetType(typeof(TaxAssessed));
        var headers = CodeHeaders();
        var run = Guid.NewGuid().ToString("N")[..8];
        return await MeasureAsync(writers, seconds, async (writer, i) =>
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            await using var command = new NpgsqlCommand(sql, connection);
            for (var e = 0; e < perCommit; e++)
            {
                command.Parameters.Add(new NpgsqlParameter<Guid> { TypedValue = Guid.CreateVersion7() });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"raw-{run}-{writer}-{i % 100}" });
                command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = i / 100 * perCommit + e + 1 });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = "tax-assessed.v1" });
                command.Parameters.Add(new NpgsqlParameter<string>
                {
                    TypedValue = JsonSerializer.Serialize(Event(i * perCommit + e), options),
                    NpgsqlDbType = NpgsqlDbType.Jsonb,
                });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = dotnetType });
                command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = headers, NpgsqlDbType = NpgsqlDbType.Jsonb });
            }

            await command.ExecuteNonQueryAsync();
            return perCommit;
        });
    }

    /// <summary>Fills both logs with the same <paramref name="count"/> events at positions 1..count, outside the timed
    /// part: Marten's (its streams, events and sequence, its progress emptied) and raw_events.</summary>
    public static async Task LoadForRebuildAsync(NpgsqlDataSource dataSource, int count)
    {
        const int Streams = 50_000;
        await using var command = dataSource.CreateCommand($"""
            TRUNCATE {EventLog.Table}, {MartenStore.Schema}.mt_streams, raw_events;
            DELETE FROM {MartenStore.Schema}.mt_event_progression;
            INSERT INTO {MartenStore.Schema}.mt_streams (id, version)
            SELECT 'assessment-' || (g % {Streams}), max(g / {Streams} + 1) FROM generate_series(1, {count}) AS g GROUP BY 1;
            INSERT INTO {EventLog.Table} (seq_id, id, stream_id, version, type, data, timestamp, mt_dotnet_type, user_name)
            SELECT g, gen_random_uuid(), 'assessment-' || (g % {Streams}), g / {Streams} + 1, 'tax-assessed.v1',
                   jsonb_build_object('cantonId', (ARRAY[{string.Join(",", Cantons.Select(c => $"'{c}'"))}])[g % {Cantons.Length} + 1],
                                      'personId', 'p-' || lpad((g % 100000)::text, 6, '0'),
                                      'fiscalYear', 2030 + g % 5,
                                      'amountMinor', 100000 + g % 977 * 13),
                   now(), '{DotnetType(typeof(TaxAssessed))}', 'municipality:bench'
            FROM generate_series(1, {count}) AS g;
            SELECT setval('{MartenStore.Schema}.mt_events_sequence', {count});
            INSERT INTO raw_events SELECT * FROM {EventLog.Table} ORDER BY seq_id;
            SELECT setval('raw_events_seq', {count});
            """);
        command.CommandTimeout = 0;
        await command.ExecuteNonQueryAsync();
        foreach (var table in (string[])[EventLog.Table, $"{MartenStore.Schema}.mt_streams", "raw_events"])
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
        await using (var command = new NpgsqlCommand("SELECT seq_id, stream_id, data FROM raw_events ORDER BY seq_id", connection))
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

    /// <summary>Rebuilds the totals projection from position 0 with Marten's rebuild; returns events/s and peak MiB.</summary>
    public static async Task<(double Rate, double PeakMiB)> RebuildAsync(ProjectionDaemon daemon, int count)
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
    public sealed class TotalsProjection : IProjection
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
