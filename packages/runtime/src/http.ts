// `@precinct/runtime/http`: the service kit's HTTP pieces. A separate entry point so pure
// consumers of `@precinct/runtime` never load Fastify or prom-client (optional peers).
export {
  PROBLEMS,
  PROBLEM_CONTENT_TYPE,
  problem,
  problemStatus,
  problemWireCode,
  type ErrorCode,
  type ProblemCode,
  type ProblemDetails,
  type ProblemWireCode,
} from './problem.js';
export { probesPlugin, sendProblem, type ProbesOptions, type ReadyCheck } from './probes.js';
