import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { curateExportFile } from '../../src/pipeline/curateExport';
import type {
  CuratedBlob,
  CurateMessage,
  CurationDeps,
  CurationEngine,
  CurationEngineInput,
  CurationEngineResult,
  CurationFileRecord,
  CurationLedger,
  CurationQueue,
  CurationRecord,
  CurationStatus,
  CurationStore,
  FileCurationResult,
} from '../../src/pipeline/curationPorts';
import { parseCurateMessage } from '../../src/pipeline/messages';
import type { Versioned } from '../../src/pipeline/ports';
import { startExports } from '../../src/pipeline/startExports';
import {
  type DepsOverrides,
  drain,
  type FakeDeps,
  type InMemoryDestination,
  makeDeps,
  makeManifest,
  operationUrl,
  succeeded,
} from './fakes';

const clone = <T>(value: T): T => structuredClone(value);
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The curation rows in memory, with ETags like the table service. */
export class InMemoryCurationLedger implements CurationLedger {
  readonly curations = new Map<string, Versioned<CurationRecord>>();
  readonly files = new Map<string, Map<string, CurationFileRecord>>();
  private counter = 0;

  private etag(): string {
    this.counter += 1;
    return `W/"${this.counter}"`;
  }

  async createCuration(record: CurationRecord, files: string[]): Promise<Versioned<CurationRecord>> {
    await tick();
    const rows = this.files.get(record.runId) ?? new Map<string, CurationFileRecord>();
    for (const name of files) if (!rows.has(name)) rows.set(name, { runId: record.runId, name, status: 'pending' });
    this.files.set(record.runId, rows);
    if (!this.curations.has(record.runId))
      this.curations.set(record.runId, { value: clone(record), etag: this.etag() });
    return clone(this.curations.get(record.runId) as Versioned<CurationRecord>);
  }

  async getCuration(runId: string): Promise<Versioned<CurationRecord> | undefined> {
    await tick();
    const found = this.curations.get(runId);
    return found === undefined ? undefined : clone(found);
  }

  async updateCuration(runId: string, fields: Partial<CurationRecord>, etag?: string): Promise<boolean> {
    await tick();
    const found = this.curations.get(runId);
    if (found === undefined) throw new Error(`no curation ${runId}`);
    if (etag !== undefined && etag !== found.etag) return false;
    const value = { ...found.value };
    for (const [name, v] of Object.entries(fields)) if (v !== undefined) (value as Record<string, unknown>)[name] = v;
    this.curations.set(runId, { value, etag: this.etag() });
    return true;
  }

  async listCurations(query: {
    statuses?: readonly CurationStatus[];
    unannounced?: boolean;
  }): Promise<CurationRecord[]> {
    await tick();
    return [...this.curations.values()]
      .map((c) => clone(c.value))
      .filter((c) => query.statuses === undefined || query.statuses.includes(c.status))
      .filter((c) => query.unannounced !== true || c.announced === false);
  }

  async listFiles(runId: string): Promise<CurationFileRecord[]> {
    await tick();
    return [...(this.files.get(runId)?.values() ?? [])].map(clone).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async getFile(runId: string, name: string): Promise<CurationFileRecord | undefined> {
    await tick();
    const found = this.files.get(runId)?.get(name);
    return found === undefined ? undefined : clone(found);
  }

  async markFileConverted(runId: string, name: string, result: FileCurationResult, convertedAt: string): Promise<void> {
    await tick();
    this.files.get(runId)?.set(name, { runId, name, status: 'converted', convertedAt, result: clone(result) });
  }

  /** The curation of a run (throws when absent). */
  curation(runId: string): CurationRecord {
    const found = this.curations.get(runId);
    if (found === undefined) throw new Error(`no curation ${runId}`);
    return clone(found.value);
  }
}

/** export-curate in memory. */
export class RecordingCurationQueue implements CurationQueue {
  readonly sent: CurateMessage[] = [];
  readonly pending: string[] = [];

  async sendCurate(messages: CurateMessage[]): Promise<void> {
    await tick();
    for (const message of messages) {
      this.sent.push(clone(message));
      this.pending.push(JSON.stringify(message));
    }
  }
}

/**
 * A curation engine without DuckDB: every input file gives one curated and one FOCUS part of `rowsPerFile` rows
 * (their content names the input's content, so a redo writes the same bytes), and totals of 1.5 per row.
 */
export class FakeCurationEngine implements CurationEngine {
  readonly calls: CurationEngineInput[] = [];
  rowsPerFile = 3;
  /** Returned in the FOCUS totals instead of the raw ones (a mapping bug). */
  focusTotalOverride: string | undefined;
  /** Thrown by the next conversions, once each. */
  failures: Error[] = [];

  async convert(input: CurationEngineInput): Promise<CurationEngineResult> {
    this.calls.push(clone(input));
    const failure = this.failures.shift();
    if (failure !== undefined) throw failure;
    const raw = await readFile(input.inputPath, 'utf8');
    const parts: Record<'curated' | 'focus', Array<{ path: string; rowCount: number }>> = { curated: [], focus: [] };
    for (const kind of ['curated', 'focus'] as const) {
      const dir = join(input.outputDir, kind);
      await mkdir(dir, { recursive: true });
      const path = join(dir, `${input.partName}-0.parquet`);
      await writeFile(path, `${kind} of ${input.sourceFileName}: ${raw}`);
      parts[kind].push({ path, rowCount: this.rowsPerFile });
    }
    const total = (1.5 * this.rowsPerFile).toString();
    return {
      focusVersion: '1.2',
      rowsRead: this.rowsPerFile,
      rowsConverted: this.rowsPerFile,
      rejected: { count: 0, reasons: {} },
      curated: parts.curated,
      focus: parts.focus,
      totals: {
        raw: { USD: { BillingPreTaxTotal: total } },
        curated: { USD: { BillingPreTaxTotal: total } },
        focus: { USD: { BillingPreTaxTotal: this.focusTotalOverride ?? total } },
      },
    };
  }
}

/** Blob operations over the fake destination (one container: raw files, parts and manifests side by side). */
export class InMemoryCurationStore implements CurationStore {
  /** Thrown by the next uploads, once each (a crash mid-upload). */
  uploadFailures: Error[] = [];
  /** Called (and awaited) before each copy (to look at the folder mid-switch, or to let another worker run). */
  beforeCopy: ((from: string, to: string) => void | Promise<void>) | undefined;
  /** Called (and awaited) before each upload (to hold a slow worker back). */
  beforeUpload: ((path: string) => void | Promise<void>) | undefined;

  constructor(readonly destination: InMemoryDestination) {}

  async download(path: string, file: string): Promise<void> {
    await tick();
    const blob = this.destination.blobs.get(path);
    if (blob === undefined) throw new Error(`no blob ${path}`);
    await writeFile(file, blob.body);
  }

  async upload(file: string, path: string): Promise<{ byteCount: number }> {
    await tick();
    await this.beforeUpload?.(path);
    const failure = this.uploadFailures.shift();
    if (failure !== undefined) throw failure;
    const body = await readFile(file, 'utf8');
    this.destination.put(path, {
      body,
      byteCount: Buffer.byteLength(body),
      contentType: 'application/vnd.apache.parquet',
    });
    return { byteCount: Buffer.byteLength(body) };
  }

  openRead(path: string): Readable {
    const blob = this.destination.blobs.get(path);
    if (blob === undefined) {
      return new Readable({
        read() {
          this.destroy(new Error(`no blob ${path}`));
        },
      });
    }
    return Readable.from([Buffer.from(blob.body)]);
  }

  async copy(from: string, to: string): Promise<void> {
    await tick();
    await this.beforeCopy?.(from, to);
    const blob = this.destination.blobs.get(from);
    if (blob === undefined) throw new Error(`no blob ${from}`);
    this.destination.put(to, { body: blob.body, byteCount: blob.byteCount, contentType: blob.contentType });
  }

  async delete(path: string): Promise<void> {
    await tick();
    this.destination.blobs.delete(path);
  }

  async list(prefix: string): Promise<CuratedBlob[]> {
    return (await this.destination.list(prefix)).map((b) => ({ path: b.path, byteCount: b.byteCount }));
  }

  /** Paths under a prefix, sorted. */
  paths(prefix: string): string[] {
    return [...this.destination.blobs.keys()].filter((path) => path.startsWith(prefix)).sort();
  }
}

export interface CurationFakes extends CurationDeps {
  ledger: InMemoryCurationLedger;
  queue: RecordingCurationQueue;
  engine: FakeCurationEngine;
  store: InMemoryCurationStore;
}

export type CuratingFakeDeps = FakeDeps & { curation: CurationFakes };

/** makeDeps with the curation ports faked (EXPORT_CURATION on unless the overrides say otherwise). */
export function makeCuratingDeps(overrides: DepsOverrides = {}): CuratingFakeDeps {
  const deps = makeDeps(overrides);
  const curation: CurationFakes = {
    ledger: new InMemoryCurationLedger(),
    queue: new RecordingCurationQueue(),
    engine: new FakeCurationEngine(),
    store: new InMemoryCurationStore(deps.destination),
  };
  return Object.assign(deps, { curation });
}

/** Delivers export-curate messages until none are left; handler errors are collected (the queue would retry). */
export async function drainCuration(deps: CuratingFakeDeps, max = 200): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (let n = 0; deps.curation.queue.pending.length > 0; n++) {
    if (n >= max) throw new Error('drainCuration: too many deliveries');
    const raw = deps.curation.queue.pending.shift() as string;
    try {
      await curateExportFile(parseCurateMessage(raw), deps);
    } catch (error) {
      errors.push(error);
    }
  }
  return errors;
}

/**
 * Runs one USD export to `succeeded` (its curation messages left pending on export-curate); `force` exports unchanged
 * data again. Returns the run id.
 */
export async function succeededUsdRun(deps: CuratingFakeDeps, force = false, blobNames?: string[]): Promise<string> {
  const before = deps.graph.startCalls.length;
  const started = await startExports(
    { trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'], force },
    deps,
  );
  const runId = started[0]?.runId as string;
  deps.graph.scriptOperation(
    operationUrl(before + 1),
    succeeded(makeManifest(blobNames === undefined ? {} : { blobNames })),
  );
  const drained = await drain(deps, deps.queue);
  assert.deepEqual(drained.errors, []);
  assert.equal(deps.ledger.run(runId).status, 'succeeded');
  return runId;
}
