using System.Text.Json;
using System.Text.Json.Serialization;
using Confederal.Api.Features.Audit;
using Confederal.Api.Features.Ballots;
using Confederal.Api.Features.Cantons;
using Confederal.Api.Features.Census;
using Confederal.Api.Features.Fiscal;
using Confederal.Api.Features.Organizations;
using Confederal.Api.Features.Pacts;
using Confederal.Api.Features.Persons;
using Confederal.Api.Infrastructure;
using Confederal.Api.Pages;
using Confederal.EventStore;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Json;

var builder = WebApplication.CreateBuilder(args);

builder.Services.AddSingleton<Database>();
builder.Services.AddSingleton(sp => sp.GetRequiredService<Database>().DataSource);
builder.Services.AddSingleton(sp => new Pseudonyms(sp.GetRequiredService<AuditKeys>().PseudonymKey));
builder.Services.AddHostedService<EventStoreHost>(); // first: the schema is migrated before Marten's daemon starts
builder.Services.AddSingleton<IProjection, CantonDirectory>();
builder.Services.AddSingleton<IProjection, OrganizationDirectory>();
builder.Services.AddSingleton<IProjection, BudgetProjection>();
builder.Services.AddSingleton<IProjection, BallotDirectory>();
builder.Services.AddConfederalStore(Events.Types(), sp => sp.GetRequiredService<Database>().Databases, sp => sp.GetRequiredService<AuditKeys>().EventKey);
builder.Services.AddSingleton<Placement>();
builder.Services.AddSingleton(sp => new PersonKeys(
    sp.GetRequiredService<Database>().DataSource, sp.GetRequiredService<AuditKeys>(), sp.GetRequiredService<TimeProvider>()));
builder.Services.AddSingleton(sp => new FiscalYearKeys(
    sp.GetRequiredService<Database>().DataSource, sp.GetRequiredService<AuditKeys>(), sp.GetRequiredService<TimeProvider>()));
builder.Services.AddSingleton<DesignationCarrier>();
builder.Services.AddHostedService<FiscalYearKeeper>();
builder.Services.AddSingleton<DirectoryCopies>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<DirectoryCopies>());
builder.Services.AddSingleton<Notaries>();
builder.Services.AddSingleton(sp => sp.GetRequiredService<Notaries>().Directory);
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<CalledBallots>();
builder.Services.AddHostedService<IdempotencyRetention>();

builder.Services.AddMediation(typeof(Program).Assembly);
builder.AddConfederalAuth();
builder.Services.AddSingleton(AuditKeys.Load(builder.Configuration, builder.Environment));
builder.Services.AddProblemDetails();
builder.Services.AddSingleton<IProblemDetailsWriter, ProblemJsonWriter>();
builder.Services.AddExceptionHandler<ProblemsExceptionHandler>();
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
builder.Services.Configure<JsonOptions>(o =>
{
    o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
    o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
    o.SerializerOptions.AllowDuplicateProperties = false; // {"name": "a", "Name": "b"}: which did the sender mean?
    o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.KebabCaseLower, allowIntegerValues: false));
});
builder.Services.AddRateLimits(builder.Configuration);
builder.Services.AddRequestDeadlines(builder.Configuration);
builder.Services.AddRazorPages(o =>
{
    o.Conventions.AuthorizeFolder("/Person", PageSession.Policy);
    o.Conventions.ConfigureFilter(new PageBasics());
    o.Conventions.ConfigureFilter(new PageLanguage());
}).AddViewLocalization();
// Pages in French or Japanese are written as such, not as numeric references (&#xE9;, &#x7A0E;): the encoder still
// escapes every character that means something in HTML.
builder.Services.Configure<Microsoft.Extensions.WebEncoders.WebEncoderOptions>(o =>
    o.TextEncoderSettings = new System.Text.Encodings.Web.TextEncoderSettings(System.Text.Unicode.UnicodeRanges.All));
builder.AddConfederalTelemetry();
builder.Services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
builder.Services.AddOpenApi("v1", o =>
{
    o.AddDocumentTransformer<OpenApiDocument>();
    o.AddSchemaTransformer<OpenApiSchemas>();
    // Slices nest their request types (RegisterCanton.Body, Designate.Body): name schemas after the slice.
    o.CreateSchemaReferenceId = info => info.Type.DeclaringType is { } slice
        ? slice.Name + info.Type.Name
        : Microsoft.AspNetCore.OpenApi.OpenApiOptions.CreateDefaultSchemaReferenceId(info);
});

var app = builder.Build();

app.UseRequestLogging();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseBodyLimits();
app.UseRequestTimeouts();
app.UseAuthentication();
app.UseRateLimiter();
app.UseAuthorization();
app.UseMiddleware<Idempotency>();

app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false }).DisableRateLimiting().DisableRequestTimeout();
app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") }).DisableRateLimiting().DisableRequestTimeout();
app.MapOpenApi("/openapi/{documentName}.json");
app.MapMetrics();
app.MapRazorPages();

var api = app.MapGroup("/api/v1").KeepsCommittedWrites()
    .ProducesProblem(StatusCodes.Status429TooManyRequests).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
RegisterCanton.Map(api);
GetCantons.Map(api);
RecognizeOrganization.Map(api);
ChangeOrganizationStanding.Map(api);
GetOrganizations.Map(api);
GetReceipts.Map(api);
SetFiscalPolicy.Map(api);
AssessTax.Map(api);
ImportAssessments.Map(api);
Designate.Map(api);
GetBudget.Map(api);
RegisterResident.Map(api);
RecordDeparture.Map(api);
GetCensus.Map(api);
SetVotingRules.Map(api);
CallBallot.Map(api);
ListBallots.Map(api);
GetEligibility.Map(api);
CastVote.Map(api);
GetParticipation.Map(api);
CloseBallot.Map(api);
GetResults.Map(api);
FoundPact.Map(api);
GetPact.Map(api);
GetAuditEvents.Map(api);
GetSeals.Map(api);
ErasePerson.Map(api);

app.Lifetime.ApplicationStarted.Register(() =>
{
    var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
    foreach (var address in addresses)
    {
        app.Logger.LogInformation(
            "Confederal listens on {Address} (OpenAPI: {Address}/openapi/v1.json). A token: dotnet run --project src/Confederal.Cli -- dev token --role confederation-admin",
            address, address);
    }
});

app.Run();

/// <summary>The entry point, visible to WebApplicationFactory in tests.</summary>
public partial class Program;
