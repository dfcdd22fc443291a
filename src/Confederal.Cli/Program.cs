using Confederal.Cli;

return await Cli.RunAsync(args, CliContext.Default());
