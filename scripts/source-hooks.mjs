// Resolve workspace packages to their TypeScript sources (the "precinct-source" export
// condition), so the repository runs without a build step. tsx does the transpiling.
export async function resolve(specifier, context, nextResolve) {
  const conditions = context.conditions.includes('precinct-source')
    ? context.conditions
    : [...context.conditions, 'precinct-source'];
  return nextResolve(specifier, { ...context, conditions });
}
