import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../src/config';
import { isExportError } from '../../src/errors';
import { formatHelp } from '../../src/local/commandLine';
import {
  createViewsSql,
  currentData,
  datasetView,
  FOCUS_VIEW,
  type ListedPart,
  viewFiles,
} from '../../src/local/curatedViews';
import {
  commandQuery,
  formatJson,
  formatTable,
  parseQueryFlags,
  QUERY_COMMAND,
  QuerySqlError,
  runQuery,
  syncCache,
} from '../../src/local/queryCommand';

const root = mkdtempSync(join(tmpdir(), 'csp-query-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

const config = loadConfig({
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
  GRAPH_BASE_URL: 'https://127.0.0.1:1/v1.0',
  EXPORT_CURRENCIES: 'USD',
});

const OLD = '20261206T060000000Z-00000001';
const NEW = '20261207T060000000Z-00000002';
const USD = 'unbilled-usage/exportMonth=2026-12/exportCurrency=USD/exportAttributeSet=full';
const EUR = 'unbilled-usage/exportMonth=2026-12/exportCurrency=EUR/exportAttributeSet=full';
const RECON = 'unbilled-reconciliation/exportMonth=2026-12/exportCurrency=USD/exportAttributeSet=full';

function manifest(runId: string, names: string[], rowCount = 2) {
  return { source: { runId }, files: names.map((name) => ({ name, rowCount })) };
}

describe('query: which parts are current (the ones manifest.json names)', () => {
  const listing: ListedPart[] = [
    // A forced rerun being published: the old version's part is still beside the new one's.
    { path: `curated/${USD}/${OLD}-part-00000-0.parquet`, size: 10 },
    { path: `curated/${USD}/${NEW}-part-00000-0.parquet`, size: 11 },
    { path: `curated/${USD}/${NEW}-part-00001-0.parquet`, size: 12 },
    { path: `curated/${USD}/manifest.json`, size: 5 },
    // A first version being published: no manifest.json yet.
    { path: `curated/${EUR}/${NEW}-part-00000-0.parquet`, size: 13 },
    { path: `focus/${USD}/${NEW}-part-00000-0.parquet`, size: 14 },
    { path: `focus/${USD}/manifest.json`, size: 5 },
    { path: `focus/${RECON}/${NEW}-part-00000-0.parquet`, size: 15 },
    { path: `focus/${RECON}/manifest.json`, size: 5 },
    // Not a dataset folder of these settings.
    { path: 'focus/other-prefix/exportMonth=2026-12/manifest.json', size: 5 },
  ];

  it('reads only the parts the manifest names: an older version beside them and a folder without manifest are left out', () => {
    const data = currentData(
      config,
      listing,
      new Map<string, unknown>([
        [`curated/${USD}/manifest.json`, manifest(NEW, [`${NEW}-part-00000-0.parquet`, `${NEW}-part-00001-0.parquet`])],
        [`focus/${USD}/manifest.json`, manifest(NEW, [`${NEW}-part-00000-0.parquet`], 4)],
        [`focus/${RECON}/manifest.json`, manifest(NEW, [`${NEW}-part-00000-0.parquet`], 3)],
        ['focus/other-prefix/exportMonth=2026-12/manifest.json', manifest(NEW, ['x.parquet'])],
      ]),
    );
    assert.deepEqual(data.warnings, []);
    assert.deepEqual(
      data.series.map((series) => [series.kind, series.dataset, series.runId, series.rowCount]),
      [
        ['curated', 'unbilledUsage', NEW, 4],
        ['focus', 'unbilledReconciliation', NEW, 3],
        ['focus', 'unbilledUsage', NEW, 4],
      ],
    );
    const views = viewFiles(data, (part) => `/cache/${part.path}`);
    assert.deepEqual([...views.keys()], ['unbilled_usage', FOCUS_VIEW]);
    assert.deepEqual(views.get('unbilled_usage'), [
      `/cache/curated/${USD}/${NEW}-part-00000-0.parquet`,
      `/cache/curated/${USD}/${NEW}-part-00001-0.parquet`,
    ]);
    assert.equal(views.get(FOCUS_VIEW)?.length, 2);
    assert.ok(![...views.values()].flat().some((path) => path.includes(OLD)));
  });

  it('leaves out, with a warning, a series whose manifest names a missing part or cannot be read', () => {
    const data = currentData(
      config,
      listing,
      new Map<string, unknown>([
        [`curated/${USD}/manifest.json`, manifest(NEW, [`${NEW}-part-00000-0.parquet`, `${NEW}-part-00009-0.parquet`])],
        [`focus/${USD}/manifest.json`, { source: {} }],
        [`focus/${RECON}/manifest.json`, undefined],
      ]),
    );
    assert.deepEqual(data.series, []);
    assert.equal(data.warnings.length, 3);
    assert.match(data.warnings[0] ?? '', /names 1 part\(s\) that are not there \(.*part-00009-0\.parquet\)/);
    assert.match(data.warnings[1] ?? '', /could not be read as a curated manifest/);
  });

  it('names a view per dataset in snake case, and builds glob-free views that read by column name', () => {
    assert.equal(datasetView('billedAggregatedUsage'), 'billed_aggregated_usage');
    const sql = createViewsSql(new Map([['unbilled_usage', ["/tmp/it's/a.parquet", '/tmp/b.parquet']]]));
    assert.equal(
      sql,
      "CREATE OR REPLACE VIEW unbilled_usage AS SELECT * FROM read_parquet(['/tmp/it''s/a.parquet', '/tmp/b.parquet'], union_by_name = true, hive_partitioning = false);",
    );
    assert.doesNotMatch(sql, /\*\*|\*\.parquet/);
  });
});

describe('query: flags', () => {
  it('takes one SQL argument, --json and --destination DIR or an https URL without a query string', () => {
    assert.deepEqual(parseQueryFlags(['SELECT 1', '--json']), {
      sql: 'SELECT 1',
      json: true,
      destination: undefined,
      help: false,
    });
    assert.deepEqual(parseQueryFlags(['SELECT 1', '--destination', root]).destination, { kind: 'folder', path: root });
    assert.deepEqual(
      parseQueryFlags(['SELECT 1', '--destination', 'https://acct.blob.core.windows.net/billing']).destination,
      { kind: 'url', url: 'https://acct.blob.core.windows.net', container: 'billing' },
    );
    assert.equal(parseQueryFlags(['--help']).help, true);
  });

  it('refuses no SQL, SQL in several arguments, an unknown flag, a SAS URL and a missing folder (USAGE_INVALID, with what is accepted)', () => {
    for (const [argv, message] of [
      [[], /^query: no SQL given\. Accepted: the SQL as one argument in quotes/],
      [['SELECT', '1'], /2 arguments given .* one pair of quotes/],
      [
        ['SELECT 1', '--limit', '3'],
        /^query: unknown flag --limit\. Accepted: --json, --destination DIR\|URL, --help\./,
      ],
      [['SELECT 1', '--destination'], /^query: --destination needs a value/],
      [['SELECT 1', '--destination', 'https://acct.blob.core.windows.net/?sv=1&sig=secret'], /without a query string/],
      [['SELECT 1', '--destination', 'http://acct.blob.core.windows.net'], /must use https/],
      [['SELECT 1', '--destination', join(root, 'nothing-here')], /does not exist .*files --download/],
    ] as const) {
      assert.throws(
        () => parseQueryFlags([...argv]),
        (error: unknown) => {
          assert.ok(isExportError(error) && error.code === 'USAGE_INVALID');
          assert.match(error.message, message);
          assert.match(error.message, /See "query --help"\.$/);
          assert.doesNotMatch(error.message, /secret/);
          return true;
        },
      );
    }
  });

  it('--help names every flag and shows an example', () => {
    const help = formatHelp(QUERY_COMMAND);
    for (const flag of [
      '--json',
      '--destination',
      '--help',
      'focus_costs',
      'unbilled_usage',
      'billed_aggregated_usage',
    ]) {
      assert.ok(help.includes(flag), flag);
    }
    assert.match(help, /Examples:\n {2}npm run cli -- query "SELECT .* FROM focus_costs/);
  });
});

describe('query: output', () => {
  const result = {
    columns: [
      { name: 'customer', type: 'VARCHAR' },
      { name: 'billed_cost', type: 'DECIMAL(38,12)' },
    ],
    rows: [
      ['A customer whose name is far too long for the column', '12.500000000000'],
      [null, '-3.000000000000'],
    ],
  };

  it('prints a table: fixed columns cut with an ellipsis, numbers right-aligned, NULL shown, the row count last', () => {
    assert.deepEqual(formatTable(result), [
      'customer                           billed_cost',
      '-----------------------------  ---------------',
      'A customer whose name is far…  12.500000000000',
      'NULL                           -3.000000000000',
      '(2 rows)',
    ]);
  });

  it('shows the first 100 rows of a longer result and says how to get all', () => {
    const lines = formatTable({
      columns: [{ name: 'n', type: 'BIGINT' }],
      rows: Array.from({ length: 150 }, (_, i) => [String(i)]),
    });
    assert.equal(lines.length, 2 + 100 + 1);
    assert.equal(lines.at(-1), '(150 rows, the first 100 shown: add LIMIT, or --json for every row)');
  });

  it('--json gives the columns with their types and the rows as objects, DECIMAL as exact strings', () => {
    assert.deepEqual(JSON.parse(formatJson(result)), {
      columns: result.columns,
      rows: [
        { customer: 'A customer whose name is far too long for the column', billed_cost: '12.500000000000' },
        { customer: null, billed_cost: '-3.000000000000' },
      ],
    });
  });
});

/** Writes `rows` rows of a tiny FOCUS-like table as one Parquet file, stamped with the run id. */
async function parquet(db: DuckDBInstance, path: string, runId: string, rows: number, cost: string): Promise<void> {
  mkdirSync(join(path, '..'), { recursive: true });
  const connection = await db.connect();
  try {
    await connection.run(
      `COPY (SELECT 'USD' AS BillingCurrency, '${runId}' AS x_SourceRunId, CAST('${cost}' AS DECIMAL(38, 12)) AS BilledCost, 'Usage' AS ChargeCategory FROM range(${rows})) TO '${path}' (FORMAT parquet)`,
    );
  } finally {
    connection.closeSync();
  }
}

describe('query: runs SQL over a local copy (--destination DIR) with DuckDB', () => {
  const copy = join(root, 'partner-billing');
  let db: DuckDBInstance;
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: (line: string) => out.push(line), stderr: (line: string) => err.push(line) };
  const query = async (...argv: string[]) => {
    out.length = 0;
    err.length = 0;
    return commandQuery([...argv, '--destination', copy], io);
  };

  before(async () => {
    db = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
    // A forced rerun mid-publication: the old version (3 rows) beside the new one (2 + 2 rows).
    await parquet(db, join(copy, 'focus', USD, `${OLD}-part-00000-0.parquet`), OLD, 3, '1.1');
    await parquet(db, join(copy, 'focus', USD, `${NEW}-part-00000-0.parquet`), NEW, 2, '0.000000000001');
    await parquet(db, join(copy, 'focus', USD, `${NEW}-part-00001-0.parquet`), NEW, 2, '2.5');
    await parquet(db, join(copy, 'curated', USD, `${NEW}-part-00000-0.parquet`), NEW, 4, '1');
    writeFileSync(
      join(copy, 'focus', USD, 'manifest.json'),
      JSON.stringify(manifest(NEW, [`${NEW}-part-00000-0.parquet`, `${NEW}-part-00001-0.parquet`])),
    );
    writeFileSync(
      join(copy, 'curated', USD, 'manifest.json'),
      JSON.stringify(manifest(NEW, [`${NEW}-part-00000-0.parquet`], 4)),
    );
  });
  after(() => db?.closeSync());

  it('counts each row of the current version once, where a glob over the folder counts the older version too', async () => {
    assert.equal(
      await query(
        'SELECT count(*) AS n, string_agg(DISTINCT x_SourceRunId) AS runs, sum(BilledCost) AS cost FROM focus_costs',
        '--json',
      ),
      0,
      err.join('\n'),
    );
    const { rows } = JSON.parse(out.at(-1) ?? '{}') as { rows: Array<Record<string, unknown>> };
    assert.deepEqual(rows, [{ n: '4', runs: NEW, cost: '5.000000000002' }]);
    const connection = await db.connect();
    try {
      const glob = await connection.runAndReadAll(`SELECT count(*) FROM read_parquet('${copy}/focus/**/*.parquet')`);
      assert.equal(String(glob.getRowsJson()[0]?.[0]), '7', 'the glob sees both versions');
    } finally {
      connection.closeSync();
    }
    assert.equal(await query('SELECT count(*) AS n FROM unbilled_usage'), 0);
    assert.deepEqual(out, ['n', '-', '4', '(1 row)']);
  });

  it('a SQL error is exit code 2 with DuckDB’s message and the views there are, and those without data yet', async () => {
    assert.equal(await query('SELECT * FROM billed_usage'), 2);
    const message = err.join('\n');
    assert.match(message, /^query: the SQL did not run: Catalog Error: Table with name billed_usage does not exist/m);
    assert.match(
      message,
      /Views: unbilled_usage \(4 rows\), focus_costs \(4 rows\)\. No curated data yet for: unbilled_reconciliation, billed_usage, billed_reconciliation, billed_aggregated_usage\./,
    );
    assert.deepEqual(out, []);
    assert.equal(await query('SELEC 1'), 2);
    assert.match(err.join('\n'), /Parser Error: syntax error at or near "SELEC"/);
  });

  it('with no curated data says so and how to get some, exit code 1', async () => {
    const empty = join(root, 'empty');
    mkdirSync(join(empty, 'focus', USD), { recursive: true });
    // Parts without a manifest are no current data.
    await parquet(db, join(empty, 'focus', USD, `${NEW}-part-00000-0.parquet`), NEW, 1, '1');
    err.length = 0;
    assert.equal(await commandQuery(['SELECT 1', '--destination', empty], io), 1);
    assert.match(
      err.join('\n'),
      /No curated data in the local copy .* yet: nothing to query\. Get some with "npm start"/,
    );
  });

  it('runQuery keeps the SQL’s own errors apart (QuerySqlError) and gives DECIMAL as exact strings', async () => {
    await assert.rejects(runQuery(new Map(), 'SELECT * FROM nowhere', join(root, 'spill')), QuerySqlError);
    const result = await runQuery(
      new Map(),
      "SELECT CAST('0.100000000001' AS DECIMAL(38, 12)) AS d",
      join(root, 'spill'),
    );
    assert.deepEqual(result, { columns: [{ name: 'd', type: 'DECIMAL(38,12)' }], rows: [['0.100000000001']] });
  });
});

/** A container of in-memory blobs that counts downloads. */
function fakeContainer(blobs: Map<string, string>, downloads: string[]): ContainerClient {
  return {
    getBlobClient: (name: string) => ({
      download: async () => {
        downloads.push(name);
        const bytes = Buffer.from(blobs.get(name) ?? '');
        return { contentLength: bytes.length, readableStreamBody: Readable.from([bytes]) };
      },
    }),
  } as unknown as ContainerClient;
}

describe('query: the local cache of current parts', () => {
  it('reuses a cached part while its size and ETag match, downloads it again when the ETag changes, prunes the rest', async () => {
    const cache = join(root, 'cache');
    const blobs = new Map([
      ['focus/a/1.parquet', 'one'],
      ['focus/a/2.parquet', 'two'],
    ]);
    const downloads: string[] = [];
    const container = fakeContainer(blobs, downloads);
    const parts = (etag2: string): ListedPart[] => [
      { path: 'focus/a/1.parquet', size: 3, etag: '"e1"' },
      { path: 'focus/a/2.parquet', size: 3, etag: etag2 },
    ];
    assert.deepEqual(await syncCache(container, cache, parts('"e2"'), true), { downloaded: 2, reused: 0, bytes: 6 });
    assert.deepEqual(await syncCache(container, cache, parts('"e2"'), true), { downloaded: 0, reused: 2, bytes: 0 });
    blobs.set('focus/a/2.parquet', 'TWO');
    assert.deepEqual(await syncCache(container, cache, parts('"e3"'), true), { downloaded: 1, reused: 1, bytes: 3 });
    assert.equal(readFileSync(join(cache, 'focus', 'a', '2.parquet'), 'utf8'), 'TWO');
    await syncCache(container, cache, parts('"e3"').slice(1), true);
    assert.throws(() => readFileSync(join(cache, 'focus', 'a', '1.parquet')), /ENOENT/);
    assert.deepEqual(downloads, ['focus/a/1.parquet', 'focus/a/2.parquet', 'focus/a/2.parquet']);
  });
});
