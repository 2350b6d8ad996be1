/**
 * The parallel Put Block From URL path of ServerSideBlobCopier, measured against a fake storage service (Azurite
 * does not implement Put Block From URL). The fake answers every request after a fixed latency, and moves block
 * bytes at a per-request bandwidth, shared fairly under a service-wide bandwidth (processor sharing, recomputed on
 * every start and end). Time is virtual: the copier's real code runs, and the clock jumps from event to event.
 */
import { RestError } from '@azure/storage-blob';
import {
  type BlobCopierClients,
  type CopyDestinationClient,
  ServerSideBlobCopier,
} from '../../src/adapters/storage/blobCopier';

const MiB = 1024 * 1024;

export interface ServiceModel {
  /** Latency of every request (round trip plus service set-up), milliseconds. */
  latencyMs: number;
  /** Bandwidth one Put Block From URL request reaches on its own, MiB/s. */
  requestMiBps: number;
  /** Bandwidth of the service for all requests of one copy together, MiB/s. */
  serviceMiBps: number;
}

/**
 * Virtual time for code that only waits on this clock: whenever every promise continuation has run (setImmediate),
 * time jumps to the next event. Results are exact and independent of the machine's load.
 */
class VirtualClock {
  now = 0;
  private events: Array<{ at: number; seq: number; fire: () => void }> = [];
  private seq = 0;
  private pumping = false;

  at(time: number, fire: () => void): () => void {
    const event = { at: Math.max(time, this.now), seq: this.seq++, fire };
    this.events.push(event);
    this.pump();
    return () => {
      this.events = this.events.filter((candidate) => candidate !== event);
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.at(this.now + ms, resolve));
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    setImmediate(() => {
      this.pumping = false;
      if (this.events.length === 0) return;
      this.events.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.events.shift();
      if (next === undefined) return;
      this.now = next.at;
      next.fire();
      this.pump();
    });
  }
}

interface Transfer {
  remaining: number;
  resolve: () => void;
}

/** Processor-sharing bandwidth: n active transfers each get min(request, service / n). */
class SharedBandwidth {
  private readonly active = new Set<Transfer>();
  private last = 0;
  private cancel: (() => void) | undefined;

  constructor(
    private readonly model: ServiceModel,
    private readonly clock: VirtualClock,
  ) {}

  /** Bytes per millisecond of each active transfer. */
  private rate(): number {
    const n = Math.max(1, this.active.size);
    return (Math.min(this.model.requestMiBps, this.model.serviceMiBps / n) * MiB) / 1000;
  }

  transfer(bytes: number): Promise<void> {
    return new Promise((resolve) => {
      this.advance();
      this.active.add({ remaining: bytes, resolve });
      this.schedule();
    });
  }

  private advance(): void {
    const moved = (this.clock.now - this.last) * this.rate();
    this.last = this.clock.now;
    for (const transfer of this.active) transfer.remaining -= moved;
  }

  private schedule(): void {
    this.cancel?.();
    this.cancel = undefined;
    if (this.active.size === 0) return;
    const least = Math.min(...[...this.active].map((transfer) => transfer.remaining));
    this.cancel = this.clock.at(this.clock.now + Math.max(0, least / this.rate()), () => {
      this.cancel = undefined;
      this.advance();
      for (const transfer of [...this.active]) {
        if (transfer.remaining <= 1) {
          this.active.delete(transfer);
          transfer.resolve();
        }
      }
      this.schedule();
    });
  }
}

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
  const clock = new VirtualClock();
  const bandwidth = new SharedBandwidth(model, clock);
  const wait = () => clock.sleep(model.latencyMs);
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
  const result = await copier.copy({
    sourceUrl: 'https://source.invalid/c/blob.json.gz?se=2999-01-01T00%3A00%3A00Z',
    destinationPath: 'run/blob.json.gz',
  });
  const seconds = clock.now / 1000;
  return { blobMiB, blockMiB, concurrency, seconds, requests, maxInFlight, method: result.method };
}

/** The model's lower bound for one blob: the service bandwidth, plus the calls that cannot overlap. */
export function modelBoundSeconds(model: ServiceModel, blobMiB: number): number {
  return blobMiB / model.serviceMiBps + (4 * model.latencyMs) / 1000;
}
