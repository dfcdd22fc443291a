using Confederal.Api.Features.Audit;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

/// <summary>Someone with write access to the database changes the log behind the platform's back; verification, from
/// the database and from the auditors' feed, names the first position that no longer holds.</summary>
public sealed class AuditTamperTests
{
    private static async Task<(ApiFactory Api, Audit Audit, long Head, IReadOnlyList<Seal> Seals)> SealedHistoryAsync()
    {
        var api = new ApiFactory();
        await ((IAsyncLifetime)api).InitializeAsync();
        var fiscal = new Fiscal(api);
        await fiscal.CantonAsync("ge");
        await fiscal.CantonAsync("vd");
        await fiscal.OrganizationAsync("linux");
        await fiscal.OrganizationAsync("oceans");
        await fiscal.PolicyAsync("ge", 2026, 70);
        await fiscal.AssessAsync("ge", "alice", 2026, 1_000_000);
        await fiscal.AssessAsync("ge", "bob", 2026, 500_000);
        await api.SealedAsync(); // a first seal, and then a second over what follows
        await Fiscal.Ok(fiscal.DesignateAsync("ge", 2026, "alice", false, ("linux", 6000), ("oceans", 4000)));
        await Fiscal.Ok(fiscal.DesignateAsync("ge", 2026, "alice", true, ("linux", 10000)));
        await fiscal.AssessAsync("ge", "alice", 2026, 1_200_000);
        await fiscal.ResidentAsync("carol", "ge", new DateOnly(2020, 1, 1));
        await fiscal.ResidentAsync("carol", "vd", new DateOnly(2024, 6, 1));
        var head = await api.SealedAsync();
        var audit = new Audit(api);
        var (trail, _) = await audit.FeedAsync();
        var seals = trail.Where(e => e.Seal is not null).Select(e => e.Seal!).ToList();
        Assert.True(seals.Count >= 2);
        Assert.True((await audit.VerifyDatabaseAsync()).Passed);
        return (api, audit, head, seals);
    }

    private static Task AssertFailsAtAsync(long position, VerifyReport report)
    {
        Assert.False(report.Passed, "verification passed a tampered log");
        Assert.True(position == report.Failure!.Position, report.Failure.ToString());
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_changed_payload_is_found_at_its_position()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var position = await audit.PositionOfAsync("tax-assessed", 2);
        await audit.ExecuteAsync($"UPDATE marten.mt_events SET data = jsonb_set(data, '{{amountMinor}}', '1') WHERE seq_id = {position}");

        await AssertFailsAtAsync(position, await audit.VerifyDatabaseAsync());
        await AssertFailsAtAsync(position, await audit.VerifyFeedAsync());
    }

    [Fact]
    public async Task A_changed_clr_type_name_that_makes_Marten_read_a_choice_as_a_withdrawal_is_found_at_its_position()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var position = await audit.PositionOfAsync("designation-chosen", 2);
        var withdrawal = Confederal.EventStore.EventTypes.ClrNameOf(typeof(Domain.Fiscal.DesignationWithdrawn));
        await audit.ExecuteAsync($"UPDATE marten.mt_events SET mt_dotnet_type = '{withdrawal}' WHERE seq_id = {position}");

        // Its alias, payload and code are still a valid choice's, but Marten (and every projection) now reads a withdrawal.
        await using (var session = api.Services.GetRequiredService<Marten.IDocumentStore>().QuerySession())
        {
            var read = await Marten.QueryableExtensions.SingleAsync(
                session.Events.QueryAllRawEvents().Where(e => e.Sequence == position), CancellationToken.None);
            Assert.IsType<Domain.Fiscal.DesignationWithdrawn>(read.Data);
        }

        var report = await audit.VerifyDatabaseAsync();
        await AssertFailsAtAsync(position, report);
        Assert.Contains("designation-withdrawn.v3", report.Failure!.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unsealed_event_whose_clr_type_name_was_changed_is_never_sealed()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var log = api.Services.GetRequiredService<Confederal.EventStore.EventLog>();
        var renaming = Confederal.EventStore.EventTypes.ClrNameOf(typeof(Domain.Cantons.CantonRenamed));
        // Changed before its transaction commits, so that the notary never sees it as it was appended.
        await log.TransactAsync(async tx =>
        {
            await log.AppendAsync(tx, "canton-ti", Confederal.EventStore.ExpectedVersion.NoStream, [new Domain.Cantons.CantonRegistered("ti", "Ticino", "CHF")]);
            await using var change = new NpgsqlCommand($"UPDATE marten.mt_events SET mt_dotnet_type = '{renaming}' WHERE stream_id = 'canton-ti'", tx.Connection, tx);
            return await change.ExecuteNonQueryAsync();
        });
        var position = await audit.LastPositionAsync();

        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => api.SealedAsync());
        Assert.Equal(position, refused.Position);
        Assert.Contains("canton-renamed.v1", refused.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_deleted_event_is_found_at_its_position_and_by_its_seal()
    {
        var (api, audit, _, seals) = await SealedHistoryAsync();
        await using var _ = api;
        var position = await audit.PositionOfAsync("designation-chosen", 1);
        await audit.ExecuteAsync($"DELETE FROM marten.mt_events WHERE seq_id = {position}");

        // The database still holds its recorded hash; the feed, which serves what is left, finds it by the seal that
        // covers it (its Merkle root no longer matches) or by its stream's next event, whichever comes first.
        await AssertFailsAtAsync(position, await audit.VerifyDatabaseAsync());
        var seal = seals.First(s => s.FromPosition <= position && position <= s.ToPosition);
        var feed = await audit.VerifyFeedAsync();
        Assert.False(feed.Passed, "verification passed a log with an event removed");
        Assert.InRange(feed.Failure!.Position, seal.FromPosition, seal.ToPosition);
    }

    [Fact]
    public async Task A_number_left_unused_by_a_rolled_back_append_is_no_missing_event()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var log = api.Services.GetRequiredService<Confederal.EventStore.EventLog>();
        await Assert.ThrowsAsync<InvalidOperationException>(() => log.TransactAsync<int>(async tx =>
        {
            await log.AppendAsync(tx, "canton-rolled-back", Confederal.EventStore.ExpectedVersion.NoStream, [new Domain.Cantons.CantonRegistered("rolled-back", "Never", "CHF")]);
            throw new InvalidOperationException("the transaction rolls back after its append took a number");
        }));
        await new Fiscal(api).AssessAsync("ge", "dave", 2026, 300_000);
        var head = await api.SealedAsync();

        await using (var holes = api.Services.GetRequiredService<NpgsqlDataSource>().CreateCommand(
                         $"SELECT {head} - count(*) FROM marten.mt_events WHERE seq_id <= {head}"))
        {
            Assert.True((long)(await holes.ExecuteScalarAsync())! >= 1, "the rolled-back append left a number unused");
        }

        var fromDatabase = await audit.VerifyDatabaseAsync();
        Assert.True(fromDatabase.Passed, fromDatabase.Failure?.ToString());
        var fromFeed = await audit.VerifyFeedAsync();
        Assert.True(fromFeed.Passed, fromFeed.Failure?.ToString());
    }

    [Fact]
    public async Task Two_swapped_positions_are_found_at_the_first()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var first = await audit.PositionOfAsync("tax-assessed", 1);
        var second = await audit.PositionOfAsync("tax-assessed", 2);
        await audit.ExecuteAsync($"""
            UPDATE marten.mt_events SET seq_id = -1 WHERE seq_id = {first};
            UPDATE marten.mt_events SET seq_id = {first} WHERE seq_id = {second};
            UPDATE marten.mt_events SET seq_id = {second} WHERE seq_id = -1;
            """);

        await AssertFailsAtAsync(first, await audit.VerifyDatabaseAsync());
        await AssertFailsAtAsync(first, await audit.VerifyFeedAsync());
    }

    [Fact]
    public async Task A_forged_event_is_found_and_never_sealed()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        await audit.ExecuteAsync("""
            INSERT INTO marten.mt_streams (id, version) VALUES ('tax-filing-ge-forged', 1);
            INSERT INTO marten.mt_events (seq_id, id, stream_id, version, type, timestamp, data)
            VALUES (nextval('marten.mt_events_sequence'), gen_random_uuid(), 'tax-filing-ge-forged', 1, 'tax-assessed.v1', now(),
                    '{"cantonId": "ge", "personId": "mallory", "fiscalYear": 2026, "amountMinor": 1}')
            """);
        var forged = await audit.LastPositionAsync();

        await AssertFailsAtAsync(forged, await audit.VerifyDatabaseAsync());
        var refused = await Assert.ThrowsAsync<AuditIntegrityException>(() => api.SealedAsync());
        Assert.Equal(forged, refused.Position);
        Assert.True((await audit.VerifyFeedAsync()).Passed, "the feed serves only what was sealed");
    }

    [Fact]
    public async Task A_copied_event_with_its_code_is_found_as_forged()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var position = await audit.PositionOfAsync("tax-assessed", 1);
        await audit.ExecuteAsync($"""
            INSERT INTO marten.mt_events (seq_id, id, stream_id, version, type, timestamp, data, correlation_id, causation_id, user_name, headers)
            SELECT nextval('marten.mt_events_sequence'), id, stream_id, version + 1, type, timestamp, data, correlation_id, causation_id, user_name, headers
            FROM marten.mt_events WHERE seq_id = {position}
            """);

        await AssertFailsAtAsync(await audit.LastPositionAsync(), await audit.VerifyDatabaseAsync());
    }

    [Fact]
    public async Task Dropped_latest_events_are_found_even_with_their_seals_gone()
    {
        var (api, audit, head, seals) = await SealedHistoryAsync();
        await using var _ = api;
        await audit.ExecuteAsync($"DELETE FROM marten.mt_events WHERE seq_id > {head - 2}");

        await AssertFailsAtAsync(head - 1, await audit.VerifyDatabaseAsync());
        await AssertFailsAtAsync(head - 1, await audit.VerifyFeedAsync());

        // A thorough forger also removes the hashes and the seals that covered them: the log is consistent again on its
        // own, and only the seals an auditor kept from an earlier export tell.
        await audit.ExecuteAsync($"""
            DELETE FROM audit_hashes WHERE position > {head - 2};
            DELETE FROM audit_seals WHERE to_position > {head - 2};
            """);
        await AssertFailsAtAsync(head - 1, await audit.VerifyDatabaseAsync(known: seals));
        // The feed serves sealed events only: it now ends where the last remaining seal ends.
        await AssertFailsAtAsync(seals.Last(s => s.ToPosition <= head - 2).ToPosition + 1, await audit.VerifyFeedAsync(known: seals));
    }

    [Fact]
    public async Task A_rewritten_hash_is_found_at_its_position()
    {
        var (api, audit, _, _) = await SealedHistoryAsync();
        await using var _ = api;
        var position = await audit.PositionOfAsync("tax-assessed", 3);
        await audit.ExecuteAsync($"UPDATE audit_hashes SET hash = sha256(hash) WHERE position = {position}");

        await AssertFailsAtAsync(position, await audit.VerifyDatabaseAsync());
        await AssertFailsAtAsync(position, await audit.VerifyFeedAsync());
    }

    [Fact]
    public async Task A_rewritten_seal_is_found()
    {
        var (api, audit, _, seals) = await SealedHistoryAsync();
        await using var _ = api;
        await audit.ExecuteAsync("UPDATE audit_seals SET sealed_at = sealed_at + interval '1 second' WHERE number = 2");
        var report = await audit.VerifyFeedAsync();
        await AssertFailsAtAsync(seals[1].FromPosition, report);
        Assert.Contains("signature", report.Failure!.Reason, StringComparison.Ordinal);

        await audit.ExecuteAsync("UPDATE audit_seals SET root = sha256(root) WHERE number = 2");
        report = await audit.VerifyDatabaseAsync();
        await AssertFailsAtAsync(seals[1].FromPosition, report);
        Assert.Contains("Merkle root", report.Failure!.Reason, StringComparison.Ordinal);

        await audit.ExecuteAsync("UPDATE audit_seals SET previous = sha256(previous) WHERE number = 2");
        report = await audit.VerifyDatabaseAsync();
        Assert.Contains("does not chain", report.Failure!.Reason, StringComparison.Ordinal);
    }
}
