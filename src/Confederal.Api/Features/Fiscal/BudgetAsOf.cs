using System.Globalization;
using System.Text.RegularExpressions;
using Confederal.Domain;
using Confederal.Domain.Cantons;
using Confederal.Domain.Fiscal;
using Confederal.EventStore;
using FluentValidation;
using FluentValidation.Results;
using Npgsql;

namespace Confederal.Api.Features.Fiscal;

/// <summary>What <c>?asOf=</c> names: a global position (1, 2, …), or an instant with its offset, which stands for every
/// event recorded at or before it: the highest position whose recorded_at is not later.</summary>
public readonly partial record struct AsOf(long? Position, DateTimeOffset? Instant)
{
    public const string Expected =
        "asOf must be a position (1, 2, …) or an instant with its offset, e.g. 2026-03-01T12:00:00Z or 2026-03-01T13:00:00%2B01:00 (+ written %2B).";

    // RFC 3339: a date, a time, optional fractions of a second (at most the 100 ns of a DateTimeOffset), and an offset.
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})\z", RegexOptions.CultureInvariant)]
    private static partial Regex Instant3339();

    public static bool TryParse(string? text, out AsOf asOf)
    {
        asOf = default;
        if (text is null)
        {
            return false;
        }

        if (text.Length > 0 && text.All(char.IsAsciiDigit))
        {
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var position) || position < 1)
            {
                return false;
            }

            asOf = new AsOf(position, null);
            return true;
        }

        if (!Instant3339().IsMatch(text)
            || !DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var instant))
        {
            return false;
        }

        asOf = new AsOf(null, instant);
        return true;
    }
}

/// <summary>
/// A canton's budget as it stood at a position of the log, computed from the log rather than the read model: every event
/// the <see cref="Ledger"/> folds up to that position (those of all cantons, whose books pact settlement reads), folded
/// with the same rules the projection applies, the pacts settled, the book settled. The cost grows with the position:
/// one pass over the fiscal, organization, pact and census events up to it (events of other types are passed over on
/// the server), holding that part of the ledger in memory.
/// </summary>
public static class BudgetAsOf
{
    public static async Task<BudgetView> ReadAsync(
        EventLog events, TimeProvider clock, string cantonId, int fiscalYear, AsOf asOf, CancellationToken ct)
    {
        var position = await PositionAsync(events, clock, asOf, ct);
        var registered = await events.ReadStreamAsync(Canton.StreamId(cantonId), 1, 1, ct).FirstOrDefaultAsync(ct)
            ?? throw new NotFoundException("Canton", cantonId);
        if (registered.Position == 0 || registered.Position > position)
        {
            throw new NotFoundException("Canton", cantonId, $"Canton '{cantonId}' was not registered yet at position {position}.");
        }

        var (ledger, ledgers) = await LedgerAsync(events, position, ct);
        return Fold(ledger, ledgers, cantonId, fiscalYear, position);
    }

    /// <summary>The position an <see cref="AsOf"/> stands for; one beyond the head of the log, or an instant in the
    /// future, is refused (a budget as of then could still change).</summary>
    public static async Task<long> PositionAsync(EventLog events, TimeProvider clock, AsOf asOf, CancellationToken ct)
    {
        if (asOf.Position is { } position)
        {
            var head = await events.ReadHeadAsync(ct);
            return position <= head ? position : throw Invalid($"asOf {position} is beyond the head of the log, position {head}.");
        }

        var instant = asOf.Instant!.Value;
        var now = clock.GetUtcNow();
        if (instant > now)
        {
            throw Invalid($"asOf {instant:O} is in the future (it is now {now:O}).");
        }

        // Marten's timestamp is not indexed: one scan of the log, as the fold that follows reads it anyway. Only below the
        // head: an event above it may still be joined by an earlier one.
        await using var command = events.DataSource.CreateCommand(
            $"SELECT coalesce(max(seq_id), 0) FROM {EventLog.Table} WHERE seq_id <= ({EventLog.HeadSql}) AND timestamp <= $1");
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = instant.ToUniversalTime() });
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>The ledger folded up to <paramref name="position"/>, and how far that folds each placed canton's own log.</summary>
    private static async Task<(Ledger Ledger, IReadOnlyList<LedgerView> Ledgers)> LedgerAsync(EventLog events, long position, CancellationToken ct)
    {
        var ledger = new Ledger();
        var copied = new Dictionary<string, long>(StringComparer.Ordinal);
        await foreach (var e in events.ReadUpToAsync(position, BudgetProjection.EventsFolded, ct: ct))
        {
            ledger.Apply(e.Data, e.RecordedAt, e.Position);
            if (e.Source is { } source)
            {
                copied[source.Ledger] = source.Position;
            }
        }

        ledger.SettlePacts();
        return (ledger, [.. copied.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => new LedgerView(c.Key, c.Value))]);
    }

    private static BudgetView Fold(Ledger ledger, IReadOnlyList<LedgerView> ledgers, string cantonId, int fiscalYear, long position)
    {
        var book = ledger.Books.GetValueOrDefault((cantonId, fiscalYear)) ?? new BudgetBook(cantonId, fiscalYear, ledger.Currencies[cantonId]);
        var budget = book.Settle();
        return new BudgetView(
            cantonId, fiscalYear, book.Currency, budget.RevenueMinor, budget.Taxpayers, book.Policy?.DesignationRateBp ?? 0,
            budget.DesignablePoolMinor,
            [.. budget.Designations.Select(d => new BudgetDesignationView(d.OrganizationId, d.AmountMinor, d.RedistributedMinor, d.Taxpayers))],
            budget.UnallocatedMinor, budget.RedistributedMinor, budget.RetainedMinor, budget.DesignatedMinor,
            [.. budget.Pacts.Select(p => new PactLineView(p.PactId, p.ContributionMinor))],
            [.. budget.Pacts.Select(p => new PactLineView(p.PactId, p.ReceiptMinor))],
            budget.NetBudgetMinor, position, ledgers);
    }

    private static ValidationException Invalid(string message) => new([new ValidationFailure("asOf", message) { ErrorCode = "invalid-as-of" }]);
}
