import { layoutFor } from '../datasets';
import { ExportError } from '../errors';
import type { PipelineDeps } from './deps';
import type { BlobRecord, RunRecord } from './ports';
import { endRunSuccessfully, runLogger } from './runLifecycle';

/** Version of our manifest.json format. */
export const MANIFEST_VERSION = '1.0';

/** A fan-in claim older than this is considered abandoned (its worker died) and may be taken over. */
const CLAIM_TIMEOUT_MS = 10 * 60_000;

/** Reads of the run before giving up (and letting the queue retry) when the fan-in claim keeps being lost. */
const MAX_CLAIM_ATTEMPTS = 5;

/** Our manifest.json (SPEC section 4). Never holds a SAS. */
export interface RunManifest {
  manifestVersion: string;
  runId: string;
  trigger: RunRecord['trigger'];
  currency: string;
  billingPeriod: RunRecord['billingPeriod'];
  billingMonth: string;
  attributeSet: RunRecord['attributeSet'];
  startedAt: string;
  completedAt: string;
  graph: {
    operationId: string | null;
    manifestId: string | null;
    eTag: string | null;
    schemaVersion: string | null;
    dataFormat: string | null;
    createdDateTime: string | null;
    partnerTenantId: string | null;
  };
  blobCount: number;
  byteCount: number;
  blobs: Array<{ name: string; byteCount: number }>;
  /** The dataset (src/datasets.ts); added after the fields above, which are unchanged for unbilled usage. */
  dataset: string;
  /** The invoice of a billed dataset; null for the daily ones. */
  invoiceId: string | null;
}

/**
 * The fan-in: when every blob of the run is copied, exactly one worker claims the run (an ETag-conditional
 * ledger update), writes manifest.json (create-only), then latest.json (if this run is the newest), and
 * marks the run succeeded. Safe under duplicated and interleaved messages.
 */
export async function finalizeRunIfComplete(deps: PipelineDeps, runId: string): Promise<void> {
  for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
    if (await tryFinalize(deps, runId)) return;
  }
  throw new ExportError(
    'COPY_FAILED',
    `Could not claim the completion of run ${runId}: its ledger row kept changing; the copy message is retried.`,
    { retryable: true },
  );
}

/** One look at the run: true when done (finalized, not complete yet, or someone else's); false when the claim was lost. */
async function tryFinalize(deps: PipelineDeps, runId: string): Promise<boolean> {
  const blobs = await deps.ledger.listBlobs(runId);
  const found = await deps.ledger.getRun(runId);
  if (found === undefined) return true;
  const run = found.value;
  if (run.status !== 'copying' && run.status !== 'waiting') return true;
  const copied = blobs.filter((b) => b.status === 'copied');
  const bytes = copied.reduce((sum, b) => sum + (b.byteCount ?? 0), 0);
  const expected = run.blobCount ?? blobs.length;
  if (copied.length < expected) {
    // Progress only: conditional, so a late writer never lowers the counts of a run that moved on.
    await deps.ledger.updateRun(runId, { blobsCopied: copied.length, byteCount: bytes }, found.etag);
    return true;
  }
  const now = deps.clock.now();
  if (
    run.finalizingSince !== undefined &&
    run.finalizingSince !== '' &&
    now.getTime() - Date.parse(run.finalizingSince) < CLAIM_TIMEOUT_MS
  ) {
    return true;
  }
  // A lost claim does not mean another finalizer: a worker may only have recorded its progress since we
  // read the run. Returning then would leave a complete run unfinished for ever, so the caller looks again.
  const claimed = await deps.ledger.updateRun(runId, { finalizingSince: now.toISOString() }, found.etag);
  if (!claimed) return false;

  try {
    await writeCompletion(deps, run, sortedBlobs(copied), bytes, now.toISOString());
  } catch (error) {
    // Give the claim back so the retried message can finalize.
    await deps.ledger.updateRun(runId, { finalizingSince: '' }).catch(() => undefined);
    throw error;
  }
  return true;
}

function sortedBlobs(blobs: BlobRecord[]): BlobRecord[] {
  return [...blobs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function writeCompletion(
  deps: PipelineDeps,
  run: RunRecord,
  sorted: BlobRecord[],
  bytes: number,
  completedAt: string,
): Promise<void> {
  const runId = run.runId;
  const log = runLogger(deps, run);
  if (run.path === undefined || run.billingMonth === undefined) {
    throw new ExportError('MESSAGE_INVALID', `Run ${runId} has no destination folder to finalize.`);
  }
  const manifest: RunManifest = {
    manifestVersion: MANIFEST_VERSION,
    runId,
    trigger: run.trigger,
    currency: run.currency,
    billingPeriod: run.billingPeriod,
    billingMonth: run.billingMonth,
    attributeSet: run.attributeSet,
    startedAt: run.startedAt,
    completedAt,
    graph: {
      operationId: run.operationId ?? null,
      manifestId: run.manifestId ?? null,
      eTag: run.eTag ?? null,
      schemaVersion: run.schemaVersion ?? null,
      dataFormat: run.dataFormat ?? null,
      createdDateTime: run.manifestCreatedDateTime ?? null,
      partnerTenantId: run.partnerTenantId ?? null,
    },
    blobCount: sorted.length,
    byteCount: bytes,
    blobs: sorted.map((b) => ({ name: b.name, byteCount: b.byteCount ?? 0 })),
    dataset: run.dataset ?? 'unbilledUsage',
    invoiceId: run.invoiceId ?? null,
  };
  const written = await deps.destination.writeJson(`${run.path}/manifest.json`, manifest, { ifNoneMatch: '*' });
  if (!written) log.warn('manifest.json already existed (a previous finalization was interrupted); kept as it is.');

  await updateLatest(deps, run, completedAt);
  await endRunSuccessfully(deps, run, 'succeeded', {
    blobsCopied: sorted.length,
    byteCount: bytes,
    blobCount: sorted.length,
    completedAt,
  });
}

/** Points latest.json at this run unless a newer complete run already is there (run ids sort by start time). */
async function updateLatest(deps: PipelineDeps, run: RunRecord, completedAt: string): Promise<void> {
  const path = layoutFor(deps.config, run, run.billingMonth ?? '').latestPath;
  const pointer = { runId: run.runId, path: run.path, eTag: run.eTag ?? null, completedAt };
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await deps.destination.readJson(path);
    if (current !== undefined) {
      const currentRunId = (current.value as { runId?: unknown } | null)?.runId;
      if (typeof currentRunId === 'string' && currentRunId > run.runId) return;
    }
    const ok = await deps.destination.writeJson(
      path,
      pointer,
      current === undefined ? { ifNoneMatch: '*' } : { ifMatch: current.etag },
    );
    if (ok) return;
  }
  throw new ExportError('DESTINATION_UNAVAILABLE', `Could not update ${path}: it kept changing under us.`, {
    retryable: true,
  });
}
