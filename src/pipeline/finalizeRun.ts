import { crashPoint } from '../crashPoints';
import { layoutFor } from '../datasets';
import { classifyError, ExportError, errorMessage } from '../errors';
import { redact } from '../redact';
import { copyMessagesFor } from './copyBatches';
import { startCuration } from './curateExport';
import type { PipelineDeps } from './deps';
import type { BlobRecord, DestinationBlobInfo, RunRecord, Versioned } from './ports';
import { advance, runLogger, withRun } from './runStateMachine';

/** How many times the fan-in copies again a blob that went missing from the destination before it fails the run. */
export const MAX_RECOPIES = 3;

/** Version of our manifest.json format. */
export const MANIFEST_VERSION = '1.0';

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
  /**
   * Per blob, the content hash (base64) the storage service reported for the copy, where it gave one: `contentCrc64`
   * (Copy Blob From URL) and/or `contentMd5` (the blob's Content-MD5). Added after `name` and `byteCount`.
   */
  blobs: Array<{ name: string; byteCount: number; contentCrc64?: string; contentMd5?: string }>;
  /** The dataset (src/datasets.ts); added after the fields above, which are unchanged for unbilled usage. */
  dataset: string;
  /** The invoice of a billed dataset; null for the daily ones. */
  invoiceId: string | null;
}

/**
 * The fan-in, with no claim that a dead worker could hold: whoever sees every blob of a copying run copied
 * (the last copy, a redelivered message, a status check or the supervisor) completes it.
 *
 * 1. The run folder is listed once: a blob that went missing (a deleted container, say) is set back to pending
 *    and copied again.
 * 2. The run is *committed* (`committedAt`, ETag-conditional): from here it can only succeed. A failure racing the
 *    finisher either lands first (the commit then loses and nothing is written) or finds the run committed and
 *    completes it instead of failing it: a folder with manifest.json is never reported failed.
 * 3. manifest.json is created once (a second finisher takes the one that is there, and its completedAt), then
 *    latest.json (only ever moved to a newer run), then the ETag-conditional move to `succeeded`, which lets
 *    exactly one finisher send ExportRunCompleted.
 */
export async function finalizeRunIfComplete(
  deps: PipelineDeps,
  runId: string,
  read?: Versioned<RunRecord>,
  /**
   * The blobs (and bytes) a batch message copied for the first time. With it, a run with pending blobs is recognised by
   * one small query and these are added to the run's progress; the rows are listed only once none is pending. Without
   * it, the rows are listed to decide, and the progress is counted from them.
   */
  copiedHere?: CopyProgress,
): Promise<void> {
  await withRun(
    deps,
    runId,
    async (current) => {
      const run = current.value;
      if (run.status !== 'copying') return undefined;
      if (run.committedAt !== undefined) {
        // Committed by another finisher, which is most likely writing manifest.json or has written it: finishing from
        // that file needs neither the rows nor the folder listed again.
        const fromManifest = await completeFromManifest(deps, current);
        if (fromManifest === 'succeeded' || fromManifest === 'race') return outcome(fromManifest);
        return outcome(await completeCommitted(deps, current));
      }
      if (copiedHere !== undefined && (await deps.ledger.hasPendingBlobs(runId))) {
        await addProgress(deps, current, copiedHere);
        return undefined;
      }
      const blobs = await deps.ledger.listBlobs(runId);
      const copied = blobs.filter((b) => b.status === 'copied');
      const bytes = copied.reduce((sum, b) => sum + (b.byteCount ?? 0), 0);
      const expected = run.blobCount ?? blobs.length;
      if (copied.length < expected) {
        await recordProgress(deps, current, { copied: copied.length, bytes }, expected);
        return undefined;
      }
      const fromManifest = await completeFromManifest(deps, current);
      if (fromManifest === 'foreign') {
        throw new ExportError(
          'MANIFEST_INVALID',
          `${run.path}/manifest.json exists but does not belong to run ${runId}.`,
        );
      }
      if (fromManifest !== 'absent') return outcome(fromManifest);
      const listing = await destinationHolds(deps, run, copied);
      if (listing === undefined) return undefined;
      let base = current;
      if (current === read) {
        // The caller read the run before its copies: other messages' progress has most likely moved its ETag since, and
        // a commit on it would lose and do all of the above again. Read it now; what the checks above rely on (copying,
        // not committed, not failed) is checked on this read, and the ETag of this read guards the commit.
        const fresh = await deps.ledger.getRun(runId);
        if (fresh === undefined) return undefined;
        if (fresh.value.status !== 'copying' || fresh.value.committedAt !== undefined) return { done: false };
        base = fresh;
      }
      const committed = await advance(deps, base, 'copying', {
        committedAt: deps.clock.now().toISOString(),
        blobsCopied: copied.length,
        byteCount: bytes,
      });
      if (committed === undefined) return { done: false };
      const latest = await deps.ledger.getRun(runId);
      if (latest === undefined) return undefined;
      return outcome(await completeCommitted(deps, latest, copied, listing));
    },
    read,
  );
}

/** A number of copied blobs and their bytes. */
export interface CopyProgress {
  copied: number;
  bytes: number;
}

/** Attempts of a batch to add its copies to the run's progress when other messages keep writing the run first. */
const PROGRESS_ATTEMPTS = 4;

/**
 * Adds a batch's first copies to the run's progress (`blobsCopied`, `byteCount`), and shows the run alive to the
 * supervisor (`updatedAt`, `resumes` back to 0): ETag-conditional, first on the caller's read of the run, then on fresh
 * reads when another message wrote first. Every batch that copied something writes, whatever the run's size (a
 * threshold per write would leave a run of many small batches without a heartbeat). Best effort: after
 * PROGRESS_ATTEMPTS lost races this batch's share is left out; the count only ever falls short, and the commit writes
 * the exact one.
 */
async function addProgress(deps: PipelineDeps, read: Versioned<RunRecord>, copiedHere: CopyProgress): Promise<void> {
  if (copiedHere.copied === 0) return;
  let current: Versioned<RunRecord> | undefined = read;
  for (let attempt = 0; attempt < PROGRESS_ATTEMPTS && current !== undefined; attempt++) {
    const run = current.value;
    if (run.status !== 'copying' || run.committedAt !== undefined) return;
    const written = await deps.ledger.updateRun(
      run.runId,
      {
        blobsCopied: Math.min(run.blobsCopied + copiedHere.copied, run.blobCount ?? Number.MAX_SAFE_INTEGER),
        byteCount: run.byteCount + copiedHere.bytes,
        updatedAt: deps.clock.now().toISOString(),
        ...(run.resumes ? { resumes: 0 } : {}),
      },
      current.etag,
    );
    if (written) return;
    current = await deps.ledger.getRun(run.runId);
  }
}

/**
 * Progress only, every 5 % of the blobs (not every blob: a ledger write each): conditional, so a late writer never
 * lowers the counts of a run that moved on, and a count that is a lower bound never lowers them either. Progress also
 * gives the run its resumes back: the supervisor limits runs that stopped, not long ones.
 */
async function recordProgress(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  progress: CopyProgress,
  expected: number,
): Promise<void> {
  const run = current.value;
  if (progress.copied - run.blobsCopied < Math.max(1, Math.ceil(expected / 20))) return;
  await deps.ledger.updateRun(
    run.runId,
    {
      blobsCopied: progress.copied,
      byteCount: progress.bytes,
      updatedAt: deps.clock.now().toISOString(),
      ...(run.resumes ? { resumes: 0 } : {}),
    },
    current.etag,
  );
}

function outcome(result: 'succeeded' | 'race'): { done: true; value: undefined } | { done: false } {
  return result === 'succeeded' ? { done: true, value: undefined } : { done: false };
}

/**
 * Completes a committed run (every blob verified in the destination): manifest.json (created once), latest.json,
 * `succeeded`. 'race' when the run row changed meanwhile (read it again).
 */
export async function completeCommitted(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
  /** The copied blobs as the caller just listed and verified them; listed here when not given. */
  listed?: BlobRecord[],
  /** The run folder as the caller just listed it (the Content-MD5 of each blob); listed here when not given. */
  folder?: Map<string, DestinationBlobInfo>,
): Promise<'succeeded' | 'race'> {
  const run = current.value;
  const copied = listed ?? (await deps.ledger.listBlobs(run.runId)).filter((b) => b.status === 'copied');
  const bytes = copied.reduce((sum, b) => sum + (b.byteCount ?? 0), 0);
  const present = folder ?? (await listFolder(deps, run));
  crashPoint('finalize.beforeManifest');
  const manifest = await writeManifest(
    deps,
    run,
    sortedBlobs(withContentMd5(run, copied, present)),
    bytes,
    deps.clock.now().toISOString(),
  );
  crashPoint('finalize.afterManifest');
  return (await finishFrom(deps, current, manifest)) ? 'succeeded' : 'race';
}

/**
 * Completes a copying run whose folder already holds its manifest.json (a finisher that died after writing it,
 * or a failure after it): latest.json, then `succeeded` with the manifest's counts and completedAt.
 * 'absent' when there is no manifest.json yet; 'foreign' when the file there is not this run's; 'race' when the
 * run row changed meanwhile (read it again).
 */
export async function completeFromManifest(
  deps: PipelineDeps,
  current: Versioned<RunRecord>,
): Promise<'succeeded' | 'race' | 'absent' | 'foreign'> {
  const run = current.value;
  if (run.path === undefined) return 'absent';
  const found = await deps.destination.readJson(`${run.path}/manifest.json`);
  if (found === undefined) return 'absent';
  const manifest = found.value as Partial<RunManifest> | null;
  if (manifest === null || typeof manifest !== 'object' || manifest.runId !== run.runId) return 'foreign';
  return (await finishFrom(deps, current, manifest as RunManifest)) ? 'succeeded' : 'race';
}

/** latest.json, then the ETag-conditional move to succeeded. False when the run row changed meanwhile. */
async function finishFrom(deps: PipelineDeps, current: Versioned<RunRecord>, manifest: RunManifest): Promise<boolean> {
  try {
    await updateLatest(deps, current.value, manifest.completedAt);
  } catch (error) {
    // manifest.json is the "data complete" signal and it is in place: a pointer we may not write (a terminal
    // error) does not make a complete folder a failed run. A transient failure is retried as usual.
    const classified = classifyError(error);
    if (classified.retryable) throw error;
    runLogger(deps, current.value).error(
      `The run folder is complete, but latest.json could not be updated (${classified.code}): ${redact(errorMessage(classified))}`,
    );
  }
  crashPoint('finalize.afterLatest');
  const moved = await advance(deps, current, 'succeeded', {
    blobsCopied: manifest.blobCount,
    byteCount: manifest.byteCount,
    blobCount: manifest.blobCount,
    completedAt: manifest.completedAt,
  });
  if (moved === undefined) return false;
  crashPoint('finalize.afterSucceeded');
  // After the end state and its event: curation only ever follows a succeeded run, never delays it (a crash before
  // this line is the supervisor's to mend).
  await startCuration(deps, moved);
  return true;
}

/** An ETag as a header (quoted) or a listing (bare) reports it. */
function bareEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** The run folder's blobs by path, from one listing. */
async function listFolder(deps: PipelineDeps, run: RunRecord): Promise<Map<string, DestinationBlobInfo>> {
  return new Map((await deps.destination.list(`${run.path}/`)).map((blob) => [blob.path, blob] as const));
}

/**
 * The rows with the Content-MD5 the destination reports for each blob where the copy did not record one (a Copy Blob
 * From URL is not read back: the service carries the source's Content-MD5 over, and the listing shows it).
 */
function withContentMd5(run: RunRecord, copied: BlobRecord[], folder: Map<string, DestinationBlobInfo>): BlobRecord[] {
  return copied.map((blob) => {
    if (blob.contentMd5 !== undefined) return blob;
    const found = folder.get(`${run.path}/${blob.name}`);
    return found?.contentMd5 === undefined || changeOf(blob, found) !== undefined
      ? blob
      : { ...blob, contentMd5: found.contentMd5 };
  });
}

/**
 * How the destination blob differs from the copy recorded on its row, or undefined when it is the copy: its length,
 * its content type (a copy that did not carry the source's over is copied again, and the copier then sets it), its
 * Content-MD5 (where the copy recorded one) and its ETag (where recorded: any write since the copy changes it, which
 * covers a CRC64 no property reports). Rows written before hashes were recorded are checked by length only.
 */
function changeOf(blob: BlobRecord, found: DestinationBlobInfo | undefined): string | undefined {
  if (found === undefined) return 'does not hold it';
  if (found.byteCount !== blob.byteCount) {
    return `holds it with ${found.byteCount} bytes instead of the ${blob.byteCount ?? 0} bytes copied`;
  }
  if (blob.contentType !== undefined && found.contentType !== blob.contentType) {
    return `holds it with content type ${found.contentType ?? 'none'} instead of ${blob.contentType}`;
  }
  if (blob.contentMd5 !== undefined && found.contentMd5 !== blob.contentMd5) {
    return `holds it with other content (Content-MD5 ${found.contentMd5 ?? 'none'} instead of ${blob.contentMd5})`;
  }
  if (blob.destinationEtag !== undefined && found.etag !== undefined) {
    if (bareEtag(found.etag) !== bareEtag(blob.destinationEtag)) {
      return 'holds it rewritten since the copy (its ETag changed; same length)';
    }
  }
  return undefined;
}

/**
 * Lists the run folder once and checks every copied blob is there as copied (length, content type, Content-MD5,
 * ETag): the listing when so. Missing or changed ones are set back to pending and their copy messages sent again
 * (the container is created if it was deleted); undefined then.
 */
async function destinationHolds(
  deps: PipelineDeps,
  run: RunRecord,
  copied: BlobRecord[],
): Promise<Map<string, DestinationBlobInfo> | undefined> {
  const present = await listFolder(deps, run);
  const changes = new Map<string, string>();
  for (const b of copied) {
    const change = changeOf(b, present.get(`${run.path}/${b.name}`));
    if (change !== undefined) changes.set(b.name, change);
  }
  const missing = copied.filter((b) => changes.has(b.name));
  if (missing.length === 0) return present;
  const hopeless = missing.find((b) => (b.recopies ?? 0) >= MAX_RECOPIES);
  if (hopeless !== undefined) {
    // Copied again and again, and still not in the destination as copied: something outside the run keeps removing
    // or changing it (a lifecycle rule, another writer). Fail loudly rather than copy for ever.
    throw new ExportError(
      'COPY_FAILED',
      `${hopeless.name} was copied ${(hopeless.recopies ?? 0) + 1} times, but ${run.path} still ${changes.get(
        hopeless.name,
      )}. Is a lifecycle rule or another writer deleting or changing blobs under the destination prefix?`,
    );
  }
  runLogger(deps, run).warn(
    `${missing.length} copied blob(s) are missing from ${run.path} or changed since their copy (was the container or folder deleted, or a blob overwritten?); copying them again: ${missing
      .slice(0, 5)
      .map((b) => b.name)
      .join(', ')}${missing.length > 5 ? ', …' : ''}.`,
  );
  await deps.destination.ensureContainer(true);
  // Only the finisher whose conditional write set a blob back to pending sends its copy: two finishers that found the
  // same change would otherwise copy it twice at once, and the later copy's new ETag would look like another change.
  const reset: BlobRecord[] = [];
  for (const blob of missing) {
    if (await deps.ledger.markBlobPending(run.runId, blob.name, (blob.recopies ?? 0) + 1)) reset.push(blob);
  }
  if (reset.length > 0) {
    await deps.queue.sendCopies(
      copyMessagesFor(
        run.runId,
        reset.map((b) => b.name),
      ),
    );
  }
  return undefined;
}

function sortedBlobs(blobs: BlobRecord[]): BlobRecord[] {
  return [...blobs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function writeManifest(
  deps: PipelineDeps,
  run: RunRecord,
  sorted: BlobRecord[],
  bytes: number,
  completedAt: string,
): Promise<RunManifest> {
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
    blobs: sorted.map((b) => ({
      name: b.name,
      byteCount: b.byteCount ?? 0,
      ...(b.contentCrc64 === undefined ? {} : { contentCrc64: b.contentCrc64 }),
      ...(b.contentMd5 === undefined ? {} : { contentMd5: b.contentMd5 }),
    })),
    dataset: run.dataset ?? 'unbilledUsage',
    invoiceId: run.invoiceId ?? null,
  };
  const written = await deps.destination.writeJson(`${run.path}/manifest.json`, manifest, { ifNoneMatch: '*' });
  if (written) return manifest;
  // Another finisher of this run created it first: take that one, so the ledger and the file agree.
  const existing = await deps.destination.readJson(`${run.path}/manifest.json`);
  const value = existing?.value as Partial<RunManifest> | undefined;
  if (value?.runId !== runId) {
    throw new ExportError('MANIFEST_INVALID', `${run.path}/manifest.json exists but does not belong to run ${runId}.`);
  }
  log.info('manifest.json was already written by another finisher of this run; completing from it.');
  return value as RunManifest;
}

/** Points latest.json at this run unless a newer complete run already is there (run ids sort by start time). */
async function updateLatest(deps: PipelineDeps, run: RunRecord, completedAt: string): Promise<void> {
  const path = layoutFor(deps.config, run, run.billingMonth ?? '').latestPath;
  const pointer = { runId: run.runId, path: run.path, eTag: run.eTag ?? null, completedAt };
  for (let attempt = 0; attempt < 5; attempt++) {
    const current = await deps.destination.readJson(path);
    if (current !== undefined) {
      const currentRunId = (current.value as { runId?: unknown } | null)?.runId;
      // Already ours (a finisher that died after writing it), or a newer complete run's: leave it.
      if (typeof currentRunId === 'string' && currentRunId >= run.runId) return;
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
