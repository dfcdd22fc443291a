using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Confederal.Api.Infrastructure;
using Confederal.EventStore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Confederal.Api.Tests;

public sealed class CantonTests(ApiFactory api) : IClassFixture<ApiFactory>
{
    private sealed record Canton(string CantonId, string Name, string Currency);

    private sealed record Shown(string CantonId, string Name, string Currency, string Locale, string TimeZone);

    /// <summary>The canton as the PUT answered it, as GET …/{cantonId} serves it and as the directory lists it, which
    /// must all be the same.</summary>
    private async Task<Shown> ShownAsync(HttpResponseMessage put)
    {
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());
        var answered = (await put.Content.ReadFromJsonAsync<Shown>())!;
        await api.ProjectedAsync("cantons");
        Assert.Equal(answered, await api.CreateClient().GetFromJsonAsync<Shown>($"/api/v1/cantons/{answered.CantonId}"));
        Assert.Contains(answered, (await api.CreateClient().GetFromJsonAsync<Shown[]>("/api/v1/cantons"))!);
        return answered;
    }

    [Fact]
    public async Task Admin_registers_a_canton_and_the_public_directory_lists_it()
    {
        var response = await api.Admin().PutAsJsonAsync("/api/v1/cantons/ge", new { name = "Genève", currency = "CHF" });

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/api/v1/cantons/ge", response.Headers.Location?.OriginalString);
        Assert.Equal(new Canton("ge", "Genève", "CHF"), await response.Content.ReadFromJsonAsync<Canton>());
        await api.ProjectedAsync("cantons");
        var listed = await api.CreateClient().GetFromJsonAsync<Canton[]>("/api/v1/cantons");
        Assert.Contains(new Canton("ge", "Genève", "CHF"), listed!);
        Assert.Equal(new Canton("ge", "Genève", "CHF"), await api.CreateClient().GetFromJsonAsync<Canton>("/api/v1/cantons/ge"));
    }

    [Fact]
    public async Task A_retried_put_records_nothing_new_and_a_rename_records_one_event()
    {
        var admin = api.Admin();
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsJsonAsync("/api/v1/cantons/ti", new { name = "Ticino", currency = "CHF" })).StatusCode);
        var events = await api.CountEventsAsync();

        var retried = await admin.PutAsJsonAsync("/api/v1/cantons/ti", new { name = "Ticino", currency = "CHF" });
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());

        var renamed = await admin.PutAsJsonAsync("/api/v1/cantons/ti", new { name = "Tessin", currency = "CHF" });
        Assert.Equal(HttpStatusCode.OK, renamed.StatusCode);
        Assert.Equal("\"2\"", renamed.Headers.ETag?.Tag);
        Assert.Equal(events + 1, await api.CountEventsAsync());
        await api.ProjectedAsync("cantons");
        Assert.Equal("Tessin", (await api.CreateClient().GetFromJsonAsync<Canton>("/api/v1/cantons/ti"))!.Name);
    }

    [Fact]
    public async Task A_cantons_currency_cannot_change_once_registered()
    {
        var admin = api.Admin();
        await admin.PutAsJsonAsync("/api/v1/cantons/vd", new { name = "Vaud", currency = "CHF" });
        var events = await api.CountEventsAsync();

        var response = await admin.PutAsJsonAsync("/api/v1/cantons/vd", new { name = "Vaud", currency = "EUR" });

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("currency-is-fixed", problem.RootElement.GetProperty("code").GetString());
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized)]
    [InlineData(Roles.Municipality, HttpStatusCode.Forbidden)]
    [InlineData(Roles.Person, HttpStatusCode.Forbidden)]
    [InlineData(Roles.Auditor, HttpStatusCode.Forbidden)]
    [InlineData(Roles.Organization, HttpStatusCode.Forbidden)]
    public async Task Only_the_confederation_admin_registers_cantons(string? role, HttpStatusCode expected)
    {
        var client = role is null ? api.CreateClient() : api.ClientAs(role, subject: "x-1", canton: role == Roles.Municipality ? "zh" : null);
        var events = await api.CountEventsAsync();

        var response = await client.PutAsJsonAsync("/api/v1/cantons/zh", new { name = "Zürich", currency = "CHF" });

        Assert.Equal(expected, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(events, await api.CountEventsAsync());
    }

    [Fact]
    public async Task An_unknown_canton_is_a_404_problem()
    {
        var response = await api.CreateClient().GetAsync("/api/v1/cantons/atlantis");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Events_carry_the_actor_and_the_callers_correlation_id()
    {
        var admin = api.Admin();
        admin.DefaultRequestHeaders.Add("X-Correlation-Id", "import-2031-07");
        await admin.PutAsJsonAsync("/api/v1/cantons/bs", new { name = "Basel-Stadt", currency = "CHF" });

        await using var command = api.Services.GetRequiredService<Npgsql.NpgsqlDataSource>().CreateCommand(
            "SELECT correlation_id || ' ' || user_name FROM marten.mt_events WHERE stream_id = 'canton-bs'");
        Assert.Equal("import-2031-07 confederation-admin:admin", await command.ExecuteScalarAsync());
    }

    [Fact]
    public async Task A_canton_registered_without_locale_and_time_zone_shows_in_en_and_utc()
    {
        var shown = await ShownAsync(await api.Admin().PutAsJsonAsync("/api/v1/cantons/loc-default", new { name = "Default", currency = "CHF" }));

        Assert.Equal(new Shown("loc-default", "Default", "CHF", "en", "UTC"), shown);
    }

    [Theory]
    [InlineData("fr-CH", "Europe/Zurich", "fr-CH", "Europe/Zurich")]
    [InlineData("de-ch", "europe/zurich", "de-CH", "Europe/Zurich")]
    [InlineData("IT-it", "Europe/Rome", "it-IT", "Europe/Rome")]
    [InlineData("ja-JP", "Asia/Tokyo", "ja-JP", "Asia/Tokyo")]
    [InlineData("es-419", "America/Argentina/Buenos_Aires", "es-419", "America/Argentina/Buenos_Aires")]
    [InlineData("zh-Hans-CN", "Etc/GMT-8", "zh-Hans-CN", "Etc/GMT-8")]
    [InlineData("EN", "UTC", "en", "UTC")]
    public async Task A_cantons_locale_and_time_zone_are_stored_in_their_canonical_spelling(string locale, string timeZone, string stored, string storedZone)
    {
        var id = $"loc-{stored.ToLowerInvariant()}";

        var shown = await ShownAsync(await api.Admin().PutAsJsonAsync($"/api/v1/cantons/{id}", new { name = "Somewhere", currency = "CHF", locale, timeZone }));

        Assert.Equal(new Shown(id, "Somewhere", "CHF", stored, storedZone), shown);
    }

    [Fact]
    public async Task Another_locale_or_time_zone_records_one_event_and_a_repeated_or_omitted_one_none()
    {
        var admin = api.Admin();
        await ShownAsync(await admin.PutAsJsonAsync("/api/v1/cantons/loc-change", new { name = "Ginevra", currency = "CHF", locale = "fr-CH", timeZone = "Europe/Zurich" }));
        var events = await api.CountEventsAsync();

        var repeated = await admin.PutAsJsonAsync("/api/v1/cantons/loc-change", new { name = "Ginevra", currency = "CHF", locale = "fr-CH", timeZone = "Europe/Zurich" });
        var spelledOtherwise = await admin.PutAsJsonAsync("/api/v1/cantons/loc-change", new { name = "Ginevra", currency = "CHF", locale = "fr-ch", timeZone = "europe/zurich" });
        var omitted = await admin.PutAsJsonAsync("/api/v1/cantons/loc-change", new { name = "Ginevra", currency = "CHF" });
        Assert.Equal(new Shown("loc-change", "Ginevra", "CHF", "fr-CH", "Europe/Zurich"), await ShownAsync(omitted));
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK], new[] { repeated.StatusCode, spelledOtherwise.StatusCode });
        Assert.Equal(events, await api.CountEventsAsync());

        var zoneOnly = await admin.PutAsJsonAsync("/api/v1/cantons/loc-change", new { name = "Ginevra", currency = "CHF", timeZone = "Europe/Rome" });
        Assert.Equal(new Shown("loc-change", "Ginevra", "CHF", "fr-CH", "Europe/Rome"), await ShownAsync(zoneOnly));
        Assert.Equal("\"2\"", zoneOnly.Headers.ETag?.Tag);
        var localeOnly = await admin.PutAsJsonAsync("/api/v1/cantons/loc-change", new { name = "Ginevra", currency = "CHF", locale = "it-CH" });
        Assert.Equal(new Shown("loc-change", "Ginevra", "CHF", "it-CH", "Europe/Rome"), await ShownAsync(localeOnly));
        Assert.Equal(events + 2, await api.CountEventsAsync());
        await using var types = Db.CreateCommand("SELECT string_agg(type, ' ' ORDER BY version) FROM marten.mt_events WHERE stream_id = 'canton-loc-change'");
        Assert.Equal("canton-registered.v2 canton-locale-set.v1 canton-locale-set.v1", await types.ExecuteScalarAsync());
    }

    public static TheoryData<string, string> BadLocalesAndZones => new()
    {
        { "locale", "" },
        { "locale", "fr_CH" },
        { "locale", "xx-YY" },
        { "locale", "en-XX" },
        { "locale", "und" },
        { "locale", "root" },
        { "locale", "fr-FR-x-private" },
        { "locale", "en-US-u-nu-arab" },
        { "locale", "de-CH-1996" },
        { "locale", " fr-CH" },
        { "locale", "fr-CH\n" },
        { "locale", new string('a', 5000) },
        { "timeZone", "" },
        { "timeZone", "Mars/Olympus_Mons" },
        { "timeZone", "W. Europe Standard Time" },
        { "timeZone", "localtime" },
        { "timeZone", "posixrules" },
        { "timeZone", "Factory" },
        { "timeZone", "right/UTC" },
        { "timeZone", "posix/Europe/Zurich" },
        { "timeZone", "../../etc/passwd" },
        { "timeZone", "/usr/share/zoneinfo/UTC" },
        { "timeZone", "Europe/Zurich " },
        { "timeZone", "Europe" },
        { "timeZone", "+01:00" },
    };

    [Theory]
    [MemberData(nameof(BadLocalesAndZones))]
    public async Task A_locale_or_time_zone_the_platform_does_not_know_is_refused_and_records_nothing(string member, string bad)
    {
        var admin = api.Admin();
        await ShownAsync(await admin.PutAsJsonAsync("/api/v1/cantons/loc-bad", new { name = "Bad", currency = "EUR", locale = "it-IT", timeZone = "Europe/Rome" }));
        var events = await api.CountEventsAsync();

        foreach (var canton in new[] { "loc-bad", "loc-never" })
        {
            var body = new JsonObject { ["name"] = "Bad", ["currency"] = "EUR", [member] = bad };
            var response = await admin.PutAsJsonAsync($"/api/v1/cantons/{canton}", body);

            await api.AssertRefusedAsync(response, HttpStatusCode.BadRequest, code: null, events);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal([member], problem.RootElement.GetProperty("errors").EnumerateObject().Select(e => e.Name));
        }

        using var missing = await api.CreateClient().GetAsync("/api/v1/cantons/loc-never");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("canton-not-found", await Fiscal.CodeAsync(missing)); // what the pages translate
    }

    [Fact]
    public async Task A_canton_registered_before_locales_reads_as_en_and_utc_and_takes_one_later()
    {
        var log = api.Services.GetRequiredService<EventLog>();
        await FiscalPolicyV1.InsertAsync(Db, log, "canton-loc-v1", new JsonObject { ["cantonId"] = "loc-v1", ["name"] = "Old", ["currency"] = "CHF" },
            "canton-registered");
        await api.ProjectedAsync("cantons");
        Assert.Equal(new Shown("loc-v1", "Old", "CHF", "en", "UTC"), await api.CreateClient().GetFromJsonAsync<Shown>("/api/v1/cantons/loc-v1"));
        var events = await api.CountEventsAsync();

        var admin = api.Admin();
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/v1/cantons/loc-v1", new { name = "Old", currency = "CHF" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK,
            (await admin.PutAsJsonAsync("/api/v1/cantons/loc-v1", new { name = "Old", currency = "CHF", locale = "en", timeZone = "UTC" })).StatusCode);
        Assert.Equal(events, await api.CountEventsAsync());

        var shown = await ShownAsync(await admin.PutAsJsonAsync("/api/v1/cantons/loc-v1", new { name = "Old", currency = "CHF", locale = "rm-CH" }));

        Assert.Equal(new Shown("loc-v1", "Old", "CHF", "rm-CH", "UTC"), shown);
        Assert.Equal(events + 1, await api.CountEventsAsync());
        Assert.Equal(1, (await FiscalPolicyV1.StoredAsync(Db, "canton-loc-v1"))[0].TypeVersion);
    }

    private NpgsqlDataSource Db => api.Services.GetRequiredService<NpgsqlDataSource>();
}

/// <summary>canton-registered v1 rows (before locales) are read as v2 with en and UTC; one missing a field is an error
/// naming its position.</summary>
public sealed class CantonRegisteredVersionTests
{
    [Theory]
    [InlineData("currency")]
    [InlineData("name")]
    public async Task A_v1_canton_missing_a_field_fails_with_an_error_naming_its_position(string missing)
    {
        await using var db = NpgsqlDataSource.Create(await Confederal.Testing.TestPostgres.CreateDatabaseAsync(Database.Migrations));
        using var store = new OpenStore(db, Events.Types(), []);
        var log = store.Log;
        var payload = new JsonObject { ["cantonId"] = "ge", ["name"] = "Genève", ["currency"] = "CHF" };
        await FiscalPolicyV1.InsertAsync(db, log, "canton-vd", new JsonObject { ["cantonId"] = "vd", ["name"] = "Vaud", ["currency"] = "CHF" }, "canton-registered");
        payload.Remove(missing);

        var position = await FiscalPolicyV1.InsertAsync(db, log, "canton-ge", payload, "canton-registered");

        Assert.Equal(new Domain.Cantons.CantonRegistered("vd", "Vaud", "CHF", "en", "UTC"), Assert.Single(await log.ReadStreamAsync("canton-vd").ToListAsync()).Data);
        await store.Daemon.CatchUpAsync();
        var error = await Assert.ThrowsAsync<EventStoreException>(() => log.ReadAllAsync(0).ToListAsync().AsTask());
        Assert.Equal(position, error.Position);
        Assert.Contains($"'canton-registered' v1 payload is corrupt: '{missing}' is missing or null", error.Message, StringComparison.Ordinal);
    }
}
