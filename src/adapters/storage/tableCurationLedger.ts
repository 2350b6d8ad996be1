import { odata, type TableClient, type TableEntityResult } from '@azure/data-tables';
import type { StorageConnection } from '../../config';
import { ExportError } from '../../errors';
import { TableNames } from '../../names';
import {
  CURATION_STATUSES,
  type CurationFileRecord,
  type CurationLedger,
  type CurationRecord,
  type CurationStatus,
  type FileCurationResult,
} from '../../pipeline/curationPorts';
import type { Versioned } from '../../pipeline/ports';
import { createTableClient, type StorageClientOptions, storageErrorInfo, tableCreatedOnce } from './clients';
import { assertNoSecret, blobRowKey, type TableClientFactory } from './tableRunLedger';

const CURATION_PARTITION = 'curation';
const BATCH_SIZE = 100;

type Scalar = string | number | boolean;
type Stored = TableEntityResult<Record<string, unknown>>;

/** The stored fields of a curation (everything but the run id, the row key). */
function curationFields(record: Partial<CurationRecord>): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  for (const [name, value] of Object.entries(record)) {
    if (name === 'runId' || value === undefined) continue;
    if (typeof value === 'string') assertNoSecret(value, `${TableNames.curations}.${name}`);
    out[name] = value as Scalar;
  }
  return out;
}

function bad(table: string, key: string, field: string): ExportError {
  return new ExportError(
    'RUN_UNREADABLE',
    `Curation ledger row ${table}/${key}: field ${field} is missing or invalid.`,
  );
}

function readCuration(stored: Stored, table: string): CurationRecord {
  const key = stored.rowKey ?? '';
  const text = (name: string): string | undefined => {
    const value = stored[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') throw bad(table, key, name);
    return value;
  };
  const num = (name: string): number | undefined => {
    const value = stored[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'number') throw bad(table, key, name);
    return value;
  };
  const flag = (name: string): boolean | undefined => {
    const value = stored[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'boolean') throw bad(table, key, name);
    return value;
  };
  const status = CURATION_STATUSES.find((s) => s === stored['status']);
  const startedAt = text('startedAt');
  const updatedAt = text('updatedAt');
  if (status === undefined) throw bad(table, key, 'status');
  if (startedAt === undefined || updatedAt === undefined) throw bad(table, key, 'startedAt');
  const record: CurationRecord = {
    runId: key,
    status,
    curationVersion: text('curationVersion') ?? '',
    fileCount: num('fileCount') ?? 0,
    startedAt,
    updatedAt,
  };
  const optional: Partial<CurationRecord> = {
    completedAt: text('completedAt'),
    filesQueuedAt: text('filesQueuedAt'),
    rowsRead: num('rowsRead'),
    rowsConverted: num('rowsConverted'),
    rowsRejected: num('rowsRejected'),
    curatedPath: text('curatedPath'),
    current: flag('current'),
    errorCode: text('errorCode'),
    error: text('error'),
    lastError: text('lastError'),
    resumes: num('resumes'),
    announced: flag('announced'),
    hubDroppedAt: text('hubDroppedAt'),
    hubIngestionId: text('hubIngestionId'),
    hubFolder: text('hubFolder'),
  };
  for (const [name, value] of Object.entries(optional)) {
    if (value !== undefined) (record as unknown as Record<string, unknown>)[name] = value;
  }
  return record;
}

function readFile(stored: Stored, table: string): CurationFileRecord {
  const name = stored['name'];
  const status = stored['status'];
  if (typeof name !== 'string') throw bad(table, stored.rowKey ?? '', 'name');
  if (status !== 'pending' && status !== 'converted') throw bad(table, stored.rowKey ?? '', 'status');
  const record: CurationFileRecord = { runId: stored.partitionKey ?? '', name, status };
  if (typeof stored['convertedAt'] === 'string') record.convertedAt = stored['convertedAt'];
  if (typeof stored['result'] === 'string') record.result = JSON.parse(stored['result']) as FileCurationResult;
  return record;
}

/**
 * The curation rows of the ledger, in the host account beside the runs: `exportCurations` (PartitionKey
 * `curation`, RowKey the run id) and `exportCurationFiles` (PartitionKey the run id, RowKey base64url of the raw
 * blob name; the file's result as JSON, a few kB). Tables are created if missing, once per process.
 */
export class TableCurationLedger implements CurationLedger {
  private readonly curations: TableClient;
  private readonly files: TableClient;
  private readonly names: { curations: string; files: string };
  private readonly ready = new Map<string, Promise<void>>();

  constructor(
    tables: StorageConnection | TableClientFactory,
    options: { clientOptions?: StorageClientOptions; tableNames?: { curations: string; files: string } } = {},
  ) {
    this.names = options.tableNames ?? { curations: TableNames.curations, files: TableNames.curationFiles };
    const build: TableClientFactory =
      typeof tables === 'function' ? tables : (name) => createTableClient(tables, name, options.clientOptions);
    this.curations = build(this.names.curations);
    this.files = build(this.names.files);
  }

  private table(client: TableClient): Promise<TableClient> {
    return tableCreatedOnce(this.ready, client);
  }

  async createCuration(record: CurationRecord, files: string[]): Promise<Versioned<CurationRecord>> {
    // File rows first: a curation row is never without its files (a crash between leaves rows no one reads).
    const fileTable = await this.table(this.files);
    const existing = new Set<string>();
    for await (const row of fileTable.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${record.runId}`, select: ['RowKey'] },
    })) {
      if (row.rowKey !== undefined) existing.add(row.rowKey);
    }
    const missing = files.filter((name) => !existing.has(blobRowKey(name)));
    // Insert only, never upsert: a second start racing this one (the supervisor beside a slow finisher) may write a
    // row after our listing and a worker may convert that file at once; an upsert of `pending` would undo it.
    const row = (name: string) => {
      assertNoSecret(name, `${this.names.files}.name`);
      return { partitionKey: record.runId, rowKey: blobRowKey(name), name, status: 'pending' };
    };
    for (let i = 0; i < missing.length; i += BATCH_SIZE) {
      const batch = missing.slice(i, i + BATCH_SIZE);
      try {
        await fileTable.submitTransaction(batch.map((name) => ['create', row(name)] as const) as never);
      } catch (error) {
        if (storageErrorInfo(error).status !== 409) throw error;
        // A row of the batch exists already (the whole batch failed): the others one by one.
        for (const name of batch) {
          try {
            await fileTable.createEntity(row(name));
          } catch (rowError) {
            if (storageErrorInfo(rowError).status !== 409) throw rowError;
          }
        }
      }
    }
    const table = await this.table(this.curations);
    try {
      await table.createEntity({ partitionKey: CURATION_PARTITION, rowKey: record.runId, ...curationFields(record) });
    } catch (error) {
      if (storageErrorInfo(error).status !== 409) throw error;
    }
    const stored = await this.getCuration(record.runId);
    if (stored === undefined) throw new ExportError('RUN_NOT_FOUND', `Curation of run ${record.runId} vanished.`);
    return stored;
  }

  async getCuration(runId: string): Promise<Versioned<CurationRecord> | undefined> {
    const table = await this.table(this.curations);
    try {
      const stored = await table.getEntity<Record<string, unknown>>(CURATION_PARTITION, runId);
      return { value: readCuration(stored, this.names.curations), etag: stored.etag };
    } catch (error) {
      if (storageErrorInfo(error).status === 404) return undefined;
      throw error;
    }
  }

  async updateCuration(runId: string, fields: Partial<CurationRecord>, etag?: string): Promise<boolean> {
    const table = await this.table(this.curations);
    try {
      await table.updateEntity(
        { partitionKey: CURATION_PARTITION, rowKey: runId, ...curationFields(fields) },
        'Merge',
        { etag: etag ?? '*' },
      );
      return true;
    } catch (error) {
      const { status } = storageErrorInfo(error);
      if (status === 412 && etag !== undefined) return false;
      if (status === 404) throw new ExportError('RUN_NOT_FOUND', `Run ${runId} has no curation in the ledger.`);
      throw error;
    }
  }

  async listCurations(query: {
    statuses?: readonly CurationStatus[];
    unannounced?: boolean;
  }): Promise<CurationRecord[]> {
    const table = await this.table(this.curations);
    const filters = [odata`PartitionKey eq ${CURATION_PARTITION}`];
    if (query.statuses !== undefined && query.statuses.length > 0) {
      filters.push(`(${query.statuses.map((status) => odata`status eq ${status}`).join(' or ')})`);
    }
    if (query.unannounced === true) filters.push(odata`announced eq ${false}`);
    const out: CurationRecord[] = [];
    for await (const stored of table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: filters.join(' and ') },
    })) {
      out.push(readCuration(stored, this.names.curations));
    }
    return out;
  }

  async listFiles(runId: string): Promise<CurationFileRecord[]> {
    const table = await this.table(this.files);
    const out: CurationFileRecord[] = [];
    for await (const stored of table.listEntities<Record<string, unknown>>({
      queryOptions: { filter: odata`PartitionKey eq ${runId}` },
    })) {
      out.push(readFile(stored, this.names.files));
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async getFile(runId: string, name: string): Promise<CurationFileRecord | undefined> {
    const table = await this.table(this.files);
    try {
      return readFile(await table.getEntity<Record<string, unknown>>(runId, blobRowKey(name)), this.names.files);
    } catch (error) {
      if (storageErrorInfo(error).status === 404) return undefined;
      throw error;
    }
  }

  async markFileConverted(runId: string, name: string, result: FileCurationResult, convertedAt: string): Promise<void> {
    const table = await this.table(this.files);
    const text = JSON.stringify(result);
    assertNoSecret(text, `${this.names.files}.result`);
    await table.updateEntity(
      { partitionKey: runId, rowKey: blobRowKey(name), name, status: 'converted', convertedAt, result: text },
      'Merge',
      { etag: '*' },
    );
  }
}
