import type { AttributeSet, BillingPeriod, DatasetId } from '../config';
import { exportRequestFor, runLabel, startLockKeyFor } from '../datasets';
import { errorMessage, isExportError } from '../errors';
import { redact, safeUrl } from '../redact';
import type { PipelineDeps } from './deps';
import { type ExportTarget, exportTargets } from './exportTargets';
import type { RunRecord, RunStatus, Trigger } from './ports';
import { endRunUnsuccessfully, isTerminal, runLogger } from './runLifecycle';

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
}

/** One (currency, period) of a start: the run it created, or the run already in flight. */
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
}

/**
 * Starts one run per (currency × period): takes the in-flight lock (idempotent starts), records the run,
 * asks Graph for the export and schedules its first status check.
 */
export async function startExports(request: StartRequest, deps: PipelineDeps): Promise<StartedRun[]> {
  const { targets, problems } = await exportTargets(request, deps);
  await deps.destination.ensureContainer();
  const started: StartedRun[] = [];
  for (const target of targets) started.push(await startOne(deps, request, target));
  // Invoice discovery failed: the other exports started; the invocation still fails so the problem is seen.
  if (problems[0] !== undefined) throw problems[0];
  return started;
}

async function startOne(deps: PipelineDeps, request: StartRequest, target: ExportTarget): Promise<StartedRun> {
  const { currency, billingPeriod, attributeSet, dataset } = target;
  const invoice = target.invoiceId === undefined ? {} : { invoiceId: target.invoiceId };
  const now = deps.clock.now();
  const runId = deps.newRunId(now);
  const maxAgeMs = deps.config.polling.maxWaitHours * 3600_000 + 3600_000;
  const holder = await deps.ledger.acquireStartLock(startLockKeyFor(target), runId, async (holderRunId, since) => {
    const held = await deps.ledger.getRun(holderRunId);
    if (held === undefined || isTerminal(held.value.status)) return true;
    // A run older than the maximum wait (plus copy time) is stuck: a new one may start.
    return deps.clock.now().getTime() - Date.parse(since) > maxAgeMs;
  });
  if (holder !== undefined) {
    const held = await deps.ledger.getRun(holder);
    deps.logger
      .child({ runId: holder, currency, billingPeriod, attributeSet, dataset, ...invoice })
      .info(`An export for ${runLabel(target)} is already in flight (run ${holder}); not starting another.`);
    return {
      runId: holder,
      currency,
      billingPeriod,
      attributeSet,
      status: held?.value.status ?? 'starting',
      alreadyInFlight: true,
      dataset,
      ...invoice,
    };
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
    startedAt: now.toISOString(),
    updatedAt: now.toISOString(),
    polls: 0,
    blobsCopied: 0,
    byteCount: 0,
  };
  await deps.ledger.createRun(run);
  runLogger(deps, run).info(`Run started (${request.trigger}).`);
  deps.telemetry.runStarted(run);
  const status = await requestExport(deps, run, 0);
  return { runId, currency, billingPeriod, attributeSet, status, alreadyInFlight: false, dataset, ...invoice };
}

/**
 * Asks Graph for the export of a run in `starting`. A transient failure schedules a `start` message
 * (the status queue retries it with a delay); a terminal one fails the run.
 */
export async function requestExport(deps: PipelineDeps, run: RunRecord, attempt: number): Promise<RunStatus> {
  const log = runLogger(deps, run);
  try {
    const started = await deps.graph.startExport(exportRequestFor(run));
    const operationUrl = safeUrl(started.operationUrl);
    const operationId = operationUrl.split('/').pop() ?? '';
    const delay = clampDelay(deps, started.retryAfterSeconds ?? deps.config.polling.initialDelaySeconds);
    await deps.ledger.updateRun(run.runId, {
      status: 'waiting',
      operationUrl,
      operationId,
      updatedAt: deps.clock.now().toISOString(),
    });
    await deps.queue.sendStatus({ version: 1, kind: 'poll', runId: run.runId, attempt: 0 }, delay);
    log.child({ operationId }).info(`Graph accepted the export; first status check in ${delay} s.`);
    return 'waiting';
  } catch (error) {
    if (isExportError(error) && !error.retryable) {
      await endRunUnsuccessfully(deps, run, 'failed', error.code, error.message);
      return 'failed';
    }
    if (attempt >= 10) {
      await endRunUnsuccessfully(
        deps,
        run,
        'failed',
        isExportError(error) ? error.code : 'GRAPH_NETWORK',
        `Graph did not accept the export after ${attempt + 1} attempts: ${errorMessage(error)}`,
      );
      return 'failed';
    }
    const delay = clampDelay(
      deps,
      (isExportError(error) ? error.retryAfterSeconds : undefined) ??
        deps.config.polling.initialDelaySeconds * 2 ** Math.min(attempt, 8),
    );
    const text = redact(errorMessage(error));
    log.info(`Starting the export failed transiently; retrying in ${delay} s: ${text}`);
    await deps.ledger.updateRun(run.runId, {
      lastError: text,
      polls: attempt + 1,
      updatedAt: deps.clock.now().toISOString(),
    });
    await deps.queue.sendStatus({ version: 1, kind: 'start', runId: run.runId }, delay);
    return 'starting';
  }
}

/** Bounds a delay to [1 s, EXPORT_POLL_MAX_SECONDS]. */
export function clampDelay(deps: PipelineDeps, seconds: number): number {
  return Math.min(Math.max(1, Math.ceil(seconds)), deps.config.polling.maxDelaySeconds);
}
