import type { HttpResponseInit, InvocationContext } from '@azure/functions';
import type * as Composition from '../composition';
import { errorMessage, isExportError } from '../errors';
import type { LogSink } from '../logging';
import type { PipelineDeps } from '../pipeline/deps';
import { redact } from '../redact';

/** Log lines of an invocation go to the Functions host (and so to Application Insights traces). */
export function contextSink(context: InvocationContext): LogSink {
  return (level, line) => {
    if (level === 'error') context.error(line);
    else if (level === 'warn') context.warn(line);
    else context.log(line);
  };
}

/**
 * A module required with the first invocation that needs it. The Functions host imports every function file at
 * start-up (cold start), where a function file only registers itself: the pipeline (zod) and composition.ts (the
 * Storage, Identity and Graph SDKs, telemetry) are loaded when a handler first runs.
 */
export function lazy<T>(load: () => T): () => T {
  let loaded: { value: T } | undefined;
  return () => {
    loaded ??= { value: load() };
    return loaded.value;
  };
}

const composition = lazy(() => require('../composition') as typeof Composition);

/** The pipeline dependencies of this invocation. A bad configuration throws CONFIG_INVALID (logged as an error). */
export function depsFor(context: InvocationContext): PipelineDeps {
  try {
    return composition().getDeps(contextSink(context));
  } catch (error) {
    context.error(redact(errorMessage(error)));
    throw error;
  }
}

/** An RFC 9457 problem response. */
export function problem(status: number, title: string, detail: string, code?: string): HttpResponseInit {
  return {
    status,
    headers: { 'content-type': 'application/problem+json' },
    jsonBody: { type: 'about:blank', title, status, detail: redact(detail), ...(code === undefined ? {} : { code }) },
  };
}

/** Maps an error thrown by the core into an HTTP problem: configuration problems are 500 with the list. */
export function errorResponse(error: unknown, context: InvocationContext): HttpResponseInit {
  const message = redact(errorMessage(error));
  context.error(message);
  if (isExportError(error) && error.code === 'REQUEST_INVALID')
    return problem(400, 'Invalid request', message, error.code);
  if (isExportError(error) && error.code === 'RUN_NOT_FOUND') return problem(404, 'Run not found', message, error.code);
  if (isExportError(error)) return problem(500, 'Export error', message, error.code);
  return problem(500, 'Internal error', 'Unexpected error; see the function logs in Application Insights.');
}

/** The queue trigger's dequeue count (1 on first delivery). */
export function dequeueCount(context: InvocationContext): number {
  const value = context.triggerMetadata?.['dequeueCount'];
  return typeof value === 'number' ? value : Number(value ?? 1) || 1;
}

/** An invalid queue message is rejected and recorded (retrying cannot make it valid), never crashing the worker. */
export async function rejectMessage(
  deps: PipelineDeps,
  queue: string,
  queueItem: unknown,
  error: unknown,
): Promise<void> {
  const reason = redact(errorMessage(error));
  deps.logger.error(reason);
  await deps.ledger.recordRejectedMessage(
    queue,
    reason,
    redact(JSON.stringify(queueItem) ?? String(queueItem)).slice(0, 500),
  );
}
