import { startLockKeyFor } from '../datasets';
import { type ErrorCode, errorMessage, isExportError } from '../errors';
import { redact } from '../redact';
import type { PipelineDeps } from './deps';
import type { Logger, RunRecord, RunStatus } from './ports';
import { TERMINAL_STATUSES } from './ports';

/** The logger of a run: every line carries runId, currency, period and (once known) the operation id. */
export function runLogger(deps: PipelineDeps, run: RunRecord): Logger {
  return deps.logger.child({
    runId: run.runId,
    currency: run.currency,
    billingPeriod: run.billingPeriod,
    attributeSet: run.attributeSet,
    operationId: run.operationId,
    ...(run.dataset === undefined ? {} : { dataset: run.dataset }),
    ...(run.invoiceId === undefined ? {} : { invoiceId: run.invoiceId }),
  });
}

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

function measurements(run: RunRecord, completedAt: string) {
  return {
    durationMs: Math.max(0, Date.parse(completedAt) - Date.parse(run.startedAt)),
    blobCount: run.blobCount ?? 0,
    byteCount: run.byteCount,
    polls: run.polls,
  };
}

/**
 * Ends a run that did not succeed: `failed` (an error), or `noData` (a warning). Releases the start lock,
 * records the reason (redacted) and sends ExportRunFailed / ExportRunCompleted.
 */
export async function endRunUnsuccessfully(
  deps: PipelineDeps,
  run: RunRecord,
  status: 'failed' | 'noData',
  errorCode: ErrorCode,
  reason: string,
): Promise<void> {
  const now = deps.clock.now().toISOString();
  const error = redact(reason);
  await deps.ledger.updateRun(run.runId, { status, completedAt: now, updatedAt: now, errorCode, error });
  await deps.ledger.releaseStartLock(startLockKeyFor(run), run.runId);
  deps.manifests.delete(run.runId);
  const log = runLogger(deps, run);
  const ended = { ...run, status, completedAt: now };
  if (status === 'noData') {
    log.warn(`Run ended noData: ${error}`);
    deps.telemetry.runCompleted({ ...ended, status }, measurements(ended, now));
  } else {
    log.error(`Run failed (${errorCode}): ${error}`);
    deps.telemetry.runFailed({ ...ended, status, errorCode, error }, measurements(ended, now));
  }
}

/** Ends a run successfully (`succeeded` or `unchanged`), releases its lock, sends ExportRunCompleted. */
export async function endRunSuccessfully(
  deps: PipelineDeps,
  run: RunRecord,
  status: 'succeeded' | 'unchanged',
  fields: Partial<RunRecord> = {},
): Promise<void> {
  const now = fields.completedAt ?? deps.clock.now().toISOString();
  await deps.ledger.updateRun(run.runId, { ...fields, status, completedAt: now, updatedAt: now });
  await deps.ledger.releaseStartLock(startLockKeyFor(run), run.runId);
  deps.manifests.delete(run.runId);
  const ended = { ...run, ...fields, status, completedAt: now };
  runLogger(deps, ended).info(
    status === 'unchanged'
      ? `Run ended unchanged: Graph data eTag ${ended.eTag ?? ''} equals the newest complete run; nothing copied.`
      : `Run succeeded: ${ended.blobCount ?? 0} blobs, ${ended.byteCount} bytes in ${ended.path ?? ''}.`,
  );
  deps.telemetry.runCompleted({ ...ended, status }, measurements(ended, now));
}

/**
 * Handles an error thrown inside a step: terminal errors end the run at once (returned normally so
 * the queue deletes the message); retryable ones are noted on the run and rethrown so the queue
 * retries the message and, after maxDequeueCount, poisons it.
 */
export async function handleStepError(deps: PipelineDeps, run: RunRecord, error: unknown): Promise<void> {
  const log = runLogger(deps, run);
  if (isExportError(error) && !error.retryable) {
    await endRunUnsuccessfully(deps, run, 'failed', error.code, error.message);
    return;
  }
  const text = redact(errorMessage(error));
  const code = isExportError(error) ? error.code : 'UNEXPECTED';
  log.info(`Transient problem (${code}), the queue retries: ${text}`);
  await deps.ledger
    .updateRun(run.runId, { lastError: `${code}: ${text}`, updatedAt: deps.clock.now().toISOString() })
    .catch(() => undefined);
  throw error;
}
