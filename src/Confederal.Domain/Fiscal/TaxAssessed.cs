namespace Confederal.Domain.Fiscal;

/// <summary>A canton assessed a person's tax for a fiscal year. A later assessment of the same person and year (in the
/// global order) replaces the earlier one: a correction. <see cref="Taxpayer"/> names the person by their handle in
/// this canton and year, derived from their taxpayer handle under the year's key: linked to the person only by the key
/// tables outside the log, and to nobody once the year's key is deleted. Events recorded before per-year handles carry
/// the taxpayer handle itself (the same in every year), and those recorded before handles the person id.</summary>
public sealed record TaxAssessed(string CantonId, string Taxpayer, int FiscalYear, long AmountMinor)
{
    /// <summary>Assessments are filed in batches (a single POST is a batch of one): one new stream per filing.</summary>
    public static string FilingStreamId(string cantonId, Guid filingId) => $"tax-filing-{cantonId}-{filingId:N}";

    /// <summary>What is wrong with one assessment line, or null when nothing is.</summary>
    public static string? Problem(string? personId, int? fiscalYear, long? amountMinor) =>
        !Identifiers.IsPersonId(personId) ? "personId must be 1 to 64 characters of A-Z a-z 0-9 . _ : -"
        : fiscalYear is not { } year || !FiscalPolicy.IsFiscalYear(year) ? "fiscalYear must be an integer from 2000 to 2100"
        : amountMinor is not { } amount || amount is < 0 or > Money.MaxAssessmentMinor
            ? $"amountMinor must be an integer number of minor units from 0 to {Money.MaxAssessmentMinor}"
        : null;
}
