import { billingMonthFromRoot } from '../adapters/graph/operationParser';
import { crashPoint } from '../crashPoints';
import { fallbackBillingMonth, layoutFor } from '../datasets';
import { ExportError, isExportError } from '../errors';
import { QueueNames } from '../names';
import { safeUrl } from '../redact';
import { copyMessagesFor } from './copyBatches';
import type { PipelineDeps } from './deps';
import { finalizeRunIfComplete } from './finalizeRun';
import { reportMissingRun } from './missingRun';
import type { ExportManifest, RunRecord, StatusMessage, Versioned } from './ports';
import { advance, endRun, handleStepError, isTerminal, runLogger } from './runStateMachine';
import { clampDelay, requestExport } from './startExports';

/** Graph's failed-operation code for "No data available": a warning (`noData`), not an alert. */
export const NO_DATA_CODE = '5000';

/**
 * One status check (queue export-status). Running: re-schedules itself with Retry-After, or a doubling
 * back-off, until the maximum wait. Failed: `noData` (code 5000) or `failed`. Succeeded: `unchanged`
 * when the data eTag equals the newest complete run's, otherwise one copy message per blob.
 */
export async function pollExportStatus(message: StatusMessage, deps: PipelineDeps): Promise<void> {
  const found = await deps.ledger.getRun(message.runId);
  if (found === undefined) {
    const step = message.kind === 'start' ? 'The start' : 'A status check';
    reportMissingRun(deps, { runId: message.runId, queue: QueueNames.status, step });
    return;
  }
  const run = found.value;
  const log = runLogger(deps, run);
  if (isTerminal(run.status)) {
    log.info(`Duplicate status check: the run is already ${run.status}; nothing to do.`);
    return;
  }
  try {
    checkGraphEndpoint(deps, run);
    switch (run.status) {
      case 'copying':
        // A status message of a copying run is a retried or duplicated fan-out: make sure every copy message
        // went out, and complete the run if its blobs are all there (an export with no blobs, say).
        await resumeCopying(deps, run, false);
        return;
      case 'starting':
        if (message.kind === 'start') {
          await requestExport(deps, found, message.attempt ?? run.startAttempts ?? 0);
        } else if (message.operationUrl !== undefined) {
          await adoptOperation(deps, found, message.operationUrl, message.attempt);
        } else {
          log.info('Status check of a run Graph has not accepted yet: ignored.');
        }
        return;
      case 'waiting':
        if (message.kind === 'start') {
          // The start that recorded the operation failed before its first status check went out: send it now.
          log.info('Start message of a run already waiting: resuming its status checks.');
          await deps.queue.sendStatus({ version: 1, kind: 'poll', runId: run.runId, attempt: run.polls }, 1);
          return;
        }
        if (message.attempt < run.polls) {
          log.info(`Duplicate status check (check ${message.attempt}, the run is at ${run.polls}): ignored.`);
          return;
        }
        await poll(deps, found, message.attempt);
        return;
    }
  } catch (error) {
    await handleStepError(deps, run, error);
  }
}

/** The form of a Graph root that runs record and compare: scheme, host and path, without a trailing slash. */
export function graphEndpoint(baseUrl: string): string {
  return safeUrl(baseUrl).replace(/\/+$/, '');
}

/**
 * A run is bound to the Graph root it started with. A host configured with another GRAPH_BASE_URL (real Graph and
 * the emulator, or two emulators) must not finish it against a different service: the run fails with the reason.
 * Runs recorded before the field existed carry none and are not checked.
 */
export function checkGraphEndpoint(deps: PipelineDeps, run: RunRecord): void {
  if (run.graphBaseUrl === undefined) return;
  const here = graphEndpoint(deps.config.graph.baseUrl);
  if (run.graphBaseUrl === here) return;
  throw new ExportError(
    'GRAPH_ENDPOINT_CHANGED',
    `Run ${run.runId} started against the Graph root ${run.graphBaseUrl}, but this host's GRAPH_BASE_URL is ${here}: the run is not finished against another service. Finish it from a host configured with ${run.graphBaseUrl}, or start a new run here.`,
  );
}

/** A first status check that carries the operation URL Graph gave, because recording it had failed. */
async function adoptOperation(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  operationUrl: string,
  attempt: number,
): Promise<void> {
  const url = safeUrl(operationUrl);
  const host = new URL(url).host;
  if (host !== new URL(deps.config.graph.baseUrl).host && host !== 'graph.microsoft.com') {
    runLogger(deps, current.value).warn(`A status check carries an operation on another host (${host}): ignored.`);
    return;
  }
  const moved = await advance(deps, current, 'waiting', { operationUrl: url, operationId: url.split('/').pop() ?? '' });
  if (moved === undefined)
    throw new ExportError('MESSAGE_INVALID', 'The run changed while adopting its operation.', { retryable: true });
  runLogger(deps, moved).info('Recorded the Graph operation carried by the status check.');
  const latest = await deps.ledger.getRun(moved.runId);
  if (latest !== undefined) await poll(deps, latest, attempt);
}

async function poll(deps: PipelineDeps, current: Versioned<RunRecord>, attempt: number): Promise<void> {
  const run = current.value;
  const log = runLogger(deps, run);
  if (run.operationUrl === undefined) {
    await endRun(deps, run.runId, 'failed', 'MESSAGE_INVALID', 'Status check for a run without a Graph operation.');
    return;
  }
  const now = deps.clock.now();
  const waitedMs = now.getTime() - Date.parse(run.startedAt);
  const maxWaitMs = deps.config.polling.maxWaitHours * 3600_000;
  let state: Awaited<ReturnType<typeof deps.graph.getOperation>>;
  try {
    state = await deps.graph.getOperation(run.operationUrl);
  } catch (error) {
    // Throttled or unavailable with a long Retry-After: schedule the next check ourselves, without poisoning.
    if (isExportError(error) && error.retryable && error.retryAfterSeconds !== undefined && waitedMs < maxWaitMs) {
      const delay = clampDelay(deps, error.retryAfterSeconds);
      log.info(`Graph asked to wait (${error.code}); next status check in ${delay} s.`);
      // Counted like any check, so two deliveries of a throttled check cannot both go on as two chains.
      await scheduleCheck(deps, current, run.polls + 1, delay, run.polls + 1);
      return;
    }
    throw error;
  }
  crashPoint('poll.afterGraphAnswer');
  const polls = run.polls + 1;
  switch (state.kind) {
    case 'running': {
      if (state.unknownStatus) {
        log.warn(`Graph reported an unknown operation status "${state.status}"; treated as still running.`);
      }
      if (waitedMs >= maxWaitMs) {
        await endRun(
          deps,
          run.runId,
          'failed',
          'EXPORT_TIMEOUT',
          `The Graph export was still ${state.status} after ${(waitedMs / 3600_000).toFixed(2)} h (EXPORT_MAX_WAIT_HOURS=${deps.config.polling.maxWaitHours}); gave up after ${polls} status checks. The next run starts a new export.`,
          { polls },
        );
        return;
      }
      const backoff = deps.config.polling.initialDelaySeconds * 2 ** Math.min(attempt, 16);
      const delay = clampDelay(deps, state.retryAfterSeconds ?? backoff);
      if (await scheduleCheck(deps, current, polls, delay, polls)) {
        log.info(`Export ${state.status}; next status check in ${delay} s (check ${polls}).`);
      }
      return;
    }
    case 'failed': {
      const detail = `Graph export operation failed with code ${state.code}: ${state.message || '(no message)'}`;
      if (state.code === NO_DATA_CODE) {
        await endRun(deps, run.runId, 'noData', 'EXPORT_NO_DATA', detail, { polls });
      } else {
        await endRun(
          deps,
          run.runId,
          'failed',
          'EXPORT_FAILED',
          `${detail}. The operation is terminal; the next run (or a manual run) starts a new export.`,
          { polls },
        );
      }
      return;
    }
    case 'succeeded':
      await fanOut(deps, current, polls, state.manifest);
      return;
  }
}

/**
 * Records the check (ETag-conditional: of two deliveries of one check, only one goes on) and then schedules the
 * next one. A crash between the two leaves the run waiting with nothing scheduled: the supervisor resumes it once
 * `nextCheckAt` is overdue. False when another delivery won.
 */
async function scheduleCheck(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  attempt: number,
  delay: number,
  polls: number,
): Promise<boolean> {
  const nextCheckAt = new Date(deps.clock.now().getTime() + delay * 1000).toISOString();
  const moved = await advance(deps, current, 'waiting', { polls, nextCheckAt });
  if (moved === undefined) {
    runLogger(deps, current.value).info('Another delivery of this status check went on first; this one stops.');
    return false;
  }
  crashPoint('poll.afterPollWrite');
  await deps.queue.sendStatus({ version: 1, kind: 'poll', runId: current.value.runId, attempt }, delay);
  crashPoint('poll.afterPollMessage');
  return true;
}

async function fanOut(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  polls: number,
  manifest: ExportManifest,
): Promise<void> {
  const run = current.value;
  const now = deps.clock.now().toISOString();
  const billingMonth = billingMonthFromRoot(manifest.rootDirectory) ?? fallbackBillingMonth(run, run.startedAt);
  const layout = layoutFor(deps.config, run, billingMonth);
  const manifestFields: Partial<RunRecord> = {
    polls,
    billingMonth,
    manifestId: manifest.id,
    eTag: manifest.eTag,
    schemaVersion: manifest.schemaVersion,
    dataFormat: manifest.dataFormat,
    manifestCreatedDateTime: manifest.createdDateTime,
    partnerTenantId: manifest.partnerTenantId,
    rootDirectory: safeUrl(manifest.rootDirectory),
    blobCount: manifest.blobCount,
  };

  if (!run.force) {
    const latest = await deps.destination.readJson(layout.latestPath);
    const latestETag =
      latest !== undefined && typeof latest.value === 'object' && latest.value !== null
        ? (latest.value as { eTag?: unknown }).eTag
        : undefined;
    if (typeof latestETag === 'string' && latestETag === manifest.eTag) {
      if ((await advance(deps, current, 'unchanged', manifestFields)) === undefined) {
        throw new ExportError('MESSAGE_INVALID', 'The run changed while ending it unchanged; the check is retried.', {
          retryable: true,
        });
      }
      return;
    }
  }

  const path = layout.runFolder;
  deps.manifests.set(run.runId, manifest);
  const names = manifest.blobs.map((b) => b.name);
  await deps.ledger.addBlobs(run.runId, names);
  crashPoint('fanout.afterBlobRows');
  const moved = await advance(deps, current, 'copying', { ...manifestFields, path, nextCheckAt: now });
  if (moved === undefined) {
    // Another delivery of this check moved the run first (or recorded something): read it again and let the
    // queue retry this message, which then finds the run copying and only makes sure the copies went out.
    throw new ExportError('MESSAGE_INVALID', 'The run changed while starting its copies; the check is retried.', {
      retryable: true,
    });
  }
  crashPoint('fanout.afterRunUpdate');
  runLogger(deps, moved).info(
    `Export succeeded: ${names.length} blobs to copy into ${path} (data eTag ${manifest.eTag}).`,
  );
  await resumeCopying(deps, moved, true);
}

/**
 * Makes sure every pending blob of a copying run has its copy message (`force`: send them even if they were sent
 * before, as the supervisor does for a run that stopped moving), records that they went out, and completes the
 * run when every blob is already there.
 */
export async function resumeCopying(deps: PipelineDeps, run: RunRecord, force: boolean): Promise<number> {
  let sent = 0;
  if (force || run.copiesQueuedAt === undefined) {
    const pending = (await deps.ledger.listBlobs(run.runId)).filter((b) => b.status !== 'copied');
    await deps.queue.sendCopies(
      copyMessagesFor(
        run.runId,
        pending.map((b) => b.name),
      ),
    );
    sent = pending.length;
    crashPoint('fanout.afterCopyMessages');
    await deps.ledger.updateRun(run.runId, { copiesQueuedAt: deps.clock.now().toISOString() });
  }
  await finalizeRunIfComplete(deps, run.runId);
  return sent;
}
