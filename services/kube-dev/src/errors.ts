/** Stable codes for failures of kube-dev itself (start-up, persistence), not of API requests. */
export type KubeDevErrorCode =
  'ERR_KUBE_DEV_CONFIG' | 'ERR_KUBE_DEV_STATE' | 'ERR_KUBE_DEV_LISTEN' | 'ERR_KUBE_DEV_CLOSED';

/** A kube-dev failure with a stable `code`. */
export class KubeDevError extends Error {
  override name = 'KubeDevError';
  readonly code: KubeDevErrorCode;
  constructor(code: KubeDevErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The `reason` values of Kubernetes `Status` objects that kube-dev answers with. */
export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'Invalid'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'RequestEntityTooLarge'
  | 'InternalError';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: Array<{ reason?: string; message: string; field?: string }>;
}

/**
 * An API request failure, rendered as a Kubernetes `Status` (kind Status, status Failure). The
 * message is what the client sees, so it must never carry a secret.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: number,
    readonly reason: StatusReason,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** `<resource>[.<group>]` as Kubernetes names a resource in messages. */
export function qualifiedResource(resource: string, group: string): string {
  return group ? `${resource}.${group}` : resource;
}

export const notFound = (resource: string, group: string, name: string) =>
  new ApiError(404, 'NotFound', `${qualifiedResource(resource, group)} "${name}" not found`, {
    name,
    group,
    kind: resource,
  });

export const alreadyExists = (resource: string, group: string, name: string) =>
  new ApiError(
    409,
    'AlreadyExists',
    `${qualifiedResource(resource, group)} "${name}" already exists`,
    { name, group, kind: resource },
  );

export const conflict = (resource: string, group: string, name: string, why: string) =>
  new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": ${why}`,
    { name, group, kind: resource },
  );

export const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);

/** One broken field of a 422 (`reason` defaults to FieldValueInvalid). */
export interface FieldCause {
  field: string;
  message: string;
  reason?: string;
}

/** 422 with one cause per broken field, as Kubernetes validation reports it. */
export function invalid(kind: string, group: string, name: string, causes: FieldCause[]): ApiError {
  const summary = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return new ApiError(422, 'Invalid', `${kind} "${name}" is invalid: ${summary}`, {
    name,
    group,
    kind,
    causes: causes.map((c) => ({
      reason: c.reason ?? 'FieldValueInvalid',
      message: c.message,
      field: c.field,
    })),
  });
}

/** 405 for a method the addressed path does not serve. */
export const methodNotAllowed = () =>
  new ApiError(
    405,
    'MethodNotAllowed',
    'the server does not allow this method on the requested resource',
  );

/** 404 for a path kube-dev does not serve (not an object that is missing: see {@link notFound}). */
export const notFoundPath = () =>
  new ApiError(404, 'NotFound', 'the server could not find the requested resource');
