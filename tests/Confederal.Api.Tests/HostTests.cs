using System.Net;

namespace Confederal.Api.Tests;

public sealed class HostTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    [Theory]
    [InlineData("/health/live")]
    [InlineData("/health/ready")]
    public async Task Health_endpoints_answer_200(string path)
    {
        var response = await api.CreateClient().GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task The_committed_openapi_document_is_the_one_the_code_generates()
    {
        var generated = (await api.CreateClient().GetStringAsync("/openapi/v1.json")).ReplaceLineEndings("\n").TrimEnd() + "\n";
        var committed = Path.Combine(RepositoryRoot(), "openapi", "confederal.v1.json");

        if (Environment.GetEnvironmentVariable("CONFEDERAL_UPDATE_OPENAPI") == "1")
        {
            await File.WriteAllTextAsync(committed, generated);
        }

        Assert.True(File.Exists(committed) && await File.ReadAllTextAsync(committed) == generated,
            "openapi/confederal.v1.json differs from what the code generates. Regenerate it with: " +
            "CONFEDERAL_UPDATE_OPENAPI=1 dotnet test tests/Confederal.Api.Tests --filter The_committed_openapi_document_is_the_one_the_code_generates");
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Confederal.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Confederal.sln not found above the test binaries.");
    }
}
