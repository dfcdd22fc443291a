using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Persons;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>The log keeps no person id and no birth date in clear: events name people by random handles, the birth
/// date is sealed under the person's own key, and only the key table, outside the log, links them.</summary>
public sealed class PersonDataTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private static readonly DateOnly Born = new(1977, 3, 14);
    private readonly Democracy _d = new(api);

    private NpgsqlDataSource Db => api.Services.GetRequiredService<NpgsqlDataSource>();

    private async Task<List<string>> RowsAsync(string sql)
    {
        var rows = new List<string>();
        await using var command = Db.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    /// <summary>A person who assessed, designated, moved cantons and voted, as the API saw them.</summary>
    private async Task<string> LiveAsync(string person)
    {
        await _d.Fiscal.CantonAsync("pd-ge");
        await _d.Fiscal.CantonAsync("pd-vd");
        await _d.Fiscal.OrganizationAsync("pd-oceans");
        await _d.Fiscal.OrganizationAsync("pd-linux");
        await _d.Fiscal.PolicyAsync("pd-ge", 2026, 70);
        await Fiscal.Ok(_d.ResideAsync("pd-ge", person, new DateOnly(2015, 1, 1), Born));
        await _d.Fiscal.AssessAsync("pd-ge", person, 2026, 1_000_000);
        await Fiscal.Ok(_d.Fiscal.DesignateAsync("pd-ge", 2026, person, true, ("pd-oceans", 6000), ("pd-linux", 4000)));
        var ballot = await _d.BallotAsync("pd-ge", censusDate: new DateOnly(2020, 1, 1));
        await _d.ReceiptAsync("pd-ge", ballot, person, "alpha-choice");
        await Fiscal.Ok(_d.ResideAsync("pd-vd", person, new DateOnly(2021, 6, 1), Born));
        await _d.CloseAsync("pd-ge", ballot);
        await api.SealedAsync();
        await api.ProjectedAsync(Features.Fiscal.BudgetProjection.ProjectionName); // the designation's view reads the assessed tax there
        return person;
    }

    [Fact]
    public async Task The_log_names_no_person_and_holds_no_birth_date_in_clear()
    {
        var person = await LiveAsync("pd-person:7d2f.alpha");
        var log = await RowsAsync("""
            SELECT concat_ws(' ', stream_id, data::text, headers::text, user_name, correlation_id, causation_id) FROM marten.mt_events
            UNION ALL SELECT id FROM marten.mt_streams
            UNION ALL SELECT t::text FROM person_keys t
            """);
        Assert.Contains(log, row => row.Contains("pd-oceans", StringComparison.Ordinal)); // the designation is there…
        Assert.DoesNotContain(log, row => row.Contains(person, StringComparison.Ordinal)); // …but not whose it is
        Assert.DoesNotContain(log, row => row.Contains("1977-03-14", StringComparison.Ordinal) || row.Contains("1977", StringComparison.Ordinal));

        // What the person sees, and the numbers, are as before: the handles lead back to them through the key table.
        var designation = await _d.Fiscal.Person(person).GetFromJsonAsync<JsonElement>($"/api/v1/cantons/pd-ge/fiscal-years/2026/designations/{person}");
        Assert.Equal(1_000_000, designation.GetProperty("assessedTaxMinor").GetInt64());
        Assert.Equal(2, designation.GetProperty("choices").GetArrayLength());
        var budget = await _d.Fiscal.BudgetAsync("pd-ge", 2026);
        Assert.Equal(7_000, budget.DesignatedMinor);
    }

    [Fact]
    public async Task The_audit_feed_serves_handles_as_stored_and_opens_an_arrivals_birth_date_beside_it()
    {
        var person = await LiveAsync("pd-person:feed");
        var (trail, _) = await new Audit(api).FeedAsync();
        var key = (await api.Services.GetRequiredService<PersonKeys>().FindAsync(person, CancellationToken.None))!;
        var events = trail.Select(t => t.Event).OfType<AuditEvent>().ToList();
        var taxpayer = await Assessed.HandleAsync(api.Services, person, "pd-ge", 2026);
        Assert.Contains(events, e => e.Type == "designation-chosen" && e.StreamId == $"designations-pd-ge-{taxpayer}");
        var arrivals = events.Where(e => e.Type == "resident-registered" && e.Resident == key.Resident).ToList();
        Assert.Equal(2, arrivals.Count); // in pd-ge, then in pd-vd
        Assert.All(arrivals, e => Assert.Equal(new AuditPerson(Born, Erased: false), e.Person));
        Assert.DoesNotContain(trail, t => t.Event is { } e && JsonSerializer.Serialize(e).Contains(person, StringComparison.Ordinal));
        Assert.True((await new Audit(api).VerifyDatabaseAsync()).Passed);
    }

    [Fact]
    public async Task A_person_unknown_to_the_key_table_reads_nothing_and_no_read_creates_their_key()
    {
        await _d.Fiscal.CantonAsync("pd-ge");
        await _d.Fiscal.PolicyAsync("pd-ge", 2026, 70);
        var response = await _d.Fiscal.Person("pd-nobody").GetAsync("/api/v1/cantons/pd-ge/fiscal-years/2026/designations/pd-nobody");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(await api.Services.GetRequiredService<PersonKeys>().FindAsync("pd-nobody", CancellationToken.None));
    }

    [Fact]
    public async Task People_first_recorded_by_concurrent_requests_get_one_row_and_the_same_handles_in_every_answer()
    {
        // Separate instances, as on separate API instances: no shared cache. Each first finds nobody, then inserts; all
        // but one meet a unique violation and read back the rows that won.
        var people = Enumerable.Range(0, 500).Select(i => $"pd-race-{i}").ToArray();
        var services = api.Services;
        var instances = Enumerable.Range(0, 6)
            .Select(_ => new PersonKeys(Db, services.GetRequiredService<AuditKeys>(), TimeProvider.System)).ToArray();
        var before = await RowsAsync("SELECT count(*)::text FROM person_keys");
        var answers = await Task.WhenAll(instances.Select(keys => Task.Run(() => keys.ObtainAsync(people, CancellationToken.None))));
        foreach (var person in people)
        {
            Assert.Single(answers.Select(a => (a[person].Taxpayer, a[person].Resident)).Distinct());
        }

        var after = await RowsAsync("SELECT count(*)::text FROM person_keys");
        Assert.Equal(long.Parse(before.Single(), CultureInfo.InvariantCulture) + people.Length, long.Parse(after.Single(), CultureInfo.InvariantCulture));
    }
}
