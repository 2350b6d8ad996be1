import { crashPoint } from '../crashPoints';
import { ExportError, isExportError } from '../errors';
import { QueueNames } from '../names';
import { blobNamesOf, COPY_BATCH_CONCURRENCY } from './copyBatches';
import type { PipelineDeps } from './deps';
import { type CopyProgress, finalizeRunIfComplete } from './finalizeRun';
import { reportMissingRun } from './missingRun';
import { checkGraphEndpoint } from './pollExportStatus';
import type { BlobRecord, CopyMessage, ExportManifest, RunRecord } from './ports';
import { handleStepError, isTerminal, runLogger } from './runStateMachine';

/**
 * Copies the blob, or the batch of blobs, of one copy message (queue export-copy) server-side into the run folder,
 * idempotently and blob by blob: each blob is recorded copied on its own ledger row as soon as it is, so a redelivered
 * message (a crash between two blobs, a retry after one failed) copies only what is not recorded yet. Then the fan-in
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
    const { rows, progress } = await blobRows(deps, run.runId, names);
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
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < pending.length) {
        const name = pending[next++]!;
        try {
          const bytes = await copyOne(deps, run, name, rows.get(name)!);
          if (progress !== undefined) {
            progress.copied += 1;
            progress.bytes += bytes;
          }
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(COPY_BATCH_CONCURRENCY, pending.length) }, worker));
    if (failure !== undefined) throw failure.error;
    // The run as read before the copies: most times still current, so the fan-in need not read it again. A batch
    // hands over what its listing and its copies showed copied, so the fan-in lists the rows only once none is pending.
    await finalizeRunIfComplete(deps, run.runId, found, progress);
  } catch (error) {
    await handleStepError(deps, run, error);
  }
}

/**
 * The ledger rows of the named blobs: one read for one blob, one query of the run's rows for a batch. That query also
 * gives the run's copied blobs and bytes (the batch's progress starts from them).
 */
async function blobRows(
  deps: PipelineDeps,
  runId: string,
  names: string[],
): Promise<{ rows: Map<string, BlobRecord>; progress?: CopyProgress }> {
  if (names.length === 1) {
    const blob = await deps.ledger.getBlob(runId, names[0]!);
    return { rows: new Map(blob === undefined ? [] : [[blob.name, blob]]) };
  }
  const wanted = new Set(names);
  const all = await deps.ledger.listBlobs(runId);
  const copied = all.filter((b) => b.status === 'copied');
  return {
    rows: new Map(all.filter((b) => wanted.has(b.name)).map((b) => [b.name, b] as const)),
    progress: { copied: copied.length, bytes: copied.reduce((sum, b) => sum + (b.byteCount ?? 0), 0) },
  };
}

/** Copies one blob and records it copied; returns its length. */
async function copyOne(deps: PipelineDeps, run: RunRecord, name: string, blob: BlobRecord): Promise<number> {
  const destinationPath = `${run.path}/${name}`;
  crashPoint('copy.beforeCopy');
  // A blob the fan-in set back to pending may be in the destination with its length but other content: copy it
  // again rather than take it as already there.
  const replace = (blob.recopies ?? 0) > 0;
  const result = await copyWithFreshSas(deps, run, name, destinationPath, replace);
  crashPoint('copy.afterCopy');
  await deps.ledger.markBlobCopied(run.runId, name, {
    byteCount: result.byteCount,
    contentType: result.contentType,
    method: result.method,
    copiedAt: deps.clock.now().toISOString(),
    contentCrc64: result.contentCrc64,
    contentMd5: result.contentMd5,
    destinationEtag: result.destinationEtag,
  });
  crashPoint('copy.afterMarkCopied');
  runLogger(deps, run).info(`Copied ${name} (${result.byteCount} bytes, ${result.method}).`);
  return result.byteCount;
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
