import type { UsageDataSpec } from './usageData';

/** The job a gzip usage worker gets as `workerData`. */
export interface GzipUsageJob {
  spec: UsageDataSpec;
  blobIndex: number;
}

/** Messages from the worker; the parent answers each consumed `data` with the message `'credit'`. */
export type GzipUsageMessage =
  | { type: 'data'; chunk: ArrayBuffer }
  | { type: 'end' }
  | { type: 'error'; message: string };

/** Chunks a worker may post before it waits for credits. */
export const INITIAL_CREDITS = 16;
/** Raw JSON per generated chunk. */
export const RAW_CHUNK_BYTES = 1024 * 1024;
/** Gzip output per posted chunk. */
export const GZIP_CHUNK_BYTES = 64 * 1024;
