import { billingMonthFromRoot } from '../adapters/graph/operationParser';
import { fallbackBillingMonth, layoutFor } from '../datasets';
import { isExportError } from '../errors';
import { safeUrl } from '../redact';
import type { PipelineDeps } from './deps';
import { finalizeRunIfComplete } from './finalizeRun';
import type { ExportManifest, RunRecord, StatusMessage } from './ports';
import { endRunSuccessfully, endRunUnsuccessfully, handleStepError, isTerminal, runLogger } from './runLifecycle';
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
    deps.logger.child({ runId: message.runId }).warn('Status check for an unknown run: ignored.');
    return;
  }
  const run = found.value;
  const log = runLogger(deps, run);
  if (isTerminal(run.status) || run.status === 'copying') {
    log.info(`Duplicate status check: the run is already ${run.status}; nothing to do.`);
    return;
  }
  try {
    if (message.kind === 'start') {
      if (run.status === 'starting') await requestExport(deps, run, run.polls);
      return;
    }
    await poll(deps, run, message.attempt);
  } catch (error) {
    await handleStepError(deps, run, error);
  }
}

async function poll(deps: PipelineDeps, run: RunRecord, attempt: number): Promise<void> {
  const log = runLogger(deps, run);
  if (run.operationUrl === undefined) {
    await endRunUnsuccessfully(
      deps,
      run,
      'failed',
      'MESSAGE_INVALID',
      'Status check for a run without a Graph operation.',
    );
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
      await deps.queue.sendStatus({ version: 1, kind: 'poll', runId: run.runId, attempt }, delay);
      return;
    }
    throw error;
  }
  const polls = run.polls + 1;
  switch (state.kind) {
    case 'running': {
      if (state.unknownStatus) {
        log.warn(`Graph reported an unknown operation status "${state.status}"; treated as still running.`);
      }
      if (waitedMs >= maxWaitMs) {
        await endRunUnsuccessfully(
          deps,
          { ...run, polls },
          'failed',
          'EXPORT_TIMEOUT',
          `The Graph export was still ${state.status} after ${(waitedMs / 3600_000).toFixed(2)} h (EXPORT_MAX_WAIT_HOURS=${deps.config.polling.maxWaitHours}); gave up after ${polls} status checks. The next run starts a new export.`,
        );
        return;
      }
      const backoff = deps.config.polling.initialDelaySeconds * 2 ** Math.min(attempt, 16);
      const delay = clampDelay(deps, state.retryAfterSeconds ?? backoff);
      await deps.ledger.updateRun(run.runId, { status: 'waiting', polls, updatedAt: now.toISOString() });
      await deps.queue.sendStatus({ version: 1, kind: 'poll', runId: run.runId, attempt: attempt + 1 }, delay);
      log.info(`Export ${state.status}; next status check in ${delay} s (check ${polls}).`);
      return;
    }
    case 'failed': {
      const detail = `Graph export operation failed with code ${state.code}: ${state.message || '(no message)'}`;
      if (state.code === NO_DATA_CODE) {
        await endRunUnsuccessfully(deps, { ...run, polls }, 'noData', 'EXPORT_NO_DATA', detail);
      } else {
        await endRunUnsuccessfully(
          deps,
          { ...run, polls },
          'failed',
          'EXPORT_FAILED',
          `${detail}. The operation is terminal; the next run (or a manual run) starts a new export.`,
        );
      }
      return;
    }
    case 'succeeded':
      await fanOut(deps, { ...run, polls }, state.manifest);
      return;
  }
}

async function fanOut(deps: PipelineDeps, run: RunRecord, manifest: ExportManifest): Promise<void> {
  const now = deps.clock.now().toISOString();
  const billingMonth = billingMonthFromRoot(manifest.rootDirectory) ?? fallbackBillingMonth(run, run.startedAt);
  const layout = layoutFor(deps.config, run, billingMonth);
  const manifestFields: Partial<RunRecord> = {
    polls: run.polls,
    billingMonth,
    manifestId: manifest.id,
    eTag: manifest.eTag,
    schemaVersion: manifest.schemaVersion,
    dataFormat: manifest.dataFormat,
    manifestCreatedDateTime: manifest.createdDateTime,
    partnerTenantId: manifest.partnerTenantId,
    rootDirectory: safeUrl(manifest.rootDirectory),
    blobCount: manifest.blobCount,
    updatedAt: now,
  };
  const merged = { ...run, ...manifestFields };
  const log = runLogger(deps, merged);

  if (!run.force) {
    const latest = await deps.destination.readJson(layout.latestPath);
    const latestETag =
      latest !== undefined && typeof latest.value === 'object' && latest.value !== null
        ? (latest.value as { eTag?: unknown }).eTag
        : undefined;
    if (typeof latestETag === 'string' && latestETag === manifest.eTag) {
      await endRunSuccessfully(deps, merged, 'unchanged', manifestFields);
      return;
    }
  }

  const path = layout.runFolder;
  deps.manifests.set(run.runId, manifest);
  const names = manifest.blobs.map((b) => b.name);
  await deps.ledger.addBlobs(run.runId, names);
  await deps.ledger.updateRun(run.runId, { ...manifestFields, path });
  await deps.queue.sendCopies(names.map((blobName) => ({ version: 1, runId: run.runId, blobName })));
  await markCopying(deps, run.runId);
  log.info(`Export succeeded: ${names.length} blobs to copy into ${path} (data eTag ${manifest.eTag}).`);
  if (names.length === 0) {
    const current = await deps.ledger.getRun(run.runId);
    if (current !== undefined) await finalizeRunIfComplete(deps, current.value.runId);
  }
}

/**
 * Moves a run from waiting to copying once its copy messages are out. Copy workers may already have
 * finished the run by then, so only a run still waiting changes (an unconditional write would turn a
 * succeeded run back into copying for ever).
 */
async function markCopying(deps: PipelineDeps, runId: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await deps.ledger.getRun(runId);
    if (current === undefined || current.value.status !== 'waiting') return;
    const updated = await deps.ledger.updateRun(
      runId,
      { status: 'copying', updatedAt: deps.clock.now().toISOString() },
      current.etag,
    );
    if (updated) return;
  }
}
