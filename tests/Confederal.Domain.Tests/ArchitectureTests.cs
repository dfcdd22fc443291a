using Confederal.Domain.Cantons;

namespace Confederal.Domain.Tests;

public sealed class ArchitectureTests
{
    [Fact]
    public void The_domain_references_no_io_framework()
    {
        var references = typeof(Canton).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();

        Assert.All(references, name => Assert.True(
            name is "System.Runtime" or "System.Collections" or "System.Linq" or "System.Text.RegularExpressions" or "System.Collections.Immutable"
                || name.StartsWith("System.Runtime.", StringComparison.Ordinal),
            $"Confederal.Domain must stay pure, but references {name}."));
    }
}
