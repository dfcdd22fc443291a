using Npgsql;

namespace Confederal.Api.Infrastructure;

/// <summary>Small helpers for the read models' SQL.</summary>
public static class Sql
{
    /// <summary>A batch command with positional parameters ($1, $2, …); null becomes SQL NULL. A single array argument
    /// must be cast to object, or C# takes it for the parameter list itself.</summary>
    public static NpgsqlBatchCommand Command(string sql, params object?[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }

        return command;
    }

    /// <summary>The rows of a query with positional parameters, each read by <paramref name="read"/>.</summary>
    public static async Task<List<T>> ListAsync<T>(
        NpgsqlDataSource db, string sql, Func<NpgsqlDataReader, T> read, CancellationToken ct, params object?[] values)
    {
        await using var command = db.CreateCommand(sql);
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }

        var rows = new List<T>();
        await using var reader = await command.ExecuteReaderAsync(ct);
        while (await reader.ReadAsync(ct))
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    public static async Task ExecuteAsync(NpgsqlConnection connection, IReadOnlyList<NpgsqlBatchCommand> commands, CancellationToken ct)
    {
        if (commands.Count == 0)
        {
            return;
        }

        await using var batch = new NpgsqlBatch(connection);
        foreach (var command in commands)
        {
            batch.BatchCommands.Add(command);
        }

        await batch.ExecuteNonQueryAsync(ct);
    }
}
