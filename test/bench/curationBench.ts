/**
 * Item 7 of `npm run bench`: the curation step's conversion of one raw file (what one export-curate message does
 * for one file, without the Storage download and upload), against DuckDB writing the same files directly:
 * - `sameOutput`, the baseline the target is judged against: the two files ours writes (the curated typed Parquet and
 *   the FOCUS Parquet), each by one `COPY` straight from `read_json` with the converter's own SELECT texts, as a data
 *   engineer would write them by hand; no counts, rejects, totals or read-back;
 * - `fromCurated`, for information: the same two files, the FOCUS one written from the curated Parquet just written
 *   (one JSON parse, as ours; no bookkeeping);
 * - `direct`, a lower bound: the curated typed Parquet alone, one `COPY`.
 *
 * Each conversion runs in a fresh child process (this file with WORKER_FLAG), so its peak RSS is its own: the kernel's
 * high-water mark (`process.resourceUsage().maxRSS`, and VmHWM from /proc/self/status where there is one). Both
 * children load Node and DuckDB's binding; the difference is the conversion. Rounds alternate the order.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createWriteStream, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type * as DuckDbApi from '@duckdb/node-api';
import type * as DuckDbEngine from '../../src/adapters/curation/duckDbCurationEngine';
import type * as ConversionSql from '../../src/curation/conversionSql';
import type * as ConvertFile from '../../src/curation/convertFile';
import type * as CuratedSchemas from '../../src/curation/curatedSchemas';
import { datasetBlobChunks } from '../../src/emulator/datasetData';
import { fixed, median, type ResultRow, round } from './benchSupport';

const MiB = 1024 * 1024;
const WORKER_FLAG = '--curation-worker';

export interface GeneratedFile {
  path: string;
  rows: number;
  /** Bytes of JSON lines before gzip. */
  rawBytes: number;
  gzipBytes: number;
}

/** Streams `rows` emulator usage rows (full attribute set) through gzip into `path`: never more than a chunk in memory. */
export async function generateUsageFile(path: string, rows: number, currency: string): Promise<GeneratedFile> {
  let rawBytes = 0;
  let gzipBytes = 0;
  const spec = {
    seed: 11,
    currency,
    attributeSet: 'full' as const,
    billingMonth: '202611',
    usageDays: 30,
    partnerTenantId: '3f2a1b4c-0000-4000-8000-000000000001',
    rowsPerBlob: rows,
    dataset: 'unbilledUsage' as const,
  };
  const counted = (add: (n: number) => void) =>
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        add(chunk.length);
        callback(null, chunk);
      },
    });
  await pipeline(
    Readable.from(datasetBlobChunks(spec, 0, MiB)),
    counted((n) => {
      rawBytes += n;
    }),
    createGzip({ level: 1 }),
    counted((n) => {
      gzipBytes += n;
    }),
    createWriteStream(path),
  );
  return { path, rows, rawBytes, gzipBytes };
}

/** Rows of the generator per byte of JSON lines, from a small sample. */
export async function rawBytesPerRow(dir: string, currency: string): Promise<number> {
  const sample = await generateUsageFile(join(dir, 'sample.json.gz'), 20_000, currency);
  rmSync(sample.path, { force: true });
  return sample.rawBytes / sample.rows;
}

type Variant = 'ours' | 'direct' | 'sameOutput' | 'fromCurated';

interface WorkerJob {
  variant: Variant | 'lookups';
  inputPath: string;
  outputDir: string;
  /** sameOutput: the open-data entries the file's rows use (resolved once, untimed, by a `lookups` job). */
  lookups?: ConversionSql.FocusLookups | undefined;
}

export interface WorkerResult {
  variant: Variant | 'lookups';
  ms: number;
  /** Peak RSS of the child process, bytes (the larger of maxRSS and VmHWM). */
  peakRss: number;
  rowsWritten: number;
  /** ours: milliseconds per phase (statements classified by what they read and write). */
  phases: Record<string, number>;
  statements: number;
  lookups?: ConversionSql.FocusLookups | undefined;
}

function peakRssBytes(): number {
  const maxRss = process.resourceUsage().maxRSS * 1024;
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return Math.max(maxRss, match === null ? 0 : Number(match[1]) * 1024);
  } catch {
    return maxRss;
  }
}

function phaseOf(sql: string): string {
  if (sql.includes('read_json(')) return 'read JSON (pass 1)';
  if (/^COPY\b/.test(sql) && sql.includes('/focus')) return 'write FOCUS';
  if (/^COPY\b/.test(sql) && sql.includes('/curated')) return 'write curated';
  return 'other statements (lookups, counts, totals)';
}

async function runJob(job: WorkerJob): Promise<WorkerResult> {
  // Loaded here, in the worker: the bench's own process never loads DuckDB.
  const api = require('@duckdb/node-api') as typeof DuckDbApi;
  const convertModule = require('../../src/curation/convertFile') as typeof ConvertFile;
  const phases: Record<string, number> = {};
  let statements = 0;
  // Every statement goes through run() (runAndReadAll calls it): time each by what it does.
  const prototype = api.DuckDBConnection.prototype as unknown as { run: (sql: string, ...rest: unknown[]) => unknown };
  const run = prototype.run;
  prototype.run = async function timed(this: unknown, sql: string, ...rest: unknown[]) {
    const started = performance.now();
    try {
      return await run.call(this, sql, ...rest);
    } finally {
      const phase = phaseOf(sql);
      phases[phase] = (phases[phase] ?? 0) + performance.now() - started;
      statements += 1;
    }
  };
  await mkdir(job.outputDir, { recursive: true });
  const started = performance.now();
  let rowsWritten = 0;
  if (job.variant === 'ours') {
    // The app's engine with its defaults, as composition.ts builds it.
    const { DuckDbCurationEngine } = require('../../src/adapters/curation/duckDbCurationEngine') as typeof DuckDbEngine;
    const result = await new DuckDbCurationEngine().convert({
      inputPath: job.inputPath,
      dataset: 'unbilledUsage',
      attributeSet: 'full',
      billingMonth: '2026-11',
      outputDir: job.outputDir,
      partName: 'part-00000',
      sourceRunId: '20261201T060000000Z-00000001',
      sourceFileName: 'part-00000.json.gz',
    });
    rowsWritten = result.rowsConverted;
  } else {
    // DuckDB alone, with the same limits as ours: the typed columns of the curated schema, one COPY (direct); and
    // for sameOutput the FOCUS file too, a second COPY straight from the JSON with the converter's FOCUS select.
    const { curatedSchema } = require('../../src/curation/curatedSchemas') as typeof CuratedSchemas;
    const sql = require('../../src/curation/conversionSql') as typeof ConversionSql;
    const defaults = convertModule.ENGINE_DEFAULTS;
    const tempDirectory = join(job.outputDir, '.tmp');
    await mkdir(tempDirectory, { recursive: true });
    const instance = await api.DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
      threads: String(defaults.threads),
      memory_limit: defaults.memoryLimit,
      temp_directory: tempDirectory,
      max_temp_directory_size: defaults.maxTempDirectorySize,
      preserve_insertion_order: 'true',
    });
    const connection = await instance.connect();
    const schema = curatedSchema('unbilledUsage', 'full');
    const typed = schema.columns.map(
      (column) =>
        `TRY_CAST(nullif(${sql.sqlName(column.name)}, '') AS ${column.sqlType}) AS ${sql.sqlName(column.name)}`,
    );
    const target = join(job.outputDir, 'direct.parquet');
    // The typed rows as the FOCUS select reads them: its columns, the line's ordinal (x_SourceRow), nothing rejected.
    const rowsRelation = `(SELECT ${typed.join(', ')}, row_number() OVER () AS __row, CAST(NULL AS VARCHAR) AS __reject FROM ${sql.readRawSql(schema, job.inputPath)})`;
    await connection.run(`SET TimeZone = 'UTC'`);
    let lookups: ConversionSql.FocusLookups | undefined;
    if (job.variant === 'lookups') {
      // Untimed preparation of sameOutput: the entries the converter would resolve, so both write the same SELECT.
      for (const statement of sql.lookupTablesSql(convertModule.defaultOpenDataDir())) await connection.run(statement);
      lookups = { pricingUnits: {}, regions: {}, services: {}, servicesByType: {} };
      await connection.run(sql.fileKeysSql(schema, rowsRelation));
      for (const [name, query] of Object.entries(sql.lookupQueriesSql(schema))) {
        if (query === null) continue;
        const entries = lookups[name as keyof ConversionSql.FocusLookups] as Record<string, string[]>;
        const reader = await connection.runAndReadAll(query);
        for (const [key, ...values] of reader.getRowsJson() as string[][]) entries[key as string] = values;
      }
    } else {
      await connection.run(
        `COPY (SELECT ${typed.join(', ')} FROM ${sql.readRawSql(schema, job.inputPath)}) TO ${sql.sqlString(target)} (${convertModule.PARQUET_OPTIONS})`,
      );
      if (job.variant === 'sameOutput' || job.variant === 'fromCurated') {
        if (job.lookups === undefined) throw new Error(`${job.variant} needs the lookups of a lookups job`);
        const curatedRows = `(SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS __row, CAST(NULL AS VARCHAR) AS __reject FROM read_parquet(${sql.sqlString(target)}, file_row_number = true))`;
        const focus = sql.focusSelectSql(
          schema,
          job.variant === 'sameOutput' ? rowsRelation : curatedRows,
          {
            dataset: 'unbilledUsage',
            billingMonth: '2026-11',
            runId: '20261201T060000000Z-00000001',
            fileName: 'part-00000.json.gz',
          },
          job.lookups,
        );
        await connection.run(
          `COPY (${focus}) TO ${sql.sqlString(join(job.outputDir, 'direct-focus.parquet'))} (${convertModule.PARQUET_OPTIONS})`,
        );
      }
      const reader = await connection.runAndReadAll(`SELECT count(*) FROM read_parquet(${sql.sqlString(target)})`);
      rowsWritten = Number((reader.getRowsJson() as unknown[][])[0]?.[0]);
    }
    connection.closeSync();
    instance.closeSync();
    if (lookups !== undefined)
      return { variant: job.variant, ms: 0, peakRss: 0, rowsWritten: 0, phases, statements, lookups };
  }
  const ms = performance.now() - started;
  return { variant: job.variant, ms, peakRss: peakRssBytes(), rowsWritten, phases, statements };
}

async function workerMain(): Promise<void> {
  const job = await new Promise<WorkerJob>((resolve) =>
    process.once('message', (message) => resolve(message as WorkerJob)),
  );
  let reply: { ok: boolean; result?: WorkerResult; error?: string };
  try {
    reply = { ok: true, result: await runJob(job) };
  } catch (error) {
    reply = { ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
  }
  process.send?.(reply, () => process.exit(0));
}

/** Runs one conversion in a fresh child process; its output folder is removed afterwards. */
export function runConversion(job: WorkerJob): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(__filename, [WORKER_FLAG], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let settled = false;
    child.once('message', (message: unknown) => {
      settled = true;
      const reply = message as { ok?: boolean; result?: WorkerResult; error?: string };
      if (reply.ok === true && reply.result !== undefined) resolve(reply.result);
      else reject(new Error(`Curation worker (${job.variant}) failed: ${reply.error ?? 'unreadable reply'}`));
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      rmSync(job.outputDir, { recursive: true, force: true });
      if (!settled) reject(new Error(`Curation worker (${job.variant}) exited (code ${code}, signal ${signal}).`));
    });
    child.send(job);
  });
}

// ---------------------------------------------------------------------------------------------------------------

/** Flex Consumption prices (see docs/performance.md, item 4 and item 7). */
export interface FlexPrices {
  flexGbSecond: number;
  flexPerMillionExecutions: number;
  flexInstanceGb: number;
}

export interface CurationBenchOptions {
  workDir: string;
  rows: number;
  rounds: number;
  /** Raw bytes of the large export (BENCH_CURATION_LARGE_GB), or undefined to skip it. */
  largeBytes: number | undefined;
  prices: FlexPrices;
  log: (message: string) => void;
}

/** The partner of the cost figure: 10 currencies, each a month-to-date file of this many usage rows a day. */
export const COST_PARTNER = { currencies: 10, rowsPerCurrency: 300_000 } as const;

export async function measureCuration(
  options: CurationBenchOptions,
): Promise<{ rows: ResultRow[]; details: string[]; json: Record<string, unknown> }> {
  const dir = join(options.workDir, 'curation');
  await mkdir(dir, { recursive: true });
  const rows: ResultRow[] = [];
  const details: string[] = [];
  // EUR: an exchange rate other than 1, so every price is converted as for most of a partner's currencies.
  options.log(`item 7: generating ${options.rows} usage rows (gzip JSON lines)`);
  const file = await generateUsageFile(join(dir, 'usage.json.gz'), options.rows, 'EUR');
  options.log('item 7: resolving the lookups of the same-output baseline (untimed)');
  const { lookups } = await runConversion({
    variant: 'lookups',
    inputPath: file.path,
    outputDir: join(dir, 'out-lookups'),
  });
  const results: Record<Variant, WorkerResult[]> = { ours: [], direct: [], sameOutput: [], fromCurated: [] };
  for (let round = 0; round < options.rounds; round++) {
    const order: Variant[] =
      round % 2 === 0
        ? ['ours', 'sameOutput', 'fromCurated', 'direct']
        : ['direct', 'fromCurated', 'sameOutput', 'ours'];
    for (const variant of order) {
      options.log(`item 7: round ${round + 1}/${options.rounds}, ${variant}`);
      const result = await runConversion({
        variant,
        inputPath: file.path,
        outputDir: join(dir, `out-${variant}`),
        lookups,
      });
      results[variant].push(result);
    }
  }
  const { ours, direct, sameOutput, fromCurated } = results;
  const ratioTo = (baseline: WorkerResult[]) =>
    median(ours.map((run, index) => run.ms / (baseline[index]?.ms ?? Number.NaN)));
  const timeRatio = ratioTo(sameOutput);
  const typedRatio = ratioTo(direct);
  const fromCuratedRatio = ratioTo(fromCurated);
  const fromCuratedMs = median(fromCurated.map((run) => run.ms));
  const oursMs = median(ours.map((run) => run.ms));
  const directMs = median(direct.map((run) => run.ms));
  const sameMs = median(sameOutput.map((run) => run.ms));
  const oursRss = median(ours.map((run) => run.peakRss));
  const directRss = median(direct.map((run) => run.peakRss));
  const sameRss = median(sameOutput.map((run) => run.peakRss));
  const rssAllowance = 1.2 * sameRss + 64 * MiB;
  const rawMiB = file.rawBytes / MiB;
  const label = `${fixed(options.rows / 1000, 0)}k usage rows (${fixed(rawMiB, 0)} MiB JSON lines, ${fixed(file.gzipBytes / MiB, 0)} MiB gzip)`;
  rows.push({
    item: '7',
    figure: `curation: convert ${label}, s`,
    ours: fixed(oursMs / 1000),
    baseline: `${fixed(sameMs / 1000)} (DuckDB COPY of the same two files from the JSON)`,
    ratio: `${fixed(timeRatio)}x`,
    target: '<= 1.2x',
    met: timeRatio <= 1.2,
    values: {
      curationMs: round(oursMs, 0),
      sameOutputCopyMs: round(sameMs, 0),
      directCopyMs: round(directMs, 0),
      curationTimeRatio: round(timeRatio, 3),
      curationTimeRatioTypedOnly: round(typedRatio, 3),
    },
  });
  rows.push({
    item: '7',
    figure: '  the same, against the same two files with FOCUS written from the curated file, s',
    ours: fixed(oursMs / 1000),
    baseline: `${fixed(fromCuratedMs / 1000)} (DuckDB COPY from the JSON, then COPY from its Parquet)`,
    ratio: `${fixed(fromCuratedRatio)}x`,
    target: 'report',
    met: undefined,
    values: { fromCuratedCopyMs: round(fromCuratedMs, 0), curationTimeRatioFromCurated: round(fromCuratedRatio, 3) },
  });
  rows.push({
    item: '7',
    figure: '  the same conversion against the curated file alone (lower bound), s',
    ours: fixed(oursMs / 1000),
    baseline: `${fixed(directMs / 1000)} (DuckDB COPY of the typed columns only)`,
    ratio: `${fixed(typedRatio)}x`,
    target: 'report',
    met: undefined,
    values: {},
  });
  rows.push({
    item: '7',
    figure: '  peak RSS of the converting process, MiB',
    ours: fixed(oursRss / MiB, 0),
    baseline: `${fixed(sameRss / MiB, 0)} (same two files; ${fixed(directRss / MiB, 0)} typed only)`,
    ratio: `${fixed(oursRss / sameRss)}x`,
    target: `<= 1.2x + 64 MiB (${fixed(rssAllowance / MiB, 0)})`,
    met: oursRss <= rssAllowance,
    values: {
      curationPeakRssMiB: round(oursRss / MiB, 1),
      sameOutputPeakRssMiB: round(sameRss / MiB, 1),
      directPeakRssMiB: round(directRss / MiB, 1),
    },
  });
  const phaseNames = [...new Set(ours.flatMap((run) => Object.keys(run.phases)))];
  details.push(
    `\nCuration of ${label}, per round (ms, peak RSS MiB); ours = curated Parquet + FOCUS Parquet + counts, rejects and totals:`,
    ...ours.map(
      (run, index) =>
        `  round ${index + 1}: ours ${fixed(run.ms, 0)} (${fixed(run.peakRss / MiB, 0)} MiB; ${phaseNames.map((name) => `${name} ${fixed(run.phases[name] ?? 0, 0)}`).join(', ')}; ${run.statements} statements), same two files ${fixed(sameOutput[index]?.ms ?? Number.NaN, 0)} (${fixed((sameOutput[index]?.peakRss ?? Number.NaN) / MiB, 0)} MiB), FOCUS from the curated file ${fixed(fromCurated[index]?.ms ?? Number.NaN, 0)} (${fixed((fromCurated[index]?.peakRss ?? Number.NaN) / MiB, 0)} MiB), typed only ${fixed(direct[index]?.ms ?? Number.NaN, 0)} (${fixed((direct[index]?.peakRss ?? Number.NaN) / MiB, 0)} MiB)`,
    ),
  );

  // Cost per day: the measured conversion time per MiB of JSON lines, for a stated partner, at Flex prices.
  const secondsPerMiB = oursMs / 1000 / rawMiB;
  const partnerMiB = COST_PARTNER.currencies * COST_PARTNER.rowsPerCurrency * (file.rawBytes / file.rows / MiB);
  const seconds = secondsPerMiB * partnerMiB;
  // One message per file and one fan-in per currency.
  const executions = COST_PARTNER.currencies * 2;
  const gbSeconds = seconds * options.prices.flexInstanceGb;
  const costUsd =
    gbSeconds * options.prices.flexGbSecond + (executions / 1_000_000) * options.prices.flexPerMillionExecutions;
  rows.push({
    item: '7',
    figure: `  curation cost per day, ${COST_PARTNER.currencies} currencies x ${COST_PARTNER.rowsPerCurrency / 1000}k rows (${fixed(partnerMiB / 1024, 1)} GiB JSON), USD`,
    ours: `$${costUsd.toFixed(4)}`,
    baseline: `${fixed(seconds, 0)} s x ${options.prices.flexInstanceGb} GB`,
    ratio: '-',
    target: 'report',
    met: undefined,
    values: { curationSecondsPerMiB: round(secondsPerMiB, 4), curationDailyUsd: round(costUsd, 5) },
  });
  const json: Record<string, unknown> = {
    curation: {
      file: { rows: file.rows, rawBytes: file.rawBytes, gzipBytes: file.gzipBytes },
      ours,
      sameOutput,
      fromCurated,
      direct,
      cost: { partnerMiB, seconds, gbSeconds, executions, costUsd },
    },
  };
  rmSync(file.path, { force: true });

  if (options.largeBytes !== undefined) {
    const perRow = await rawBytesPerRow(dir, 'EUR');
    const largeRows = Math.ceil(options.largeBytes / perRow);
    options.log(
      `item 7: generating ${largeRows} rows (about ${fixed(options.largeBytes / 1024 ** 3, 1)} GiB JSON lines)`,
    );
    const large = await generateUsageFile(join(dir, 'large.json.gz'), largeRows, 'EUR');
    options.log('item 7: converting the large export');
    const result = await runConversion({ variant: 'ours', inputPath: large.path, outputDir: join(dir, 'out-large') });
    rmSync(large.path, { force: true });
    rows.push({
      item: '7',
      figure: `  peak RSS converting ${fixed(large.rawBytes / 1024 ** 3, 2)} GiB of JSON lines (${fixed(large.rows / 1e6, 2)}M rows) in one process, MiB`,
      ours: fixed(result.peakRss / MiB, 0),
      baseline: `${fixed(result.ms / 1000, 0)} s`,
      ratio: '-',
      target: '<= 512 MiB',
      met: result.peakRss <= 512 * MiB && result.rowsWritten === large.rows,
      values: { largePeakRssMiB: round(result.peakRss / MiB, 1), largeMs: round(result.ms, 0) },
    });
    json['curationLarge'] = { rows: large.rows, rawBytes: large.rawBytes, gzipBytes: large.gzipBytes, result };
  }
  return { rows, details, json };
}

if (process.argv.includes(WORKER_FLAG)) void workerMain();
