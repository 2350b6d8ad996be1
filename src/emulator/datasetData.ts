import { reconciliationBlobChunks } from './reconciliationData';
import { type UsageDataSpec, usageBlobChunks } from './usageData';

/** The JSON lines of one blob of any dataset: usage rows (unbilled, billed) or invoice reconciliation rows. */
export function datasetBlobChunks(spec: UsageDataSpec, blobIndex: number, chunkBytes?: number): Generator<Buffer> {
  const reconciliation = spec.dataset === 'unbilledReconciliation' || spec.dataset === 'billedReconciliation';
  return reconciliation
    ? reconciliationBlobChunks(spec, blobIndex, chunkBytes)
    : usageBlobChunks(spec, blobIndex, chunkBytes);
}
