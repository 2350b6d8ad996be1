import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline as pipelineCallback, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { createGzip } from 'node:zlib';
import {
  type BlockBlobClient,
  ContainerClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { mapLimited } from '../concurrency';
import { datasetBlobChunks } from './datasetData';
import { GZIP_CHUNK_BYTES, type GzipUsageJob, RAW_CHUNK_BYTES } from './gzipUsageProtocol';
import { randomInt, seededRandom, stableETag } from './seededRandom';
import type { UsageDataSpec } from './usageData';

/** The container Microsoft's unbilled exports live in (reference section 4.3). */
export const EXPORT_CONTAINER = 'unbilledusagefastpath';

/** Azurite 3.35 knows service versions up to this one; the SDK's newer default breaks SAS signatures there. */
const SAS_VERSION = '2025-11-05';
const UPLOAD_BUFFER_BYTES = 4 * 1024 * 1024;
const UPLOAD_BUFFERS = 4;
/**
 * Blobs generated at once. Each is generated and gzipped in its own worker thread, so rows, compression
 * and the uploads of the main thread overlap; one more than the cores measured best.
 */
const BLOB_CONCURRENCY = 3;
/** The compiled worker (absent when running the TypeScript sources through a loader: then in-process). */
const WORKER_FILE = join(__dirname, 'gzipUsageWorker.js');

/** A data set to generate: the usage data plus how it is cut into blobs. */
export interface DatasetSpec extends UsageDataSpec {
  billingPeriod: 'current' | 'last';
  blobCount: number;
}

export interface GeneratedBlob {
  name: string;
  byteCount: number;
}

/** A data set written into Microsoft's (emulated) storage. */
export interface GeneratedDataset {
  eTag: string;
  /** Path inside the container, e.g. `v1/202410080035/PartnerTenantId=.../PartitionType=default`. */
  directory: string;
  createdDateTime: Date;
  blobs: GeneratedBlob[];
  byteCount: number;
  rowCount: number;
  durationMs: number;
}

/** The identity of a data set: same identity, same bytes, same eTag. */
export function datasetIdentity(spec: DatasetSpec): string {
  return [
    // Unbilled usage keeps the identity it had before datasets existed (same eTags, same blob names).
    spec.dataset === undefined || spec.dataset === 'unbilledUsage'
      ? 'unbilled'
      : `${spec.dataset}|${spec.invoiceId ?? ''}`,
    spec.seed,
    spec.currency,
    spec.billingPeriod,
    spec.billingMonth,
    spec.usageDays,
    spec.attributeSet,
    spec.blobCount,
    spec.rowsPerBlob,
    spec.partnerTenantId,
  ].join('|');
}

function snapshotStamp(date: Date): string {
  const pad = (value: number): string => String(value).padStart(2, '0');
  return (
    `${date.getUTCFullYear()}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}` +
    `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}`
  );
}

/**
 * The folder of a data set, shaped like the live service's (reference section 4.3): unbilled data under a
 * snapshot stamp and `Currency=`, billed data under `InvoiceId=` and `InvoiceVersion=`. Datasets other than
 * unbilled usage get a leading folder of their own (Microsoft uses a container per dataset).
 */
export function exportDirectory(spec: DatasetSpec, now: Date): string {
  const dataset = spec.dataset ?? 'unbilledUsage';
  const lead = dataset === 'unbilledUsage' ? '' : `${dataset.toLowerCase()}/`;
  if (spec.invoiceId !== undefined) {
    return (
      `${lead}v1/PartnerTenantId=${spec.partnerTenantId}/BillingMonth=${spec.billingMonth}` +
      `/InvoiceId=${spec.invoiceId}/InvoiceVersion=${snapshotStamp(now)}/Fragment=${spec.attributeSet}/PartitionType=default`
    );
  }
  return (
    `${lead}v1/${snapshotStamp(now)}/PartnerTenantId=${spec.partnerTenantId}/BillingMonth=${spec.billingMonth}` +
    `/Currency=${spec.currency}/Fragment=${spec.attributeSet}/PartitionType=default`
  );
}

/** Spark-style part file names: one job id for the whole data set, part numbers with gaps. */
function blobNames(spec: DatasetSpec): string[] {
  const random = seededRandom('names', datasetIdentity(spec));
  const hex = (count: number): string => {
    let out = '';
    for (let i = 0; i < count; i++) out += Math.floor(random() * 16).toString(16);
    return out;
  };
  const jobId = `${hex(8)}-${hex(4)}-4${hex(3)}-${(8 + Math.floor(random() * 4)).toString(16)}${hex(3)}-${hex(12)}`;
  const names: string[] = [];
  let part = randomInt(random, 0, 120);
  for (let i = 0; i < spec.blobCount; i++) {
    names.push(`part-${String(part).padStart(5, '0')}-${jobId}.c000.json.gz`);
    part += randomInt(random, 1, 3);
  }
  return names;
}

/** The gzip bytes of one blob, produced by a worker thread with credit-based flow control. */
class WorkerGzipStream extends Readable {
  private readonly worker: Worker;
  private owedCredits = 0;
  private finished = false;

  constructor(job: GzipUsageJob) {
    super({ highWaterMark: 1024 * 1024 });
    this.worker = new Worker(WORKER_FILE, { workerData: job });
    this.worker.on('message', (message: unknown) => this.receive(message));
    this.worker.once('error', (error) => this.destroy(error));
    this.worker.once('exit', (code) => {
      if (!this.finished && !this.destroyed)
        this.destroy(new Error(`The gzip worker stopped early (exit code ${code}).`));
    });
  }

  private receive(message: unknown): void {
    if (typeof message !== 'object' || message === null || !('type' in message)) return;
    if (message.type === 'data' && 'chunk' in message && message.chunk instanceof ArrayBuffer) {
      if (this.push(Buffer.from(message.chunk))) this.worker.postMessage('credit');
      else this.owedCredits++;
    } else if (message.type === 'end') {
      this.finished = true;
      this.push(null);
      void this.worker.terminate();
    } else if (message.type === 'error') {
      const text = 'message' in message && typeof message.message === 'string' ? message.message : 'unknown error';
      this.destroy(new Error(`Generating export data failed: ${text}`));
    }
  }

  override _read(): void {
    for (; this.owedCredits > 0; this.owedCredits--) this.worker.postMessage('credit');
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    void this.worker.terminate();
    callback(error);
  }
}

/** The gzip bytes of one blob: from a worker thread when the compiled worker exists, else in-process. */
export function gzippedUsageBlob(spec: UsageDataSpec, blobIndex: number): Readable {
  if (existsSync(WORKER_FILE)) return new WorkerGzipStream({ spec, blobIndex });
  return pipelineCallback(
    Readable.from(datasetBlobChunks(spec, blobIndex, RAW_CHUNK_BYTES)),
    createGzip({ level: 1, chunkSize: GZIP_CHUNK_BYTES }),
    () => undefined,
  );
}

class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

async function uploadBlob(
  client: BlockBlobClient,
  spec: DatasetSpec,
  index: number,
  abortSignal: AbortSignal,
): Promise<number> {
  const counter = new ByteCounter();
  const upload = client.uploadStream(counter, UPLOAD_BUFFER_BYTES, UPLOAD_BUFFERS, {
    blobHTTPHeaders: { blobContentType: 'application/x-gzip' },
    abortSignal,
  });
  // A generation error reaches the upload as a stream error; an upload error stops the generation.
  const feed = pipeline(gzippedUsageBlob(spec, index), counter);
  try {
    await upload;
  } catch (error) {
    counter.destroy(error instanceof Error ? error : new Error(String(error)));
    await feed.catch(() => undefined);
    throw error;
  }
  await feed;
  return counter.bytes;
}

/**
 * Writes generated export data into the account that plays Microsoft's storage, once per data identity,
 * and mints the read SAS tokens the manifests carry.
 */
export class ExportDataStore {
  private readonly container: ContainerClient;
  private readonly credential: StorageSharedKeyCredential;
  private readonly cache = new Map<string, Promise<GeneratedDataset>>();
  private containerReady: Promise<unknown> | undefined;
  private readonly aborter = new AbortController();

  constructor(container: ContainerClient, credential: StorageSharedKeyCredential) {
    this.container = container;
    this.credential = credential;
  }

  /** The blob endpoint URL of the export container (no SAS). */
  get containerUrl(): string {
    return this.container.url;
  }

  get containerName(): string {
    return this.container.containerName;
  }

  /** Stops every upload in flight (when the emulator stops). */
  abort(): void {
    this.aborter.abort();
  }

  /** Was this data set generated (or is it being generated) already? */
  has(spec: DatasetSpec): boolean {
    return this.cache.has(datasetIdentity(spec));
  }

  /** The data set for this spec: generated and uploaded the first time, then served from the cache. */
  ensure(spec: DatasetSpec, now: Date): Promise<GeneratedDataset> {
    const identity = datasetIdentity(spec);
    let dataset = this.cache.get(identity);
    if (dataset === undefined) {
      dataset = this.generate(spec, identity, now);
      this.cache.set(identity, dataset);
      // A failed generation must not stay cached: the next export tries again.
      dataset.catch(() => this.cache.delete(identity));
    }
    return dataset;
  }

  /** A read+list SAS for the export container, expiring at `expiresOn` (in the past for an expired one). */
  sasToken(expiresOn: Date): string {
    return generateBlobSASQueryParameters(
      {
        containerName: this.container.containerName,
        permissions: ContainerSASPermissions.parse('rl'),
        expiresOn,
        protocol: SASProtocol.HttpsAndHttp,
        version: SAS_VERSION,
      },
      this.credential,
    ).toString();
  }

  private async generate(spec: DatasetSpec, identity: string, now: Date): Promise<GeneratedDataset> {
    const started = Date.now();
    this.containerReady ??= this.container
      .createIfNotExists({ abortSignal: this.aborter.signal })
      .catch((error: unknown) => {
        this.containerReady = undefined;
        throw error;
      });
    await this.containerReady;
    const directory = exportDirectory(spec, now);
    const names = blobNames(spec);
    const sizes = await mapLimited(names, BLOB_CONCURRENCY, (name, index) =>
      uploadBlob(this.container.getBlockBlobClient(`${directory}/${name}`), spec, index, this.aborter.signal),
    );
    const blobs = names.map((name, index) => ({ name, byteCount: sizes[index] ?? 0 }));
    return {
      eTag: stableETag(identity),
      directory,
      createdDateTime: now,
      blobs,
      byteCount: blobs.reduce((sum, blob) => sum + blob.byteCount, 0),
      rowCount: spec.rowsPerBlob * spec.blobCount,
      durationMs: Date.now() - started,
    };
  }
}

export function createExportDataStore(storage: {
  blobEndpoint: string;
  accountName: string;
  accountKey: string;
}): ExportDataStore {
  const credential = new StorageSharedKeyCredential(storage.accountName, storage.accountKey);
  const endpoint = storage.blobEndpoint.replace(/\/+$/, '');
  return new ExportDataStore(new ContainerClient(`${endpoint}/${EXPORT_CONTAINER}`, credential), credential);
}
