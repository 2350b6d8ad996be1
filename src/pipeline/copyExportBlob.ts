import { crashPoint } from '../crashPoints';
import { ExportError, isExportError } from '../errors';
import { QueueNames } from '../names';
import type { PipelineDeps } from './deps';
import { finalizeRunIfComplete } from './finalizeRun';
import { reportMissingRun } from './missingRun';
import { checkGraphEndpoint } from './pollExportStatus';
import type { CopyMessage, ExportManifest, RunRecord } from './ports';
import { handleStepError, isTerminal, runLogger } from './runStateMachine';

/**
 * Copies one blob of a run (queue export-copy) server-side into the run folder, idempotently, then
 * lets the fan-in decide whether this was the last one. An expired source SAS is refreshed by fetching
 * the Graph operation again.
 */
export async function copyExportBlob(message: CopyMessage, deps: PipelineDeps): Promise<void> {
  const found = await deps.ledger.getRun(message.runId);
  if (found === undefined) {
    reportMissingRun(deps, { runId: message.runId, queue: QueueNames.copy, step: `The copy of ${message.blobName}` });
    return;
  }
  const run = found.value;
  const log = runLogger(deps, run);
  if (isTerminal(run.status)) {
    log.info(`Duplicate copy of ${message.blobName}: the run is already ${run.status}.`);
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
    const blob = await deps.ledger.getBlob(run.runId, message.blobName);
    if (blob === undefined) {
      throw new ExportError(
        'MANIFEST_INVALID',
        `Copy message names blob "${message.blobName}", which is not in the manifest of run ${run.runId}.`,
      );
    }
    if (blob.status !== 'copied') {
      const destinationPath = `${run.path}/${message.blobName}`;
      crashPoint('copy.beforeCopy');
      // A blob the fan-in set back to pending may be in the destination with its length but other content: copy it
      // again rather than take it as already there.
      const replace = (blob.recopies ?? 0) > 0;
      const result = await copyWithFreshSas(deps, run, message.blobName, destinationPath, replace);
      crashPoint('copy.afterCopy');
      await deps.ledger.markBlobCopied(run.runId, message.blobName, {
        byteCount: result.byteCount,
        contentType: result.contentType,
        method: result.method,
        copiedAt: deps.clock.now().toISOString(),
        contentCrc64: result.contentCrc64,
        contentMd5: result.contentMd5,
        destinationEtag: result.destinationEtag,
      });
      crashPoint('copy.afterMarkCopied');
      log.info(`Copied ${message.blobName} (${result.byteCount} bytes, ${result.method}).`);
    } else {
      log.info(`Blob ${message.blobName} was already copied; redelivered message ignored.`);
    }
    // The run as read before the copy: most times still current, so the fan-in need not read it again.
    await finalizeRunIfComplete(deps, run.runId, found);
  } catch (error) {
    await handleStepError(deps, run, error);
  }
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
