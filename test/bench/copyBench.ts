/**
 * Copy benchmark (`npm run bench`): the overhead of ServerSideBlobCopier against the same storage calls issued
 * directly, the bytes that pass through this process, the memory of the streaming fallback, and the throughput of
 * the emulator's data generator. Everything is a ratio against a baseline measured in the same run: on Azurite,
 * server-side copies are slower than streaming (platform-notes 0.0), so the two are never compared with each other.
 *
 * Usage: `npm run bench [-- --quick] [-- --small-count=8 --small-mib=16 --large-mib=300 --runs=5 ...]`; see `usage()`.
 * Progress goes to stderr; stdout gets the tables and, last, one JSON line with every ratio.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { subscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import {
  AnonymousCredential,
  BlobClient,
  type BlockBlobClient,
  ContainerClient,
  RestError,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import {
  type CopyDestinationClient,
  containerCopyClients,
  ServerSideBlobCopier,
  type ServerSideBlobCopierOptions,
  STREAM_MAX_BUFFERS,
} from '../../src/adapters/storage/blobCopier';
import { loadConfig } from '../../src/config';
import { createExportDataStore, type DatasetSpec, type GeneratedDataset } from '../../src/emulator/exportDataStore';
import { usageBlobChunks } from '../../src/emulator/usageData';
import { type AzuriteInstance, exportSourceStorage, PARTNER_DEST_ACCOUNT, startAzurite } from '../../src/local/azurite';

const MiB = 1024 * 1024;
const WORKER_FLAG = '--bench-worker';

// ---------------------------------------------------------------------------------------------------------------
// Options

interface BenchOptions {
  smallCount: number;
  smallMiB: number;
  largeMiB: number;
  /** Timed runs of the server-side overhead measurement (after one warm-up). */
  runs: number;
  /** Runs of each streaming variant, each in a fresh child process. */
  memoryRuns: number;
  /** Buffer of the streaming fallback, in both the copier and the direct baseline. */
  bufferMiB: number;
  /** Poll interval of asynchronous copies, in both the copier and the direct baseline. */
  pollMs: number;
  /** Memory sampling interval of the streaming runs. */
  sampleMs: number;
}

const DEFAULTS: BenchOptions = {
  smallCount: 8,
  smallMiB: 16,
  largeMiB: 300,
  runs: 5,
  memoryRuns: 3,
  bufferMiB: 8,
  pollMs: 500,
  sampleMs: 20,
};

const QUICK: Partial<BenchOptions> = { smallCount: 4, smallMiB: 2, largeMiB: 24, runs: 3, memoryRuns: 2 };

const OPTION_NAMES: Record<keyof BenchOptions, string> = {
  smallCount: 'small-count',
  smallMiB: 'small-mib',
  largeMiB: 'large-mib',
  runs: 'runs',
  memoryRuns: 'memory-runs',
  bufferMiB: 'buffer-mib',
  pollMs: 'poll-ms',
  sampleMs: 'sample-ms',
};

function usage(): string {
  return [
    'Usage: node dist/test/bench/copyBench.js [--quick] [--name=value ...]',
    '  --quick            small preset (4 x 2 MiB + 1 x 24 MiB, 3 runs, 2 memory runs); env BENCH_QUICK=1',
    ...Object.entries(OPTION_NAMES).map(([key, flag]) => {
      const env = `BENCH_${flag.replace(/-/g, '_').toUpperCase()}`;
      return `  --${flag.padEnd(16)} default ${DEFAULTS[key as keyof BenchOptions]}; env ${env}`;
    }),
    '  Copier settings come from the app settings: EXPORT_COPY_SINGLE_MAX_MIB, EXPORT_COPY_BLOCK_MIB, EXPORT_COPY_CONCURRENCY.',
  ].join('\n');
}

/** Flags win over environment variables, which win over the `--quick` preset, which wins over the defaults. */
function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    if (arg === '--help' || arg === '-h') {
      console.log(usage());
      process.exit(0);
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null) throw new Error(`Unknown argument '${arg}'.\n${usage()}`);
    flags.set(match[1]!, match[2] ?? 'true');
  }
  const quick = flags.has('quick') || env['BENCH_QUICK'] === '1' || env['BENCH_QUICK'] === 'true';
  flags.delete('quick');
  const options: BenchOptions = { ...DEFAULTS, ...(quick ? QUICK : {}) };
  const known = new Set(Object.values(OPTION_NAMES));
  for (const name of flags.keys()) {
    if (!known.has(name)) throw new Error(`Unknown option '--${name}'.\n${usage()}`);
  }
  for (const key of Object.keys(OPTION_NAMES) as Array<keyof BenchOptions>) {
    const flag = OPTION_NAMES[key];
    const raw = flags.get(flag) ?? env[`BENCH_${flag.replace(/-/g, '_').toUpperCase()}`];
    if (raw === undefined || raw === '') continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${flag} must be a positive number, got '${raw}'.`);
    options[key] = value;
  }
  options.smallCount = Math.round(options.smallCount);
  options.runs = Math.round(options.runs);
  options.memoryRuns = Math.round(options.memoryRuns);
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement helpers

function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Per-run ratios of two series measured in pairs: the run-to-run drift of a shared machine cancels out. */
function pairedRatios(numerators: readonly number[], denominators: readonly number[]): number[] {
  return numerators.map((value, index) => value / (denominators[index] ?? Number.NaN));
}

function mib(bytes: number): number {
  return bytes / MiB;
}

export interface NetSnapshot {
  bytesRead: number;
  bytesWritten: number;
  requests: number;
}

/**
 * Every byte this process sends or receives over TCP client sockets (HTTP headers included), whoever made the socket:
 * Node publishes each new client socket on the `net.client.socket` diagnostics channel.
 */
class NetCounter {
  private readonly live = new Set<Socket>();
  private closedRead = 0;
  private closedWritten = 0;
  private requests = 0;

  constructor() {
    subscribe('net.client.socket', (message) => {
      const socket = (message as { socket: Socket }).socket;
      this.live.add(socket);
      socket.once('close', () => {
        this.live.delete(socket);
        this.closedRead += socket.bytesRead;
        this.closedWritten += socket.bytesWritten;
      });
    });
    subscribe('http.client.request.start', () => {
      this.requests++;
    });
  }

  snapshot(): NetSnapshot {
    let bytesRead = this.closedRead;
    let bytesWritten = this.closedWritten;
    for (const socket of this.live) {
      bytesRead += socket.bytesRead;
      bytesWritten += socket.bytesWritten;
    }
    return { bytesRead, bytesWritten, requests: this.requests };
  }

  static delta(before: NetSnapshot, after: NetSnapshot): NetSnapshot {
    return {
      bytesRead: after.bytesRead - before.bytesRead,
      bytesWritten: after.bytesWritten - before.bytesWritten,
      requests: after.requests - before.requests,
    };
  }
}

export interface MemoryPeaks {
  samples: number;
  /** Longest gap between two samples (a busy event loop delays the timer). */
  maxGapMs: number;
  rssDelta: number;
  heapUsedDelta: number;
  /** `external` includes Buffers, which is where streamed bytes live. */
  heapPlusExternalDelta: number;
  /** The kernel's high-water mark of the resident set (`getrusage`), minus the resident set at the start. */
  maxRssDelta: number;
  /** Peak RSS delta of the second half of the copy over that of the first half: about 1 when memory is bounded. */
  lateOverEarlyRss: number;
}

/** Samples `process.memoryUsage()` on a timer and keeps the peaks above the starting point. */
class MemorySampler {
  private readonly start = process.memoryUsage();
  private readonly startedAt = performance.now();
  private last = this.startedAt;
  private peaks = { rss: 0, heapUsed: 0, heapPlusExternal: 0 };
  private samples = 0;
  private maxGapMs = 0;
  private readonly rssTrace: Array<{ at: number; rss: number }> = [];
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs: number) {
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const now = performance.now();
    this.maxGapMs = Math.max(this.maxGapMs, now - this.last);
    this.last = now;
    this.samples++;
    const usage = process.memoryUsage();
    this.rssTrace.push({ at: now, rss: usage.rss - this.start.rss });
    this.peaks = {
      rss: Math.max(this.peaks.rss, usage.rss - this.start.rss),
      heapUsed: Math.max(this.peaks.heapUsed, usage.heapUsed - this.start.heapUsed),
      heapPlusExternal: Math.max(
        this.peaks.heapPlusExternal,
        usage.heapUsed + usage.external - this.start.heapUsed - this.start.external,
      ),
    };
  }

  stop(): MemoryPeaks {
    this.sample();
    clearInterval(this.timer);
    const middle = (this.startedAt + this.last) / 2;
    const peakOf = (early: boolean): number =>
      Math.max(0, ...this.rssTrace.filter((point) => point.at < middle === early).map((point) => point.rss));
    return {
      lateOverEarlyRss: peakOf(false) / peakOf(true),
      samples: this.samples,
      maxGapMs: this.maxGapMs,
      rssDelta: this.peaks.rss,
      heapUsedDelta: this.peaks.heapUsed,
      heapPlusExternalDelta: this.peaks.heapPlusExternal,
      maxRssDelta: process.resourceUsage().maxRSS * 1024 - this.start.rss,
    };
  }
}

/** Counts what passes through it and drops it (gzip size calibration). */
class CountingSink extends Writable {
  bytes = 0;
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.bytes += chunk.length;
    callback();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The copy variants

/**
 * A destination that refuses every server-side copy as Azure does under a restricted copy scope
 * (403 CannotVerifyCopySource), so the copier falls back to streaming; everything else reaches the real blob.
 */
function refusingDestination(client: BlockBlobClient, refusals: { count: number }): CopyDestinationClient {
  const refuse = async (): Promise<never> => {
    refusals.count++;
    throw new RestError('This request is not authorized to perform this operation using this source (bench).', {
      statusCode: 403,
      code: 'CannotVerifyCopySource',
    });
  };
  return {
    getProperties: () => client.getProperties(),
    syncCopyFromURL: refuse,
    stageBlockFromURL: refuse,
    beginCopyFromURL: refuse,
    commitBlockList: (blocks, options) => client.commitBlockList(blocks, options),
    uploadStream: (stream, bufferSize, maxConcurrency, options) =>
      client.uploadStream(stream, bufferSize, maxConcurrency, options),
    setHTTPHeaders: (headers) => client.setHTTPHeaders(headers),
  };
}

/** The single storage call the copier's server-side `method` stands for, issued directly. */
async function directServerSideCopy(
  destination: BlockBlobClient,
  sourceUrl: string,
  method: string,
  pollMs: number,
): Promise<void> {
  if (method === 'copyFromUrl') {
    await destination.syncCopyFromURL(sourceUrl);
    return;
  }
  if (method === 'asyncCopy') {
    const poller = await destination.beginCopyFromURL(sourceUrl, { intervalInMs: pollMs });
    const result = await poller.pollUntilDone();
    if (result.copyStatus !== 'success') throw new Error(`Direct asynchronous copy ended ${result.copyStatus}.`);
    return;
  }
  throw new Error(
    `The bench has no direct baseline for the copy method '${method}' (Azurite has no Put Block From URL).`,
  );
}

/** A plain download + uploadStream with the copier's buffer settings. */
async function directStream(destination: BlockBlobClient, sourceUrl: string, bufferBytes: number, concurrency: number) {
  const source = new BlobClient(sourceUrl, new AnonymousCredential());
  const response = await source.download(0, undefined, { maxRetryRequests: 5 });
  const body = response.readableStreamBody;
  if (body === undefined) throw new Error('The direct download returned no body.');
  const readable = body instanceof Readable ? body : Readable.from(body);
  await destination.uploadStream(readable, bufferBytes, concurrency, {
    blobHTTPHeaders: { blobContentType: response.contentType ?? 'application/octet-stream' },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming worker: one copy in a fresh process, so its resident set says what that copy needed

type StreamVariant = 'copier' | 'direct';

export interface StreamJob {
  variant: StreamVariant;
  sourceUrl: string;
  destinationConnectionString: string;
  container: string;
  destinationPath: string;
  copier: ServerSideBlobCopierOptions;
  bufferBytes: number;
  sampleMs: number;
}

export interface StreamResult {
  variant: StreamVariant;
  ms: number;
  byteCount: number;
  method: string;
  refusals: number;
  net: NetSnapshot;
  memory: MemoryPeaks;
}

function isStreamResult(value: unknown): value is StreamResult {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return (
    (record['variant'] === 'copier' || record['variant'] === 'direct') &&
    typeof record['ms'] === 'number' &&
    typeof record['byteCount'] === 'number' &&
    typeof record['memory'] === 'object' &&
    typeof record['net'] === 'object'
  );
}

async function runStreamJob(job: StreamJob): Promise<StreamResult> {
  const net = new NetCounter();
  const container = new ContainerClient(job.destinationConnectionString, job.container);
  const destination = container.getBlockBlobClient(job.destinationPath);
  // Warm-up: load the HTTP stack and the SDK's lazy modules before the starting point is taken.
  await new BlobClient(job.sourceUrl, new AnonymousCredential()).getProperties();
  await container.getProperties();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  await new Promise((resolve) => setTimeout(resolve, 100));

  const refusals = { count: 0 };
  const netBefore = net.snapshot();
  const sampler = new MemorySampler(job.sampleMs);
  const started = performance.now();
  let method = 'stream';
  if (job.variant === 'copier') {
    const clients = {
      source: containerCopyClients(container).source,
      destination: () => refusingDestination(destination, refusals),
    };
    const copier = new ServerSideBlobCopier(clients, { ...job.copier, streamBufferBytes: job.bufferBytes });
    method = (await copier.copy({ sourceUrl: job.sourceUrl, destinationPath: job.destinationPath })).method;
  } else {
    await directStream(
      destination,
      job.sourceUrl,
      job.bufferBytes,
      Math.min(job.copier.concurrency, STREAM_MAX_BUFFERS),
    );
  }
  const ms = performance.now() - started;
  const memory = sampler.stop();
  const netDelta = NetCounter.delta(netBefore, net.snapshot());
  const byteCount = (await destination.getProperties()).contentLength ?? -1;
  return { variant: job.variant, ms, byteCount, method, refusals: refusals.count, net: netDelta, memory };
}

async function workerMain(): Promise<void> {
  const job = await new Promise<StreamJob>((resolve) =>
    process.once('message', (message) => resolve(message as StreamJob)),
  );
  let reply: { ok: boolean; result?: StreamResult; error?: string };
  try {
    reply = { ok: true, result: await runStreamJob(job) };
  } catch (error) {
    reply = { ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  // Idle keep-alive sockets would keep this process alive: leave as soon as the parent has the reply.
  process.send?.(reply, () => process.exit(0));
}

export function runWorker(job: StreamJob): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(__filename, [WORKER_FLAG], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    child.once('message', (message: unknown) => {
      settled = true;
      const reply = message as { ok?: boolean; result?: unknown; error?: string };
      if (reply.ok === true && isStreamResult(reply.result)) resolve(reply.result);
      else reject(new Error(`Streaming worker (${job.variant}) failed: ${reply.error ?? 'unreadable reply'}`));
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!settled) reject(new Error(`Streaming worker (${job.variant}) exited (code ${code}, signal ${signal}).`));
    });
    child.send(job);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The benchmark

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Gzip bytes per row of the generator, from a sample compressed here without uploading it. */
export async function gzipBytesPerRow(spec: Omit<DatasetSpec, 'billingPeriod' | 'blobCount'>): Promise<number> {
  const rows = 40_000;
  const sink = new CountingSink();
  await pipeline(
    Readable.from(usageBlobChunks({ ...spec, rowsPerBlob: rows }, 0, MiB)),
    createGzip({ level: 1, chunkSize: 64 * 1024 }),
    sink,
  );
  return sink.bytes / rows;
}

interface GenerationResult {
  label: string;
  dataset: GeneratedDataset;
  mibPerSecond: number;
  rowsPerSecond: number;
}

interface CopyTiming {
  ms: number;
  net: NetSnapshot;
  method: string;
}

interface GroupResult {
  label: string;
  blobCount: number;
  blobBytes: number;
  method: string;
  copierMs: number[];
  directMs: number[];
  copierNet: NetSnapshot;
  directNet: NetSnapshot;
}

function copierOptionsFromSettings(azurite: AzuriteInstance, pollMs: number): ServerSideBlobCopierOptions {
  const env: Record<string, string | undefined> = {
    EXPORT_CURRENCIES: 'USD',
    EXPORT_SCHEDULE: '0 0 6 * * *',
    AzureWebJobsStorage: azurite.connectionString('devstoreaccount1'),
    DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
  };
  for (const name of ['EXPORT_COPY_SINGLE_MAX_MIB', 'EXPORT_COPY_BLOCK_MIB', 'EXPORT_COPY_CONCURRENCY']) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  return { ...loadConfig(env).copy, asyncCopyPollIntervalMs: pollMs };
}

async function timed(net: NetCounter, work: () => Promise<string>): Promise<CopyTiming> {
  const before = net.snapshot();
  const started = performance.now();
  const method = await work();
  const ms = performance.now() - started;
  return { ms, net: NetCounter.delta(before, net.snapshot()), method };
}

function addNet(total: NetSnapshot, delta: NetSnapshot): void {
  total.bytesRead += delta.bytesRead;
  total.bytesWritten += delta.bytesWritten;
  total.requests += delta.requests;
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

function table(title: string, header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((cell, column) => pad(cell, widths[column] ?? 0, column > 0)).join(' | ')} |`;
  const rule = `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`;
  return [`\n${title}`, line(header), rule, ...rows.map(line)].join('\n');
}

function fixed(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

function round(value: number, digits = 4): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  const net = new NetCounter();
  log(`options ${JSON.stringify(options)}`);
  const azurite = await startAzurite();
  try {
    await bench(azurite, options, net);
  } finally {
    await azurite.stop();
  }
}

async function bench(azurite: AzuriteInstance, options: BenchOptions, net: NetCounter): Promise<void> {
  const copierOptions = copierOptionsFromSettings(azurite, options.pollMs);
  const bufferBytes = options.bufferMiB * MiB;
  log(`copier options ${JSON.stringify(copierOptions)}, stream buffer ${options.bufferMiB} MiB`);

  // 3. Data generation (also the source data of 1 and 2).
  const store = createExportDataStore(exportSourceStorage(azurite));
  const base = {
    currency: 'USD',
    attributeSet: 'full' as const,
    billingMonth: '202410',
    usageDays: 31,
    partnerTenantId: '3b4c6a1e-5d2f-4e8a-9b7c-0d1e2f3a4b5c',
    billingPeriod: 'last' as const,
  };
  const perRow = await gzipBytesPerRow({ ...base, seed: 1, rowsPerBlob: 0 });
  log(`generator: ${perRow.toFixed(1)} gzip bytes per row`);
  const generate = async (
    label: string,
    seed: number,
    blobCount: number,
    sizeMiB: number,
  ): Promise<GenerationResult> => {
    const rowsPerBlob = Math.max(1, Math.round((sizeMiB * MiB) / perRow));
    log(`generating ${label}: ${blobCount} x ${rowsPerBlob} rows`);
    const dataset = await store.ensure({ ...base, seed, blobCount, rowsPerBlob }, new Date());
    const seconds = dataset.durationMs / 1000;
    return {
      label,
      dataset,
      mibPerSecond: mib(dataset.byteCount) / seconds,
      rowsPerSecond: dataset.rowCount / seconds,
    };
  };
  const generated = [
    await generate(`${options.smallCount} x ${options.smallMiB} MiB`, 1, options.smallCount, options.smallMiB),
    await generate(`1 x ${options.largeMiB} MiB`, 2, 1, options.largeMiB),
  ];
  const [smallSet, largeSet] = generated.map((result) => result.dataset) as [GeneratedDataset, GeneratedDataset];
  const sas = store.sasToken(new Date(Date.now() + 3 * 60 * 60 * 1000));
  // As the pipeline builds it: `${rootDirectory}/${name}?${sasToken}`.
  const sourceUrl = (dataset: GeneratedDataset, name: string): string =>
    `${store.containerUrl}/${dataset.directory}/${name}?${sas}`;

  const destination = new ContainerClient(
    `${azurite.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}/bench${Date.now().toString(36)}`,
    new StorageSharedKeyCredential(PARTNER_DEST_ACCOUNT.name, PARTNER_DEST_ACCOUNT.key),
  );
  await destination.create();
  const copier = new ServerSideBlobCopier(destination, { ...copierOptions, streamBufferBytes: bufferBytes });

  // 1. Server-side copy: copier vs the same call issued directly.
  const groups: GroupResult[] = [];
  for (const [label, dataset] of [
    [`${smallSet.blobs.length} x ${options.smallMiB} MiB`, smallSet],
    [`1 x ${options.largeMiB} MiB`, largeSet],
  ] as const) {
    const blobs = dataset.blobs.map((blob, index) => ({
      url: sourceUrl(dataset, blob.name),
      path: `overhead/${dataset.eTag.replace(/\W/g, '')}/${index}.json.gz`,
      bytes: blob.byteCount,
    }));
    const group: GroupResult = {
      label,
      blobCount: blobs.length,
      blobBytes: blobs.reduce((sum, blob) => sum + blob.bytes, 0),
      method: '',
      copierMs: [],
      directMs: [],
      copierNet: { bytesRead: 0, bytesWritten: 0, requests: 0 },
      directNet: { bytesRead: 0, bytesWritten: 0, requests: 0 },
    };
    const methods = new Set<string>();
    const clear = (path: string) => destination.getBlockBlobClient(path).deleteIfExists();
    // Warm-up (untimed): connections, Azurite's code paths, and which server-side method the copier picks.
    const methodOf = new Map<string, string>();
    for (const blob of blobs) {
      await clear(blob.path);
      methodOf.set(blob.path, (await copier.copy({ sourceUrl: blob.url, destinationPath: blob.path })).method);
    }
    for (let run = 0; run < options.runs; run++) {
      log(`server-side ${label}: run ${run + 1}/${options.runs}`);
      let copierMs = 0;
      let directMs = 0;
      for (const blob of blobs) {
        const method = methodOf.get(blob.path) ?? 'unknown';
        const viaCopier = async (): Promise<void> => {
          await clear(blob.path);
          const timing = await timed(net, async () => {
            return (await copier.copy({ sourceUrl: blob.url, destinationPath: blob.path })).method;
          });
          copierMs += timing.ms;
          methods.add(timing.method);
          if (run === 0) addNet(group.copierNet, timing.net);
        };
        const direct = async (): Promise<void> => {
          await clear(blob.path);
          const target = destination.getBlockBlobClient(blob.path);
          const timing = await timed(net, async () => {
            await directServerSideCopy(target, blob.url, method, options.pollMs);
            return method;
          });
          directMs += timing.ms;
          if (run === 0) addNet(group.directNet, timing.net);
          const length = (await target.getProperties()).contentLength;
          if (length !== blob.bytes) throw new Error(`Direct copy left ${length} bytes instead of ${blob.bytes}.`);
        };
        // Alternate the order so neither side always runs on a warmer Azurite.
        if (run % 2 === 0) {
          await viaCopier();
          await direct();
        } else {
          await direct();
          await viaCopier();
        }
      }
      group.copierMs.push(copierMs);
      group.directMs.push(directMs);
      log(`  copier ${copierMs.toFixed(0)} ms, direct ${directMs.toFixed(0)} ms`);
    }
    for (const blob of blobs) await clear(blob.path);
    group.method = [...methods].join('+');
    groups.push(group);
  }

  // 2. Streaming fallback of the large blob: copier (destination refusing server-side copies) vs plain streaming.
  const largeBlob = largeSet.blobs[0]!;
  const largeUrl = sourceUrl(largeSet, largeBlob.name);
  const streamResults: StreamResult[] = [];
  for (let run = 0; run < options.memoryRuns; run++) {
    const order: StreamVariant[] = run % 2 === 0 ? ['copier', 'direct'] : ['direct', 'copier'];
    for (const variant of order) {
      log(`streaming ${variant}: run ${run + 1}/${options.memoryRuns}`);
      const destinationPath = `stream/${variant}-${run}.json.gz`;
      const result = await runWorker({
        variant,
        sourceUrl: largeUrl,
        destinationConnectionString: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
        container: destination.containerName,
        destinationPath,
        copier: copierOptions,
        bufferBytes,
        sampleMs: options.sampleMs,
      });
      if (result.byteCount !== largeBlob.byteCount) {
        throw new Error(`Streamed copy (${variant}) left ${result.byteCount} bytes instead of ${largeBlob.byteCount}.`);
      }
      if (variant === 'copier' && result.method !== 'stream') {
        throw new Error(`The copier was expected to stream but used '${result.method}'.`);
      }
      streamResults.push(result);
      log(
        `  ${result.ms.toFixed(0)} ms, peak RSS +${mib(result.memory.rssDelta).toFixed(1)} MiB, ` +
          `heap+external +${mib(result.memory.heapPlusExternalDelta).toFixed(1)} MiB`,
      );
      await destination.getBlockBlobClient(destinationPath).deleteIfExists();
    }
  }
  await destination.deleteIfExists();

  report(options, copierOptions, bufferBytes, generated, groups, streamResults, largeBlob.byteCount);
}

function report(
  options: BenchOptions,
  copierOptions: ServerSideBlobCopierOptions,
  bufferBytes: number,
  generated: GenerationResult[],
  groups: GroupResult[],
  streams: StreamResult[],
  largeBytes: number,
): void {
  const out: string[] = [];
  out.push(
    `Copy benchmark, ${new Date().toISOString()}, Node ${process.version}, Azurite in memory, ` +
      `load average at the end ${loadavg()
        .map((value) => value.toFixed(2))
        .join(' ')} (${availableParallelism()} cores). ` +
      `Copier: single copy <= ${mib(copierOptions.singleCopyMaxBytes)} MiB, concurrency ${copierOptions.concurrency}, ` +
      `stream buffer ${mib(bufferBytes)} MiB, async poll ${options.pollMs} ms.`,
  );

  out.push(
    table(
      '1. Server-side copy: ServerSideBlobCopier.copy vs the same storage call issued directly ' +
        `(times: median of ${options.runs} runs; ratio and extra time: median of the per-run pairs; ` +
        'requests and bytes per blob, first run)',
      [
        'blobs',
        'method',
        'copier ms',
        'direct ms',
        'overhead ratio',
        'extra ms/blob',
        'copier req/blob',
        'direct req/blob',
        'copier bytes/blob',
        'direct bytes/blob',
        'process bytes / blob bytes',
      ],
      groups.map((group) => {
        const copierBytes = (group.copierNet.bytesRead + group.copierNet.bytesWritten) / group.blobCount;
        const directBytes = (group.directNet.bytesRead + group.directNet.bytesWritten) / group.blobCount;
        return [
          group.label,
          group.method,
          fixed(median(group.copierMs), 0),
          fixed(median(group.directMs), 0),
          fixed(median(pairedRatios(group.copierMs, group.directMs)), 3),
          fixed(
            median(group.copierMs.map((ms, run) => (ms - (group.directMs[run] ?? Number.NaN)) / group.blobCount)),
            1,
          ),
          fixed(group.copierNet.requests / group.blobCount, 1),
          fixed(group.directNet.requests / group.blobCount, 1),
          fixed(copierBytes, 0),
          fixed(directBytes, 0),
          (copierBytes / (group.blobBytes / group.blobCount)).toExponential(1),
        ];
      }),
    ),
  );

  const summarize = (variant: StreamVariant) => {
    const runs = streams.filter((result) => result.variant === variant);
    return {
      runs: runs.length,
      ms: median(runs.map((result) => result.ms)),
      rss: median(runs.map((result) => result.memory.rssDelta)),
      maxRss: median(runs.map((result) => result.memory.maxRssDelta)),
      heap: median(runs.map((result) => result.memory.heapPlusExternalDelta)),
      bytes: median(runs.map((result) => result.net.bytesRead + result.net.bytesWritten)),
      requests: median(runs.map((result) => result.net.requests)),
      refusals: median(runs.map((result) => result.refusals)),
      maxGap: Math.max(...runs.map((result) => result.memory.maxGapMs)),
      lateOverEarly: median(runs.map((result) => result.memory.lateOverEarlyRss)),
      samples: median(runs.map((result) => result.memory.samples)),
    };
  };
  const copier = summarize('copier');
  const direct = summarize('direct');
  // Runs are made in pairs (one of each variant per run, order alternating): compare within a pair.
  const runsOf = (variant: StreamVariant) => streams.filter((result) => result.variant === variant);
  const streamThroughputVsDirect = median(
    pairedRatios(
      runsOf('direct').map((result) => result.ms),
      runsOf('copier').map((result) => result.ms),
    ),
  );
  const streamRssVsDirect = median(
    pairedRatios(
      runsOf('copier').map((result) => result.memory.rssDelta),
      runsOf('direct').map((result) => result.memory.rssDelta),
    ),
  );
  const bound = bufferBytes * Math.min(copierOptions.concurrency, STREAM_MAX_BUFFERS);
  out.push(
    table(
      `2. Streaming fallback of 1 x ${fixed(mib(largeBytes), 1)} MiB (fresh process per run, median of ${options.memoryRuns}; ` +
        `memory sampled every ${options.sampleMs} ms; bound = buffer x min(concurrency, 8) = ${fixed(mib(bound), 0)} MiB)`,
      [
        'variant',
        'ms',
        'MiB/s',
        'peak RSS delta MiB',
        'maxRSS delta MiB',
        'peak heap+external MiB',
        'RSS / blob',
        'RSS / bound',
        'late/early peak',
        'MiB through process',
        'requests',
      ],
      [
        ['copier (forced stream)', copier],
        ['direct download+uploadStream', direct],
      ].map(([name, stats]) => {
        const s = stats as typeof copier;
        return [
          name as string,
          fixed(s.ms, 0),
          fixed(mib(largeBytes) / (s.ms / 1000), 1),
          fixed(mib(s.rss), 1),
          fixed(mib(s.maxRss), 1),
          fixed(mib(s.heap), 1),
          fixed(s.rss / largeBytes, 3),
          fixed(s.rss / bound, 3),
          fixed(s.lateOverEarly, 2),
          fixed(mib(s.bytes), 1),
          fixed(s.requests, 0),
        ];
      }),
    ),
  );
  out.push(
    `   copier vs direct (median of the per-run pairs): throughput ${fixed(streamThroughputVsDirect, 3)}, ` +
      `peak RSS ${fixed(streamRssVsDirect, 3)}; bytes through the process ${fixed(copier.bytes / largeBytes, 3)} x blob.`,
    `   copier: ${copier.refusals} refused server-side attempt(s) before streaming; ` +
      `largest gap between memory samples ${fixed(Math.max(copier.maxGap, direct.maxGap), 0)} ms.`,
  );

  out.push(
    table(
      '3. Emulator data generation (ExportDataStore.ensure into Azurite; information only)',
      ['data set', 'blobs', 'gzip MiB', 'rows', 'seconds', 'gzip MiB/s', 'rows/s'],
      generated.map((result) => [
        result.label,
        String(result.dataset.blobs.length),
        fixed(mib(result.dataset.byteCount), 1),
        String(result.dataset.rowCount),
        fixed(result.dataset.durationMs / 1000, 1),
        fixed(result.mibPerSecond, 1),
        fixed(result.rowsPerSecond, 0),
      ]),
    ),
  );
  out.push(
    '\nRatios are against baselines measured in this run. Azurite runs server-side copies in one thread after reading the',
    'whole source (platform-notes 0.0): do not compare server-side and streaming wall times here.',
  );
  console.log(out.join('\n'));

  const groupRatios = Object.fromEntries(
    groups.map((group, index) => {
      const key = index === 0 ? 'small' : 'large';
      const copierBytes = (group.copierNet.bytesRead + group.copierNet.bytesWritten) / group.blobCount;
      return [
        key,
        {
          blobs: group.blobCount,
          blobMiB: round(mib(group.blobBytes / group.blobCount), 2),
          method: group.method,
          overheadRatio: round(median(pairedRatios(group.copierMs, group.directMs))),
          overheadMsPerBlob: round(
            median(group.copierMs.map((ms, run) => (ms - (group.directMs[run] ?? Number.NaN)) / group.blobCount)),
            1,
          ),
          processBytesPerBlobByte: round(copierBytes / (group.blobBytes / group.blobCount), 8),
          copierBytesVsDirect: round(
            copierBytes / ((group.directNet.bytesRead + group.directNet.bytesWritten) / group.blobCount),
          ),
          requestsVsDirect: round(group.copierNet.requests / Math.max(1, group.directNet.requests)),
        },
      ];
    }),
  );
  console.log(
    JSON.stringify({
      bench: 'copy',
      date: new Date().toISOString(),
      options,
      loadAverage: loadavg().map((value) => round(value, 2)),
      serverSide: groupRatios,
      stream: {
        blobMiB: round(mib(largeBytes), 2),
        boundMiB: mib(bound),
        peakRssPerBlobByte: round(copier.rss / largeBytes),
        peakRssPerBound: round(copier.rss / bound),
        lateOverEarlyPeakRss: round(copier.lateOverEarly),
        peakHeapExternalPerBound: round(copier.heap / bound),
        peakRssVsDirect: round(streamRssVsDirect),
        throughputVsDirect: round(streamThroughputVsDirect),
        processBytesPerBlobByte: round(copier.bytes / largeBytes),
      },
      generation: Object.fromEntries(
        generated.map((result, index) => [
          index === 0 ? 'small' : 'large',
          { gzipMiBPerSecond: round(result.mibPerSecond, 1) },
        ]),
      ),
    }),
  );
}

if (process.argv.includes(WORKER_FLAG)) {
  void workerMain();
} else if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  });
}
