import { crashPoint } from '../crashPoints';
import { startLockKeyFor } from '../datasets';
import { classifyError, type ErrorCode, errorMessage } from '../errors';
import { redact } from '../redact';
import type { PipelineDeps } from './deps';
import { completeCommitted, completeFromManifest } from './finalizeRun';
import { reportMissingRun } from './missingRun';
import type { Logger, RunRecord, RunStatus, Versioned } from './ports';
import { TERMINAL_STATUSES } from './ports';

/**
 * The run state machine: the one module that changes a run's status (SPEC section 6, "One state machine, final
 * end states"). Every change is conditional on the ledger row's ETag as it was read, so of two workers that read
 * the same state only one moves the run on; terminal states are never left; the worker whose write moved the run
 * into a terminal state (and only it) sends the run's one ExportRunCompleted or ExportRunFailed event.
 *
 *   starting ─> waiting ─> copying ─> succeeded
 *      │           │  │        └────> failed
 *      │           │  └─> unchanged | noData | failed
 *      └─> failed  └─> waiting (a status check: polls + 1)
 */
const ALLOWED: Record<RunStatus, readonly RunStatus[]> = {
  starting: ['starting', 'waiting', 'failed'],
  waiting: ['waiting', 'copying', 'unchanged', 'noData', 'failed'],
  copying: ['copying', 'succeeded', 'failed'],
  succeeded: [],
  unchanged: [],
  noData: [],
  failed: [],
};

/** How often a step reads the run again after losing a race before it lets the queue retry. */
const MAX_RACES = 8;

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function canMove(from: RunStatus, to: RunStatus): boolean {
  return ALLOWED[from].includes(to);
}

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

function measurements(run: RunRecord, completedAt: string) {
  return {
    durationMs: Math.max(0, Date.parse(completedAt) - Date.parse(run.startedAt)),
    blobCount: run.blobCount ?? 0,
    byteCount: run.byteCount,
    polls: run.polls,
  };
}

/**
 * Moves a run from the state it was read in (`current`, with its ETag) to `to`, merging `fields`. Returns the run
 * as written, or undefined when someone else changed the row since it was read (the caller reads it again) or the
 * move is not allowed from that state (terminal states are final). A move into a terminal state releases the
 * series' start lock and sends the run's one completion event.
 */
export async function advance(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  to: RunStatus,
  fields: Partial<RunRecord> = {},
): Promise<RunRecord | undefined> {
  const from = current.value.status;
  if (!canMove(from, to)) return undefined;
  const now = deps.clock.now().toISOString();
  const terminal = isTerminal(to);
  const change: Partial<RunRecord> = {
    ...fields,
    status: to,
    updatedAt: now,
    ...(terminal ? { completedAt: fields.completedAt ?? now, announced: false } : {}),
  };
  if (change.error !== undefined) change.error = redact(change.error);
  const written = await deps.ledger.updateRun(current.value.runId, change, current.etag);
  if (!written) return undefined;
  const run: RunRecord = { ...current.value, ...change };
  if (terminal) {
    crashPoint('end.afterStatusWrite');
    await announceEnd(deps, run);
  }
  return run;
}

/**
 * After a run reached its end state: log, send the one end event (flushed), mark it sent, release the start lock.
 * A crash before the mark leaves `announced` false: the supervisor sends the event then (at least once, and
 * almost always exactly once: only a crash between the flush and the mark repeats it).
 */
export async function announceEnd(deps: PipelineDeps, run: RunRecord): Promise<void> {
  deps.manifests.delete(run.runId);
  const log = runLogger(deps, run);
  const completedAt = run.completedAt ?? deps.clock.now().toISOString();
  switch (run.status) {
    case 'succeeded':
      log.info(`Run succeeded: ${run.blobCount ?? 0} blobs, ${run.byteCount} bytes in ${run.path ?? ''}.`);
      deps.telemetry.runCompleted({ ...run, status: run.status }, measurements(run, completedAt));
      break;
    case 'unchanged':
      log.info(
        `Run ended unchanged: Graph data eTag ${run.eTag ?? ''} equals the newest complete run; nothing copied.`,
      );
      deps.telemetry.runCompleted({ ...run, status: run.status }, measurements(run, completedAt));
      break;
    case 'noData':
      log.warn(`Run ended noData: ${run.error ?? ''}`);
      deps.telemetry.runCompleted({ ...run, status: run.status }, measurements(run, completedAt));
      break;
    default: {
      const errorCode = run.errorCode ?? 'UNEXPECTED';
      const error = run.error ?? 'failed';
      log.error(`Run failed (${errorCode}): ${error}`);
      deps.telemetry.runFailed({ ...run, status: run.status, errorCode, error }, measurements(run, completedAt));
    }
  }
  await deps.telemetry.flush();
  await deps.ledger
    .updateRun(run.runId, { announced: true })
    .catch((error: unknown) =>
      log.info(`Marking the end event sent failed (the supervisor sends it again): ${redact(errorMessage(error))}`),
    );
  // The lock goes last: a crash before this leaves it held by an ended run, which the next start replaces.
  await deps.ledger
    .releaseStartLock(startLockKeyFor(run), run.runId)
    .catch((error: unknown) =>
      log.info(`Releasing the start lock failed (the next start replaces it): ${redact(errorMessage(error))}`),
    );
}

/**
 * Reads the run and applies `decide` to it until the conditional write wins or `decide` says there is nothing to
 * do (returns undefined). Lost races are read again; an ended run is left as it is.
 */
export async function withRun<T>(
  deps: PipelineDeps,
  runId: string,
  decide: (current: Versioned<RunRecord>) => Promise<{ done: true; value: T } | { done: false } | undefined>,
  /** The run as the caller just read it: the first look uses it instead of reading again. */
  read?: Versioned<RunRecord>,
): Promise<T | undefined> {
  for (let race = 0; race < MAX_RACES; race++) {
    const current = race === 0 && read !== undefined ? read : await deps.ledger.getRun(runId);
    if (current === undefined) return undefined;
    const outcome = await decide(current);
    if (outcome === undefined) return undefined;
    if (outcome.done) return outcome.value;
  }
  throw classifyError(
    new Error(`Run ${runId}: its ledger row kept changing under ${MAX_RACES} attempts to update it; retried.`),
  );
}

/**
 * Ends a run that did not succeed: `failed` (an error, an alert) or `noData` (a warning). A run whose folder
 * already holds its manifest.json is complete, whatever went wrong after that: it ends `succeeded` instead
 * (a complete folder is never reported failed). Returns the status the run ended in, or undefined if it had
 * already ended.
 */
export async function endRun(
  deps: PipelineDeps,
  runId: string,
  status: 'failed' | 'noData',
  errorCode: ErrorCode,
  reason: string,
  fields: Partial<RunRecord> = {},
): Promise<RunStatus | undefined> {
  return withRun(deps, runId, async (current) => {
    if (isTerminal(current.value.status)) return undefined;
    if (status === 'failed' && current.value.status === 'copying') {
      const completed = await completeFromManifest(deps, current);
      if (completed === 'race') return { done: false };
      if (completed === 'succeeded') return { done: true, value: 'succeeded' as RunStatus };
      if (completed === 'absent' && current.value.committedAt !== undefined) {
        // The finisher verified every blob and committed the run before this failure landed: complete it.
        try {
          const committed = await completeCommitted(deps, current);
          return committed === 'race' ? { done: false } : { done: true, value: 'succeeded' as RunStatus };
        } catch (error) {
          // manifest.json cannot be written (a terminal refusal): then the folder is not complete, and fails.
          if (classifyError(error).retryable) throw error;
        }
      }
    }
    const moved = await advance(deps, current, status, { ...fields, errorCode, error: redact(reason) });
    return moved === undefined ? { done: false } : { done: true, value: status as RunStatus };
  });
}

/**
 * Handles an error thrown inside a step, classified in one place (errors.ts classifyError): a terminal error ends
 * the run at once (the handler then returns normally, so the queue deletes the message); a retryable one is noted
 * on the run and rethrown, so the queue retries the message and, after maxDequeueCount, poisons it.
 */
export async function handleStepError(deps: PipelineDeps, run: RunRecord, error: unknown): Promise<void> {
  const log = runLogger(deps, run);
  const classified = classifyError(error);
  const text = redact(errorMessage(classified));
  if (!classified.retryable) {
    try {
      const ended = await endRun(deps, run.runId, 'failed', classified.code, classified.message);
      // The row went missing under the step (deleted while the run was in flight): nothing can end the run now.
      if (ended === undefined && classified.code === 'RUN_NOT_FOUND') {
        reportMissingRun(deps, { runId: run.runId, queue: '', step: `A step of the run (${run.status})` });
      }
    } catch (recordError) {
      const recorded = classifyError(recordError);
      if (recorded.retryable) throw recordError;
      // The ledger itself refuses us (a missing role): say so loudly, since the run cannot be marked failed.
      const why = redact(errorMessage(recorded));
      log.error(`Run failed (${classified.code}): ${text}. It could not be recorded as failed: ${why}`);
      const now = deps.clock.now().toISOString();
      deps.telemetry.runFailed(
        { ...run, status: 'failed', errorCode: classified.code, error: text },
        measurements(run, now),
      );
    }
    return;
  }
  log.info(`Transient problem (${classified.code}), the queue retries: ${text}`);
  await noteLastError(deps, run.runId, `${classified.code}: ${text}`).catch(() => undefined);
  throw error;
}

/**
 * Notes a retried problem on a run that has not ended, conditional on the row as read just now: `run` may be what a
 * delivery read before another worker ended the run, and an ended run is never written again.
 */
async function noteLastError(deps: PipelineDeps, runId: string, lastError: string): Promise<void> {
  const current = await deps.ledger.getRun(runId);
  if (current === undefined || isTerminal(current.value.status)) return;
  // A lost race (false) drops the note: it is informational, and the run moved on meanwhile.
  await deps.ledger.updateRun(runId, { lastError, updatedAt: deps.clock.now().toISOString() }, current.etag);
}
