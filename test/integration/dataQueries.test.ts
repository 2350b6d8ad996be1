import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import type { DatasetId } from '../../src/config';
import { type ConvertFileResult, convertFile } from '../../src/curation/convertFile';
import { type CurrencyTotals, normalizeDecimal } from '../../src/curation/totals';
import { datasetBlobChunks } from '../../src/emulator/datasetData';
import { QUERY_EXAMPLE } from '../../src/local/curatedViews';
import { commandQuery } from '../../src/local/queryCommand';

const root = join(__dirname, '..', '..', '..');

/** A `## title` section of docs/data.md. */
async function docsSection(title: string): Promise<string> {
  const doc = await readFile(join(root, 'docs', 'data.md'), 'utf8');
  const start = doc.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `docs/data.md has a "${title}" section`);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** The DuckDB blocks (```sql) of the "Example queries" section of docs/data.md, in order. */
async function documentedQueries(): Promise<string[]> {
  const section = await docsSection('Example queries');
  return [...section.matchAll(/^```sql\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string);
}

/** The SQL of each `npm run cli -- query "…"` line of the "The query command" section. */
async function documentedCommands(): Promise<string[]> {
  const section = await docsSection('The query command');
  return [...section.matchAll(/^npm run cli -- query "([^"]+)"( --json)?$/gm)].map((match) => match[1] as string);
}

/** Runs `query SQL --json --destination {the test's copy}` in this process; the rows it printed. */
async function queryCommand(sql: string): Promise<Record<string, unknown>[]> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await commandQuery([sql, '--json', '--destination', join(dir, 'partner-billing')], {
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
  });
  assert.equal(code, 0, `${sql}\n${err.join('\n')}`);
  return (JSON.parse(out.at(-1) ?? '{}') as { rows: Record<string, unknown>[] }).rows;
}

let dir: string;
let db: DuckDBInstance;
const raw: Record<string, CurrencyTotals> = {};

/** Converts one emulator file and puts its parts where the curated layout puts a series' current version. */
async function landFocus(dataset: DatasetId, prefix: string, currency: string): Promise<ConvertFileResult> {
  const chunks = datasetBlobChunks(
    {
      seed: 11,
      currency,
      attributeSet: 'full',
      billingMonth: '202611',
      usageDays: 30,
      partnerTenantId: '3f2a1b4c-0000-4000-8000-000000000001',
      rowsPerBlob: 300,
      dataset,
    },
    0,
  );
  let text = Buffer.concat([...chunks]).toString('utf8');
  if (dataset === 'unbilledReconciliation') {
    // The emulator's lines carry no tax: add a taxed copy of the first line, so the query meets a Tax row.
    const line = JSON.parse(text.slice(0, text.indexOf('\n'))) as Record<string, unknown>;
    text += `${JSON.stringify({ ...line, TaxTotal: 12.34, Total: Number(line.Subtotal) + 12.34 })}\n`;
  }
  const input = join(dir, `${dataset}-${currency}.json.gz`);
  await writeFile(input, gzipSync(text));
  const result = await convertFile({
    inputPath: input,
    dataset,
    attributeSet: 'full',
    billingMonth: '2026-11',
    outputDir: join(dir, 'work', `${dataset}-${currency}`),
    sourceRunId: '20261201T060000000Z-00000001',
    sourceFileName: 'part-00000.json.gz',
  });
  // Both tables, each series folder with its manifest.json naming its parts (what the query command reads).
  for (const kind of ['curated', 'focus'] as const) {
    const series = join(
      dir,
      'partner-billing',
      kind,
      prefix,
      'exportMonth=2026-11',
      `exportCurrency=${currency}`,
      'exportAttributeSet=full',
    );
    await mkdir(series, { recursive: true });
    for (const part of result[kind]) await rename(part.path, join(series, basename(part.path)));
    const files = result[kind].map((part) => ({ name: basename(part.path), rowCount: part.rowCount }));
    await writeFile(
      join(series, 'manifest.json'),
      JSON.stringify({ source: { runId: '20261201T060000000Z-00000001' }, files }),
    );
  }
  for (const [cur, measures] of Object.entries(result.totals.raw)) {
    raw[dataset] ??= {};
    (raw[dataset] as CurrencyTotals)[cur] = measures;
  }
  return result;
}

async function run(sql: string): Promise<Record<string, unknown>[]> {
  const connection = await db.connect();
  try {
    // The docs read ./partner-billing; the test's copy lies in a temporary folder.
    const reader = await connection.runAndReadAll(sql.replaceAll("'partner-billing/", `'${dir}/partner-billing/`));
    return reader.getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
  }
}

/** Σ of a column per currency, exact (the values are DECIMAL text). */
async function sumsPerCurrency(rows: Record<string, unknown>[], column: string): Promise<Record<string, string>> {
  const values = rows.map((row) => `('${String(row.BillingCurrency)}', ${String(row[column])}::DECIMAL(38, 12))`);
  const connection = await db.connect();
  try {
    const sums = await connection.runAndReadAll(
      `SELECT c, sum(v)::VARCHAR FROM (VALUES ${values.join(', ')}) AS t(c, v) GROUP BY c`,
    );
    return Object.fromEntries(
      (sums.getRowsJson() as string[][]).map(([c, v]) => [c as string, normalizeDecimal(v as string)]),
    );
  } finally {
    connection.closeSync();
  }
}

function rawSums(dataset: DatasetId, measure: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(raw[dataset] ?? {}).map(([currency, measures]) => [
      currency,
      normalizeDecimal(measures[measure] ?? '0'),
    ]),
  );
}

describe('the example queries of docs/data.md, run with DuckDB over emulator data in the curated layout', () => {
  let queries: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'data-queries-'));
    db = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
      threads: '1',
    });
    await landFocus('unbilledUsage', 'unbilled-usage', 'USD');
    await landFocus('unbilledUsage', 'unbilled-usage', 'EUR');
    await landFocus('unbilledReconciliation', 'unbilled-reconciliation', 'USD');
    queries = await documentedQueries();
  });
  after(async () => {
    db?.closeSync();
    await rm(dir, { recursive: true, force: true });
  });

  it('has four DuckDB queries, each of which runs and returns rows', async () => {
    assert.equal(queries.length, 4);
    for (const sql of queries) assert.ok((await run(sql)).length > 0, sql);
  });

  it('cost per customer and cost per day each add up, per currency, to the raw files’ BillingPreTaxTotal', async () => {
    const expected = rawSums('unbilledUsage', 'BillingPreTaxTotal');
    assert.deepEqual(Object.keys(expected).sort(), ['EUR', 'USD']);
    assert.deepEqual(await sumsPerCurrency(await run(queries[0] as string), 'billed_cost'), expected);
    assert.deepEqual(await sumsPerCurrency(await run(queries[1] as string), 'billed_cost'), expected);
  });

  it('reconciliation purchases and credits add up to the raw Subtotal and tax rows to the raw TaxTotal', async () => {
    const rows = await run(queries[2] as string);
    const charges = rows.filter((row) => row.ChargeCategory !== 'Tax');
    const tax = rows.filter((row) => row.ChargeCategory === 'Tax');
    assert.ok(charges.some((row) => row.ChargeCategory === 'Purchase'));
    assert.deepEqual(await sumsPerCurrency(charges, 'billed_cost'), rawSums('unbilledReconciliation', 'Subtotal'));
    assert.deepEqual(await sumsPerCurrency(tax, 'billed_cost'), rawSums('unbilledReconciliation', 'TaxTotal'));
    assert.deepEqual(rawSums('unbilledReconciliation', 'TaxTotal'), { USD: '12.34' });
  });

  it('top services lists at most five services per currency, largest first', async () => {
    const rows = await run(queries[3] as string);
    for (const currency of ['EUR', 'USD']) {
      const ofCurrency = rows.filter((row) => row.BillingCurrency === currency);
      assert.ok(ofCurrency.length > 0 && ofCurrency.length <= 5, currency);
      const costs = ofCurrency.map((row) => Number(row.billed_cost));
      assert.deepEqual(
        costs,
        [...costs].sort((a, b) => b - a),
        currency,
      );
    }
  });
  it('runs each query-command example of docs/data.md through the query command, the first being what npm start suggests', async () => {
    const commands = await documentedCommands();
    assert.equal(commands.length, 3);
    assert.equal(commands[0], QUERY_EXAMPLE);
    for (const sql of commands) assert.ok((await queryCommand(sql)).length > 0, sql);
  });

  it('the query command’s views add up to the raw files: usage per currency, reconciliation charges and tax', async () => {
    const [, overview, curated] = await documentedCommands();
    const rows = await queryCommand(overview as string);
    const of = (source: string, charge: (category: unknown) => boolean) =>
      rows.filter((row) => row.x_SourceType === source && charge(row.ChargeCategory));
    assert.deepEqual(
      await sumsPerCurrency(
        of('unbilledUsage', () => true),
        'billed_cost',
      ),
      rawSums('unbilledUsage', 'BillingPreTaxTotal'),
    );
    assert.deepEqual(
      await sumsPerCurrency(
        of('unbilledReconciliation', (category) => category !== 'Tax'),
        'billed_cost',
      ),
      rawSums('unbilledReconciliation', 'Subtotal'),
    );
    assert.deepEqual(
      await sumsPerCurrency(
        of('unbilledReconciliation', (category) => category === 'Tax'),
        'billed_cost',
      ),
      rawSums('unbilledReconciliation', 'TaxTotal'),
    );
    const lines = await queryCommand(curated as string);
    assert.deepEqual(
      lines.map((row) => [row.BillingCurrency, row.lines]),
      [
        ['EUR', '300'],
        ['USD', '300'],
      ],
    );
    assert.deepEqual(await sumsPerCurrency(lines, 'billed_pre_tax'), rawSums('unbilledUsage', 'BillingPreTaxTotal'));
  });
});
