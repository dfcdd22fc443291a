using System.Numerics;
using Confederal.Domain.Cantons;
using Confederal.Domain.Census;
using Confederal.Domain.Fiscal;
using Confederal.Domain.Organizations;
using Confederal.Domain.Pacts;

namespace Confederal.Domain.Tests;

/// <summary>
/// DESIGN.md's "Amounts" and pact rule, computed the slow and obvious way: every budget from scratch, from the whole
/// log, sharing nothing with the ledger but the event and result types. What the incremental ledger must agree with.
/// </summary>
internal static class ReferenceBudgets
{
    private sealed record Record(IReadOnlyList<Choice>? Choices, bool Standing);

    private sealed record Standing(bool Suspended, bool AcceptsRedistribution);

    private sealed class Tally
    {
        public long Chosen { get; set; }

        public long Weight { get; set; }

        public long Taxpayers { get; set; }
    }

    public static Dictionary<(string CantonId, int FiscalYear), (string Currency, BudgetResult Budget)> Settle(IEnumerable<Recorded> log)
    {
        var events = log.ToList();
        var currencies = new Dictionary<string, string>(StringComparer.Ordinal);
        var policies = new Dictionary<(string, int), FiscalPolicySet>();
        var taxes = new Dictionary<(string Canton, int Year, string Person), long>();
        var records = new Dictionary<(string Canton, string Person, int Year), Record>();
        var years = new HashSet<(string CantonId, int FiscalYear)>();
        foreach (var (@event, _) in events)
        {
            switch (@event)
            {
                case CantonRegistered e:
                    currencies.TryAdd(e.CantonId, e.Currency);
                    break;
                case FiscalPolicySet e:
                    policies[(e.CantonId, e.FiscalYear)] = e; // the last one stands
                    years.Add((e.CantonId, e.FiscalYear));
                    break;
                case TaxAssessed e:
                    taxes[(e.CantonId, e.FiscalYear, e.Taxpayer)] = e.AmountMinor; // a later assessment corrects
                    years.Add((e.CantonId, e.FiscalYear));
                    break;
                case DesignationChosen e:
                    records[(e.CantonId, e.Taxpayer, e.FiscalYear)] = new Record(e.Choices, e.Standing);
                    break;
                case DesignationWithdrawn e:
                    records[(e.CantonId, e.Taxpayer, e.FiscalYear)] = new Record(null, false);
                    break;
            }
        }

        var budgets = years.ToDictionary(key => key, key =>
        {
            var policy = policies.GetValueOrDefault(key);
            return (currencies[key.CantonId], Budget(key, policy, taxes, records, Organizations(events, policy)));
        });
        return WithPacts(events, currencies, budgets);
    }

    /// <summary>Every pact-year in which a member keeping its books in the pact's currency has a budget: contributions,
    /// the pool split by largest remainder, lines in every member's budget (a zero budget for a member without one).</summary>
    private static Dictionary<(string CantonId, int FiscalYear), (string Currency, BudgetResult Budget)> WithPacts(
        List<Recorded> events, Dictionary<string, string> currencies,
        Dictionary<(string CantonId, int FiscalYear), (string Currency, BudgetResult Budget)> budgets)
    {
        var lines = new Dictionary<(string CantonId, int FiscalYear), List<BudgetPactLine>>();
        var own = budgets.Keys.ToHashSet();
        foreach (var founded in events.Select(r => r.Event).OfType<PactFounded>())
        {
            foreach (var year in own.Select(k => k.FiscalYear).Distinct())
            {
                var members = currencies.Keys
                    .Where(c => currencies[c] == founded.Currency && RateIn(events, founded.PactId, c, year) is not null)
                    .Order(StringComparer.Ordinal)
                    .ToList();
                if (!members.Any(c => own.Contains((c, year))))
                {
                    continue;
                }

                var contributions = members.Select(c =>
                {
                    var budget = budgets.TryGetValue((c, year), out var b) ? b.Budget : null;
                    var taxed = (budget?.RevenueMinor ?? 0) - (budget?.DesignatedMinor ?? 0);
                    return (long)(new BigInteger(taxed) * RateIn(events, founded.PactId, c, year)!.Value / 10_000);
                }).ToList();
                var weights = members
                    .Select(c => founded.Distribution == PactDistribution.Equal ? 1L : Residents(events, c, new DateOnly(year, 1, 1)))
                    .ToList();
                var receipts = Split(contributions.Sum(), weights.All(w => w == 0) ? [.. members.Select(_ => 1L)] : weights);
                for (var i = 0; i < members.Count; i++)
                {
                    var key = (members[i], year);
                    budgets.TryAdd(key, (currencies[members[i]], new BudgetResult(0, 0, 0, [], 0, 0, 0)));
                    if (!lines.TryGetValue(key, out var list))
                    {
                        lines[key] = list = [];
                    }

                    list.Add(new BudgetPactLine(founded.PactId, contributions[i], receipts[i]));
                }
            }
        }

        foreach (var (key, list) in lines)
        {
            var (currency, budget) = budgets[key];
            budgets[key] = (currency, budget with { Pacts = [.. list.OrderBy(l => l.PactId, StringComparer.Ordinal)] });
        }

        return budgets;
    }

    /// <summary>A join or leave decides its year and every year after it, until a later one decides again: so a year's
    /// rate is that of the last decision in the log that reaches it.</summary>
    private static int? RateIn(List<Recorded> events, string pactId, string cantonId, int year) =>
        events.Select(r => r.Event)
            .Select(e => e switch
            {
                PactJoined j when j.PactId == pactId && j.CantonId == cantonId && j.FromFiscalYear <= year => (Decided: true, Rate: (int?)j.ContributionRateBp),
                PactLeft l when l.PactId == pactId && l.CantonId == cantonId && l.FromFiscalYear <= year => (Decided: true, Rate: null),
                _ => (Decided: false, Rate: null),
            })
            .LastOrDefault(d => d.Decided).Rate;

    /// <summary>Persons with a residence in the canton covering the day: from their arrival to the day before their departure.</summary>
    private static long Residents(List<Recorded> events, string cantonId, DateOnly day)
    {
        var periods = new List<(string Person, string Canton, DateOnly Since, DateOnly? Until)>();
        foreach (var @event in events.Select(r => r.Event))
        {
            switch (@event)
            {
                case ResidentRegistered e:
                    periods.Add((e.Resident, e.CantonId, e.ResidentSince, null));
                    break;
                case ResidentDeparted e:
                    var open = periods.FindLastIndex(p => p.Person == e.Resident && p.Canton == e.CantonId && p.Until is null);
                    periods[open] = periods[open] with { Until = e.LeftOn };
                    break;
            }
        }

        return periods.Where(p => p.Canton == cantonId && p.Since <= day && (p.Until is null || day < p.Until)).Select(p => p.Person).Distinct().Count();
    }

    /// <summary>How each organization stands for a year: as its last change made while the year was open (before its
    /// deadline; a year without a policy has no deadline yet). Changes at or after the deadline do not reach it.</summary>
    private static Dictionary<string, Standing> Organizations(List<Recorded> events, FiscalPolicySet? policy)
    {
        var now = new Dictionary<string, Standing>(StringComparer.Ordinal);
        var forYear = new Dictionary<string, Standing>(StringComparer.Ordinal);
        foreach (var (@event, at) in events)
        {
            var (id, standing) = @event switch
            {
                OrganizationRecognized e => (e.OrganizationId, new Standing(false, e.AcceptsRedistribution)),
                OrganizationUpdated e => (e.OrganizationId, now[e.OrganizationId] with { AcceptsRedistribution = e.AcceptsRedistribution }),
                OrganizationSuspended e => (e.OrganizationId, now[e.OrganizationId] with { Suspended = true }),
                OrganizationReinstated e => (e.OrganizationId, now[e.OrganizationId] with { Suspended = false }),
                _ => (null, null),
            };
            if (id is null || standing is null)
            {
                continue;
            }

            now[id] = standing;
            if (policy is null || at < policy.Deadline)
            {
                forYear[id] = standing;
            }
        }

        return forYear;
    }

    private static BudgetResult Budget(
        (string CantonId, int FiscalYear) key, FiscalPolicySet? policy, Dictionary<(string Canton, int Year, string Person), long> taxes,
        Dictionary<(string Canton, string Person, int Year), Record> records, Dictionary<string, Standing> organizations)
    {
        var rate = policy?.DesignationRateBp ?? 0;
        long revenue = 0, taxpayers = 0, pool = 0, undesignated = 0;
        var tallies = new SortedDictionary<string, Tally>(StringComparer.Ordinal);
        foreach (var ((canton, year, person), tax) in taxes)
        {
            if (canton != key.CantonId || year != key.FiscalYear)
            {
                continue;
            }

            var designable = (long)(new BigInteger(tax) * rate / 10_000);
            revenue += tax;
            taxpayers++;
            pool += designable;
            var choices = EffectiveChoices(records, canton, person, year);
            if (choices is null)
            {
                undesignated += designable;
                continue;
            }

            var ordered = choices.OrderBy(c => c.OrganizationId, StringComparer.Ordinal).ToList();
            var parts = Split(designable, ordered.Select(c => (long)c.ShareBp).ToList());
            for (var i = 0; i < ordered.Count; i++)
            {
                if (!tallies.TryGetValue(ordered[i].OrganizationId, out var tally))
                {
                    tallies[ordered[i].OrganizationId] = tally = new Tally();
                }

                tally.Chosen += parts[i];
                tally.Weight += ordered[i].ShareBp;
                tally.Taxpayers++;
            }
        }

        bool Receives(string id) =>
            !(organizations.TryGetValue(id, out var s) && s.Suspended)
            && (policy is null || policy.Eligibility == Eligibility.All || policy.EligibleOrganizations.Contains(id, StringComparer.Ordinal));
        bool Declines(string id) => organizations.TryGetValue(id, out var s) && !s.AcceptsRedistribution;

        var ids = tallies.Keys.ToList();
        var unallocated = undesignated + ids.Where(id => !Receives(id)).Sum(id => tallies[id].Chosen);
        var weights = ids.Select(id => Receives(id) && !Declines(id) ? tallies[id].Weight : 0).ToList();
        var redistributed = ids.Select(_ => 0L).ToList();
        var retained = unallocated;
        if (policy?.UnallocatedPolicy == UnallocatedPolicy.Proportional && unallocated > 0 && weights.Sum() > 0)
        {
            redistributed = Split(unallocated, weights);
            retained = 0;
        }

        var lines = ids
            .Select((id, i) => (id, i))
            .Where(x => Receives(x.id))
            .Select(x => new BudgetLine(x.id, tallies[x.id].Chosen + redistributed[x.i], redistributed[x.i], tallies[x.id].Taxpayers))
            .ToList();
        return new BudgetResult(revenue, taxpayers, pool, lines, unallocated, unallocated - retained, retained);
    }

    /// <summary>The latest record at or before the year applies if it is for that year or standing; a withdrawal ends it.</summary>
    private static IReadOnlyList<Choice>? EffectiveChoices(
        Dictionary<(string Canton, string Person, int Year), Record> records, string canton, string person, int year)
    {
        var latest = records
            .Where(r => r.Key.Canton == canton && r.Key.Person == person && r.Key.Year <= year)
            .OrderByDescending(r => r.Key.Year)
            .Select(r => (r.Key.Year, r.Value))
            .FirstOrDefault();
        return latest.Value is { Choices: { } choices } record && (latest.Year == year || record.Standing) ? choices : null;
    }

    /// <summary>Largest remainder, naively: floors, then one unit each to the largest remainders, ties to the lower index.</summary>
    private static List<long> Split(long total, List<long> weights)
    {
        var sum = weights.Aggregate(BigInteger.Zero, (s, w) => s + w);
        var parts = weights.Select(w => (long)(total * (BigInteger)w / sum)).ToList();
        var left = total - parts.Sum();
        var luckiest = weights
            .Select((w, i) => (Remainder: total * (BigInteger)w % sum, Index: i))
            .OrderByDescending(x => x.Remainder)
            .ThenBy(x => x.Index)
            .Take((int)left);
        foreach (var (_, index) in luckiest)
        {
            parts[index]++;
        }

        return parts;
    }
}
