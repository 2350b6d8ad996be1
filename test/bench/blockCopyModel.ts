/**
 * The parallel Put Block From URL path of ServerSideBlobCopier, measured against a fake storage service (Azurite
 * does not implement Put Block From URL). The fake answers every request after a fixed latency, and moves block
 * bytes at a per-request bandwidth, shared fairly under a service-wide bandwidth (processor sharing, recomputed on
 * every start and end). Time runs `scale` times faster than the model's: durations are reported in model time.
 */
import { RestError } from '@azure/storage-blob';
import {
  type BlobCopierClients,
  type CopyDestinationClient,
  ServerSideBlobCopier,
} from '../../src/adapters/storage/blobCopier';

const MiB = 1024 * 1024;

export interface ServiceModel {
  /** Latency of every request (round trip plus service set-up), model milliseconds. */
  latencyMs: number;
  /** Bandwidth one Put Block From URL request reaches on its own, MiB/s. */
  requestMiBps: number;
  /** Bandwidth of the service for all requests of one copy together, MiB/s. */
  serviceMiBps: number;
  /** Model time runs this many times faster than the wall clock. */
  scale: number;
}

interface Transfer {
  remaining: number;
  resolve: () => void;
}

/** Processor-sharing bandwidth: n active transfers each get min(request, service / n). */
class SharedBandwidth {
  private readonly active = new Set<Transfer>();
  private last = performance.now();
  private timer: NodeJS.Timeout | undefined;
  maxActive = 0;

  constructor(private readonly model: ServiceModel) {}

  /** Bytes per wall-clock millisecond of each active transfer. */
  private rate(): number {
    const n = Math.max(1, this.active.size);
    const mibps = Math.min(this.model.requestMiBps, this.model.serviceMiBps / n);
    return ((mibps * MiB) / 1000) * this.model.scale;
  }

  transfer(bytes: number): Promise<void> {
    return new Promise((resolve) => {
      this.advance();
      this.active.add({ remaining: bytes, resolve });
      this.maxActive = Math.max(this.maxActive, this.active.size);
      this.schedule();
    });
  }

  private advance(): void {
    const now = performance.now();
    const moved = (now - this.last) * this.rate();
    this.last = now;
    for (const transfer of this.active) transfer.remaining -= moved;
  }

  private schedule(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.active.size === 0) return;
    const least = Math.min(...[...this.active].map((transfer) => transfer.remaining));
    this.timer = setTimeout(
      () => {
        this.advance();
        for (const transfer of [...this.active]) {
          if (transfer.remaining <= 1) {
            this.active.delete(transfer);
            transfer.resolve();
          }
        }
        this.schedule();
      },
      Math.max(0, least / this.rate()),
    );
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface BlockCopyResult {
  blobMiB: number;
  blockMiB: number;
  concurrency: number;
  /** Model seconds of the whole copier.copy() (properties, blocks, commit, check). */
  seconds: number;
  requests: number;
  maxInFlight: number;
  method: string;
}

/** Copies one blob of `blobMiB` through the real ServerSideBlobCopier against the fake service. */
export async function measureBlockCopy(
  model: ServiceModel,
  blobMiB: number,
  blockMiB: number,
  concurrency: number,
): Promise<BlockCopyResult> {
  const size = Math.round(blobMiB * MiB);
  const bandwidth = new SharedBandwidth(model);
  const wait = () => sleep(model.latencyMs / model.scale);
  let requests = 0;
  let committed = false;
  let inFlight = 0;
  let maxInFlight = 0;
  const destination: CopyDestinationClient = {
    async getProperties() {
      requests++;
      await wait();
      if (!committed)
        throw new RestError('The specified blob does not exist.', { statusCode: 404, code: 'BlobNotFound' });
      return { contentLength: size, contentType: 'application/gzip' };
    },
    async syncCopyFromURL() {
      throw new Error('not used: blobs here are above EXPORT_COPY_SINGLE_MAX_MIB');
    },
    async stageBlockFromURL(_id, _url, _offset, count) {
      requests++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await wait();
      await bandwidth.transfer(count);
      inFlight--;
      return {};
    },
    async commitBlockList() {
      requests++;
      await wait();
      committed = true;
      return {};
    },
    async beginCopyFromURL() {
      throw new Error('not used');
    },
    async uploadStream() {
      throw new Error('not used');
    },
    async setHTTPHeaders() {
      requests++;
      await wait();
      return {};
    },
  };
  const clients: BlobCopierClients = {
    source: () => ({
      async getProperties() {
        requests++;
        await wait();
        return { contentLength: size, contentType: 'application/gzip' };
      },
      async download() {
        throw new Error('not used');
      },
    }),
    destination: () => destination,
  };
  const copier = new ServerSideBlobCopier(clients, {
    singleCopyMaxBytes: 256 * MiB,
    blockSizeBytes: blockMiB * MiB,
    concurrency,
  });
  const started = performance.now();
  const result = await copier.copy({
    sourceUrl: 'https://source.invalid/c/blob.json.gz?se=2999-01-01T00%3A00%3A00Z',
    destinationPath: 'run/blob.json.gz',
  });
  const seconds = ((performance.now() - started) * model.scale) / 1000;
  return { blobMiB, blockMiB, concurrency, seconds, requests, maxInFlight, method: result.method };
}

/** The model's lower bound for one blob: the service bandwidth, plus the calls that cannot overlap. */
export function modelBoundSeconds(model: ServiceModel, blobMiB: number): number {
  return blobMiB / model.serviceMiBps + (4 * model.latencyMs) / 1000;
}
