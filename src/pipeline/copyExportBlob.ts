import { crashPoint } from '../crashPoints';
import { ExportError, isExportError } from '../errors';
import { QueueNames } from '../names';
import { blobNamesOf, COPY_BATCH_CONCURRENCY } from './copyBatches';
import type { PipelineDeps } from './deps';
import { finalizeRunIfComplete } from './finalizeRun';
import { reportMissingRun } from './missingRun';
import { checkGraphEndpoint } from './pollExportStatus';
import type { BlobRecord, CopiedBlob, CopyMessage, ExportManifest, RunRecord } from './ports';
import { handleStepError, isTerminal, runLogger } from './runStateMachine';

/**
 * Copies the blob, or the batch of blobs, of one copy message (queue export-copy) server-side into the run folder,
 * idempotently and blob by blob: the blobs of a batch are recorded copied on their ledger rows in one write once the
 * copies of the message have ended (also when one failed), so a redelivered message (a retry after a failed copy)
 * copies only what is not recorded yet, and one after a crash finds the blobs it copied already there. Then the fan-in
 * decides, once for the message, whether the run is complete. An expired source SAS is refreshed by fetching the
 * Graph operation again.
 */
export async function copyExportBlob(message: CopyMessage, deps: PipelineDeps): Promise<void> {
  const names = blobNamesOf(message);
  const what = names.length === 1 ? names[0]! : `${names.length} blobs (${names[0]}, …)`;
  const found = await deps.ledger.getRun(message.runId);
  if (found === undefined) {
    reportMissingRun(deps, { runId: message.runId, queue: QueueNames.copy, step: `The copy of ${what}` });
    return;
  }
  const run = found.value;
  const log = runLogger(deps, run);
  if (isTerminal(run.status)) {
    log.info(`Duplicate copy of ${what}: the run is already ${run.status}.`);
    return;
  }
  try {
    checkGraphEndpoint(deps, run);
    if (run.status !== 'copying' || run.path === undefined) {
      throw new ExportError(
        'MESSAGE_INVALID',
        `Copy message for run ${run.runId}, which is ${run.status}, not copying.`,
        { retryable: true },
      );
    }
    const rows = await blobRows(deps, run, names);
    const missing = names.find((name) => !rows.has(name));
    if (missing !== undefined) {
      throw new ExportError(
        'MANIFEST_INVALID',
        `Copy message names blob "${missing}", which is not in the manifest of run ${run.runId}.`,
      );
    }
    const pending = names.filter((name) => rows.get(name)?.status !== 'copied');
    for (const name of names) {
      if (!pending.includes(name)) log.info(`Blob ${name} was already copied; redelivered message ignored.`);
    }
    // After a failure no further blob is started; the copies in flight finish and are recorded, so the retry of the
    // message copies only the rest. The first failure decides what happens to the message, as for one blob.
    let failure: { error: unknown } | undefined;
    let next = 0;
    const copied: Array<{ name: string } & CopiedBlob> = [];
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < pending.length) {
        const name = pending[next++]!;
        try {
          copied.push({ name, ...(await copyOne(deps, run, name, rows.get(name)!)) });
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(COPY_BATCH_CONCURRENCY, pending.length) }, worker));
    if (copied.length > 0) {
      await deps.ledger.markBlobsCopied(run.runId, copied);
      crashPoint('copy.afterMarkCopied');
      for (const blob of copied) log.info(`Copied ${blob.name} (${blob.byteCount} bytes, ${blob.method}).`);
    }
    if (failure !== undefined) throw failure.error;
    // A batch adds its first copies to the run's progress: not a blob that was there already (another delivery or a
    // crashed attempt of this message copied it, and may have counted it) nor a re-copy (counted at its first copy).
    const firstCopies = copied.filter((b) => b.method !== 'alreadyPresent' && (rows.get(b.name)?.recopies ?? 0) === 0);
    const copiedHere =
      names.length > 1
        ? { copied: firstCopies.length, bytes: firstCopies.reduce((sum, b) => sum + b.byteCount, 0) }
        : undefined;
    // The run as read before the copies: most times still current, so the fan-in need not read it again. A batch
    // hands over what its listing and its copies showed copied, so the fan-in lists the rows only once none is pending.
    await finalizeRunIfComplete(deps, run.runId, found, copiedHere);
  } catch (error) {
    await handleStepError(deps, run, error);
  }
}

/**
 * The ledger rows of the named blobs: one read for one blob, the batch's own rows for a batch (a listing of every row
 * of the run in every message would read the run's rows once per message).
 */
async function blobRows(deps: PipelineDeps, run: RunRecord, names: string[]): Promise<Map<string, BlobRecord>> {
  if (names.length === 1) {
    const blob = await deps.ledger.getBlob(run.runId, names[0]!);
    return new Map(blob === undefined ? [] : [[blob.name, blob]]);
  }
  return new Map((await deps.ledger.getBlobs(run.runId, names)).map((b) => [b.name, b] as const));
}

/** Copies one blob; returns what its row is to record. */
async function copyOne(deps: PipelineDeps, run: RunRecord, name: string, blob: BlobRecord): Promise<CopiedBlob> {
  const destinationPath = `${run.path}/${name}`;
  crashPoint('copy.beforeCopy');
  // A blob the fan-in set back to pending may be in the destination with its length but other content: copy it
  // again rather than take it as already there.
  const replace = (blob.recopies ?? 0) > 0;
  const result = await copyWithFreshSas(deps, run, name, destinationPath, replace);
  crashPoint('copy.afterCopy');
  return {
    byteCount: result.byteCount,
    contentType: result.contentType,
    method: result.method,
    copiedAt: deps.clock.now().toISOString(),
    contentCrc64: result.contentCrc64,
    contentMd5: result.contentMd5,
    destinationEtag: result.destinationEtag,
  };
}

async function copyWithFreshSas(
  deps: PipelineDeps,
  run: RunRecord,
  blobName: string,
  destinationPath: string,
  replace: boolean,
) {
  let manifest = deps.manifests.get(run.runId) ?? (await refreshManifest(deps, run));
  for (let attempt = 0; ; attempt++) {
    try {
      return await deps.copier.copy({ sourceUrl: sourceUrl(manifest, blobName), destinationPath, replace });
    } catch (error) {
      if (isExportError(error) && error.status === 404 && error.code === 'DESTINATION_UNAVAILABLE' && attempt < 2) {
        // The destination container was deleted under the run: create it again (the fan-in re-copies what was lost).
        runLogger(deps, run).warn(`The destination container is gone; creating it again before copying ${blobName}.`);
        await deps.destination.ensureContainer(true);
        continue;
      }
      if (isExportError(error) && error.code === 'SOURCE_EXPIRED' && attempt < 2) {
        runLogger(deps, run).info(`The export SAS expired while copying ${blobName}; fetching a fresh one from Graph.`);
        manifest = await refreshManifest(deps, run);
        continue;
      }
      throw error;
    }
  }
}

function sourceUrl(manifest: ExportManifest, blobName: string): string {
  const path = blobName
    .split('/')
    .map((segment) => encodeURIComponent(segment))
    .join('/');
  return `${manifest.rootDirectory}/${path}?${manifest.sasToken}`;
}

/** Fetches the operation again for a fresh manifest and SAS; the data must be the same as recorded. */
async function refreshManifest(deps: PipelineDeps, run: RunRecord): Promise<ExportManifest> {
  if (run.operationUrl === undefined) {
    throw new ExportError('MESSAGE_INVALID', `Run ${run.runId} has no Graph operation to refresh its SAS from.`);
  }
  const state = await deps.graph.getOperation(run.operationUrl);
  if (state.kind !== 'succeeded') {
    throw new ExportError(
      'SOURCE_UNAVAILABLE',
      `Fetching a fresh SAS for run ${run.runId}: the Graph operation is now ${state.status}, no longer succeeded.`,
    );
  }
  if (run.partnerTenantId !== undefined && state.manifest.partnerTenantId !== run.partnerTenantId) {
    throw new ExportError(
      'GRAPH_ENDPOINT_CHANGED',
      `Fetching a fresh SAS for run ${run.runId}: Graph now answers for partner tenant ${state.manifest.partnerTenantId}, the run was exported from ${run.partnerTenantId}; the run is not finished with another tenant's data.`,
    );
  }
  if (state.manifest.eTag !== run.eTag || state.manifest.blobs.length !== run.blobCount) {
    throw new ExportError(
      'MANIFEST_INVALID',
      `Fetching a fresh SAS for run ${run.runId}: the Graph manifest changed (eTag ${run.eTag} -> ${state.manifest.eTag}); the run is abandoned, the next run exports the new data.`,
    );
  }
  deps.manifests.set(run.runId, state.manifest);
  return state.manifest;
}
