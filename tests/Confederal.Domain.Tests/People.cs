using Confederal.Domain.Census;

namespace Confederal.Domain.Tests;

/// <summary>People as the census decisions take them: the handle is the person id, and the seal is readable, so that
/// decided events can be compared.</summary>
internal static class People
{
    public static Resident Who(string personId) => new(personId, personId, birthDate => $"sealed:{birthDate:O}");
}
