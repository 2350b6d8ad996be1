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
  'USAGE_INVALID',
  'PORT_IN_USE',
  'FOLDER_BUSY',
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
  'GRAPH_CREDENTIAL',
  'GRAPH_ENDPOINT_CHANGED',
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
  'FINOPS_HUB_FORBIDDEN',
  'FINOPS_HUB_UNAVAILABLE',
  'FINOPS_HUB_FAILED',
  'MESSAGE_INVALID',
  'MESSAGE_POISONED',
  'REQUEST_INVALID',
  'RUN_NOT_FOUND',
  'RUN_UNREADABLE',
  'RUN_STALLED',
  'START_FAILED',
  'HOST_STORAGE_FORBIDDEN',
  'HOST_STORAGE_UNAVAILABLE',
  'CURATION_TOTALS_MISMATCH',
  'CURATION_STALLED',
  'UNEXPECTED',
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

/** HTTP status of an SDK error (RestError and the like), when it has one. */
function statusOfError(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const value =
    (error as { statusCode?: unknown; status?: unknown }).statusCode ?? (error as { status?: unknown }).status;
  return typeof value === 'number' ? value : undefined;
}

/** Which host-storage service an SDK error came from, by its request URL. */
function hostServiceOf(error: unknown): 'table' | 'queue' | 'blob' | undefined {
  const url = (error as { request?: { url?: unknown } } | null)?.request?.url;
  if (typeof url !== 'string') return undefined;
  if (/\.table\.|:10002\b|\/Tables|tables/i.test(url)) return 'table';
  if (/\.queue\.|:10001\b|\/messages/i.test(url)) return 'queue';
  if (/\.blob\.|:10000\b/i.test(url)) return 'blob';
  return undefined;
}

/** Node and Azure SDK codes of a request that got no answer at all (refused, unknown host, reset, timed out). */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'REQUEST_SEND_ERROR',
]);

/** The endpoint (scheme, host and port) an SDK error's request went to, when it says. */
function endpointOfError(error: unknown): string | undefined {
  const url = (error as { request?: { url?: unknown } } | null)?.request?.url;
  if (typeof url !== 'string') return undefined;
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

const HOST_ROLES = {
  table: 'Storage Table Data Contributor',
  queue: 'Storage Queue Data Contributor',
  blob: 'Storage Blob Data Owner',
} as const;

/**
 * The one place that decides retryable versus terminal. Our own errors carry the decision; Graph and destination
 * failures are already ExportErrors. What reaches here raw comes from the host storage (ledger, queues): a 401/403
 * there is a missing role, which retrying cannot fix, so it is terminal and names the role to grant; anything else
 * (5xx, throttling, network, unknown) is retried by the queue.
 */
export function classifyError(error: unknown): ExportError {
  if (isExportError(error)) return error;
  const status = statusOfError(error);
  if (status === 401 || status === 403) {
    const service = hostServiceOf(error);
    const roles = service === undefined ? `${HOST_ROLES.table} and ${HOST_ROLES.queue}` : HOST_ROLES[service];
    return new ExportError(
      'HOST_STORAGE_FORBIDDEN',
      `The host storage account (AzureWebJobsStorage) refused a ${service ?? 'storage'} request with ${status}: grant the function app's identity ${roles} on the host storage account. ${errorMessage(error)}`,
      { status, cause: error },
    );
  }
  const networkCode = (error as { code?: unknown } | null)?.code;
  if (status === undefined && typeof networkCode === 'string' && NETWORK_CODES.has(networkCode)) {
    // No answer at all: name the setting and the endpoint, so a connection string on a closed port (Azurite not
    // started) says so. Retried like any transient failure.
    const service = hostServiceOf(error);
    const endpoint = endpointOfError(error);
    return new ExportError(
      'HOST_STORAGE_UNAVAILABLE',
      `The host storage account (AzureWebJobsStorage) could not be reached${endpoint === undefined ? '' : ` at ${endpoint}`}${service === undefined ? '' : ` (${service} service)`}: ${errorMessage(error)}. Check AzureWebJobsStorage (locally: is the storage emulator running there? without the setting the command line starts its own Azurite).`,
      { retryable: true, cause: error },
    );
  }
  return new ExportError('UNEXPECTED', errorMessage(error), { retryable: true, status, cause: error });
}
