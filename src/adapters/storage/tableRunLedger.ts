import { createHash, randomBytes } from 'node:crypto';
import {
  type GetTableEntityOptions,
  odata,
  type TableClient,
  type TableEntity,
  type TableEntityResult,
} from '@azure/data-tables';
import { mapLimited } from '../../concurrency';
import {
  ATTRIBUTE_SETS,
  type AttributeSet,
  BILLING_PERIODS,
  type BillingPeriod,
  DATASET_IDS,
  type StorageConnection,
} from '../../config';
import { crashPoint } from '../../crashPoints';
import { ExportError } from '../../errors';
import { TableNames } from '../../names';
import type {
  BlobRecord,
  Clock,
  CopiedBlob,
  CopyMethod,
  RunLedger,
  RunQuery,
  RunRecord,
  RunStatus,
  Trigger,
  UnreadableRun,
  Versioned,
} from '../../pipeline/ports';
import { RUN_STATUSES } from '../../pipeline/ports';
import { redact } from '../../redact';
import { createTableClient, type StorageClientOptions, storageErrorInfo, tableCreatedOnce } from './clients';

/** Builds the client of one table of the ledger. */
export type TableClientFactory = (tableName: string) => TableClient;

/** Options of the ledger. */
export interface TableRunLedgerOptions {
  /** Credential options of an identity-based connection. */
  clientOptions?: StorageClientOptions | undefined;
  /** Table names; default `TableNames` (tests pass unique ones). */
  tableNames?: { runs: string; blobs: string; locks: string } | undefined;
  /**
   * Time of rejected messages and of a lock row's `since` (for people reading it: a lock's age is measured by the
   * service's clock); default the system clock.
   */
  clock?: Clock | undefined;
}

const RUN_PARTITION = 'run';
const LOCK_PARTITION = 'lock';
const REJECTED_PARTITION = 'rejected';
const BATCH_SIZE = 100;
/** Row keys one query names at most: Table storage allows 15 comparisons in a filter, one is the partition's. */
const KEYS_PER_QUERY = 14;
/** Queries, or 100-row transactions, one call has in flight at most. */
const IN_FLIGHT = 8;

const EXCERPT_MAX = 2000;

type Scalar = string | number | boolean;
type EntityValue = Scalar | { value: number; type: 'Double' };
type Entity = TableEntity<Record<string, EntityValue>>;
/** A stored entity as read back: anything the service returned. */
type StoredEntity = TableEntityResult<Record<string, unknown>>;

/**
 * Defence in depth (SPEC section 7): a ledger row never holds a SAS. Throws, without echoing the value,
 * when a string to be stored carries a SAS signature.
 */
export function assertNoSecret(value: string, where: string): void {
  if (/sig=/i.test(value)) {
    throw new ExportError(
      'COPY_FAILED',
      `Refused to store ${where} in the run ledger: the value contains a SAS signature (sig=). This is a bug; please report it.`,
    );
  }
}

/** The row key of a blob: base64url of its name (table keys forbid / \ # ?); a hash for names too long for a key. */
export function blobRowKey(name: string): string {
  const encoded = Buffer.from(name, 'utf8').toString('base64url');
  // Row keys hold at most 1 KiB; '~' is outside the base64url alphabet, so hashed keys cannot collide with encoded ones.
  return encoded.length <= 512 ? encoded : `~${createHash('sha256').update(name, 'utf8').digest('base64url')}`;
}

/** Can this be a table key as it is? Keys forbid / \ # ? and control characters. */
function isValidKey(key: string): boolean {
  if (key.length === 0 || key.length > 512 || /[/\\#?]/.test(key)) return false;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return false;
  }
  return true;
}

/** The row key of a lock: the key itself when it is a valid row key, else its base64url. */
function lockRowKey(key: string): string {
  return isValidKey(key) ? key : `~${Buffer.from(key, 'utf8').toString('base64url')}`;
}

/** Compact UTC stamp of an ISO time, as run ids start with it (`20261125T114100123Z`). */
function runIdStamp(iso: string, setting: string): string {
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) {
    throw new ExportError('REQUEST_INVALID', `${setting}: "${iso}" is not a date-time; ISO 8601 is accepted.`);
  }
  return time.toISOString().replace(/[-:]/g, '').replace('.', '');
}

function statusOf(error: unknown): number | undefined {
  return storageErrorInfo(error).status;
}

function toEntityValue(value: Scalar, where: string): EntityValue {
  if (typeof value === 'string') {
    assertNoSecret(value, where);
    return value;
  }
  // Integers beyond Int32 (byte counts) are sent as Edm.Double so the service accepts them and returns numbers.
  if (typeof value === 'number' && (!Number.isInteger(value) || Math.abs(value) > 2147483647)) {
    return { value, type: 'Double' };
  }
  return value;
}

/** Builds an entity: undefined fields stay absent; every string passes the SAS guard. */
function entity(
  partitionKey: string,
  rowKey: string,
  fields: Record<string, Scalar | undefined>,
  table: string,
): Entity {
  assertNoSecret(partitionKey, `${table} partition key`);
  assertNoSecret(rowKey, `${table} row key`);
  const out: Entity = { partitionKey, rowKey };
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) out[name] = toEntityValue(value, `${table}.${name}`);
  }
  return out;
}

/** A stored row that cannot be read: names the row and the field, never the stored value. */
class UnreadableRowError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** Reads typed fields of a stored entity; a wrong type is a corrupted row. */
class Row {
  constructor(
    private readonly stored: StoredEntity,
    private readonly table: string,
  ) {}

  private bad(name: string, expected: string): Error {
    return new UnreadableRowError(
      `Run ledger row ${this.table}/${this.stored.partitionKey}/${this.stored.rowKey}: field ${name} is not ${expected}.`,
      name,
    );
  }

  key(name: 'partitionKey' | 'rowKey'): string {
    const value = this.stored[name];
    if (value === undefined) throw this.bad(name, 'present');
    return value;
  }

  optString(name: string): string | undefined {
    const value = this.stored[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw this.bad(name, 'a string');
    return value;
  }

  string(name: string): string {
    const value = this.optString(name);
    if (value === undefined) throw this.bad(name, 'a string');
    return value;
  }

  optNumber(name: string): number | undefined {
    const value = this.stored[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'bigint') return Number(value);
    if (typeof value !== 'number') throw this.bad(name, 'a number');
    return value;
  }

  number(name: string, fallback: number): number {
    return this.optNumber(name) ?? fallback;
  }

  boolean(name: string): boolean {
    const value = this.stored[name];
    if (value === undefined || value === null) return false;
    if (typeof value !== 'boolean') throw this.bad(name, 'a boolean');
    return value;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const value = this.string(name);
    const found = allowed.find((candidate) => candidate === value);
    if (found === undefined) throw this.bad(name, `one of ${allowed.join(', ')}`);
    return found;
  }

  optOneOf<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    return this.optString(name) === undefined ? undefined : this.oneOf(name, allowed);
  }
}

const TRIGGERS: readonly Trigger[] = ['schedule', 'manual'];
const COPY_METHODS: readonly CopyMethod[] = ['copyFromUrl', 'blockFromUrl', 'asyncCopy', 'stream', 'alreadyPresent'];
const BLOB_STATUSES: readonly BlobRecord['status'][] = ['pending', 'copied'];

/** The stored fields of a run (everything but the run id, which is the row key). */
function runFields(run: Partial<RunRecord>): Record<string, Scalar | undefined> {
  return {
    currency: run.currency,
    billingPeriod: run.billingPeriod,
    attributeSet: run.attributeSet,
    dataset: run.dataset,
    invoiceId: run.invoiceId,
    trigger: run.trigger,
    operationId: run.operationId,
    status: run.status,
    force: run.force,
    startedAt: run.startedAt,
    updatedAt: run.updatedAt,
    completedAt: run.completedAt,
    operationUrl: run.operationUrl,
    graphBaseUrl: run.graphBaseUrl,
    maxStartAttempts: run.maxStartAttempts,
    polls: run.polls,
    blobCount: run.blobCount,
    blobsCopied: run.blobsCopied,
    byteCount: run.byteCount,
    billingMonth: run.billingMonth,
    path: run.path,
    manifestId: run.manifestId,
    eTag: run.eTag,
    schemaVersion: run.schemaVersion,
    dataFormat: run.dataFormat,
    manifestCreatedDateTime: run.manifestCreatedDateTime,
    partnerTenantId: run.partnerTenantId,
    rootDirectory: run.rootDirectory,
    errorCode: run.errorCode,
    error: run.error,
    lastError: run.lastError,
    nextCheckAt: run.nextCheckAt,
    resumes: run.resumes,
    startAttempts: run.startAttempts,
    copiesQueuedAt: run.copiesQueuedAt,
    announced: run.announced,
    committedAt: run.committedAt,
  };
}

function readRun(stored: StoredEntity, table: string): RunRecord {
  const row = new Row(stored, table);
  const billingPeriod: BillingPeriod = row.oneOf('billingPeriod', BILLING_PERIODS);
  const attributeSet: AttributeSet = row.oneOf('attributeSet', ATTRIBUTE_SETS);
  const status: RunStatus = row.oneOf('status', RUN_STATUSES);
  const run: RunRecord = {
    runId: row.key('rowKey'),
    currency: row.string('currency'),
    billingPeriod,
    attributeSet,
    trigger: row.oneOf('trigger', TRIGGERS),
    status,
    force: row.boolean('force'),
    startedAt: row.string('startedAt'),
    updatedAt: row.string('updatedAt'),
    polls: row.number('polls', 0),
    blobsCopied: row.number('blobsCopied', 0),
    byteCount: row.number('byteCount', 0),
  };
  const set = <K extends keyof RunRecord>(name: K, value: RunRecord[K] | undefined): void => {
    // Absent fields stay absent (not `undefined` properties), so records compare cleanly.
    if (value !== undefined) run[name] = value;
  };
  // Rows written before datasets existed have no dataset: they are unbilled usage (read as absent).
  set('dataset', row.optOneOf('dataset', DATASET_IDS));
  set('invoiceId', row.optString('invoiceId'));
  set('operationId', row.optString('operationId'));
  set('completedAt', row.optString('completedAt'));
  set('operationUrl', row.optString('operationUrl'));
  set('graphBaseUrl', row.optString('graphBaseUrl'));
  set('maxStartAttempts', row.optNumber('maxStartAttempts'));
  set('blobCount', row.optNumber('blobCount'));
  set('billingMonth', row.optString('billingMonth'));
  set('path', row.optString('path'));
  set('manifestId', row.optString('manifestId'));
  set('eTag', row.optString('eTag'));
  set('schemaVersion', row.optString('schemaVersion'));
  set('dataFormat', row.optString('dataFormat'));
  set('manifestCreatedDateTime', row.optString('manifestCreatedDateTime'));
  set('partnerTenantId', row.optString('partnerTenantId'));
  set('rootDirectory', row.optString('rootDirectory'));
  set('errorCode', row.optString('errorCode'));
  set('error', row.optString('error'));
  set('lastError', row.optString('lastError'));
  set('nextCheckAt', row.optString('nextCheckAt'));
  set('resumes', row.optNumber('resumes'));
  set('startAttempts', row.optNumber('startAttempts'));
  set('copiesQueuedAt', row.optString('copiesQueuedAt'));
  set('committedAt', row.optString('committedAt'));
  if (stored['announced'] !== undefined && stored['announced'] !== null) run.announced = row.boolean('announced');
  return run;
}

function readBlob(stored: StoredEntity, table: string): BlobRecord {
  const row = new Row(stored, table);
  const record: BlobRecord = {
    runId: row.key('partitionKey'),
    name: row.string('name'),
    status: row.oneOf('status', BLOB_STATUSES),
  };
  const byteCount = row.optNumber('byteCount');
  const contentType = row.optString('contentType');
  const method = row.optOneOf('method', COPY_METHODS);
  const copiedAt = row.optString('copiedAt');
  const recopies = row.optNumber('recopies');
  // Rows written before content hashes were recorded have none: the fan-in then checks the length only.
  const contentCrc64 = row.optString('contentCrc64');
  const contentMd5 = row.optString('contentMd5');
  const destinationEtag = row.optString('destinationEtag');
  if (byteCount !== undefined) record.byteCount = byteCount;
  if (contentType !== undefined) record.contentType = contentType;
  if (method !== undefined) record.method = method;
  if (copiedAt !== undefined) record.copiedAt = copiedAt;
  if (recopies !== undefined) record.recopies = recopies;
  if (contentCrc64 !== undefined) record.contentCrc64 = contentCrc64;
  if (contentMd5 !== undefined) record.contentMd5 = contentMd5;
  if (destinationEtag !== undefined) record.destinationEtag = destinationEtag;
  return record;
}

/**
 * The run ledger on Azure Table storage (host account): `exportRuns` (PartitionKey `run`, RowKey run id;
 * rejected queue messages under PartitionKey `rejected`), `exportRunBlobs` (PartitionKey run id, RowKey
 * base64url of the blob name) and `exportRunLocks` (PartitionKey `lock`, RowKey the lock key).
 * Tables are created if missing, once per process. No row ever holds a SAS.
 */
export class TableRunLedger implements RunLedger {
  private readonly runs: TableClient;
  private readonly blobs: TableClient;
  private readonly locks: TableClient;
  private readonly names: { runs: string; blobs: string; locks: string };
  private readonly clock: Clock;
  private readonly ready = new Map<string, Promise<void>>();

  /**
   * @param tables - the host storage connection (AzureWebJobsStorage), or a factory of table clients.
   */
  constructor(tables: StorageConnection | TableClientFactory, options: TableRunLedgerOptions = {}) {
    this.names = options.tableNames ?? { ...TableNames };
    const build: TableClientFactory =
      typeof tables === 'function'
        ? tables
        : (tableName) => createTableClient(tables, tableName, options.clientOptions);
    this.runs = build(this.names.runs);
    this.blobs = build(this.names.blobs);
    this.locks = build(this.names.locks);
    this.clock = options.clock ?? { now: () => new Date() };
  }

  /** Creates the table once per process (a failed attempt is tried again on the next call). */
  private table(client: TableClient): Promise<TableClient> {
    return tableCreatedOnce(this.ready, client);
  }

  async createRun(run: RunRecord): Promise<void> {
    const table = await this.table(this.runs);
    try {
      await table.createEntity(entity(RUN_PARTITION, run.runId, runFields(run), this.names.runs));
    } catch (error) {
      if (statusOf(error) === 409) {
        throw new ExportError('REQUEST_INVALID', `Run ${run.runId} already exists in the run ledger.`, { status: 409 });
      }
      throw error;
    }
  }

  async getRun(runId: string): Promise<Versioned<RunRecord> | undefined> {
    const table = await this.table(this.runs);
    const stored = await this.getEntity(table, RUN_PARTITION, runId);
    if (stored === undefined) return undefined;
    return { value: readRun(stored, this.names.runs), etag: stored.etag };
  }

  async updateRun(runId: string, fields: Partial<RunRecord>, etag?: string): Promise<boolean> {
    if (fields.runId !== undefined && fields.runId !== runId) {
      throw new Error(`updateRun(${runId}) cannot change the run id to ${fields.runId}.`);
    }
    const table = await this.table(this.runs);
    crashPoint('ledger.beforeWrite');
    const written = await this.writeRun(table, runId, fields, etag);
    crashPoint('ledger.afterWrite');
    return written;
  }

  private async writeRun(
    table: TableClient,
    runId: string,
    fields: Partial<RunRecord>,
    etag: string | undefined,
  ): Promise<boolean> {
    const { runId: _ignored, ...rest } = fields;
    // A field given as undefined is cleared: Merge cannot remove properties, so that needs read + Replace.
    const clears = Object.values(rest).some((value) => value === undefined);
    if (!clears) {
      const update = entity(RUN_PARTITION, runId, runFields(rest), this.names.runs);
      try {
        await table.updateEntity(update, 'Merge', { etag: etag ?? '*' });
        return true;
      } catch (error) {
        return this.updateFailed(error, runId, etag);
      }
    }
    for (let attempt = 0; ; attempt++) {
      const current = await this.getRun(runId);
      if (current === undefined) throw this.runNotFound(runId);
      if (etag !== undefined && current.etag !== etag) return false;
      // Spreading `rest` turns cleared fields into undefined, which `entity` leaves out.
      const replacement = entity(RUN_PARTITION, runId, runFields({ ...current.value, ...rest }), this.names.runs);
      try {
        await table.updateEntity(replacement, 'Replace', { etag: current.etag });
        return true;
      } catch (error) {
        // Someone changed the row between read and write: with the caller's etag that is a lost race; without, read again.
        if (statusOf(error) !== 412 || etag !== undefined || attempt >= 5) return this.updateFailed(error, runId, etag);
      }
    }
  }

  private updateFailed(error: unknown, runId: string, etag: string | undefined): boolean {
    const status = statusOf(error);
    if (status === 412 && etag !== undefined) return false;
    if (status === 404) throw this.runNotFound(runId);
    throw error;
  }

  private runNotFound(runId: string): ExportError {
    return new ExportError('RUN_NOT_FOUND', `Run ${runId} is not in the run ledger.`, { status: 404 });
  }

  async listRuns(query: RunQuery, unreadable?: (row: UnreadableRun) => void): Promise<RunRecord[]> {
    const table = await this.table(this.runs);
    const filters = [odata`PartitionKey eq ${RUN_PARTITION}`];
    if (query.since !== undefined) filters.push(odata`RowKey ge ${runIdStamp(query.since, 'since')}`);
    if (query.until !== undefined) filters.push(odata`RowKey lt ${runIdStamp(query.until, 'until')}`);
    if (query.status !== undefined) filters.push(odata`status eq ${query.status}`);
    if (query.currency !== undefined) filters.push(odata`currency eq ${query.currency.toUpperCase()}`);
    if (query.unannounced === true) filters.push(odata`announced eq ${false}`);
    // Old rows have no dataset column: unbilled usage is filtered here, the others by the service.
    if (query.dataset !== undefined && query.dataset !== 'unbilledUsage') {
      filters.push(odata`dataset eq ${query.dataset}`);
    }
    if (query.invoiceId !== undefined) filters.push(odata`invoiceId eq ${query.invoiceId.toUpperCase()}`);
    const limit = query.limit;
    if (limit !== undefined && limit <= 0) return [];
    // The service returns rows in ascending RowKey (start time) order; keep only the newest `limit`.
    const newest: RunRecord[] = [];
    const rows = table.listEntities<Record<string, unknown>>({ queryOptions: { filter: filters.join(' and ') } });
    for await (const stored of rows) {
      let run: RunRecord;
      try {
        run = readRun(stored, this.names.runs);
      } catch (error) {
        // One row a newer version wrote (or a hand edit broke) must not hide every other run: skipped and reported.
        if (unreadable === undefined || !(error instanceof UnreadableRowError)) throw error;
        unreadable({ runId: stored.rowKey ?? '', field: error.field, problem: error.message });
        continue;
      }
      if (query.dataset !== undefined && (run.dataset ?? 'unbilledUsage') !== query.dataset) continue;
      newest.push(run);
      if (limit !== undefined && newest.length > limit) newest.shift();
    }
    return newest.reverse();
  }

  async addBlobs(runId: string, names: string[]): Promise<void> {
    const table = await this.table(this.blobs);
    const existing = new Set<string>();
    const rows = table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${runId}`, select: ['RowKey'] },
    });
    for await (const row of rows) if (row.rowKey !== undefined) existing.add(row.rowKey);
    const missing = new Map<string, Entity>();
    for (const name of names) {
      const rowKey = blobRowKey(name);
      if (!existing.has(rowKey) && !missing.has(rowKey)) {
        missing.set(rowKey, entity(runId, rowKey, { name, status: 'pending' }, this.names.blobs));
      }
    }
    const pending = [...missing.values()];
    const chunks: Entity[][] = [];
    for (let start = 0; start < pending.length; start += BATCH_SIZE)
      chunks.push(pending.slice(start, start + BATCH_SIZE));
    // A few transactions at once (they touch different rows of the partition), all ended before the caller goes on.
    await mapLimited(chunks, IN_FLIGHT, async (chunk) => {
      try {
        await table.submitTransaction(chunk.map((row): ['create', Entity] => ['create', row]));
      } catch (error) {
        // Another worker added some of them meanwhile: fall back to one create per row, ignoring conflicts.
        if (statusOf(error) !== 409) throw error;
        for (const row of chunk) {
          try {
            await table.createEntity(row);
          } catch (inner) {
            if (statusOf(inner) !== 409) throw inner;
          }
        }
      }
    });
  }

  async getBlob(runId: string, name: string): Promise<BlobRecord | undefined> {
    const table = await this.table(this.blobs);
    const stored = await this.getEntity(table, runId, blobRowKey(name));
    return stored === undefined ? undefined : readBlob(stored, this.names.blobs);
  }

  async getBlobs(runId: string, names: readonly string[]): Promise<BlobRecord[]> {
    const table = await this.table(this.blobs);
    // One query per 14 names: a filter may hold 15 comparisons, one is the partition's. Azure answers an OR of row keys
    // by scanning the run's partition (its blob rows only), not by point lookups: for the few hundred rows of a run
    // that is one request where point reads would be one per blob (docs/performance.md, request economy).
    const keys = [...new Set(names.map(blobRowKey))];
    const chunks: string[][] = [];
    for (let start = 0; start < keys.length; start += KEYS_PER_QUERY)
      chunks.push(keys.slice(start, start + KEYS_PER_QUERY));
    const pages = await mapLimited(chunks, IN_FLIGHT, async (chunk) => {
      const rows: BlobRecord[] = [];
      const filter = `${odata`PartitionKey eq ${runId}`} and (${chunk.map((key) => odata`RowKey eq ${key}`).join(' or ')})`;
      for await (const stored of table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
        rows.push(readBlob(stored, this.names.blobs));
      }
      return rows;
    });
    return pages.flat();
  }

  async markBlobCopied(runId: string, name: string, result: CopiedBlob): Promise<void> {
    const table = await this.table(this.blobs);
    // Merge keeps `recopies`; markBlobPending (Replace) already dropped the hashes and ETag of an earlier copy.
    await table.upsertEntity(this.copiedRow(runId, name, result), 'Merge');
  }

  async markBlobsCopied(runId: string, copies: Array<{ name: string } & CopiedBlob>): Promise<void> {
    if (copies.length === 1) return this.markBlobCopied(runId, copies[0]!.name, copies[0]!);
    const table = await this.table(this.blobs);
    for (let start = 0; start < copies.length; start += BATCH_SIZE) {
      const chunk = copies.slice(start, start + BATCH_SIZE);
      await table.submitTransaction(
        chunk.map((copy): ['upsert', Entity, 'Merge'] => ['upsert', this.copiedRow(runId, copy.name, copy), 'Merge']),
      );
    }
  }

  private copiedRow(runId: string, name: string, result: CopiedBlob): Entity {
    return entity(
      runId,
      blobRowKey(name),
      {
        name,
        status: 'copied',
        byteCount: result.byteCount,
        contentType: result.contentType,
        method: result.method,
        copiedAt: result.copiedAt,
        contentCrc64: result.contentCrc64,
        contentMd5: result.contentMd5,
        destinationEtag: result.destinationEtag,
      },
      this.names.blobs,
    );
  }

  async markBlobPending(runId: string, name: string, recopies: number): Promise<boolean> {
    const table = await this.table(this.blobs);
    const current = await this.getEntity(table, runId, blobRowKey(name));
    if (current === undefined) return false;
    const row = readBlob(current, this.names.blobs);
    if (row.status !== 'copied' || (row.recopies ?? 0) !== recopies - 1) return false;
    // Replace, not Merge: the copy result (length, method, time) of a blob that went missing is no longer true.
    try {
      await table.updateEntity(
        entity(runId, blobRowKey(name), { name, status: 'pending', recopies }, this.names.blobs),
        'Replace',
        { etag: current.etag },
      );
      return true;
    } catch (error) {
      const status = statusOf(error);
      if (status === 412 || status === 404) return false;
      throw error;
    }
  }

  async listBlobs(runId: string): Promise<BlobRecord[]> {
    const table = await this.table(this.blobs);
    const out: BlobRecord[] = [];
    const rows = table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${runId}` },
    });
    for await (const stored of rows) out.push(readBlob(stored, this.names.blobs));
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async hasPendingBlobs(runId: string): Promise<boolean> {
    const table = await this.table(this.blobs);
    const pages = table
      .listEntities<Record<string, unknown>>({
        queryOptions: { filter: odata`PartitionKey eq ${runId} and status eq ${'pending'}`, select: ['RowKey'] },
      })
      .byPage({ maxPageSize: 1 });
    // The service may answer a filtered query with an empty page and a continuation token (it stops scanning at a
    // time or partition boundary): only a page with a row, or the last page, answers the question.
    for await (const page of pages) if (page.length > 0) return true;
    return false;
  }

  async acquireStartLock(
    key: string,
    runId: string,
    isStale: (holderRunId: string, heldMs: number) => Promise<boolean>,
  ): Promise<string | undefined> {
    const table = await this.table(this.locks);
    const rowKey = lockRowKey(key);
    for (let attempt = 0; attempt < 5; attempt++) {
      const since = this.clock.now().toISOString();
      const row = entity(LOCK_PARTITION, rowKey, { key, holder: runId, since }, this.names.locks);
      try {
        await table.createEntity(row);
        return undefined;
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
      let serviceNow: string | undefined;
      const current = await this.getEntity(table, LOCK_PARTITION, rowKey, (response) => {
        serviceNow = response.headers.get('date');
      });
      if (current === undefined) continue; // released meanwhile: try to create again
      const held = new Row(current, this.names.locks);
      const holder = held.string('holder');
      if (holder === runId) return undefined;
      // How long the lock has been held, by the storage service's clock alone: the service set the row's Timestamp
      // when the holder wrote it and the Date of this read's response. The hosts' own clocks may be minutes apart.
      // (`since` is the holder's clock, kept for people reading the row; the fallbacks serve a service that omits one.)
      const heldMs =
        Date.parse(serviceNow ?? this.clock.now().toISOString()) -
        Date.parse(current.timestamp ?? held.string('since'));
      if (!(await isStale(holder, Math.max(0, heldMs)))) return holder;
      try {
        await table.updateEntity(row, 'Replace', { etag: current.etag });
        return undefined;
      } catch (error) {
        const status = statusOf(error);
        // 412: another starter replaced it first; 404: released. Either way, look again.
        if (status !== 412 && status !== 404) throw error;
      }
    }
    const final = await this.getEntity(table, LOCK_PARTITION, rowKey);
    if (final === undefined) return this.acquireStartLock(key, runId, isStale);
    return new Row(final, this.names.locks).string('holder');
  }

  async releaseStartLock(key: string, runId: string): Promise<void> {
    const table = await this.table(this.locks);
    const rowKey = lockRowKey(key);
    const current = await this.getEntity(table, LOCK_PARTITION, rowKey);
    if (current === undefined || new Row(current, this.names.locks).optString('holder') !== runId) return;
    try {
      await table.deleteEntity(LOCK_PARTITION, rowKey, { etag: current.etag });
    } catch (error) {
      const status = statusOf(error);
      if (status !== 404 && status !== 412) throw error;
    }
  }

  async recordRejectedMessage(queue: string, reason: string, excerpt: string): Promise<void> {
    const table = await this.table(this.runs);
    const now = this.clock.now();
    const rowKey = `${runIdStamp(now.toISOString(), 'now')}-${randomBytes(4).toString('hex')}`;
    // The message is untrusted input: redact it (and any stray signature) rather than refuse to record it.
    const clean = (text: string, max: number): string => redact(text).replace(/sig=/gi, 'sig[REDACTED]').slice(0, max);
    await table.createEntity(
      entity(
        REJECTED_PARTITION,
        rowKey,
        {
          queue: clean(queue, 100),
          reason: clean(reason, EXCERPT_MAX),
          excerpt: clean(excerpt, EXCERPT_MAX),
          receivedAt: now.toISOString(),
        },
        this.names.runs,
      ),
    );
  }

  /** Rejected queue messages, newest first (for diagnostics and tests). */
  async listRejectedMessages(
    limit = 100,
  ): Promise<Array<{ queue: string; reason: string; excerpt: string; receivedAt: string }>> {
    const table = await this.table(this.runs);
    const out: Array<{ queue: string; reason: string; excerpt: string; receivedAt: string }> = [];
    const rows = table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${REJECTED_PARTITION}` },
    });
    for await (const stored of rows) {
      const row = new Row(stored, this.names.runs);
      out.push({
        queue: row.string('queue'),
        reason: row.string('reason'),
        excerpt: row.optString('excerpt') ?? '',
        receivedAt: row.string('receivedAt'),
      });
      if (out.length > limit) out.shift();
    }
    return out.reverse();
  }

  private async getEntity(
    table: TableClient,
    partitionKey: string,
    rowKey: string,
    onResponse?: GetTableEntityOptions['onResponse'],
  ): Promise<StoredEntity | undefined> {
    try {
      return await table.getEntity<Record<string, unknown>>(partitionKey, rowKey, onResponse ? { onResponse } : {});
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }
}
