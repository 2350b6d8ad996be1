import type { Readable } from 'node:stream';
import type { AttributeSet, BillingPeriod, DatasetId } from '../config';

/** How a run was started: the timer, or by hand (HTTP endpoint, command line). */
export type Trigger = 'schedule' | 'manual';

/** Run statuses (SPEC section 5). */
export const RUN_STATUSES = ['starting', 'waiting', 'copying', 'succeeded', 'unchanged', 'noData', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const TERMINAL_STATUSES: readonly RunStatus[] = ['succeeded', 'unchanged', 'noData', 'failed'];

/** One blob named by a Graph manifest. */
export interface ManifestBlob {
  name: string;
  partitionValue: string;
}

/** A validated Graph partner billing manifest. `sasToken` is a secret: never log or store it. */
export interface ExportManifest {
  id: string;
  schemaVersion: string;
  dataFormat: string;
  createdDateTime: string;
  eTag: string;
  partnerTenantId: string;
  rootDirectory: string;
  sasToken: string;
  partitionType: string;
  blobCount: number;
  blobs: ManifestBlob[];
}

/** The state of a Graph long-running operation, as a closed union. */
export type OperationState =
  | { kind: 'running'; status: string; retryAfterSeconds: number | undefined; unknownStatus: boolean }
  | { kind: 'succeeded'; status: string; manifest: ExportManifest }
  | { kind: 'failed'; status: string; code: string; message: string };

/** Result of starting an export. */
export interface StartedExport {
  operationUrl: string;
  retryAfterSeconds: number | undefined;
}

/** The export request of one dataset run (built by src/datasets.ts exportRequestFor). */
export interface ExportRequest {
  dataset: DatasetId;
  /** Export action path relative to the Graph root, e.g. `/reports/partners/billing/usage/billed/export`. */
  path: string;
  body: Record<string, string>;
}

/** The partner billing export API (Microsoft Graph, or its emulator). */
export interface BillingExportApi {
  /** Starts the export of any dataset. */
  startExport(request: ExportRequest): Promise<StartedExport>;
  startUnbilledExport(request: {
    currencyCode: string;
    billingPeriod: BillingPeriod;
    attributeSet: AttributeSet;
  }): Promise<StartedExport>;
  getOperation(operationUrl: string): Promise<OperationState>;
}

/** Fields of a run every log line and telemetry item carries. */
export interface RunIdentity {
  runId: string;
  currency: string;
  billingPeriod: BillingPeriod;
  attributeSet: AttributeSet;
  trigger: Trigger;
  operationId?: string | undefined;
  /** The dataset (src/datasets.ts); absent on rows written before datasets existed: unbilledUsage. */
  dataset?: DatasetId | undefined;
  /** The invoice of a billed dataset run. */
  invoiceId?: string | undefined;
}

/** What ExportMessagePoisoned carries. */
export interface PoisonedMessage {
  queue: string;
  runId: string | undefined;
  reason: string;
  runStatus: string;
  /** This message's poisoning ended the run (its conditional write failed it): the poison alert fires on it. */
  endedRun: boolean;
  /** The run's dataset (unbilledUsage for rows from before datasets); absent for an unknown run. */
  dataset?: DatasetId | undefined;
  /** The invoice of a billed dataset run. */
  invoiceId?: string | undefined;
}

/** Application Insights custom events and metrics. Implementations must redact and never throw. */
export interface Telemetry {
  runStarted(run: RunIdentity): void;
  runCompleted(
    run: RunIdentity & { status: RunStatus },
    measurements: { durationMs: number; blobCount: number; byteCount: number; polls: number },
  ): void;
  runFailed(
    run: RunIdentity & { status: RunStatus; errorCode: string; error: string },
    measurements: { durationMs: number; blobCount: number; byteCount: number; polls: number },
  ): void;
  /**
   * A message reached a poison queue. `runStatus`: the run's status after the handler's conditional write (`failed`
   * with `endedRun` when that write failed it: the alert fires), or the final status of a run that had ended without
   * it (another worker ended it, or it completed from its manifest.json: the alert skips it); '' for an unknown run.
   */
  messagePoisoned(details: PoisonedMessage): void;
  /** The supervisor resumed an overdue run (`step`: what it re-sent). */
  runResumed(run: RunIdentity & { status: RunStatus }, details: { step: string; resumes: number }): void;
  /** A message names a run whose ledger row is gone (deleted while the run was in flight): nothing can end it. */
  runMissing(details: { runId: string; queue: string; step: string }): void;
  /** A ledger row that cannot be read as a run: the supervisor skips it (and reports it on every sweep). */
  runUnreadable(details: UnreadableRun): void;
  /** A run's curation ended `succeeded` (ExportCurationCompleted). */
  curationCompleted(details: CurationEvent): void;
  /** A run's curation ended `failed` (ExportCurationFailed: the curation alert). */
  curationFailed(details: CurationEvent & { errorCode: string; error: string }): void;
  flush(): Promise<void>;
}

/** What the curation events carry. */
export interface CurationEvent extends RunIdentity {
  billingMonth: string;
  curationVersion: string;
  /** The series folder under curated/ (also under focus/). */
  curatedPath: string;
  /** False when a newer version of the series was already current. */
  current: boolean;
  /** The FinOps hub ingestion id of the version (the run id), when it was dropped into a hub. */
  hubIngestionId?: string | undefined;
  fileCount: number;
  rowsRead: number;
  rowsConverted: number;
  rowsRejected: number;
  durationMs: number;
}

/** A ledger row that cannot be read as a run: a value written by a newer version, a required field missing. */
export interface UnreadableRun {
  /** The row key (the run id as stored). */
  runId: string;
  /** The field that could not be read. */
  field: string;
  /** What is wrong, naming the row and the field (never the stored value: it may be anything). */
  problem: string;
}

/** Telemetry that goes nowhere (no connection string). */
export const noTelemetry: Telemetry = {
  runStarted() {},
  runCompleted() {},
  runFailed() {},
  messagePoisoned() {},
  runResumed() {},
  runMissing() {},
  runUnreadable() {},
  curationCompleted() {},
  curationFailed() {},
  async flush() {},
};

/** A run as recorded in the ledger (SPEC section 5). Holds no secret: no SAS, no token. */
export interface RunRecord extends RunIdentity {
  status: RunStatus;
  force: boolean;
  startedAt: string;
  updatedAt: string;
  completedAt?: string | undefined;
  /** Graph operation URL (no query string). */
  operationUrl?: string | undefined;
  /** The Graph root (GRAPH_BASE_URL, no query string) the run started with: it is only resumed against that one. */
  graphBaseUrl?: string | undefined;
  /** Attempts to have Graph accept the export before the run fails, when not the default (the command line's run). */
  maxStartAttempts?: number | undefined;
  polls: number;
  blobCount?: number | undefined;
  blobsCopied: number;
  byteCount: number;
  billingMonth?: string | undefined;
  /** The run folder inside the destination container; set once copying starts. */
  path?: string | undefined;
  manifestId?: string | undefined;
  eTag?: string | undefined;
  schemaVersion?: string | undefined;
  dataFormat?: string | undefined;
  manifestCreatedDateTime?: string | undefined;
  partnerTenantId?: string | undefined;
  /** The manifest's rootDirectory (a URL without query string). */
  rootDirectory?: string | undefined;
  errorCode?: string | undefined;
  error?: string | undefined;
  /** Last retried (transient) problem, shown when the message is finally poisoned. */
  lastError?: string | undefined;
  /** When the run's next step is expected (ISO): the delay of the message just scheduled. The supervisor compares it. */
  nextCheckAt?: string | undefined;
  /** Times the supervisor resumed this run. */
  resumes?: number | undefined;
  /** Attempts to have Graph accept the export (transient failures retried with a delay). */
  startAttempts?: number | undefined;
  /** Set once every copy message of the run was sent (ISO); until then a status message re-sends them. */
  copiesQueuedAt?: string | undefined;
  /**
   * Set (conditionally) by the finisher once every blob is verified in the destination, before manifest.json is
   * written: from then on the run can only succeed, and a failure that races the finisher completes it instead.
   */
  committedAt?: string | undefined;
  /** False from the write that ended the run until its end event was sent; the supervisor sends what a crash lost. */
  announced?: boolean | undefined;
}

/** One blob of a run. */
export interface BlobRecord {
  runId: string;
  name: string;
  status: 'pending' | 'copied';
  byteCount?: number | undefined;
  contentType?: string | undefined;
  method?: CopyMethod | undefined;
  copiedAt?: string | undefined;
  /** How many times the fan-in found this blob missing from the destination after it was copied, and re-copied it. */
  recopies?: number | undefined;
  /** CRC64 (base64) the storage service reported for the copied content; absent where it reported none. */
  contentCrc64?: string | undefined;
  /** Content-MD5 (base64) the destination blob reported after the copy; absent where it has none. */
  contentMd5?: string | undefined;
  /** ETag of the destination blob right after the copy: the fan-in compares it to see the blob was not rewritten. */
  destinationEtag?: string | undefined;
}

/** What a copy reports besides its length: the content hashes and the version of the destination blob. */
export interface CopiedContent {
  contentCrc64?: string | undefined;
  contentMd5?: string | undefined;
  destinationEtag?: string | undefined;
}

/** What a blob's row records of its copy. */
export type CopiedBlob = {
  byteCount: number;
  contentType: string | undefined;
  method: CopyMethod;
  copiedAt: string;
} & CopiedContent;

/** A stored value and its concurrency token. */
export interface Versioned<T> {
  value: T;
  etag: string;
}

/** Filters of the run history. */
export interface RunQuery {
  /** Runs started at or after this time (ISO). */
  since?: string | undefined;
  /** Runs started before this time (ISO). */
  until?: string | undefined;
  status?: RunStatus | undefined;
  currency?: string | undefined;
  /** Only ended runs whose end event may not have been sent (`announced` false). */
  unannounced?: boolean | undefined;
  dataset?: DatasetId | undefined;
  invoiceId?: string | undefined;
  /** Newest first; at most this many. */
  limit?: number | undefined;
}

/** The run ledger (Azure Table storage in the host account). */
export interface RunLedger {
  createRun(run: RunRecord): Promise<void>;
  getRun(runId: string): Promise<Versioned<RunRecord> | undefined>;
  /** Merges fields into a run. With `etag`, only if unchanged since read; returns false when someone else changed it. */
  updateRun(runId: string, fields: Partial<RunRecord>, etag?: string): Promise<boolean>;
  /**
   * Runs matching the query. A row that cannot be read as a run is left out and handed to `unreadable`; without
   * `unreadable`, the first such row fails the listing.
   */
  listRuns(query: RunQuery, unreadable?: (row: UnreadableRun) => void): Promise<RunRecord[]>;
  /** Creates the blob rows that do not exist yet (pending). */
  addBlobs(runId: string, names: string[]): Promise<void>;
  /** Sets a copied blob back to pending (it went missing from the destination), counting the re-copy. */
  /**
   * Only while the row is still the copied row with `recopies - 1` re-copies (as the caller read it): of two finishers
   * that found the same blob changed, one sets it back and sends its copy. Returns false when the row had moved on.
   */
  markBlobPending(runId: string, name: string, recopies: number): Promise<boolean>;
  getBlob(runId: string, name: string): Promise<BlobRecord | undefined>;
  /** The rows of the named blobs of one run (those that exist), read with a few small queries, not a listing. */
  getBlobs(runId: string, names: readonly string[]): Promise<BlobRecord[]>;
  markBlobCopied(runId: string, name: string, result: CopiedBlob): Promise<void>;
  /**
   * Records several blobs of one run copied, in as few requests as the store allows (one entity group transaction per
   * 100 rows): all of them or none of a transaction.
   */
  markBlobsCopied(runId: string, copies: Array<{ name: string } & CopiedBlob>): Promise<void>;
  listBlobs(runId: string): Promise<BlobRecord[]>;
  /** Whether any blob row of the run is still pending: one small query, not a listing of the rows. */
  hasPendingBlobs(runId: string): Promise<boolean>;
  /**
   * Takes the in-flight lock of (currency, period, attribute set) for `runId`. Returns undefined when taken,
   * or the run id holding it. `isStale(holderRunId, heldMs)` decides whether an existing holder may be replaced;
   * `heldMs` is how long that holder has held the lock by the storage service's clock (never a host's own clock,
   * which may be minutes off another host's).
   */
  acquireStartLock(
    key: string,
    runId: string,
    isStale: (holderRunId: string, heldMs: number) => Promise<boolean>,
  ): Promise<string | undefined>;
  /** Releases the lock if `runId` still holds it. */
  releaseStartLock(key: string, runId: string): Promise<void>;
  /** Records a queue message that could not be parsed (SPEC section 6: rejected and recorded). */
  recordRejectedMessage(queue: string, reason: string, excerpt: string): Promise<void>;
}

/** Messages of the export-status queue. */
export type StatusMessage =
  | {
      version: 1;
      kind: 'start';
      runId: string;
      /** The run's start attempts when this start was scheduled: an older one is a stale duplicate. */
      attempt?: number | undefined;
    }
  | {
      version: 1;
      kind: 'poll';
      runId: string;
      /** The run's poll count when this check was scheduled: an older one is a stale duplicate. */
      attempt: number;
      /** Graph's operation URL (no query string) when recording it in the ledger failed: the check adopts it. */
      operationUrl?: string | undefined;
    };

/**
 * Messages of the export-copy queue: one blob (`blobName`), or a batch of blobs of one run (`blobNames`), each blob
 * copied and recorded on its own ledger row as if it had its own message (src/pipeline/copyBatches.ts).
 */
export type CopyMessage =
  | { version: 1; runId: string; blobName: string }
  | { version: 1; runId: string; blobNames: string[] };

/** Queues with delayed delivery (base64 JSON, as the Functions host expects). */
export interface MessageQueue {
  sendStatus(message: StatusMessage, delaySeconds: number): Promise<void>;
  sendCopies(messages: CopyMessage[]): Promise<void>;
}

/** How a blob was copied. */
export type CopyMethod = 'copyFromUrl' | 'blockFromUrl' | 'asyncCopy' | 'stream' | 'alreadyPresent';

/** Copies one source blob (reached through a SAS URL) into the destination, byte for byte. */
export interface BlobCopier {
  copy(input: {
    /** Full source URL including the SAS: a secret. */
    sourceUrl: string;
    /** Blob path inside the destination container. */
    destinationPath: string;
    /** Copy even when a blob of the same length is there (the fan-in found it changed since an earlier copy). */
    replace?: boolean | undefined;
  }): Promise<{ byteCount: number; contentType: string | undefined; method: CopyMethod } & CopiedContent>;
}

/** One blob of a destination listing. */
export interface DestinationBlobInfo {
  path: string;
  byteCount: number;
  contentType: string | undefined;
  etag?: string | undefined;
  /** Content-MD5 (base64), where the blob has one. */
  contentMd5?: string | undefined;
}

/** The partner's destination container: our manifest.json and latest.json. */
export interface DestinationStore {
  /** Creates the container if missing (once per process; `again`: check again, it may have been deleted). */
  ensureContainer(again?: boolean): Promise<void>;
  readJson(path: string): Promise<Versioned<unknown> | undefined>;
  /**
   * Writes JSON. `ifNoneMatch: '*'` creates only; `ifMatch` replaces only that version.
   * Returns false when the condition failed.
   */
  writeJson(path: string, value: unknown, condition: { ifNoneMatch: '*' } | { ifMatch: string }): Promise<boolean>;
  /** The blobs under a folder (path, length, and the ETag and Content-MD5 the listing reports). */
  list(prefix: string): Promise<Array<DestinationBlobInfo>>;
}

/** One Parquet file of a FOCUS version, as it goes to a FinOps hub. */
export interface HubFile {
  /** File name without folder, ending in `.parquet` (letters, digits, `.`, `-`, `=`, single `_`); the hub stores it as `{ingestionId}__{name}`. */
  name: string;
  /** Length in bytes; the upload is checked against it. */
  byteCount: number;
  /** Opens the content from the start (again on a retry), e.g. `() => createReadStream(path)`. */
  open(): Readable;
}

/** One version of one series' FOCUS data, for a FinOps hub. */
export interface HubVersion {
  /** `YYYY-MM`: the hub folder `Costs/{yyyy}/{mm}`, which the hub's retention ages out by month. */
  billingMonth: string;
  /**
   * The series' own folder(s) under the configured scope, e.g. `['unbilled-usage', 'USD']`: a version replaces only
   * the previous version of its own folder, so every series needs its own, and keeps it (the hub drops old data by folder).
   * Give every series the same depth: a folder inside another's would lose its data in the hub with the outer one's.
   */
  series: readonly string[];
  /** Fills `{partnerTenantId}` in FINOPS_HUB_SCOPE (from the Graph manifest). */
  partnerTenantId: string;
  /**
   * Same for every file of the version and sorting, as a plain string, by the time the version was made (a run id
   * does); letters, digits, `.` and `-`. A version whose id sorts before the one in the folder is not published.
   */
  ingestionId: string;
  /**
   * At least one: the hub removes the previous version's rows from Data Explorer while it ingests each file of the
   * new one, so a version without rows carries one Parquet file of zero rows.
   */
  files: readonly HubFile[];
}

/** What a publish did. */
export type HubPublishOutcome =
  | { kind: 'published'; folder: string; filesWritten: number; filesDeleted: number }
  /** This version (same ingestion id, same files) was already complete in the folder, manifest included: nothing written. */
  | { kind: 'alreadyPublished'; folder: string }
  /** The folder holds a newer version: nothing of this one is left there. */
  | { kind: 'superseded'; folder: string; newerIngestionId: string };

/**
 * A FinOps hub's `ingestion` container: each version goes to `Costs/{yyyy}/{mm}/{scope}/{series}/`, replaces the
 * folder's previous version, and ends with `manifest.json`, whose creation starts the hub's ingestion.
 */
export interface FinOpsHubDrop {
  publish(version: HubVersion): Promise<HubPublishOutcome>;
}

/** Time, replaceable in tests. */
export interface Clock {
  now(): Date;
}

/** Log lines of a run; implementations prefix run fields and redact. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A logger whose lines also carry these run fields. */
  child(fields: Partial<RunIdentity>): Logger;
}
