import { classifyError, type ErrorCode, errorMessage } from '../errors';
import { redact } from '../redact';
import type { CurationDeps, CurationRecord, CurationStatus } from './curationPorts';
import { FINAL_CURATION_STATUSES } from './curationPorts';
import type { PipelineDeps } from './deps';
import type { Logger, RunRecord, Versioned } from './ports';
import { runLogger } from './runStateMachine';

/**
 * The curation state machine: the one module that changes a curation's status. It never writes the run's own row
 * (the raw run stays `succeeded` whatever curation does). Every change is conditional on the row's ETag as it was
 * read; `succeeded` and `failed` are final; the worker whose write ended the curation (and only it) sends its one
 * ExportCurationCompleted or ExportCurationFailed event.
 *
 *   pending ─> converting ─> publishing ─> succeeded
 *      └──────────┴─────────────┴────────> failed
 */
const ALLOWED: Record<CurationStatus, readonly CurationStatus[]> = {
  pending: ['pending', 'converting', 'publishing', 'failed'],
  converting: ['converting', 'publishing', 'failed'],
  publishing: ['publishing', 'succeeded', 'failed'],
  succeeded: [],
  failed: [],
};

const MAX_RACES = 8;

/** PipelineDeps with the curation ports (EXPORT_CURATION on). */
export type CuratingDeps = PipelineDeps & { curation: CurationDeps };

export function isCurationFinal(status: CurationStatus): boolean {
  return FINAL_CURATION_STATUSES.includes(status);
}

/** Does this process curate? EXPORT_CURATION on and the curation ports built. */
export function curates(deps: PipelineDeps): deps is CuratingDeps {
  return deps.config.curation.enabled && deps.curation !== undefined;
}

export function curationLogger(deps: PipelineDeps, run: RunRecord): Logger {
  return runLogger(deps, run);
}

/**
 * Moves a curation from the state it was read in to `to`, merging `fields`. Undefined when the row changed since
 * it was read or the move is not allowed (final states are final). A move into a final state sends the event.
 */
export async function advanceCuration(
  deps: CuratingDeps,
  current: Versioned<CurationRecord>,
  to: CurationStatus,
  fields: Partial<CurationRecord> = {},
  run?: RunRecord,
): Promise<CurationRecord | undefined> {
  if (!ALLOWED[current.value.status].includes(to)) return undefined;
  const now = deps.clock.now().toISOString();
  const final = isCurationFinal(to);
  const change: Partial<CurationRecord> = {
    ...fields,
    status: to,
    updatedAt: now,
    ...(final ? { completedAt: now, announced: false } : {}),
  };
  if (change.error !== undefined) change.error = redact(change.error);
  const written = await deps.curation.ledger.updateCuration(current.value.runId, change, current.etag);
  if (!written) return undefined;
  const curation: CurationRecord = { ...current.value, ...change };
  if (final) await announceCurationEnd(deps, curation, run);
  return curation;
}

/** Logs and sends the one end event of a curation, then marks it sent (the supervisor sends what a crash lost). */
export async function announceCurationEnd(
  deps: CuratingDeps,
  curation: CurationRecord,
  read?: RunRecord,
): Promise<void> {
  const run = read ?? (await deps.ledger.getRun(curation.runId))?.value;
  const log = run === undefined ? deps.logger.child({ runId: curation.runId }) : runLogger(deps, run);
  const details = {
    runId: curation.runId,
    currency: run?.currency ?? '',
    billingPeriod: run?.billingPeriod ?? 'current',
    attributeSet: run?.attributeSet ?? 'full',
    trigger: run?.trigger ?? 'manual',
    dataset: run?.dataset ?? 'unbilledUsage',
    invoiceId: run?.invoiceId,
    billingMonth: run?.billingMonth ?? '',
    curationVersion: curation.curationVersion,
    curatedPath: curation.curatedPath ?? '',
    current: curation.current ?? false,
    hubIngestionId: curation.hubIngestionId,
    fileCount: curation.fileCount,
    rowsRead: curation.rowsRead ?? 0,
    rowsConverted: curation.rowsConverted ?? 0,
    rowsRejected: curation.rowsRejected ?? 0,
    durationMs: Math.max(0, Date.parse(curation.completedAt ?? curation.updatedAt) - Date.parse(curation.startedAt)),
  } as const;
  if (curation.status === 'succeeded') {
    log.info(
      `Curation succeeded: ${details.rowsConverted} of ${details.rowsRead} rows converted (${details.rowsRejected} rejected) from ${details.fileCount} file(s)${
        details.current
          ? ` into curated/${details.curatedPath} and focus/${details.curatedPath}`
          : '; a newer version of the series was already current, so this one was not made current'
      }.`,
    );
    deps.telemetry.curationCompleted(details);
  } else {
    const errorCode = curation.errorCode ?? 'UNEXPECTED';
    const error = curation.error ?? 'failed';
    log.error(`Curation failed (${errorCode}): ${error} The raw run folder is complete and unchanged.`);
    deps.telemetry.curationFailed({ ...details, errorCode, error });
  }
  await deps.telemetry.flush();
  await deps.curation.ledger
    .updateCuration(curation.runId, { announced: true })
    .catch((error: unknown) =>
      log.info(
        `Marking the curation event sent failed (the supervisor sends it again): ${redact(errorMessage(error))}`,
      ),
    );
}

/** Reads the curation and applies `decide` until its conditional write wins or it says there is nothing to do. */
export async function withCuration<T>(
  deps: CuratingDeps,
  runId: string,
  decide: (current: Versioned<CurationRecord>) => Promise<{ done: true; value: T } | { done: false } | undefined>,
): Promise<T | undefined> {
  for (let race = 0; race < MAX_RACES; race++) {
    const current = await deps.curation.ledger.getCuration(runId);
    if (current === undefined) return undefined;
    const outcome = await decide(current);
    if (outcome === undefined) return undefined;
    if (outcome.done) return outcome.value;
  }
  throw classifyError(
    new Error(`Curation of run ${runId}: its ledger row kept changing under ${MAX_RACES} attempts; retried.`),
  );
}

/** Fails a curation that has not ended. Returns true when this call ended it. */
export async function failCuration(
  deps: CuratingDeps,
  runId: string,
  errorCode: ErrorCode,
  reason: string,
  run?: RunRecord,
): Promise<boolean> {
  const ended = await withCuration(deps, runId, async (current) => {
    if (isCurationFinal(current.value.status)) return undefined;
    const moved = await advanceCuration(deps, current, 'failed', { errorCode, error: reason }, run);
    return moved === undefined ? { done: false } : { done: true, value: true };
  });
  return ended === true;
}

/** Notes a retried problem on a curation that has not ended (informational: a lost race drops it). */
export async function noteCurationError(deps: CuratingDeps, runId: string, lastError: string): Promise<void> {
  const current = await deps.curation.ledger.getCuration(runId);
  if (current === undefined || isCurationFinal(current.value.status)) return;
  await deps.curation.ledger.updateCuration(runId, { lastError: redact(lastError) }, current.etag);
}
