import type { AttributeSet, BillingPeriod, DatasetId } from '../config';
import { crashPoint } from '../crashPoints';
import { exportRequestFor, runLabel, startLockKeyFor } from '../datasets';
import { classifyError, ExportError, errorMessage, isExportError } from '../errors';
import { redact, safeUrl } from '../redact';
import type { PipelineDeps } from './deps';
import { type ExportTarget, exportTargets, type TargetRequest } from './exportTargets';
import { graphEndpoint } from './pollExportStatus';
import type { RunRecord, RunStatus, Trigger, Versioned } from './ports';
import { advance, endRun, isTerminal, runLogger, withRun } from './runStateMachine';

/** What to start: defaults come from the configuration; the HTTP endpoint and the command line may narrow them. */
export interface StartRequest {
  trigger: Trigger;
  currencies?: string[] | undefined;
  billingPeriods?: BillingPeriod[] | undefined;
  attributeSet?: AttributeSet | undefined;
  /** Copy even when the Graph data eTag equals the newest complete run's. */
  force?: boolean | undefined;
  /** Datasets to export (default EXPORT_DATASETS). */
  datasets?: DatasetId[] | undefined;
  /** Invoices of the billed datasets (default: invoice discovery, when on). */
  invoiceIds?: string[] | undefined;
  /** Attempts to have Graph accept each export before its run fails (default 10; the command line asks for fewer). */
  maxStartAttempts?: number | undefined;
  /** Told of billed datasets for which nothing is started, and why. */
  onSkipped?: TargetRequest['onSkipped'];
}

/** One (currency, period) of a start: the run it created, or the run already in flight, or why it could not start. */
export interface StartedRun {
  runId: string;
  currency: string;
  billingPeriod: BillingPeriod;
  attributeSet: AttributeSet;
  status: RunStatus;
  /** True when a run for the same currency, period and attribute set was already in flight (no new export). */
  alreadyInFlight: boolean;
  dataset: DatasetId;
  /** The invoice of a billed dataset run. */
  invoiceId?: string | undefined;
  /** Set when this item could not be started at all (no run, or a run that failed at once): the reason, redacted. */
  error?: string | undefined;
}

/**
 * A holder of the start lock without a ledger row yet may be a starter a few milliseconds ahead of us; one that has
 * not written its row after this long died between the lock and the row, and its lock is taken over.
 */
const START_GRACE_MS = 15_000;

/** How long one start attempt may take: the Graph call with its retries, then a minute of recording retries. */
const START_CALL_WINDOW_MS = 3 * 60_000;

/** Attempts to have Graph accept an export before the run fails. */
const MAX_START_ATTEMPTS = 10;

/**
 * Waits between in-process attempts of a write that must not be lost once Graph accepted an export (the operation
 * URL, the first status check): about a minute in all, so a short host-storage outage never costs a second export.
 */
const RECORD_RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000, 8000, 15000, 30000];

/** Waits between attempts to create the destination container within one target's start (a few seconds in all). */
const CONTAINER_RETRY_DELAYS_MS = [500, 1000, 2000];

/**
 * Starts one run per (currency × period), each on its own: one that fails does not keep the others from starting.
 * Every item is tried; the failures come back with an `error` (the timer then fails its invocation, listing them).
 */
export async function startExports(request: StartRequest, deps: PipelineDeps): Promise<StartedRun[]> {
  const { targets, problems } = await exportTargets(request, deps);
  // Checked again for each target until it once succeeds, a transient refusal retried briefly: one destination
  // hiccup (a 503) must not fail every remaining target of the day untried.
  let containerReady = false;
  const ensureContainer = async () => {
    for (let attempt = 0; !containerReady; attempt++) {
      try {
        await deps.destination.ensureContainer(attempt > 0);
        containerReady = true;
      } catch (error) {
        const wait = CONTAINER_RETRY_DELAYS_MS[attempt];
        if (!classifyError(error).retryable || wait === undefined) throw error;
        await deps.sleep(wait);
      }
    }
  };
  const started: StartedRun[] = [];
  for (const target of targets) {
    try {
      await ensureContainer();
      started.push(await startOne(deps, request, target));
    } catch (error) {
      const text = redact(errorMessage(classifyError(error)));
      deps.logger.child(targetFields(target)).error(`Could not start the export of ${runLabel(target)}: ${text}`);
      started.push({
        runId: '',
        currency: target.currency,
        billingPeriod: target.billingPeriod,
        attributeSet: target.attributeSet,
        dataset: target.dataset,
        ...(target.invoiceId === undefined ? {} : { invoiceId: target.invoiceId }),
        status: 'failed',
        alreadyInFlight: false,
        error: text,
      });
    }
  }
  // Invoice discovery failed: the other exports started; the invocation still fails so the problem is seen.
  const [problem] = problems;
  if (problem !== undefined) {
    const failures = startExportFailures(started);
    if (failures.length === 0) throw problem;
    throw new ExportError(problem.code, `${problem.message}\nAlso not started:\n- ${failures.join('\n- ')}`, {
      retryable: problem.retryable,
    });
  }
  return started;
}

function targetFields(target: ExportTarget) {
  return {
    currency: target.currency,
    billingPeriod: target.billingPeriod,
    attributeSet: target.attributeSet,
    dataset: target.dataset,
    ...(target.invoiceId === undefined ? {} : { invoiceId: target.invoiceId }),
  };
}

/** The items of a start that could not be started, as one line each (for the timer's error and the CLI). */
export function startExportFailures(started: StartedRun[]): string[] {
  return started
    .filter((run) => run.error !== undefined || (run.status === 'failed' && !run.alreadyInFlight))
    .map(
      (run) =>
        `${run.currency} ${run.billingPeriod} ${run.attributeSet}${run.runId === '' ? '' : ` (run ${run.runId})`}: ${run.error ?? 'failed at once; see the run'}`,
    );
}

async function startOne(deps: PipelineDeps, request: StartRequest, target: ExportTarget): Promise<StartedRun> {
  const { currency, billingPeriod, attributeSet, dataset } = target;
  const invoice = target.invoiceId === undefined ? {} : { invoiceId: target.invoiceId };
  const now = deps.clock.now();
  const runId = deps.newRunId(now);
  const maxAgeMs = deps.config.supervision.maxRunHours * 3600_000;
  const age = (since: string) => deps.clock.now().getTime() - Date.parse(since);
  const key = startLockKeyFor(target);
  const isStale = async (holderRunId: string, heldMs: number): Promise<boolean> => {
    const held = await deps.ledger.getRun(holderRunId);
    // No row yet: the holder may be a start a few milliseconds ahead of us (timer and Test/Run at once), which
    // must win. Only a holder that never wrote its row within the grace (it died there) is replaced. The grace is
    // measured by the storage service's clock: the holder's may be minutes off ours.
    if (held === undefined) return heldMs > START_GRACE_MS;
    if (isTerminal(held.value.status)) return true;
    // Past every limit (the supervisor fails such a run; this is the backstop if it did not run). The old run is
    // failed first, with its end event, so that replacing its lock never leaves it in flight for ever.
    const heldAge = age(held.value.startedAt);
    if (heldAge <= maxAgeMs) return false;
    await endRun(
      deps,
      holderRunId,
      'failed',
      'RUN_STALLED',
      `The run stalled while ${held.value.status}: it had not ended ${(heldAge / 3600_000).toFixed(1)} h after it started (limit: EXPORT_MAX_WAIT_HOURS plus ${deps.config.supervision.maxRunHours - deps.config.polling.maxWaitHours} h to copy) when run ${runId} started the same export. The new run exports the data.`,
    );
    return true;
  };
  let holder = await deps.ledger.acquireStartLock(key, runId, isStale);
  const lockedAt = deps.clock.now().getTime();
  crashPoint('start.afterLock');
  if (holder !== undefined) {
    let held = await waitForRow(deps, holder);
    if (held === undefined) {
      // The holder never recorded itself within the grace: it died between the lock and its row. Take over.
      deps.logger
        .child({ runId: holder, ...targetFields(target) })
        .warn(
          `Run ${holder} took the start lock of ${runLabel(target)} and never recorded itself (its process stopped); taking the lock over.`,
        );
      holder = await deps.ledger.acquireStartLock(key, runId, isStale);
      if (holder !== undefined) held = await deps.ledger.getRun(holder);
    }
    if (holder !== undefined) {
      const log = deps.logger.child({ runId: holder, ...targetFields(target) });
      const base = { runId: holder, currency, billingPeriod, attributeSet, dataset, ...invoice, alreadyInFlight: true };
      if (held === undefined) {
        const error = `Run ${holder} holds the start lock of ${runLabel(target)} but has not recorded itself; start again in a minute.`;
        log.warn(error);
        return { ...base, status: 'starting', error };
      }
      log.info(`An export for ${runLabel(target)} is already in flight (run ${holder}); not starting another.`);
      return { ...base, status: held.value.status };
    }
  }
  const run: RunRecord = {
    runId,
    trigger: request.trigger,
    currency,
    billingPeriod,
    attributeSet,
    dataset,
    ...invoice,
    force: request.force ?? false,
    status: 'starting',
    graphBaseUrl: graphEndpoint(deps.config.graph.baseUrl),
    ...(request.maxStartAttempts === undefined ? {} : { maxStartAttempts: request.maxStartAttempts }),
    startedAt: now.toISOString(),
    updatedAt: now.toISOString(),
    polls: 0,
    blobsCopied: 0,
    byteCount: 0,
    startAttempts: 0,
  };
  await deps.ledger.createRun(run);
  crashPoint('start.afterRunRow');
  const result: StartedRun = {
    runId,
    currency,
    billingPeriod,
    attributeSet,
    dataset,
    ...invoice,
    status: 'starting',
    alreadyInFlight: false,
  };
  if (deps.clock.now().getTime() - lockedAt > START_GRACE_MS / 2) {
    // Recording the run took long: another starter may have taken the lock over meanwhile. Ask Graph only while
    // the lock is still ours (the holder may take it again; nobody else is replaced here).
    const other = await deps.ledger.acquireStartLock(key, runId, async () => false);
    if (other !== undefined) {
      const reason = `Superseded: recording this run took over ${START_GRACE_MS / 2000} s and run ${other} took the start lock of ${runLabel(target)} meanwhile; that run exports the data.`;
      await endRun(deps, runId, 'failed', 'START_FAILED', reason);
      return { ...result, status: 'failed', error: reason };
    }
  }
  runLogger(deps, run).info(`Run started (${request.trigger}).`);
  deps.telemetry.runStarted(run);
  try {
    const current = await deps.ledger.getRun(runId);
    if (current !== undefined) result.status = await requestExport(deps, current, 0);
  } catch (error) {
    // The run exists; what failed is left to the retried message or the supervisor. Reported with the others.
    result.error = redact(errorMessage(classifyError(error)));
    runLogger(deps, run).error(`Starting the export did not complete: ${result.error}`);
    return result;
  }
  if (result.status === 'failed') {
    const ended = await deps.ledger.getRun(runId);
    result.error = ended?.value.error ?? 'failed';
  }
  return result;
}

/**
 * The run of a lock holder; a starter a moment ahead of us may not have written it yet (waits up to the grace, plus
 * 2 s: the service's time the lock's age is measured by comes in whole seconds).
 */
async function waitForRow(deps: PipelineDeps, runId: string): Promise<Versioned<RunRecord> | undefined> {
  const polls = Math.ceil((START_GRACE_MS + 2000) / 500);
  for (let attempt = 0; attempt < polls; attempt++) {
    const found = await deps.ledger.getRun(runId);
    if (found !== undefined) return found;
    await deps.sleep(500);
  }
  return undefined;
}

/**
 * Asks Graph for the export of a run in `starting` (read as `current`), as start attempt `expected` + 1. A start
 * (message) scheduled when the run had made `expected` attempts goes on only while that is still so, and marks the
 * attempt on the run first (ETag-conditional): of two deliveries of one start, or a start and the supervisor's
 * re-send of it, only one calls Graph; a stale one is dropped. A transient failure
 * schedules a `start` message (retried with a delay); a terminal one fails the run. Once Graph accepted, the
 * operation URL is recorded and the first status check scheduled, each with in-process retries; the check
 * carries the operation URL when it could not be recorded, and the run's nextCheckAt is pushed past that check's
 * due time, so the supervisor does not take it for an unanswered start meanwhile. Only a process that dies between
 * Graph's answer and those writes (or host storage refusing every one of them for a minute) leaves the run to the
 * supervisor, which then requests a second export (and says so).
 */
export async function requestExport(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  expected: number,
): Promise<RunStatus> {
  if ((current.value.startAttempts ?? 0) !== expected) {
    runLogger(deps, current.value).info(
      `Start attempt ${expected + 1} was already made (the run is at ${current.value.startAttempts ?? 0}): this start is a duplicate.`,
    );
    return current.value.status;
  }
  const attempt = expected + 1;
  const claimed = await advance(deps, current, 'starting', {
    startAttempts: attempt,
    // The call to Graph and the writes after it take up to about three minutes (timeouts, a minute of retries):
    // the supervisor leaves the run alone until then (or for EXPORT_STALL_MINUTES, if that is shorter).
    nextCheckAt: new Date(
      deps.clock.now().getTime() + Math.min(START_CALL_WINDOW_MS, deps.config.supervision.stallMinutes * 60_000),
    ).toISOString(),
  });
  if (claimed === undefined) return (await deps.ledger.getRun(current.value.runId))?.value.status ?? 'starting';
  const run = claimed;
  const log = runLogger(deps, run);
  let operationUrl: string;
  let retryAfterSeconds: number | undefined;
  try {
    const started = await deps.graph.startExport(exportRequestFor(run));
    operationUrl = safeUrl(started.operationUrl);
    retryAfterSeconds = started.retryAfterSeconds;
  } catch (error) {
    return startFailed(deps, run, attempt, error);
  }
  crashPoint('start.afterGraphAccepted');
  const operationId = operationUrl.split('/').pop() ?? '';
  const delay = clampDelay(deps, retryAfterSeconds ?? deps.config.polling.initialDelaySeconds);
  const dueMs = deps.clock.now().getTime() + delay * 1000;
  const nextCheckAt = new Date(dueMs).toISOString();
  // Should the operation not be recorded, the first status check carries it: until that check is due (plus the
  // time to send it), the run must not look like a start that never got an answer, or the supervisor would ask
  // Graph again. The start attempt's own nextCheckAt may be much earlier (a Retry-After of 15 min, say).
  const holdUntil = { nextCheckAt: new Date(dueMs + START_CALL_WINDOW_MS).toISOString() };
  let held = false;
  let recorded = false;
  try {
    recorded = await retrying(deps, log, 'recording the Graph operation', async () => {
      try {
        const value = await withRun(deps, run.runId, async (latest) => {
          if (latest.value.status !== 'starting')
            return { done: true, value: latest.value.operationUrl === operationUrl };
          const moved = await advance(deps, latest, 'waiting', { operationUrl, operationId, nextCheckAt });
          return moved === undefined ? { done: false } : { done: true, value: true };
        });
        return value ?? false;
      } catch (error) {
        // Not conditional, so no race can make it lose: pushing nextCheckAt later is right in every state (an
        // ended run ignores it), and it changes no status.
        held ||= await deps.ledger.updateRun(run.runId, holdUntil).catch(() => false);
        throw error;
      }
    });
  } catch (error) {
    log.warn(
      `Graph accepted the export (operation ${operationId}) but recording it failed: ${redact(errorMessage(error))}. The first status check carries the operation instead${held ? '' : '; marking the run as waiting for that check failed too, so should the check come later than EXPORT_STALL_MINUTES after this start, the supervisor asks Graph for a second export'}.`,
    );
  }
  crashPoint('start.afterWaitingWrite');
  await retrying(deps, log, 'scheduling the first status check', () =>
    deps.queue.sendStatus(
      { version: 1, kind: 'poll', runId: run.runId, attempt: 0, ...(recorded ? {} : { operationUrl }) },
      delay,
    ),
  );
  log.child({ operationId }).info(`Graph accepted the export; first status check in ${delay} s.`);
  return 'waiting';
}

/** A failed request to start the export: retried later with a delay (transient), or the run fails. */
async function startFailed(deps: PipelineDeps, run: RunRecord, attempt: number, error: unknown): Promise<RunStatus> {
  const log = runLogger(deps, run);
  const classified = classifyError(error);
  if (!classified.retryable) {
    return (await endRun(deps, run.runId, 'failed', classified.code, classified.message)) ?? 'failed';
  }
  if (attempt >= (run.maxStartAttempts ?? MAX_START_ATTEMPTS)) {
    await endRun(
      deps,
      run.runId,
      'failed',
      isExportError(error) ? error.code : 'GRAPH_NETWORK',
      `Graph did not accept the export after ${attempt} attempts: ${errorMessage(error)}`,
    );
    return 'failed';
  }
  const delay = clampDelay(
    deps,
    (isExportError(error) ? error.retryAfterSeconds : undefined) ??
      deps.config.polling.initialDelaySeconds * 2 ** Math.min(attempt - 1, 8),
  );
  const text = redact(errorMessage(error));
  log.info(`Starting the export failed transiently; retrying in ${delay} s: ${text}`);
  await deps.ledger.updateRun(run.runId, {
    lastError: text,
    nextCheckAt: new Date(deps.clock.now().getTime() + delay * 1000).toISOString(),
    updatedAt: deps.clock.now().toISOString(),
  });
  await deps.queue.sendStatus({ version: 1, kind: 'start', runId: run.runId, attempt }, delay);
  return 'starting';
}

/** Runs a host-storage write with in-process retries for about a minute; a terminal failure is not retried. */
async function retrying<T>(
  deps: PipelineDeps,
  log: ReturnType<typeof runLogger>,
  what: string,
  write: () => Promise<T>,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      const wait = RECORD_RETRY_DELAYS_MS[attempt];
      if (!classifyError(error).retryable || wait === undefined) throw error;
      log.info(`${what} failed (attempt ${attempt + 1}), trying again in ${wait} ms: ${redact(errorMessage(error))}`);
      await deps.sleep(wait);
    }
  }
}

/** Bounds a delay to [1 s, EXPORT_POLL_MAX_SECONDS]. */
export function clampDelay(deps: PipelineDeps, seconds: number): number {
  return Math.min(Math.max(1, Math.ceil(seconds)), deps.config.polling.maxDelaySeconds);
}
