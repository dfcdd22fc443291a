using System.Reflection;
using Confederal.EventStore;
using FluentValidation;
using MediatR;

namespace Confederal.Api.Infrastructure;

/// <summary>MediatR 5 wired by hand (its DI package is not served here) with a validation step before every handler.</summary>
public static class Mediation
{
    public static IServiceCollection AddMediation(this IServiceCollection services, Assembly assembly)
    {
        services.AddScoped<ServiceFactory>(provider => provider.GetService);
        services.AddScoped<IMediator, Mediator>();
        foreach (var type in assembly.GetTypes().Where(t => t is { IsClass: true, IsAbstract: false, IsGenericTypeDefinition: false }))
        {
            foreach (var handler in type.GetInterfaces().Where(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IRequestHandler<,>)))
            {
                services.AddScoped(handler, type);
            }
        }

        services.AddScoped(typeof(IPipelineBehavior<,>), typeof(WriteOutcomeBehaviour<,>));
        services.AddScoped(typeof(IPipelineBehavior<,>), typeof(ValidationBehaviour<,>));
        services.AddValidatorsFromAssembly(assembly, ServiceLifetime.Singleton);
        return services;
    }
}

/// <summary>Runs every validator of the request; any failure stops it with a 400 before anything is recorded.</summary>
public sealed class ValidationBehaviour<TRequest, TResponse>(IEnumerable<IValidator<TRequest>> validators) : IPipelineBehavior<TRequest, TResponse>
{
    public async Task<TResponse> Handle(TRequest request, CancellationToken cancellationToken, RequestHandlerDelegate<TResponse> next)
    {
        var failures = new List<FluentValidation.Results.ValidationFailure>();
        foreach (var validator in validators)
        {
            var result = await validator.ValidateAsync(request, cancellationToken);
            failures.AddRange(result.Errors);
        }

        return failures.Count > 0 ? throw new ValidationException(failures) : await next();
    }
}

/// <summary>Tells a failure of the database that came after the request sent a commit from one that came before: only
/// the second may say that nothing was recorded.</summary>
public sealed class WriteOutcomeBehaviour<TRequest, TResponse> : IPipelineBehavior<TRequest, TResponse>
{
    public async Task<TResponse> Handle(TRequest request, CancellationToken cancellationToken, RequestHandlerDelegate<TResponse> next)
    {
        var outcome = WriteOutcome.Track();
        try
        {
            return await next();
        }
        catch (Exception e) when (outcome.MayHaveRecorded && Backoff.IsUnavailable(e))
        {
            throw new OutcomeUnknownException(e);
        }
    }
}

public static class Rules
{
    /// <summary>A fiscal year of DESIGN.md: 2000..2100.</summary>
    public static IRuleBuilderOptions<T, int> FiscalYear<T>(this IRuleBuilder<T, int> rule) =>
        rule.InclusiveBetween(Domain.Fiscal.FiscalPolicy.MinYear, Domain.Fiscal.FiscalPolicy.MaxYear).WithName("fiscalYear").WithErrorCode("invalid-fiscal-year");

    /// <summary>A personId of DESIGN.md, here taken from the route.</summary>
    public static IRuleBuilderOptions<T, string> PersonId<T>(this IRuleBuilder<T, string> rule) =>
        rule.Must(Domain.Identifiers.IsPersonId).WithName("personId").WithMessage("personId must match ^[A-Za-z0-9._:-]{1,64}$.")
            .WithErrorCode("invalid-person-id");
}
