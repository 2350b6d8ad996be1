import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import type { AttributeSet, DatasetId } from '../../src/config';
import { type ConvertFileResult, convertFile, type EngineOptions } from '../../src/curation/convertFile';
import { curatedSchema } from '../../src/curation/curatedSchemas';
import { FOCUS_1_2_MANDATORY, FOCUS_VERSION } from '../../src/curation/focus12';
import { conversionTotalsDifferences } from '../../src/curation/totals';
import { datasetBlobChunks } from '../../src/emulator/datasetData';

/** The 21 mandatory columns of FOCUS 1.2 (specification/columns/*.md at tag v1.2) and their FOCUS data types. */
const MANDATORY_1_2: Record<string, 'Decimal' | 'Date/Time' | 'String'> = {
  BilledCost: 'Decimal',
  BillingAccountId: 'String',
  BillingAccountName: 'String',
  BillingCurrency: 'String',
  BillingPeriodEnd: 'Date/Time',
  BillingPeriodStart: 'Date/Time',
  ChargeCategory: 'String',
  ChargeClass: 'String',
  ChargeDescription: 'String',
  ChargePeriodEnd: 'Date/Time',
  ChargePeriodStart: 'Date/Time',
  ContractedCost: 'Decimal',
  EffectiveCost: 'Decimal',
  InvoiceIssuerName: 'String',
  ListCost: 'Decimal',
  PricingQuantity: 'Decimal',
  PricingUnit: 'String',
  ProviderName: 'String',
  PublisherName: 'String',
  ServiceCategory: 'String',
  ServiceName: 'String',
};
const DUCKDB_TYPE = { Decimal: 'DECIMAL(38,12)', 'Date/Time': 'TIMESTAMP WITH TIME ZONE', String: 'VARCHAR' };

let dir: string;
let db: DuckDBInstance;

/** Writes one emulator blob of a dataset as a gzip JSON-lines file (what the copy lands) and returns its path. */
async function emulatorFile(
  name: string,
  dataset: DatasetId,
  currency: string,
  attributeSet: AttributeSet,
  rowsPerBlob = 400,
  extraLines: string[] = [],
): Promise<string> {
  const chunks = [
    ...datasetBlobChunks(
      {
        seed: 7,
        currency,
        attributeSet,
        billingMonth: '202611',
        usageDays: 30,
        partnerTenantId: '3f2a1b4c-0000-4000-8000-000000000001',
        rowsPerBlob,
        dataset,
        invoiceId: dataset.startsWith('billed') ? 'G000000001' : undefined,
      },
      0,
    ),
  ];
  const path = join(dir, `${name}.json.gz`);
  await writeFile(path, gzipSync(Buffer.concat([...chunks, Buffer.from(extraLines.map((l) => `${l}\n`).join(''))])));
  return path;
}

async function convert(
  name: string,
  inputPath: string,
  dataset: DatasetId,
  attributeSet: AttributeSet,
  engine?: EngineOptions,
) {
  return convertFile({
    engine,
    inputPath,
    dataset,
    attributeSet,
    billingMonth: '2026-11',
    outputDir: join(dir, 'out', name),
    sourceRunId: '20261201T060000000Z-00000001',
    sourceFileName: 'part-00000.json.gz',
  });
}

async function query(sql: string): Promise<unknown[][]> {
  const connection = await db.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowsJson() as unknown[][];
  } finally {
    connection.closeSync();
  }
}

async function parquetSchema(path: string): Promise<string[][]> {
  return (await query(
    `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${path}'))`,
  )) as string[][];
}

function only<T>(items: readonly T[]): T {
  assert.equal(items.length, 1);
  return items[0] as T;
}

function assertTotalsAgree(result: ConvertFileResult): void {
  assert.deepEqual(conversionTotalsDifferences(result.totals), []);
  assert.ok(Object.keys(result.totals.raw).length > 0, 'some totals');
}

/** Every SQL text DuckDB connections run while `work` runs (recorded on the connection prototype, then restored). */
async function recordStatements(work: () => Promise<unknown>): Promise<string[]> {
  const statements: string[] = [];
  const prototype = DuckDBConnection.prototype as unknown as { run: (sql: string, ...rest: unknown[]) => unknown };
  const run = prototype.run;
  prototype.run = function recorded(this: unknown, sql: string, ...rest: unknown[]) {
    statements.push(sql);
    return run.call(this, sql, ...rest);
  };
  try {
    await work();
  } finally {
    prototype.run = run;
  }
  return statements;
}

describe('curation: one raw file to typed Parquet and FOCUS 1.2 (real DuckDB, emulator data)', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'curation-'));
    db = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
  });
  after(async () => {
    db.closeSync();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the same curated schema for a USD file and an EUR file (an exchange rate of 1 does not become an integer)', async () => {
    const usd = await convert(
      'usd',
      await emulatorFile('usd', 'unbilledUsage', 'USD', 'full'),
      'unbilledUsage',
      'full',
    );
    const eur = await convert(
      'eur',
      await emulatorFile('eur', 'unbilledUsage', 'EUR', 'full'),
      'unbilledUsage',
      'full',
    );
    const usdSchema = await parquetSchema(only(usd.curated).path);
    assert.deepEqual(usdSchema, await parquetSchema(only(eur.curated).path));
    const types = Object.fromEntries(usdSchema);
    assert.equal(types.PCToBCExchangeRate, 'DECIMAL(38,12)');
    assert.equal(types.BillingPreTaxTotal, 'DECIMAL(38,12)');
    assert.equal(types.UsageDate, 'TIMESTAMP WITH TIME ZONE');
    assert.equal(types.Tags, 'VARCHAR');
    assert.deepEqual(
      usdSchema.map(([name]) => name),
      curatedSchema('unbilledUsage', 'full').columns.map((column) => column.name),
    );
    // The whole curated table of both currencies reads as one, and the exchange rates keep their decimals.
    const [[rates]] = (await query(
      `SELECT string_agg(DISTINCT PCToBCExchangeRate::VARCHAR, ',' ORDER BY PCToBCExchangeRate::VARCHAR) FROM read_parquet(['${only(usd.curated).path}', '${only(eur.curated).path}'])`,
    )) as [[string]];
    assert.equal(rates, '0.921834000000,1.000000000000');
  });

  it('writes the same reconciliation schema for USD and EUR files that a sniffing reader types BIGINT in one and DOUBLE in the other', async () => {
    const usdFile = await emulatorFile('recon-usd', 'unbilledReconciliation', 'USD', 'full');
    const eurFile = await emulatorFile('recon-eur', 'unbilledReconciliation', 'EUR', 'full');
    const sniffed = async (path: string) =>
      (
        (await query(
          `SELECT column_type FROM (DESCRIBE SELECT * FROM read_json('${path}')) WHERE column_name = 'TaxTotal'`,
        )) as string[][]
      )[0]?.[0];
    // The drift the curated schema removes: all-zero USD taxes sniff as BIGINT, EUR taxes as DOUBLE.
    assert.deepEqual([await sniffed(usdFile), await sniffed(eurFile)], ['BIGINT', 'DOUBLE']);
    const usd = await convert('recon-usd', usdFile, 'unbilledReconciliation', 'full');
    const eur = await convert('recon-eur', eurFile, 'unbilledReconciliation', 'full');
    const usdSchema = await parquetSchema(only(usd.curated).path);
    assert.deepEqual(usdSchema, await parquetSchema(only(eur.curated).path));
    assert.equal(Object.fromEntries(usdSchema).TaxTotal, 'DECIMAL(38,12)');
  });

  it('keeps the exact decimal totals: raw text, curated Parquet and FOCUS BilledCost agree to the last digit', async () => {
    const result = await convert(
      'totals',
      await emulatorFile('totals', 'unbilledUsage', 'EUR', 'full', 1000),
      'unbilledUsage',
      'full',
    );
    assert.equal(result.rowsConverted, 1000);
    assert.equal(result.rejected.count, 0);
    assertTotalsAgree(result);
    assert.match(result.totals.raw.EUR?.BillingPreTaxTotal ?? '', /^\d+\.\d+$/);
    assert.equal(only(result.curated).rowCount, 1000);
    assert.equal(only(result.focus).rowCount, 1000);
  });

  it('rejects a line that is not JSON and a value that does not convert, counts each with its reason, and converts the rest', async () => {
    const good = JSON.stringify({
      ...JSON.parse('{}'),
      BillingCurrency: 'USD',
      BillingPreTaxTotal: 'ten',
      PartnerId: 'p',
    });
    const result = await convert(
      'rejects',
      await emulatorFile('rejects', 'unbilledUsage', 'USD', 'basic', 50, [
        '{"PartnerId": "p", "Quant',
        'not json',
        good,
        '{"partnerId":"renamed"}',
      ]),
      'unbilledUsage',
      'basic',
    );
    assert.equal(result.rowsRead, 54);
    assert.equal(result.rowsConverted, 50);
    assert.deepEqual(result.rejected, {
      count: 4,
      reasons: { noDatasetColumn: 3, 'invalidValue:BillingPreTaxTotal': 1 },
    });
    assert.equal(only(result.curated).rowCount, 50);
    assertTotalsAgree(result);
  });

  it('reports a totals difference when a value has more decimals than the curated type keeps, instead of rounding silently', async () => {
    const line = JSON.stringify({ PartnerId: 'p', BillingCurrency: 'USD', BillingPreTaxTotal: '0.0000000000004' });
    const result = await convert(
      'precision',
      await emulatorFile('precision', 'unbilledUsage', 'USD', 'basic', 10, [line]),
      'unbilledUsage',
      'basic',
    );
    assert.equal(result.rejected.count, 0);
    const differences = conversionTotalsDifferences(result.totals);
    assert.equal(differences.length, 2, differences.join('\n'));
    assert.match(differences[0] ?? '', /^curated USD BillingPreTaxTotal: raw \d+\.\d*4, written \d+\.\d+$/);
  });

  it('writes empty strings as NULL and keeps Tags as JSON text usable with JSON functions', async () => {
    const result = await convert(
      'nulls',
      await emulatorFile('nulls', 'unbilledUsage', 'USD', 'full'),
      'unbilledUsage',
      'full',
    );
    const path = only(result.curated).path;
    const [[emptyStrings, nullTier2, nullInvoice, taggedEnv]] = (await query(
      `SELECT count(*) FILTER (WHERE Tier2MpnId = '' OR InvoiceNumber = '' OR Tags = '' OR BenefitType = ''),
              count(*) FILTER (WHERE Tier2MpnId IS NULL), count(*) FILTER (WHERE InvoiceNumber IS NULL),
              count(*) FILTER (WHERE Tags->>'env' IS NOT NULL)
       FROM read_parquet('${path}')`,
    )) as [[string, string, string, string]];
    assert.equal(Number(emptyStrings), 0);
    assert.equal(Number(nullTier2), 400);
    assert.equal(Number(nullInvoice), 400);
    assert.ok(Number(taggedEnv) > 0, 'Tags readable with ->>');
  });

  it('writes FOCUS 1.2 usage rows with the 21 mandatory columns typed as the spec says and the hub source columns set', async () => {
    const result = await convert(
      'focus-usage',
      await emulatorFile('focus-usage', 'billedUsage', 'USD', 'full'),
      'billedUsage',
      'full',
    );
    const path = only(result.focus).path;
    const types = Object.fromEntries(await parquetSchema(path));
    assert.deepEqual([...FOCUS_1_2_MANDATORY].sort(), Object.keys(MANDATORY_1_2).sort());
    for (const [name, focusType] of Object.entries(MANDATORY_1_2))
      assert.equal(types[name], DUCKDB_TYPE[focusType], name);
    const [[categories, frequencies, issuers, versions, sources, nullMandatory, unmatchedServices]] = (await query(
      `SELECT string_agg(DISTINCT ChargeCategory, ','), string_agg(DISTINCT ChargeFrequency, ','),
              string_agg(DISTINCT InvoiceIssuerName, ','), string_agg(DISTINCT x_SourceVersion, ','),
              string_agg(DISTINCT x_SourceType || '/' || x_SourceName || '/' || x_SourceProvider, ','),
              count(*) FILTER (WHERE BilledCost IS NULL OR BillingAccountId IS NULL OR BillingCurrency IS NULL
                OR ChargePeriodStart IS NULL OR ChargePeriodEnd <= ChargePeriodStart OR PricingUnit IS NULL
                OR ServiceName IS NULL OR ServiceCategory IS NULL OR InvoiceId IS NULL),
              count(*) FILTER (WHERE ServiceCategory = 'Other' AND x_ResourceType <> 'microsoft.insights/webtests')
       FROM read_parquet('${path}')`,
    )) as [[string, string, string, string, string, string, string]];
    assert.equal(categories, 'Usage');
    assert.equal(frequencies, 'Usage-Based');
    assert.equal(issuers, 'Microsoft');
    assert.equal(versions, FOCUS_VERSION);
    assert.equal(sources, 'billedUsage/Microsoft Graph partner billing/Microsoft');
    assert.equal(Number(nullMandatory), 0);
    // Services.csv has every emulator resource type but web tests, which fall back to ServiceCategory "Other";
    // PricingUnits.csv every unit but "1 Test Execution" and "10 GB Seconds", kept as written. Both are counted.
    assert.equal(Number(unmatchedServices), 0);
    const [[webTests, rawUnits]] = (await query(
      `SELECT count(*) FILTER (WHERE x_ResourceType = 'microsoft.insights/webtests'),
              count(*) FILTER (WHERE PricingUnit IN ('1 Test Execution', '10 GB Seconds'))
       FROM read_parquet('${path}')`,
    )) as [[string, string]];
    assert.ok(Number(webTests) > 0 && Number(rawUnits) > Number(webTests));
    assert.deepEqual(result.warnings, {
      pricingUnitNotInOpenData: Number(rawUnits),
      serviceNotInOpenData: Number(webTests),
    });
    assertTotalsAgree(result);
  });

  it('writes reconciliation lines as Purchase rows plus a Tax row per line with tax, and their BilledCost restates Subtotal and TaxTotal', async () => {
    const result = await convert(
      'focus-recon',
      await emulatorFile('focus-recon', 'billedReconciliation', 'EUR', 'full', 300),
      'billedReconciliation',
      'full',
    );
    const path = only(result.focus).path;
    const [[purchase, tax, taxQuantity, lines]] = (await query(
      `SELECT count(*) FILTER (WHERE ChargeCategory = 'Purchase'), count(*) FILTER (WHERE ChargeCategory = 'Tax'),
              count(*) FILTER (WHERE ChargeCategory = 'Tax' AND (PricingQuantity IS NOT NULL OR PricingUnit IS NOT NULL)),
              count(DISTINCT x_SourceRow)
       FROM read_parquet('${path}')`,
    )) as [[string, string, string, string]];
    assert.equal(Number(purchase), 300);
    assert.equal(Number(lines), 300);
    assert.ok(Number(tax) > 0 && Number(tax) <= 300);
    assert.equal(Number(taxQuantity), 0, 'FOCUS: PricingQuantity and PricingUnit are null on Tax rows');
    assert.equal(only(result.focus).rowCount, Number(purchase) + Number(tax));
    assert.deepEqual(Object.keys(result.totals.focus.EUR ?? {}).sort(), ['Subtotal', 'TaxTotal']);
    assert.equal(result.warnings.totalIsNotSubtotalPlusTax, 0);
    // File order: every line's rows follow the previous line's, its Tax row right after its charge row.
    const [[outOfOrder]] = (await query(
      `SELECT count(*) FROM (SELECT x_SourceRow, ChargeCategory, lag(x_SourceRow) OVER () AS previous,
              lag(ChargeCategory) OVER () AS previousCategory FROM read_parquet('${path}'))
       WHERE previous > x_SourceRow OR (previous = x_SourceRow AND NOT (previousCategory <> 'Tax' AND ChargeCategory = 'Tax'))`,
    )) as [[string]];
    assert.equal(Number(outOfOrder), 0);
    assertTotalsAgree(result);
  });

  it('converts every dataset and attribute set, basic files included, with totals that agree', async () => {
    const cases: [DatasetId, AttributeSet][] = [
      ['unbilledReconciliation', 'basic'],
      ['billedUsage', 'basic'],
      ['billedAggregatedUsage', 'full'],
    ];
    for (const [dataset, attributeSet] of cases) {
      const name = `${dataset}-${attributeSet}`;
      const result = await convert(
        name,
        await emulatorFile(name, dataset, 'USD', attributeSet, 200),
        dataset,
        attributeSet,
      );
      assert.equal(result.rejected.count, 0, name);
      assert.ok(result.rowsConverted > 0, name);
      assertTotalsAgree(result);
      const names = (await parquetSchema(only(result.curated).path)).map(([column]) => column);
      assert.deepEqual(
        names,
        curatedSchema(dataset, attributeSet).columns.map((column) => column.name),
        name,
      );
    }
  });

  it('gives byte-identical parts when the same file is converted again (a redo after a crash)', async () => {
    const input = await emulatorFile('redo', 'unbilledReconciliation', 'EUR', 'full', 300);
    const first = await convert('redo', input, 'unbilledReconciliation', 'full');
    const hashes = async (result: ConvertFileResult) =>
      Promise.all(
        [...result.curated, ...result.focus].map(async (part) =>
          createHash('sha256')
            .update(await readFile(part.path))
            .digest('hex'),
        ),
      );
    const before = await hashes(first);
    const second = await convert('redo', input, 'unbilledReconciliation', 'full');
    assert.deepEqual(second, first);
    assert.deepEqual(await hashes(second), before);
  });

  it('writes the same parts whether pass 1 stages its rows in a Parquet file or in a DuckDB table', async () => {
    const input = await emulatorFile('staging', 'billedUsage', 'EUR', 'full', 300);
    const hashes = async (result: ConvertFileResult) =>
      Promise.all(
        [...result.curated, ...result.focus].map(async (part) =>
          createHash('sha256')
            .update(await readFile(part.path))
            .digest('hex'),
        ),
      );
    const parquet = await convert('staging-parquet', input, 'billedUsage', 'full', { staging: 'parquet' });
    const parquetHashes = await hashes(parquet);
    const table = await convert('staging-table', input, 'billedUsage', 'full', { staging: 'table', threads: 2 });
    assert.deepEqual(await hashes(table), parquetHashes);
    assert.deepEqual(table.totals, parquet.totals);
  });

  it('reads the raw file in one statement, stages its rows in small row groups and gives FOCUS its lookup values as typed constants', async () => {
    const input = await emulatorFile('statements', 'unbilledUsage', 'EUR', 'full', 200);
    const statements = await recordStatements(() => convert('statements', input, 'unbilledUsage', 'full'));
    const reads = statements.filter((sql) => sql.includes('read_json('));
    assert.equal(reads.length, 1, 'the raw file is parsed once');
    // DuckDB's default row group (122880 rows of ~90 text columns) crowded the 256 MB limit: 2-3x the time.
    assert.match(reads[0] as string, /ROW_GROUP_SIZE 16384\b/);
    const focus = statements.find((sql) => sql.startsWith('COPY') && sql.includes('/focus'));
    assert.ok(focus !== undefined);
    // A lookup's value is cast where it is written, once: a cast of a CASE over text values parsed a DECIMAL per row.
    assert.match(focus, /WHEN '[^']*' THEN CAST\('/);
    assert.doesNotMatch(focus, /WHEN '[^']*' THEN '/);
  });

  it('reads the staging rows twice for its counts, totals, lookups and warnings, besides the curated and FOCUS writes', async () => {
    const input = await emulatorFile('stagingReads', 'unbilledUsage', 'EUR', 'full', 200);
    const statements = await recordStatements(() => convert('stagingReads', input, 'unbilledUsage', 'full'));
    // Every read of the staging file outside the three COPY statements (pass 1 and the two outputs) is a full scan.
    const bookkeeping = statements
      .filter((sql) => !sql.startsWith('COPY'))
      .flatMap((sql) => sql.match(/staging\.parquet'/g) ?? []);
    assert.equal(bookkeeping.length, 2);
  });
});
