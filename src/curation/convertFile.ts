import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { AttributeSet, DatasetId } from '../config';
import {
  conversionWarningsSql,
  curatedSelectSql,
  type FocusLookups,
  fileKeysSql,
  focusSelectSql,
  lookupQueriesSql,
  lookupTablesSql,
  RAW_PREFIX,
  STAGING_TABLE,
  sqlName,
  sqlString,
  stagingSelectSql,
} from './conversionSql';
import { curatedSchema, datasetFamily } from './curatedSchemas';
import { FOCUS_VERSION } from './focus12';
import { type CurrencyTotals, normalizeDecimal } from './totals';

/**
 * The DuckDB adapter of the curation step: one raw gzip JSON-lines file (a local file: DuckDB reads files; the
 * caller downloads the blob through the Storage SDK) → Parquet (zstd) parts of the curated table and of the FOCUS
 * table. Import it lazily (`await import(...)`) from the code that converts: it loads DuckDB's native binding
 * (about 70 MB), which no entry point and no other command may load.
 */

/** Limits of the DuckDB engine a conversion runs in. */
export interface EngineOptions {
  /** Worker threads (default 1: a file per message, many messages per instance). */
  threads?: number | undefined;
  /** DuckDB's memory limit (default `256MB`); above it DuckDB spills to `tempDirectory`. */
  memoryLimit?: string | undefined;
  /** Where DuckDB spills beyond the memory limit and the staging file goes (default: `{outputDir}/.tmp`, removed afterwards). */
  tempDirectory?: string | undefined;
  /** Disk budget for the spill files (default `1GB`); exceeding it fails the conversion. */
  maxTempDirectorySize?: string | undefined;
  /** Split each output into parts of about this many bytes (default: one part per output). */
  maxPartBytes?: number | undefined;
  /**
   * Where pass 1 keeps the typed rows: `parquet` (default), a snappy Parquet file in `tempDirectory`; or `table`, a
   * DuckDB temporary table (spilled to `tempDirectory` beyond the memory limit). Both give the same parts; the
   * Parquet file keeps the memory at the limit whatever the file's size (`npm run bench`, item 7, docs/performance.md).
   */
  staging?: 'parquet' | 'table' | undefined;
  /** Folder of the pinned FinOps toolkit open-data CSVs (default: defaultOpenDataDir()). */
  openDataDir?: string | undefined;
}

export interface ConvertFileInput {
  /** Local path of the raw `.json.gz` file. */
  inputPath: string;
  dataset: DatasetId;
  attributeSet: AttributeSet;
  /** `YYYY-MM` of the run (FOCUS BillingPeriodStart/End). */
  billingMonth: string;
  /**
   * Folder the parts are written to: `{outputDir}/curated/` and `{outputDir}/focus/`. Both are emptied first, so a
   * conversion redone after a crash leaves exactly the parts of one conversion.
   */
  outputDir: string;
  /** Base name of the parts, e.g. the raw blob name without `.json.gz` (default: the input file's name). */
  partName?: string | undefined;
  /** Lineage written to the FOCUS rows (x_SourceRunId, x_SourceFile). */
  sourceRunId?: string | undefined;
  sourceFileName?: string | undefined;
  engine?: EngineOptions | undefined;
}

export interface PartFile {
  /** Absolute path of the written Parquet file. */
  path: string;
  /** Rows in it, counted by reading the file back. */
  rowCount: number;
}

export interface ConvertFileResult {
  dataset: DatasetId;
  attributeSet: AttributeSet;
  focusVersion: string;
  /** Rows DuckDB read from the file (every non-blank line): `rowsConverted + rejected.count`. */
  rowsRead: number;
  rowsConverted: number;
  rejected: { count: number; reasons: Record<string, number> };
  curated: PartFile[];
  focus: PartFile[];
  totals: {
    /** Σ of the money columns per currency from the raw text of the converted rows, exact (DECIMAL(38, 18)). */
    raw: CurrencyTotals;
    /** The same sums read back from the curated Parquet. */
    curated: CurrencyTotals;
    /** Σ BilledCost read back from the FOCUS Parquet, keyed by the raw column it must equal. */
    focus: CurrencyTotals;
  };
  /**
   * Converted rows worth a look, by kind (not rejections; the rows are written): `pricingUnitNotInOpenData` (the
   * unit is not in PricingUnits.csv: PricingUnit is the raw text, block size 1), `serviceNotInOpenData` (usage: no
   * Services.csv entry, ServiceCategory "Other"), `totalIsNotSubtotalPlusTax` (reconciliation lines).
   */
  warnings: Record<string, number>;
}

/**
 * Where the pinned open-data CSVs are: `data/finops-toolkit` next to this module (the sources, or a bundle that
 * carries the folder next to itself), else the sources' copy seen from tsc's output (dist/src/curation).
 */
export function defaultOpenDataDir(): string {
  const beside = join(__dirname, 'data', 'finops-toolkit');
  if (existsSync(beside)) return beside;
  return join(__dirname, '..', '..', '..', 'src', 'curation', 'data', 'finops-toolkit');
}

/** The engine limits a conversion runs with unless EngineOptions says otherwise. */
export const ENGINE_DEFAULTS = { threads: 1, memoryLimit: '256MB', maxTempDirectorySize: '1GB' } as const;

/**
 * zstd; row groups of 16384 rows: DuckDB's Parquet writer holds a row group in memory, and 122880 rows of the ~100
 * FOCUS columns did not fit in 256 MB.
 */
export const PARQUET_OPTIONS = 'FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384';

async function rows(connection: Awaited<ReturnType<DuckDBInstance['connect']>>, sql: string): Promise<unknown[][]> {
  const reader = await connection.runAndReadAll(sql);
  return reader.getRowsJson() as unknown[][];
}

async function writeParts(
  connection: Awaited<ReturnType<DuckDBInstance['connect']>>,
  select: string,
  dir: string,
  partName: string,
  maxPartBytes: number | undefined,
): Promise<PartFile[]> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  // One part unless a part size is asked for; either way the parts are `{partName}-{i}.parquet`, i from 0.
  const copy =
    maxPartBytes === undefined
      ? `COPY (${select}) TO ${sqlString(join(dir, `${partName}-0.parquet`))} (${PARQUET_OPTIONS})`
      : `COPY (${select}) TO ${sqlString(dir)} (${PARQUET_OPTIONS}, OVERWRITE_OR_IGNORE, FILENAME_PATTERN ${sqlString(`${partName}-{i}`)}, FILE_SIZE_BYTES ${Math.max(1, Math.floor(maxPartBytes))})`;
  await connection.run(copy);
  const names = (await readdir(dir)).filter((name) => name.endsWith('.parquet')).sort();
  const parts: PartFile[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const [[count]] = (await rows(connection, `SELECT count(*) FROM read_parquet(${sqlString(path)})`)) as [[string]];
    parts.push({ path, rowCount: Number(count) });
  }
  return parts;
}

function totalsFrom(result: unknown[][]): CurrencyTotals {
  const totals: CurrencyTotals = {};
  for (const [currency, measure, value] of result as [string | null, string, string | null][]) {
    const key = currency ?? '';
    totals[key] ??= {};
    totals[key][measure] = normalizeDecimal(value ?? '0');
  }
  return totals;
}

/** Converts one raw file. Throws (DuckDB's error as `cause`) when the file cannot be read or written. */
export async function convertFile(input: ConvertFileInput): Promise<ConvertFileResult> {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(input.billingMonth)) {
    throw new Error(`convertFile: billingMonth must be YYYY-MM, got "${input.billingMonth}"`);
  }
  const schema = curatedSchema(input.dataset, input.attributeSet);
  const family = datasetFamily(input.dataset);
  const engine = input.engine ?? {};
  const partName = input.partName ?? basename(input.inputPath).replace(/\.json(\.gz)?$/i, '');
  const tempDirectory = engine.tempDirectory ?? join(input.outputDir, '.tmp');
  await mkdir(tempDirectory, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', {
    // Nothing is downloaded or loaded at run time: json, parquet and icu are statically linked.
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
    threads: String(engine.threads ?? ENGINE_DEFAULTS.threads),
    memory_limit: engine.memoryLimit ?? ENGINE_DEFAULTS.memoryLimit,
    temp_directory: tempDirectory,
    max_temp_directory_size: engine.maxTempDirectorySize ?? ENGINE_DEFAULTS.maxTempDirectorySize,
    // The parts keep the raw file's row order (a redo writes the same rows in the same order).
    preserve_insertion_order: 'true',
  });
  const connection = await instance.connect();
  const stagingPath = join(tempDirectory, `${partName}.staging.parquet`);
  try {
    // Dates without a zone are read as UTC, and TIMESTAMPTZ values are computed in UTC.
    await connection.run(`SET TimeZone = 'UTC'`);
    for (const statement of lookupTablesSql(engine.openDataDir ?? defaultOpenDataDir()))
      await connection.run(statement);
    let staging: string = STAGING_TABLE;
    if (engine.staging === 'table') {
      await connection.run(`CREATE TEMP TABLE ${STAGING_TABLE} AS ${stagingSelectSql(schema, input.inputPath)}`);
    } else {
      // Row groups of 16384 rows here too: with DuckDB's default (122880) the writer's buffered row group of ~90
      // text columns crowded the memory limit, and pass 1 took 2 to 3 times as long as the same read written with
      // small row groups (and 1.8 times the memory).
      await connection.run(
        `COPY (${stagingSelectSql(schema, input.inputPath)}) TO ${sqlString(stagingPath)} (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 16384)`,
      );
      staging = `read_parquet(${sqlString(stagingPath)})`;
    }
    // Counts, reasons and the raw totals in one read of the staging rows. The raw text is summed for converted rows
    // only (the CASE casts nothing else: a rejected row's money text may not be a number).
    const currency = sqlName(schema.currencyColumn);
    const rawSums = schema.totalColumns.map(
      (name) =>
        `CAST(sum(CASE WHEN __reject IS NULL THEN CAST(nullif(${sqlName(`${RAW_PREFIX}${name}`)}, '') AS DECIMAL(38, 18)) END) AS VARCHAR)`,
    );
    const summary = (await rows(
      connection,
      `SELECT __reject, ${currency}, count(*), ${rawSums.join(', ')} FROM ${staging} GROUP BY ALL ORDER BY __reject NULLS FIRST, ${currency} NULLS FIRST`,
    )) as [string | null, string | null, string, ...(string | null)[]][];
    let rowsRead = 0;
    let rowsConverted = 0;
    const reasons: Record<string, number> = {};
    const rawRows: unknown[][] = [];
    for (const [reason, rowCurrency, count, ...sums] of summary) {
      rowsRead += Number(count);
      if (reason !== null) {
        reasons[reason] = (reasons[reason] ?? 0) + Number(count);
        continue;
      }
      rowsConverted += Number(count);
      schema.totalColumns.forEach((name, index) => {
        rawRows.push([rowCurrency, name, sums[index] ?? null]);
      });
    }
    const rawTotals = totalsFrom(rawRows);
    const curatedDir = join(input.outputDir, 'curated');
    const focusDir = join(input.outputDir, 'focus');
    const curated = await writeParts(
      connection,
      curatedSelectSql(schema, staging),
      curatedDir,
      partName,
      engine.maxPartBytes,
    );
    // One read of the staging rows for the file's lookup keys and the warnings' counts; the rest reads that table.
    await connection.run(fileKeysSql(schema, staging));
    const lookups: FocusLookups = { pricingUnits: {}, regions: {}, services: {}, servicesByType: {} };
    for (const [name, sql] of Object.entries(lookupQueriesSql(schema))) {
      if (sql === null) continue;
      const target = lookups[name as keyof FocusLookups] as Record<string, string[]>;
      for (const [key, ...values] of (await rows(connection, sql)) as string[][]) target[key as string] = values;
    }
    const focus = await writeParts(
      connection,
      focusSelectSql(
        schema,
        staging,
        {
          dataset: input.dataset,
          billingMonth: input.billingMonth,
          runId: input.sourceRunId ?? null,
          fileName: input.sourceFileName ?? null,
        },
        lookups,
      ),
      focusDir,
      partName,
      engine.maxPartBytes,
    );
    const curatedFiles = `read_parquet(${sqlString(join(curatedDir, '*.parquet'))})`;
    // One read of the written curated parts for every measure.
    const curatedRows: unknown[][] = [];
    for (const [rowCurrency, ...sums] of await rows(
      connection,
      `SELECT ${currency}, ${schema.totalColumns.map((name) => `CAST(CAST(sum(${sqlName(name)}) AS DECIMAL(38, 18)) AS VARCHAR)`).join(', ')} FROM ${curatedFiles} GROUP BY ${currency} ORDER BY ${currency} NULLS FIRST`,
    )) {
      schema.totalColumns.forEach((name, index) => {
        curatedRows.push([rowCurrency, name, sums[index] ?? null]);
      });
    }
    const curatedTotals = totalsFrom(curatedRows);
    // FOCUS BilledCost per currency, keyed by the raw column it restates: usage rows restate BillingPreTaxTotal;
    // reconciliation charge rows Subtotal, Tax rows TaxTotal.
    const measure =
      family === 'reconciliation'
        ? `CASE WHEN ChargeCategory = 'Tax' THEN 'TaxTotal' ELSE 'Subtotal' END`
        : `'BillingPreTaxTotal'`;
    const focusTotals = totalsFrom(
      await rows(
        connection,
        `SELECT BillingCurrency, ${measure} AS measure, CAST(CAST(sum(BilledCost) AS DECIMAL(38, 18)) AS VARCHAR) FROM read_parquet(${sqlString(join(focusDir, '*.parquet'))}) GROUP BY ALL`,
      ),
    );
    const warnings: Record<string, number> = {};
    const warningReader = await connection.runAndReadAll(conversionWarningsSql(schema, lookups));
    const [values = []] = warningReader.getRowsJson() as unknown[][];
    warningReader.columnNames().forEach((name, index) => {
      warnings[name] = Number(values[index] ?? 0);
    });
    return {
      warnings,
      dataset: input.dataset,
      attributeSet: schema.attributeSet,
      focusVersion: FOCUS_VERSION,
      rowsRead,
      rowsConverted,
      rejected: { count: rowsRead - rowsConverted, reasons },
      curated,
      focus,
      totals: { raw: rawTotals, curated: curatedTotals, focus: focusTotals },
    };
  } finally {
    connection.closeSync();
    instance.closeSync();
    await rm(stagingPath, { force: true });
    if (engine.tempDirectory === undefined) await rm(tempDirectory, { recursive: true, force: true });
  }
}
