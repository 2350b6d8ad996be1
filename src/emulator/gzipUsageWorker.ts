/**
 * Worker thread body (run as a worker only, never imported): generates one blob's JSON lines and gzips
 * them, posting the compressed chunks to the parent. Credit-based flow control: the parent grants a credit
 * for each chunk it has taken, so at most `INITIAL_CREDITS` chunks are in flight however slow the upload is.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { createGzip } from 'node:zlib';
import { datasetBlobChunks } from './datasetData';
import {
  GZIP_CHUNK_BYTES,
  type GzipUsageJob,
  type GzipUsageMessage,
  INITIAL_CREDITS,
  RAW_CHUNK_BYTES,
} from './gzipUsageProtocol';

function isJob(value: unknown): value is GzipUsageJob {
  if (typeof value !== 'object' || value === null) return false;
  const job = value as Partial<GzipUsageJob>;
  return typeof job.blobIndex === 'number' && typeof job.spec === 'object' && job.spec !== null;
}

function run(): void {
  const port = parentPort;
  if (port === null) return;
  const job: unknown = workerData;
  if (!isJob(job)) {
    port.postMessage({ type: 'error', message: 'gzip usage worker: invalid job' } satisfies GzipUsageMessage);
    return;
  }
  let credits = INITIAL_CREDITS;
  let blocked: (() => void) | undefined;
  port.on('message', (message: unknown) => {
    if (message !== 'credit') return;
    credits++;
    const resume = blocked;
    blocked = undefined;
    resume?.();
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      // A copy in a fresh ArrayBuffer, transferred without another copy.
      const copy = new Uint8Array(chunk).buffer;
      port.postMessage({ type: 'data', chunk: copy } satisfies GzipUsageMessage, [copy]);
      credits--;
      if (credits > 0) callback();
      else blocked = () => callback();
    },
  });
  pipeline(
    Readable.from(datasetBlobChunks(job.spec, job.blobIndex, RAW_CHUNK_BYTES)),
    createGzip({ level: 1, chunkSize: GZIP_CHUNK_BYTES }),
    sink,
  ).then(
    () => port.postMessage({ type: 'end' } satisfies GzipUsageMessage),
    (error: unknown) =>
      port.postMessage({
        type: 'error',
        message: error instanceof Error ? error.message : String(error),
      } satisfies GzipUsageMessage),
  );
}

run();
