/**
 * Hand-written in-memory fakes of the pipeline ports, for unit tests (no sockets, no SDKs).
 * They keep the semantics the pipeline relies on: ETags change on every update, conditional writes
 * fail on a stale ETag, the start lock asks `isStale`, blob rows are created once.
 */
import { createHash } from 'node:crypto';
import { type Config, loadConfig } from '../../src/config';
import { ExportError } from '../../src/errors';
import { copyExportBlob } from '../../src/pipeline/copyExportBlob';
import { ManifestCache, type PipelineDeps } from '../../src/pipeline/deps';
import { parseCopyMessage, parseStatusMessage } from '../../src/pipeline/messages';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import type {
  BillingExportApi,
  BlobCopier,
  BlobRecord,
  Clock,
  CopiedBlob,
  CopiedContent,
  CopyMessage,
  CopyMethod,
  CurationEvent,
  DestinationBlobInfo,
  DestinationStore,
  ExportManifest,
  ExportRequest,
  FinOpsHubDrop,
  HubPublishOutcome,
  HubVersion,
  Logger,
  MessageQueue,
  OperationState,
  PoisonedMessage,
  RunIdentity,
  RunLedger,
  RunQuery,
  RunRecord,
  RunStatus,
  StartedExport,
  StatusMessage,
  Telemetry,
  UnreadableRun,
  Versioned,
} from '../../src/pipeline/ports';

const clone = <T>(value: T): T => structuredClone(value);

// ---------------------------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------------------------

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  private current: number;

  constructor(start: Date | string = '2024-10-08T06:00:00.000Z') {
    this.current = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  advanceSeconds(seconds: number): void {
    this.current += seconds * 1000;
  }

  advanceHours(hours: number): void {
    this.current += hours * 3600_000;
  }

  set(to: Date | string): void {
    this.current = new Date(to).getTime();
  }
}

// ---------------------------------------------------------------------------------------------
// Run ledger
// ---------------------------------------------------------------------------------------------

/** A queue message that could not be parsed, as recorded by the ledger. */
export interface RejectedMessage {
  queue: string;
  reason: string;
  excerpt: string;
}

/** The run ledger in memory, with Azure Table-like optimistic concurrency. */
export class InMemoryRunLedger implements RunLedger {
  readonly runs = new Map<string, Versioned<RunRecord>>();
  readonly blobs = new Map<string, Map<string, BlobRecord>>();
  readonly locks = new Map<string, { runId: string; since: string }>();
  readonly rejected: RejectedMessage[] = [];
  /** Every updateRun call that changed a row, in order (for assertions on what was written). */
  readonly updates: Array<{ runId: string; fields: Partial<RunRecord> }> = [];
  /**
   * Runs once, just before the next ETag-conditional updateRun is checked: reproduces another worker's
   * write landing between a read and a conditional update.
   */
  beforeConditionalUpdate: (() => Promise<void>) | undefined;
  /** Rows that cannot be read as a run (run id -> the unreadable field), as a newer version's value would make them. */
  readonly unreadableFields = new Map<string, string>();
  private etagCounter = 0;
  private readonly clock: Clock;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  private nextEtag(): string {
    this.etagCounter += 1;
    return `W/"etag-${this.etagCounter}"`;
  }

  async createRun(run: RunRecord): Promise<void> {
    await tick();
    refuseSecret(run, `run ${run.runId}`);
    if (this.runs.has(run.runId)) throw new Error(`InMemoryRunLedger: run ${run.runId} already exists`);
    this.runs.set(run.runId, { value: clone(run), etag: this.nextEtag() });
  }

  async getRun(runId: string): Promise<Versioned<RunRecord> | undefined> {
    await tick();
    const field = this.unreadableFields.get(runId);
    if (field !== undefined) throw new Error(this.unreadableProblem(runId, field));
    const found = this.runs.get(runId);
    return found === undefined ? undefined : clone(found);
  }

  async updateRun(runId: string, fields: Partial<RunRecord>, etag?: string): Promise<boolean> {
    await tick();
    if (etag !== undefined && this.beforeConditionalUpdate !== undefined) {
      const racing = this.beforeConditionalUpdate;
      this.beforeConditionalUpdate = undefined;
      await racing();
    }
    const found = this.runs.get(runId);
    if (found === undefined) {
      throw new ExportError('RUN_NOT_FOUND', `Run ${runId} is not in the run ledger.`, { status: 404 });
    }
    if (etag !== undefined && etag !== found.etag) return false;
    refuseSecret(fields, `an update of run ${runId}`);
    const merged: Record<string, unknown> = { ...found.value };
    // As the Table ledger does: a field given as undefined is cleared.
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) delete merged[key];
      else merged[key] = clone(value);
    }
    this.runs.set(runId, { value: merged as unknown as RunRecord, etag: this.nextEtag() });
    this.updates.push({ runId, fields: clone(fields) });
    return true;
  }

  async listRuns(query: RunQuery, unreadable?: (row: UnreadableRun) => void): Promise<RunRecord[]> {
    await tick();
    return [...this.runs.values()]
      .map((v) => clone(v.value))
      .filter((r) => {
        const field = this.unreadableFields.get(r.runId);
        if (field === undefined || (query.status !== undefined && r.status !== query.status)) return true;
        const problem = this.unreadableProblem(r.runId, field);
        if (unreadable === undefined) throw new Error(problem);
        unreadable({ runId: r.runId, field, problem });
        return false;
      })
      .filter((r) => query.since === undefined || r.startedAt >= query.since)
      .filter((r) => query.until === undefined || r.startedAt < query.until)
      .filter((r) => query.status === undefined || r.status === query.status)
      .filter((r) => query.currency === undefined || r.currency === query.currency)
      .filter((r) => query.unannounced !== true || r.announced === false)
      .filter((r) => query.dataset === undefined || (r.dataset ?? 'unbilledUsage') === query.dataset)
      .filter((r) => query.invoiceId === undefined || r.invoiceId === query.invoiceId)
      .sort((a, b) => (a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0))
      .slice(0, query.limit ?? Number.POSITIVE_INFINITY);
  }

  async addBlobs(runId: string, names: string[]): Promise<void> {
    await tick();
    const rows = this.blobs.get(runId) ?? new Map<string, BlobRecord>();
    for (const name of names) if (!rows.has(name)) rows.set(name, { runId, name, status: 'pending' });
    this.blobs.set(runId, rows);
  }

  async getBlob(runId: string, name: string): Promise<BlobRecord | undefined> {
    await tick();
    const row = this.blobs.get(runId)?.get(name);
    return row === undefined ? undefined : clone(row);
  }

  async markBlobCopied(
    runId: string,
    name: string,
    result: {
      byteCount: number;
      contentType: string | undefined;
      method: CopyMethod;
      copiedAt: string;
    } & CopiedContent,
  ): Promise<void> {
    await tick();
    const rows = this.blobs.get(runId);
    const row = rows?.get(name);
    if (rows === undefined || row === undefined) throw new Error(`InMemoryRunLedger: no blob row ${runId}/${name}`);
    // As the table stores it: absent fields stay absent.
    const fields = Object.fromEntries(Object.entries(result).filter(([, value]) => value !== undefined));
    rows.set(name, { ...row, status: 'copied', ...fields } as BlobRecord);
  }

  async getBlobs(runId: string, names: readonly string[]): Promise<BlobRecord[]> {
    await tick();
    const rows = this.blobs.get(runId);
    return [...new Set(names)].flatMap((name) => {
      const row = rows?.get(name);
      return row === undefined ? [] : [clone(row)];
    });
  }

  async markBlobsCopied(runId: string, copies: Array<{ name: string } & CopiedBlob>): Promise<void> {
    // One transaction: every row exists, or none is written.
    const rows = this.blobs.get(runId);
    const missing = copies.find((copy) => rows?.get(copy.name) === undefined);
    if (missing !== undefined) throw new Error(`InMemoryRunLedger: no blob row ${runId}/${missing.name}`);
    for (const { name, ...result } of copies) await this.markBlobCopied(runId, name, result);
  }

  async markBlobPending(runId: string, name: string, recopies: number): Promise<boolean> {
    await tick();
    const rows = this.blobs.get(runId);
    const row = rows?.get(name);
    if (rows === undefined || row === undefined) throw new Error(`InMemoryRunLedger: no blob row ${runId}/${name}`);
    if (row.status !== 'copied' || (row.recopies ?? 0) !== recopies - 1) return false;
    rows.set(name, { runId, name, status: 'pending', recopies });
    return true;
  }

  async listBlobs(runId: string): Promise<BlobRecord[]> {
    await tick();
    return [...(this.blobs.get(runId)?.values() ?? [])].map(clone);
  }

  async hasPendingBlobs(runId: string): Promise<boolean> {
    await tick();
    return [...(this.blobs.get(runId)?.values() ?? [])].some((row) => row.status === 'pending');
  }

  async acquireStartLock(
    key: string,
    runId: string,
    isStale: (holderRunId: string, heldMs: number) => Promise<boolean>,
  ): Promise<string | undefined> {
    await tick();
    const holder = this.locks.get(key);
    if (holder !== undefined) {
      if (!(await isStale(holder.runId, this.clock.now().getTime() - Date.parse(holder.since)))) return holder.runId;
      // Replace only the holder we judged stale (another starter may have replaced it meanwhile; released, it is free).
      const now = this.locks.get(key);
      if (now !== undefined && now.runId !== holder.runId) return now.runId;
    }
    this.locks.set(key, { runId, since: this.clock.now().toISOString() });
    return undefined;
  }

  async releaseStartLock(key: string, runId: string): Promise<void> {
    await tick();
    if (this.locks.get(key)?.runId === runId) this.locks.delete(key);
  }

  async recordRejectedMessage(queue: string, reason: string, excerpt: string): Promise<void> {
    await tick();
    refuseSecret({ reason, excerpt }, 'a rejected message');
    this.rejected.push({ queue, reason, excerpt });
  }

  private unreadableProblem(runId: string, field: string): string {
    return `Run ledger row exportRuns/run/${runId}: field ${field} is not readable.`;
  }

  /** The current row of a run (throws when absent), for assertions. */
  run(runId: string): RunRecord {
    const found = this.runs.get(runId);
    if (found === undefined) throw new Error(`InMemoryRunLedger: no run ${runId}`);
    return clone(found.value);
  }

  /** Every stored value as JSON, to check no secret reached the ledger. */
  dump(): string {
    return JSON.stringify({
      runs: [...this.runs.values()],
      blobs: [...this.blobs.values()].map((m) => [...m.values()]),
      rejected: this.rejected,
    });
  }
}

/** As the Table ledger does (defence in depth): a value carrying a SAS signature is never stored. */
function refuseSecret(value: unknown, where: string): void {
  if (/sig=/i.test(JSON.stringify(value))) {
    throw new ExportError('COPY_FAILED', `Refused to store ${where} in the run ledger: it contains a SAS signature.`);
  }
}

/** Lets other pending promises run, so concurrent handlers interleave as they would on real I/O. */
export async function tick(times = 1): Promise<void> {
  for (let i = 0; i < times; i++) await Promise.resolve();
}

// ---------------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------------

/** A status message as sent: the encoded body (what the queue trigger receives) and its delay. */
export interface SentStatus {
  message: StatusMessage;
  delaySeconds: number;
  /** JSON text of the message, as it travels through the queue. */
  raw: string;
}

/** Records what the pipeline sends; `drain` delivers the pending messages. */
export class RecordingQueue implements MessageQueue {
  /** Every status message ever sent, in order. */
  readonly statusSent: SentStatus[] = [];
  /** Every copy message ever sent, in order. */
  readonly copiesSent: CopyMessage[] = [];
  /** Sent and not yet delivered by `drain` / `takeStatus` / `takeCopies`. */
  readonly pendingStatus: SentStatus[] = [];
  readonly pendingCopies: Array<{ message: CopyMessage; raw: string }> = [];
  /** Called after copy messages are recorded (to simulate workers that pick them up at once). */
  onCopies: ((messages: CopyMessage[]) => Promise<void>) | undefined;

  async sendStatus(message: StatusMessage, delaySeconds: number): Promise<void> {
    await tick();
    const sent = { message: clone(message), delaySeconds, raw: JSON.stringify(message) };
    this.statusSent.push(sent);
    this.pendingStatus.push(sent);
  }

  async sendCopies(messages: CopyMessage[]): Promise<void> {
    await tick();
    for (const message of messages) {
      this.copiesSent.push(clone(message));
      this.pendingCopies.push({ message: clone(message), raw: JSON.stringify(message) });
    }
    if (this.onCopies !== undefined) await this.onCopies(messages);
  }

  /** Removes and returns the pending status messages. */
  takeStatus(): SentStatus[] {
    return this.pendingStatus.splice(0, this.pendingStatus.length);
  }

  /** Removes and returns the pending copy messages (their raw bodies). */
  takeCopies(): string[] {
    return this.pendingCopies.splice(0, this.pendingCopies.length).map((c) => c.raw);
  }
}

// ---------------------------------------------------------------------------------------------
// Destination and copier
// ---------------------------------------------------------------------------------------------

/** One stored blob of the fake destination. */
export interface StoredBlob {
  body: string;
  etag: string;
  byteCount: number;
  contentType: string | undefined;
  /** Content-MD5 (base64), where the blob has one. */
  contentMd5?: string | undefined;
}

/** The destination container in memory, with conditional writes and a write counter per path. */
export class InMemoryDestination implements DestinationStore {
  readonly blobs = new Map<string, StoredBlob>();
  readonly writes = new Map<string, number>();
  ensureContainerCalls = 0;
  private etagCounter = 0;

  async ensureContainer(): Promise<void> {
    await tick();
    this.ensureContainerCalls += 1;
  }

  async readJson(path: string): Promise<Versioned<unknown> | undefined> {
    await tick();
    const blob = this.blobs.get(path);
    return blob === undefined ? undefined : { value: JSON.parse(blob.body) as unknown, etag: blob.etag };
  }

  async writeJson(
    path: string,
    value: unknown,
    condition: { ifNoneMatch: '*' } | { ifMatch: string },
  ): Promise<boolean> {
    await tick();
    const existing = this.blobs.get(path);
    if ('ifNoneMatch' in condition && existing !== undefined) return false;
    if ('ifMatch' in condition && existing?.etag !== condition.ifMatch) return false;
    const body = JSON.stringify(value, null, 2);
    this.put(path, { body, byteCount: Buffer.byteLength(body), contentType: 'application/json' });
    return true;
  }

  async list(prefix: string): Promise<DestinationBlobInfo[]> {
    await tick();
    // Like a real listing: ETags bare (no quotes).
    return [...this.blobs.entries()]
      .filter(([path]) => path.startsWith(prefix))
      .map(([path, blob]) => ({
        path,
        byteCount: blob.byteCount,
        contentType: blob.contentType,
        etag: blob.etag.replace(/"/g, ''),
        ...(blob.contentMd5 === undefined ? {} : { contentMd5: blob.contentMd5 }),
      }))
      .sort((a, b) => (a.path < b.path ? -1 : 1));
  }

  /** Stores a blob unconditionally (what a copy does). */
  put(path: string, blob: Omit<StoredBlob, 'etag'>): void {
    this.etagCounter += 1;
    this.blobs.set(path, { ...blob, etag: `"0x${this.etagCounter.toString(16)}"` });
    this.writes.set(path, (this.writes.get(path) ?? 0) + 1);
  }

  /** Writes so far to one path. */
  writeCount(path: string): number {
    return this.writes.get(path) ?? 0;
  }

  /** A stored JSON document (throws when absent). */
  json(path: string): unknown {
    const blob = this.blobs.get(path);
    if (blob === undefined) throw new Error(`InMemoryDestination: no blob ${path}`);
    return JSON.parse(blob.body) as unknown;
  }
}

/** What the in-memory FinOps hub holds for one series folder: the newest version published there. */
export interface HubFolder {
  ingestionId: string;
  /** `{ingestionId}__{name}` → content, as the hub would ingest it. */
  files: Map<string, Buffer>;
}

/**
 * A FinOps hub's ingestion container in memory, with the adapter's outcomes (test/integration/finOpsHubDrop.test.ts
 * checks the real one against Azurite): one version per folder, the newest ingestion id wins, a repeat writes nothing.
 * `failNext` makes the next publish throw before anything is stored.
 */
export class InMemoryFinOpsHub implements FinOpsHubDrop {
  readonly folders = new Map<string, HubFolder>();
  readonly publishes: HubVersion[] = [];
  failNext: Error | undefined;

  constructor(private readonly scope = 'csp/{partnerTenantId}') {}

  async publish(version: HubVersion): Promise<HubPublishOutcome> {
    await tick();
    this.publishes.push(version);
    const failure = this.failNext;
    if (failure !== undefined) {
      this.failNext = undefined;
      throw failure;
    }
    const [yyyy, mm] = version.billingMonth.split('-');
    const scope = this.scope.replaceAll('{partnerTenantId}', version.partnerTenantId);
    const folder = `Costs/${yyyy}/${mm}/${scope}/${version.series.join('/')}/`;
    const current = this.folders.get(folder);
    if (current !== undefined && current.ingestionId > version.ingestionId) {
      return { kind: 'superseded', folder, newerIngestionId: current.ingestionId };
    }
    if (current?.ingestionId === version.ingestionId) return { kind: 'alreadyPublished', folder };
    const files = new Map<string, Buffer>();
    for (const file of version.files) {
      const chunks: Buffer[] = [];
      for await (const chunk of file.open()) chunks.push(Buffer.from(chunk as Buffer));
      files.set(`${version.ingestionId}__${file.name}`, Buffer.concat(chunks));
    }
    this.folders.set(folder, { ingestionId: version.ingestionId, files });
    return { kind: 'published', folder, filesWritten: files.size, filesDeleted: current?.files.size ?? 0 };
  }
}

/** A stand-in for the CRC64 Azure reports of a copy: 8 bytes of a digest of the content, base64. */
export function fakeCrc64(body: string): string {
  return createHash('sha256').update(body).digest().subarray(0, 8).toString('base64');
}

/** Copies into an InMemoryDestination, records every call, and fails on demand. */
export class FakeCopier implements BlobCopier {
  readonly calls: Array<{ sourceUrl: string; destinationPath: string; replace?: true }> = [];
  /** Errors to throw, in order, before copies succeed again. */
  private readonly failures: unknown[] = [];
  private readonly destination: InMemoryDestination;
  /** Size of the copied blob: by default 1000 bytes plus the length of its name. */
  byteCountFor: (destinationPath: string) => number = (path) => 1000 + path.length;
  /**
   * What a copy leaves at the destination, where it differs from what it reports (a service that does not carry the
   * content type over; the source's Content-MD5, which Copy Blob From URL carries over but does not report).
   */
  landed: (destinationPath: string, replace: boolean) => { contentType?: string; contentMd5?: string } = () => ({});
  /** Extra microtask ticks a copy takes, per destination path (to shape interleavings). */
  delayTicks: (destinationPath: string) => number = () => 0;

  constructor(destination: InMemoryDestination) {
    this.destination = destination;
  }

  /** The next `times` copies throw `error`. */
  failNext(error: unknown, times = 1): void {
    for (let i = 0; i < times; i++) this.failures.push(error);
  }

  /** The next `times` copies fail because the source SAS expired (as the real copier reports it). */
  expireSas(times = 1): void {
    this.failNext(
      new ExportError('SOURCE_EXPIRED', 'The export SAS expired (403 AuthenticationFailed).', { status: 403 }),
      times,
    );
  }

  async copy(input: {
    sourceUrl: string;
    destinationPath: string;
    replace?: boolean | undefined;
  }): Promise<{ byteCount: number; contentType: string | undefined; method: CopyMethod } & CopiedContent> {
    this.calls.push({
      sourceUrl: input.sourceUrl,
      destinationPath: input.destinationPath,
      ...(input.replace === true ? { replace: true } : {}),
    });
    await tick(1 + this.delayTicks(input.destinationPath));
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    const byteCount = this.byteCountFor(input.destinationPath);
    const body = `gzip bytes of ${input.destinationPath}`;
    this.destination.put(input.destinationPath, {
      body,
      byteCount,
      contentType: 'application/x-gzip',
      ...this.landed(input.destinationPath, input.replace === true),
    });
    return {
      byteCount,
      contentType: 'application/x-gzip',
      method: 'copyFromUrl',
      // As Copy Blob From URL reports it: an 8-byte content hash (here a stand-in for CRC64), and the blob's ETag.
      contentCrc64: fakeCrc64(body),
      destinationEtag: this.destination.blobs.get(input.destinationPath)?.etag,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Graph
// ---------------------------------------------------------------------------------------------

/** A scripted answer: a value, or an error to throw. */
export type Scripted<T> = T | Error;

/** The URL of the n-th (1-based) export ScriptedGraph starts by default. */
export function operationUrl(n: number): string {
  return `https://graph.microsoft.com/v1.0/reports/partners/billing/operations/op-${n}`;
}

/**
 * A BillingExportApi whose answers are scripted and whose calls are recorded. Start answers are
 * consumed in order (default: accepted, Location op-N, no Retry-After). Operation answers are scripted
 * per operation URL (or for any URL); the last answer of a script repeats for further calls.
 */
export class ScriptedGraph implements BillingExportApi {
  readonly startCalls: Array<{ currencyCode: string; billingPeriod: string; attributeSet: string }> = [];
  readonly operationCalls: string[] = [];
  private started = 0;
  private readonly startScript: Array<Scripted<Partial<StartedExport>>> = [];
  private readonly operationScripts = new Map<string, Array<Scripted<OperationState>>>();

  /** Scripts the next start answers, in order. */
  scriptStart(...answers: Array<Scripted<Partial<StartedExport>>>): this {
    this.startScript.push(...answers);
    return this;
  }

  /** Scripts the answers of one operation URL ('*': any URL without its own script). */
  scriptOperation(url: string, ...answers: Array<Scripted<OperationState>>): this {
    const script = this.operationScripts.get(url) ?? [];
    script.push(...answers);
    this.operationScripts.set(url, script);
    return this;
  }

  /** Every export started, whatever the dataset. */
  readonly exportCalls: ExportRequest[] = [];

  async startExport(request: ExportRequest): Promise<StartedExport> {
    this.exportCalls.push({ ...request, body: { ...request.body } });
    if (request.dataset === 'unbilledUsage') {
      const { currencyCode, billingPeriod, attributeSet } = request.body;
      return this.startUnbilledExport({
        currencyCode: currencyCode ?? '',
        billingPeriod: billingPeriod === 'last' ? 'last' : 'current',
        attributeSet: attributeSet === 'basic' ? 'basic' : 'full',
      });
    }
    await tick();
    return this.answerStart();
  }

  async startUnbilledExport(request: {
    currencyCode: string;
    billingPeriod: 'current' | 'last';
    attributeSet: 'full' | 'basic';
  }): Promise<StartedExport> {
    await tick();
    this.startCalls.push({ ...request });
    return this.answerStart();
  }

  private answerStart(): StartedExport {
    this.started++;
    const answer = this.startScript.shift() ?? {};
    if (answer instanceof Error) throw answer;
    return {
      operationUrl: answer.operationUrl ?? operationUrl(this.started),
      retryAfterSeconds: answer.retryAfterSeconds,
    };
  }

  async getOperation(url: string): Promise<OperationState> {
    await tick();
    this.operationCalls.push(url);
    const script = this.operationScripts.get(url) ?? this.operationScripts.get('*');
    if (script === undefined || script.length === 0) throw new Error(`ScriptedGraph: no answer scripted for ${url}`);
    const answer = script.length > 1 ? script.shift()! : script[0]!;
    if (answer instanceof Error) throw answer;
    return clone(answer);
  }
}

/** A running operation answer. */
export function running(retryAfterSeconds?: number, status = 'running'): OperationState {
  return { kind: 'running', status, retryAfterSeconds, unknownStatus: !['running', 'notStarted'].includes(status) };
}

/** A succeeded operation answer carrying `manifest`. */
export function succeeded(manifest: ExportManifest): OperationState {
  return { kind: 'succeeded', status: 'succeeded', manifest };
}

/** A failed operation answer. */
export function failed(code: string, message: string): OperationState {
  return { kind: 'failed', status: 'failed', code, message };
}

/** The SAS signature of test manifests: must never appear in logs, ledger, telemetry or our files. */
export const SAS_SECRET = 'SECRET';

/** A validated manifest like the live one in the reference (unbilled, BillingMonth=202410), with a secret SAS. */
export function makeManifest(overrides: Partial<ExportManifest> & { blobNames?: string[] } = {}): ExportManifest {
  const { blobNames, ...rest } = overrides;
  const names = blobNames ?? [
    'part-00000-9a209a5e-0378-4bb5-9b6a-75bb0fe7ae84.c000.json.gz',
    'part-00001-9a209a5e-0378-4bb5-9b6a-75bb0fe7ae84.c000.json.gz',
    'part-00002-9a209a5e-0378-4bb5-9b6a-75bb0fe7ae84.c000.json.gz',
  ];
  const blobs = names.map((name) => ({ name, partitionValue: 'default' }));
  return {
    id: 'b8d16d34-910e-47e4-8fa5-c934976a9a11',
    schemaVersion: '2',
    dataFormat: 'compressedJSON',
    createdDateTime: '2024-10-08T00:57:36.037Z',
    eTag: '69D0qrTA8NTziitwV',
    partnerTenantId: '6e75cca6-47f0-47a3-a928-9d5315750bd9',
    rootDirectory:
      'https://adlsreconprodeastus2001.blob.core.windows.net/unbilledusagefastpath/v1/202410080035/PartnerTenantId=6e75cca6-47f0-47a3-a928-9d5315750bd9/BillingMonth=202410/Currency=USD/Fragment=full/PartitionType=default',
    sasToken: `skoid=5e84b29d&sktid=975f013f&sv=2021-08-06&se=2024-10-08T07%3A16%3A29Z&sr=d&sp=rl&sdd=7&sig=${SAS_SECRET}`,
    partitionType: 'default',
    blobCount: blobs.length,
    blobs,
    ...rest,
  };
}

// ---------------------------------------------------------------------------------------------
// Logs and telemetry
// ---------------------------------------------------------------------------------------------

/** One captured log line with the run fields of its logger. */
export interface LogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Partial<RunIdentity>;
}

/**
 * Captures log lines with their fields. Deliberately does not redact, so tests see exactly what the
 * pipeline hands to the logger.
 */
export class CapturingLogger implements Logger {
  readonly lines: LogLine[];
  private readonly fields: Partial<RunIdentity>;

  constructor(lines: LogLine[] = [], fields: Partial<RunIdentity> = {}) {
    this.lines = lines;
    this.fields = fields;
  }

  info(message: string): void {
    this.lines.push({ level: 'info', message, fields: { ...this.fields } });
  }

  warn(message: string): void {
    this.lines.push({ level: 'warn', message, fields: { ...this.fields } });
  }

  error(message: string): void {
    this.lines.push({ level: 'error', message, fields: { ...this.fields } });
  }

  child(fields: Partial<RunIdentity>): Logger {
    const merged: Partial<RunIdentity> = { ...this.fields };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
    }
    return new CapturingLogger(this.lines, merged);
  }

  /** Lines of one level. */
  at(level: LogLine['level']): LogLine[] {
    return this.lines.filter((line) => line.level === level);
  }

  /** Every line as JSON, to search for secrets. */
  dump(): string {
    return JSON.stringify(this.lines);
  }
}

type Measurements = { durationMs: number; blobCount: number; byteCount: number; polls: number };

/** Records every telemetry call. */
export class RecordingTelemetry implements Telemetry {
  readonly started: RunIdentity[] = [];
  readonly completed: Array<{ run: RunIdentity & { status: RunStatus }; measurements: Measurements }> = [];
  readonly failed: Array<{
    run: RunIdentity & { status: RunStatus; errorCode: string; error: string };
    measurements: Measurements;
  }> = [];
  readonly poisoned: PoisonedMessage[] = [];
  readonly resumed: Array<{ run: RunIdentity & { status: RunStatus }; details: { step: string; resumes: number } }> =
    [];
  readonly missing: Array<{ runId: string; queue: string; step: string }> = [];
  readonly unreadable: UnreadableRun[] = [];
  readonly curationsCompleted: CurationEvent[] = [];
  readonly curationsFailed: Array<CurationEvent & { errorCode: string; error: string }> = [];
  flushes = 0;

  runStarted(run: RunIdentity): void {
    this.started.push(clone(run));
  }

  runCompleted(run: RunIdentity & { status: RunStatus }, measurements: Measurements): void {
    this.completed.push(clone({ run, measurements }));
  }

  runFailed(
    run: RunIdentity & { status: RunStatus; errorCode: string; error: string },
    measurements: Measurements,
  ): void {
    this.failed.push(clone({ run, measurements }));
  }

  messagePoisoned(details: PoisonedMessage): void {
    this.poisoned.push(clone(details));
  }

  runResumed(run: RunIdentity & { status: RunStatus }, details: { step: string; resumes: number }): void {
    this.resumed.push(clone({ run, details }));
  }

  runMissing(details: { runId: string; queue: string; step: string }): void {
    this.missing.push(clone(details));
  }

  runUnreadable(details: UnreadableRun): void {
    this.unreadable.push(clone(details));
  }

  curationCompleted(details: CurationEvent): void {
    this.curationsCompleted.push(clone(details));
  }

  curationFailed(details: CurationEvent & { errorCode: string; error: string }): void {
    this.curationsFailed.push(clone(details));
  }

  async flush(): Promise<void> {
    this.flushes += 1;
  }

  dump(): string {
    return JSON.stringify({
      started: this.started,
      completed: this.completed,
      failed: this.failed,
      poisoned: this.poisoned,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Dependencies
// ---------------------------------------------------------------------------------------------

/** Settings of the test configuration (loopback Graph never contacted: the fakes stand in). */
export const TEST_ENV: Readonly<Record<string, string>> = {
  EXPORT_CURRENCIES: 'USD,EUR',
  EXPORT_BILLING_PERIODS: 'current',
  EXPORT_ATTRIBUTE_SET: 'full',
  EXPORT_SCHEDULE: '0 0 6 * * *',
  GRAPH_BASE_URL: 'https://127.0.0.1:1/v1.0',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
  DESTINATION_CONTAINER: 'partner-billing',
  DESTINATION_PREFIX: 'unbilled-usage',
  EXPORT_POLL_INITIAL_SECONDS: '30',
  EXPORT_POLL_MAX_SECONDS: '900',
  EXPORT_MAX_WAIT_HOURS: '6',
};

/** The test configuration, with some settings replaced. */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return loadConfig({ ...TEST_ENV, ...env });
}

/** PipelineDeps whose ports are the fakes above (typed as such, so tests can script and inspect them). */
export interface FakeDeps extends PipelineDeps {
  graph: ScriptedGraph;
  ledger: InMemoryRunLedger;
  queue: RecordingQueue;
  destination: InMemoryDestination;
  copier: FakeCopier;
  clock: ManualClock;
  telemetry: RecordingTelemetry;
  logger: CapturingLogger;
}

/** Options of makeDeps: settings to change, the start time, or ports to replace. */
export interface DepsOverrides {
  env?: Record<string, string | undefined>;
  start?: Date | string;
}

/**
 * Builds PipelineDeps over fresh fakes. Run ids are deterministic: the clock's time, then a counter
 * in hex, so they are valid run ids and sort by start time.
 */
export function makeDeps(overrides: DepsOverrides = {}): FakeDeps {
  const clock = new ManualClock(overrides.start);
  const destination = new InMemoryDestination();
  let counter = 0;
  return {
    config: testConfig(overrides.env),
    graph: new ScriptedGraph(),
    ledger: new InMemoryRunLedger(clock),
    queue: new RecordingQueue(),
    destination,
    copier: new FakeCopier(destination),
    clock,
    telemetry: new RecordingTelemetry(),
    logger: new CapturingLogger(),
    manifests: new ManifestCache(),
    sleep: async () => {
      await tick();
    },
    newRunId(now: Date): string {
      counter += 1;
      const stamp = now.toISOString().replace(/[-:]/g, '').replace('.', '');
      return `${stamp}-${counter.toString(16).padStart(8, '0')}`;
    },
  };
}

/** What drain delivered. */
export interface DrainResult {
  statusDelivered: number;
  copiesDelivered: number;
  /** Errors the handlers threw (the queue would retry these messages). */
  errors: unknown[];
}

/**
 * Delivers pending messages until none are left: status messages first (advancing the clock by each
 * delay instead of waiting), then copy messages. Handler errors are collected, or rethrown with
 * `throwOnError`. Stops after `maxDeliveries` to catch endless polling.
 */
export async function drain(
  deps: PipelineDeps,
  queue: RecordingQueue,
  options: { throwOnError?: boolean; maxDeliveries?: number } = {},
): Promise<DrainResult> {
  const result: DrainResult = { statusDelivered: 0, copiesDelivered: 0, errors: [] };
  const max = options.maxDeliveries ?? 1000;
  const clock = deps.clock instanceof ManualClock ? deps.clock : undefined;
  while (queue.pendingStatus.length > 0 || queue.pendingCopies.length > 0) {
    if (result.statusDelivered + result.copiesDelivered >= max) {
      throw new Error(`drain: more than ${max} deliveries; is the pipeline polling forever?`);
    }
    try {
      const status = queue.pendingStatus.shift();
      if (status !== undefined) {
        clock?.advanceSeconds(status.delaySeconds);
        result.statusDelivered += 1;
        await pollExportStatus(parseStatusMessage(status.raw), deps);
        continue;
      }
      const copy = queue.pendingCopies.shift();
      if (copy !== undefined) {
        result.copiesDelivered += 1;
        await copyExportBlob(parseCopyMessage(copy.raw), deps);
      }
    } catch (error) {
      if (options.throwOnError === true) throw error;
      result.errors.push(error);
    }
  }
  return result;
}
