using Npgsql;

namespace Confederal.EventStore.Tests;

/// <summary>Every kind of write joins the ambient scope: nothing is visible before its commit, nothing survives its
/// rollback, and a failed write inside it is undone alone.</summary>
public sealed class WriteScopeTests
{
    private static async Task WriteEveryWayAsync(TestStore t)
    {
        await t.Store.AppendAsync("exact", ExpectedVersion.NoStream, [new Deposited("exact", 1)]);
        await t.Store.AppendAsync("any", ExpectedVersion.Any, [new Deposited("any", 2)]);
        await t.Store.TransactAsync(tx => t.Store.AppendAsync(tx, "transacted", ExpectedVersion.NoStream, [new Deposited("transacted", 3)]));
        await using (var bulk = await t.Store.BeginBulkAppendAsync("bulk"))
        {
            await bulk.WriteAsync(new Deposited("bulk", 4));
            await bulk.CommitAsync();
        }

        await using var batch = new NpgsqlBatch { BatchCommands = { new NpgsqlBatchCommand("INSERT INTO balances VALUES ('own', 5, 1)") } };
        await t.Store.ExecuteAsync(batch);
    }

    private static Task<long> WrittenAsync(TestStore t) =>
        t.ScalarAsync<long>($"SELECT (SELECT count(*) FROM {EventLog.Table}) + (SELECT count(*) FROM balances)");

    [Fact]
    public async Task Every_write_in_a_scope_commits_with_it_in_the_order_written()
    {
        await using var t = await TestStore.CreateAsync();
        await using (var scope = WriteScope.Enter(t.Store))
        {
            await WriteEveryWayAsync(t);
            Assert.Equal(0, await WrittenAsync(t));
            await scope.CommitAsync();
        }

        Assert.Equal(5, await WrittenAsync(t));
        Assert.Equal(["exact", "any", "transacted", "bulk"], (await t.ReadAllAsync()).Select(e => e.StreamId));
    }

    [Fact]
    public async Task A_scope_ended_without_a_commit_records_nothing()
    {
        await using var t = await TestStore.CreateAsync();
        await using (WriteScope.Enter(t.Store))
        {
            await WriteEveryWayAsync(t);
        }

        Assert.Equal(0, await WrittenAsync(t));
        await t.Store.AppendAsync("after", ExpectedVersion.NoStream, [new Deposited("after", 1)]);
        Assert.Equal(1, await WrittenAsync(t));
    }

    [Fact]
    public async Task Writes_outside_a_scope_commit_on_their_own_and_the_scope_takes_the_writes_after_them()
    {
        await using var t = await TestStore.CreateAsync();
        await using (WriteScope.Enter(t.Store))
        {
            await t.Store.AppendAsync("inside", ExpectedVersion.NoStream, [new Deposited("inside", 1)]);
            using (WriteScope.Outside())
            {
                await t.Store.AppendAsync("outside", ExpectedVersion.NoStream, [new Deposited("outside", 2)]);
            }

            Assert.Equal(1, await WrittenAsync(t)); // committed already, the scope's own not yet
            await t.Store.AppendAsync("inside-again", ExpectedVersion.NoStream, [new Deposited("inside-again", 3)]);
        }

        Assert.Equal(["outside"], (await t.ReadAllAsync()).Select(e => e.StreamId));
    }

    [Fact]
    public async Task A_failed_write_in_a_scope_is_undone_alone()
    {
        await using var t = await TestStore.CreateAsync();
        await t.Store.AppendAsync("taken", ExpectedVersion.NoStream, [new Deposited("taken", 1)]);
        await using (var scope = WriteScope.Enter(t.Store))
        {
            await t.Store.AppendAsync("kept", ExpectedVersion.NoStream, [new Deposited("kept", 1)]);
            await Assert.ThrowsAsync<ConcurrencyException>(() => t.Store.AppendAsync("taken", ExpectedVersion.NoStream, [new Deposited("taken", 2)]));
            await Assert.ThrowsAsync<ConcurrencyException>(() => t.Store.TransactAsync(async tx =>
            {
                await t.Store.AppendAsync(tx, "undone", ExpectedVersion.NoStream, [new Deposited("undone", 1)]);
                return await t.Store.AppendAsync(tx, "taken", ExpectedVersion.NoStream, [new Deposited("taken", 2)]);
            }));
            await using (var bulk = await t.Store.BeginBulkAppendAsync("taken"))
            {
                await bulk.WriteAsync(new Deposited("taken", 3));
                await Assert.ThrowsAsync<ConcurrencyException>(() => bulk.CommitAsync());
            }

            await using (var abandoned = await t.Store.BeginBulkAppendAsync("abandoned"))
            {
                await abandoned.WriteAsync(new Deposited("abandoned", 1));
            }

            await t.Store.AppendAsync("kept", ExpectedVersion.Exactly(1), [new Deposited("kept", 2)]);
            await scope.CommitAsync();
        }

        Assert.Equal(2, await t.Store.StreamVersionAsync("kept"));
        Assert.Equal(1, await t.Store.StreamVersionAsync("taken"));
        Assert.Equal(0, await t.Store.StreamVersionAsync("undone"));
        Assert.Equal(0, await t.Store.StreamVersionAsync("abandoned"));
    }

    [Fact]
    public async Task A_scope_covers_only_its_own_flow_and_refuses_a_write_on_another_log()
    {
        await using var t = await TestStore.CreateAsync();
        var other = t.OtherProcess().Log;
        await using (WriteScope.Enter(t.Store))
        {
            // It would commit alone, outside the scope's one transaction (another database's, in the API).
            await Assert.ThrowsAsync<InvalidOperationException>(() => other.AppendAsync("other-log", ExpectedVersion.NoStream, [new Deposited("other-log", 1)]));
            await Task.Run(() => t.Store.AppendAsync("in-scope", ExpectedVersion.NoStream, [new Deposited("in-scope", 1)]));
        }

        await ((Func<Task>)(async () =>
        {
            await using var inner = WriteScope.Enter(t.Store);
        }))();
        await t.Store.AppendAsync("outside", ExpectedVersion.NoStream, [new Deposited("outside", 1)]);

        Assert.Equal(0, await t.Store.StreamVersionAsync("other-log"));
        Assert.Equal(0, await t.Store.StreamVersionAsync("in-scope"));
        Assert.Equal(1, await t.Store.StreamVersionAsync("outside"));
    }
}
