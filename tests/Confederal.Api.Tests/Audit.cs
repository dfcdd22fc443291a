using System.Net.Http.Json;
using Confederal.Api.Features.Audit;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Reads and verifies the audit trail of a test's API, from its database or over its feed.</summary>
public sealed class Audit(ApiFactory api)
{
    public HttpClient Auditor { get; } = api.ClientAs(Roles.Auditor, subject: "court-of-audit");

    public IAsyncEnumerable<AuditEntry> DatabaseTrail() => Features.Audit.DatabaseTrail.ReadAsync(
        api.Services.GetRequiredService<NpgsqlDataSource>(),
        api.Services.GetRequiredService<EventLog>().Authenticator!,
        api.Services.GetRequiredService<EventLog>().Types,
        api.Services.GetRequiredService<Pseudonyms>(),
        api.Services.GetRequiredService<Features.Persons.PersonKeys>());

    public Task<VerifyReport> VerifyDatabaseAsync(IReadOnlyList<Seal>? known = null) =>
        new AuditVerifier(Seal.PublicKey(api.Services.GetRequiredService<AuditKeys>().PublicKey), known).VerifyAsync(DatabaseTrail());

    /// <summary>Every sealed event and seal the feed serves, in trail order, and the key the seals are signed with.</summary>
    public async Task<(List<AuditEntry> Trail, string PublicKey)> FeedAsync(string query = "")
    {
        var events = new List<AuditEvent>();
        long after = 0;
        while (true)
        {
            var page = (await Auditor.GetFromJsonAsync<AuditEventsPage>($"/api/v1/audit/events?after={after}&limit=7{query}"))!;
            events.AddRange(page.Events);
            if (page.Next == page.SealedThrough)
            {
                break;
            }

            Assert.True(page.Next > after, "the feed must move forward");
            after = page.Next;
        }

        var seals = new List<Seal>();
        string key;
        long number = 0;
        while (true)
        {
            var page = (await Auditor.GetFromJsonAsync<SealsPage>($"/api/v1/audit/seals?after={number}&limit=2"))!;
            key = page.PublicKey;
            seals.AddRange(page.Seals);
            if (page.Seals.Count == 0)
            {
                break;
            }

            number = page.Next;
        }

        var trail = events.Select(AuditEntry.Of).Concat(seals.Select(AuditEntry.Of))
            .OrderBy(e => e.Position).ThenBy(e => e.Seal is null ? 0 : 1).ToList();
        return (trail, key);
    }

    public async Task<VerifyReport> VerifyFeedAsync(IReadOnlyList<Seal>? known = null)
    {
        var (trail, key) = await FeedAsync();
        return await new AuditVerifier(Seal.PublicKey(key), known).VerifyAsync(trail.ToAsyncEnumerable());
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var command = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The position of the last event stored, whoever wrote it.</summary>
    public async Task<long> LastPositionAsync()
    {
        await using var command = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand("SELECT max(seq_id) FROM marten.mt_events");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public async Task<long> PositionOfAsync(string type, int nth = 1)
    {
        await using var command = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
            $"SELECT seq_id FROM marten.mt_events WHERE starts_with(type, '{type}.v') ORDER BY seq_id OFFSET {nth - 1} LIMIT 1");
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
