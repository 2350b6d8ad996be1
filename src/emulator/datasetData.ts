import { aggregatedUsageBlobChunks } from './aggregatedUsageData';
import { reconciliationBlobChunks } from './reconciliationData';
import { type UsageDataSpec, usageBlobChunks } from './usageData';

/**
 * The JSON lines of one blob of any dataset: usage rows (unbilled, billed), invoice reconciliation rows, or
 * billed aggregated usage rows.
 */
export function datasetBlobChunks(spec: UsageDataSpec, blobIndex: number, chunkBytes?: number): Generator<Buffer> {
  if (spec.dataset === 'billedAggregatedUsage') return aggregatedUsageBlobChunks(spec, blobIndex, chunkBytes);
  const reconciliation = spec.dataset === 'unbilledReconciliation' || spec.dataset === 'billedReconciliation';
  return reconciliation
    ? reconciliationBlobChunks(spec, blobIndex, chunkBytes)
    : usageBlobChunks(spec, blobIndex, chunkBytes);
}
