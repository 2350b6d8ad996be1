import type { Readable } from 'node:stream';
import type { AttributeSet, DatasetId } from '../config';
import type { CurrencyTotals } from '../curation/totals';
import type { Versioned } from './ports';

/**
 * The ports of the curation step (SPEC section 4.1): its own ledger rows, queue, engine and destination
 * operations. Types only: importing this module loads nothing (DuckDB least of all).
 */

/** Curation statuses. `succeeded` and `failed` are final. */
export const CURATION_STATUSES = ['pending', 'converting', 'publishing', 'succeeded', 'failed'] as const;
export type CurationStatus = (typeof CURATION_STATUSES)[number];
export const FINAL_CURATION_STATUSES: readonly CurationStatus[] = ['succeeded', 'failed'];

/** The curation of one succeeded run (its own ledger row; the run's row is never written by curation). */
export interface CurationRecord {
  /** The raw run curated (also the row key). */
  runId: string;
  status: CurationStatus;
  /** Version of the curation (our code's output format): `{curation format}+focus{FOCUS version}`. */
  curationVersion: string;
  /** Raw files of the run (one conversion message each). */
  fileCount: number;
  startedAt: string;
  updatedAt: string;
  completedAt?: string | undefined;
  /** Set once every file message was sent; until then the supervisor sends them again. */
  filesQueuedAt?: string | undefined;
  /** Rows read from the raw files, converted, rejected (set when the version is published). */
  rowsRead?: number | undefined;
  rowsConverted?: number | undefined;
  rowsRejected?: number | undefined;
  /** The series folder under `curated/` (set when published). */
  curatedPath?: string | undefined;
  /** False when a newer run of the series was already current: this version was not made current. */
  current?: boolean | undefined;
  errorCode?: string | undefined;
  error?: string | undefined;
  /** Last retried (transient) problem of a file conversion. */
  lastError?: string | undefined;
  /** Times the supervisor resumed this curation. */
  resumes?: number | undefined;
  /** False from the write that ended the curation until its end event was sent. */
  announced?: boolean | undefined;
  /**
   * FinOps hub drop-in (FINOPS_HUB_STORAGE): set once the fan-in's drop is done, so a redone fan-in does not drop
   * again. `hubIngestionId` (the run id) names the version the hub folder holds; absent when the hub already held a
   * newer version of the folder, or the version had no FOCUS file.
   */
  hubDroppedAt?: string | undefined;
  hubIngestionId?: string | undefined;
  /** The hub folder, `Costs/{yyyy}/{mm}/{scope}/{dataset folder}/{currency or invoice}/` in `ingestion`. */
  hubFolder?: string | undefined;
}

/** A staged Parquet part of one raw file. */
export interface CuratedPart {
  /** `curated` or `focus`. */
  kind: 'curated' | 'focus';
  /** File name (no folder), the same on every conversion of the file. */
  name: string;
  rowCount: number;
  byteCount: number;
}

/** What the conversion of one raw file produced (kept on the file's ledger row). */
export interface FileCurationResult {
  rowsRead: number;
  rowsConverted: number;
  rejected: { count: number; reasons: Record<string, number> };
  /** Converted rows worth a look, by kind (e.g. a unit not in the FinOps toolkit's PricingUnits.csv). */
  warnings?: Record<string, number> | undefined;
  parts: CuratedPart[];
  totals: { raw: CurrencyTotals; curated: CurrencyTotals; focus: CurrencyTotals };
  focusVersion: string;
}

/** One raw file of a curation. */
export interface CurationFileRecord {
  runId: string;
  /** The raw blob name (as in the Graph manifest). */
  name: string;
  status: 'pending' | 'converted';
  convertedAt?: string | undefined;
  result?: FileCurationResult | undefined;
}

/** Curation rows of the ledger (Azure Table storage in the host account, tables of their own). */
export interface CurationLedger {
  /** Creates the row if absent; returns the row as stored (ours, or the one there). */
  createCuration(record: CurationRecord, files: string[]): Promise<Versioned<CurationRecord>>;
  getCuration(runId: string): Promise<Versioned<CurationRecord> | undefined>;
  /** Merges fields; with `etag` only if unchanged since read (false otherwise). */
  updateCuration(runId: string, fields: Partial<CurationRecord>, etag?: string): Promise<boolean>;
  /** Curations in any of `statuses`, or ended ones whose event may not have been sent (`unannounced`). */
  listCurations(query: { statuses?: readonly CurationStatus[]; unannounced?: boolean }): Promise<CurationRecord[]>;
  listFiles(runId: string): Promise<CurationFileRecord[]>;
  getFile(runId: string, name: string): Promise<CurationFileRecord | undefined>;
  /** Records a file's conversion (idempotent: a redo writes the same result). */
  markFileConverted(runId: string, name: string, result: FileCurationResult, convertedAt: string): Promise<void>;
}

/** Messages of the export-curate queue. */
export type CurateMessage =
  | {
      version: 1;
      kind: 'file';
      runId: string;
      /** The raw blob name to convert. */
      blobName: string;
    }
  | {
      version: 1;
      kind: 'publish';
      runId: string;
    };

export interface CurationQueue {
  sendCurate(messages: CurateMessage[]): Promise<void>;
}

/** Input of one file conversion (the engine's view of src/curation/convertFile.ts). */
export interface CurationEngineInput {
  inputPath: string;
  dataset: DatasetId;
  attributeSet: AttributeSet;
  billingMonth: string;
  outputDir: string;
  partName: string;
  sourceRunId: string;
  sourceFileName: string;
}

/** What a conversion wrote (local Parquet files) and counted. */
export interface CurationEngineResult {
  focusVersion: string;
  rowsRead: number;
  rowsConverted: number;
  rejected: { count: number; reasons: Record<string, number> };
  warnings?: Record<string, number> | undefined;
  curated: Array<{ path: string; rowCount: number }>;
  focus: Array<{ path: string; rowCount: number }>;
  totals: { raw: CurrencyTotals; curated: CurrencyTotals; focus: CurrencyTotals };
}

/** Converts one local raw file into Parquet parts (DuckDB in the app; a fake in unit tests). */
export interface CurationEngine {
  convert(input: CurationEngineInput): Promise<CurationEngineResult>;
}

/** A blob of a curated folder. */
export interface CuratedBlob {
  path: string;
  byteCount: number;
}

/** The blob operations curation needs in the destination container. */
export interface CurationStore {
  /** Downloads a blob to a local file (streamed). */
  download(path: string, file: string): Promise<void>;
  /** Uploads a local file (streamed), replacing any blob there. */
  upload(file: string, path: string): Promise<{ byteCount: number }>;
  /** Streams a blob from the start (errors arrive on the stream). */
  openRead(path: string): Readable;
  /** Copies a blob inside the container, replacing any blob there. */
  copy(from: string, to: string): Promise<void>;
  /** Deletes a blob; a missing one is fine. */
  delete(path: string): Promise<void>;
  list(prefix: string): Promise<CuratedBlob[]>;
}

/** Everything the curation step needs besides PipelineDeps; absent when EXPORT_CURATION is off. */
export interface CurationDeps {
  ledger: CurationLedger;
  queue: CurationQueue;
  engine: CurationEngine;
  store: CurationStore;
  /** Local folder for the downloaded raw file and the parts (default os.tmpdir()). */
  tempDir?: string | undefined;
}
