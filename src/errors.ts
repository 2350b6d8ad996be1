/**
 * One error type for the whole app. `code` is stable and documented in docs/errors.md;
 * `retryable` tells the queue handlers whether to rethrow (the host retries, then poisons)
 * or to fail the run at once.
 */
export class ExportError extends Error {
  override readonly name = 'ExportError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** HTTP status of the failed call, when there was one. */
  readonly status: number | undefined;
  /** Server-suggested wait before a retry, in seconds, when known. */
  readonly retryAfterSeconds: number | undefined;
  /** Microsoft Graph's own error code (`error.code` of the response), when the call was to Graph. */
  readonly graphErrorCode: string | undefined;
  /** Graph's `request-id`, for a support ticket. */
  readonly requestId: string | undefined;

  constructor(code: ErrorCode, message: string, options: ExportErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.status = options.status;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.graphErrorCode = options.graphErrorCode;
    this.requestId = options.requestId;
  }
}

export interface ExportErrorOptions {
  retryable?: boolean | undefined;
  cause?: unknown;
  status?: number | undefined;
  retryAfterSeconds?: number | undefined;
  graphErrorCode?: string | undefined;
  requestId?: string | undefined;
}

/** Every error code the app raises. Keep docs/errors.md in step (a test checks it). */
export const ErrorCodes = [
  'CONFIG_INVALID',
  'GRAPH_UNAUTHORIZED',
  'GRAPH_FORBIDDEN',
  'GRAPH_BAD_REQUEST',
  'GRAPH_NOT_FOUND',
  'GRAPH_GONE',
  'GRAPH_THROTTLED',
  'GRAPH_UNAVAILABLE',
  'GRAPH_NETWORK',
  'GRAPH_PROTOCOL',
  'GRAPH_HOST_REFUSED',
  'PARTNER_CENTER_FAILED',
  'PARTNER_CENTER_UNAVAILABLE',
  'EXPORT_FAILED',
  'EXPORT_NO_DATA',
  'EXPORT_TIMEOUT',
  'MANIFEST_INVALID',
  'SOURCE_EXPIRED',
  'SOURCE_UNAVAILABLE',
  'COPY_FAILED',
  'DESTINATION_FORBIDDEN',
  'DESTINATION_UNAVAILABLE',
  'MESSAGE_INVALID',
  'MESSAGE_POISONED',
  'REQUEST_INVALID',
  'RUN_NOT_FOUND',
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

export function isExportError(error: unknown): error is ExportError {
  return error instanceof Error && error.name === 'ExportError' && 'code' in error;
}

/** Message of any thrown value, for logs (callers still redact). */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
