/**
 * The curation step through the real command line (spawned `cli.js`, embedded Azurite and emulator, DuckDB):
 * `run --datasets unbilledUsage,unbilledReconciliation` curates every succeeded run before it exits, and after a
 * forced rerun a DuckDB glob over each dataset's focus/ folder counts every row once, with BilledCost totals equal
 * to the raw files' totals (exact decimals), and curated/ likewise; the query command's views count every row once,
 * even with an older version's parts beside the current ones, and the query npm start suggests works. With
 * FINOPS_HUB_STORAGE=UseDevelopmentStorage=true the unbilled usage FOCUS files also land in the embedded Azurite's
 * FinOps hub account, the newer run's replacing the older's, and the reconciliation's do not (FINOPS_HUB_DATASETS).
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { DuckDBInstance } from '@duckdb/node-api';
import { FINOPS_HUB_ACCOUNT, PARTNER_DEST_ACCOUNT, startAzurite } from '../../src/local/azurite';
import { QUERY_EXAMPLE } from '../../src/local/curatedViews';
import { cleanUp, spawnCli, tempWorkFolder } from '../support/cliProcess';

const SMALL = {
  LOCAL_EMULATOR_BLOB_COUNT: '2',
  LOCAL_EMULATOR_ROWS_PER_BLOB: '40',
  LOCAL_EMULATOR_POLLS: '1',
  EXPORT_CURRENCIES: 'USD',
  EXPORT_CURATION: 'on',
  FINOPS_HUB_STORAGE: 'UseDevelopmentStorage=true',
};

interface RunRow {
  runId: string;
  status: string;
  path: string | null;
  dataset: string;
  rowCount: number | null;
  curatedPath: string | null;
  curationStatus: string | null;
}

const folders: string[] = [];
after(() => cleanUp(folders));

function lastJson<T>(output: string): T {
  const line = output
    .trim()
    .split('\n')
    .reverse()
    .find((candidate) => candidate.startsWith('{'));
  assert.ok(line !== undefined, `a JSON line was printed:\n${output}`);
  return JSON.parse(line) as T;
}

async function cli(args: string[], cwd: string) {
  const command = spawnCli(args, cwd, SMALL);
  const { code } = await command.exited;
  return { code, output: command.output() };
}

describe('command line: run curates what it landed', { timeout: 600_000 }, () => {
  const folder = tempWorkFolder('curate');
  folders.push(folder);
  const local = join(folder, 'downloaded');

  let first: RunRow[] = [];
  let second: RunRow[] = [];
  let firstOutput = '';
  /** Parts of the first run put back beside the current version (as while a version replaces another). */
  const stale: string[] = [];
  /** The FinOps hub's ingestion container after the forced rerun: blob name → length. */
  const hub = new Map<string, number>();

  before(async () => {
    const one = await cli(['run', '--datasets', 'unbilledUsage,unbilledReconciliation', '--json'], folder);
    assert.equal(one.code, 0, one.output);
    firstOutput = one.output;
    first = lastJson<{ runs: RunRow[] }>(one.output).runs;
    const two = await cli(['run', '--datasets', 'unbilledUsage,unbilledReconciliation', '--force', '--json'], folder);
    assert.equal(two.code, 0, two.output);
    second = lastJson<{ runs: RunRow[] }>(two.output).runs;
    // Everything of the destination, read through the Storage SDK with an Azurite of the test's own.
    const azurite = await startAzurite({ location: join(folder, '.azurite') });
    try {
      const service = BlobServiceClient.fromConnectionString(azurite.connectionString(PARTNER_DEST_ACCOUNT.name));
      const container = service.getContainerClient('partner-billing');
      for await (const blob of container.listBlobsFlat()) {
        const file = join(local, blob.name);
        mkdirSync(dirname(file), { recursive: true });
        await container.getBlobClient(blob.name).downloadToFile(file);
      }
      // After the download (the glob test reads that copy): a part named for the first run beside the current
      // version's, in each table's usage folder. A glob would count its rows too; the query views must not. The next
      // publication of the series (npm start below) deletes it, as it deletes any older version's part.
      const usage = second.find((run) => run.dataset === 'unbilledUsage');
      const series = (usage?.curatedPath ?? '').replace(/^curated\//, '');
      const oldRunId = first.find((run) => run.dataset === 'unbilledUsage')?.runId ?? '';
      for (const kind of ['curated', 'focus']) {
        for await (const blob of container.listBlobsFlat({ prefix: `${kind}/${series}/` })) {
          if (!blob.name.endsWith('.parquet')) continue;
          const name = `${kind}/${series}/${oldRunId}-left-over-0.parquet`;
          const bytes = await container.getBlobClient(blob.name).downloadToBuffer();
          await container.getBlockBlobClient(name).upload(bytes, bytes.length);
          stale.push(name);
          break;
        }
      }
      const ingestion = BlobServiceClient.fromConnectionString(
        azurite.connectionString(FINOPS_HUB_ACCOUNT.name),
      ).getContainerClient('ingestion');
      for await (const blob of ingestion.listBlobsFlat()) hub.set(blob.name, blob.properties.contentLength ?? 0);
    } finally {
      await azurite.stop();
    }
  });

  it('ends each succeeded run with its curation: rowCount and curatedPath in the --json rows', () => {
    assert.equal(first.length, 2);
    for (const run of [...first, ...second]) {
      assert.equal(run.status, 'succeeded');
      assert.equal(run.curationStatus, 'succeeded');
      assert.equal(run.rowCount, 80, `${run.dataset}: 2 files of 40 rows`);
      assert.match(
        run.curatedPath ?? '',
        /^curated\/unbilled-(usage|reconciliation)\/exportMonth=\d{4}-\d{2}\/exportCurrency=USD\/exportAttributeSet=full$/,
      );
    }
    assert.match(firstOutput, /curated 80 rows \(curated\/unbilled-usage\//);
  });

  it('after a forced rerun, a glob over each dataset folder of focus/ and curated/ counts every row once, with the raw totals', async () => {
    const db = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
      threads: '1',
    });
    const connection = await db.connect();
    const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowsJson() as unknown[][];
    try {
      for (const run of second) {
        const prefix = run.dataset === 'unbilledUsage' ? 'unbilled-usage' : 'unbilled-reconciliation';
        const raw = `read_json('${join(local, run.path as string)}/*.json.gz', format = 'newline_delimited', columns = ${
          run.dataset === 'unbilledUsage'
            ? "{BillingPreTaxTotal: 'VARCHAR'}"
            : "{Subtotal: 'VARCHAR', TaxTotal: 'VARCHAR'}"
        })`;
        const [[rawCount, rawTotal]] = (await rows(
          run.dataset === 'unbilledUsage'
            ? `SELECT count(*), CAST(sum(CAST(BillingPreTaxTotal AS DECIMAL(38, 18))) AS VARCHAR) FROM ${raw}`
            : `SELECT count(*), CAST(sum(CAST(Subtotal AS DECIMAL(38, 18))) + sum(CAST(TaxTotal AS DECIMAL(38, 18))) AS VARCHAR) FROM ${raw}`,
        )) as [[string, string]];
        assert.equal(Number(rawCount), 80);
        const focus = `read_parquet('${join(local, 'focus', prefix)}/**/*.parquet')`;
        const [[focusRuns, focusTotal]] = (await rows(
          `SELECT string_agg(DISTINCT x_SourceRunId, ','), CAST(CAST(sum(BilledCost) AS DECIMAL(38, 18)) AS VARCHAR) FROM ${focus}`,
        )) as [[string, string]];
        assert.equal(focusRuns, run.runId, 'only the current version is in the folder');
        assert.equal(Number(focusTotal), Number(rawTotal));
        assert.equal(focusTotal.replace(/\.?0+$/, ''), rawTotal.replace(/\.?0+$/, ''), 'exact decimal totals');
        const [[curatedCount]] = (await rows(
          `SELECT count(*) FROM read_parquet('${join(local, 'curated', prefix)}/**/*.parquet')`,
        )) as [[string]];
        assert.equal(Number(curatedCount), 80, `${prefix}: every raw row once in curated/`);
        const usageRows = await rows(`SELECT count(*) FROM ${focus} WHERE ChargeCategory <> 'Tax'`);
        assert.equal(Number(usageRows[0]?.[0]), 80, `${prefix}: one FOCUS charge row per raw row`);
      }
      const staged = await rows(`SELECT count(*) FROM glob('${join(local, '_curation-staging')}/**')`);
      assert.equal(Number(staged[0]?.[0]), 0, 'staging is empty once curation ended');
    } finally {
      connection.closeSync();
      db.closeSync();
    }
  });

  it('query counts every row once after a forced rerun, even with an older version’s parts left beside the current ones', async () => {
    assert.equal(stale.length, 2, 'an older part planted in curated/ and focus/');
    const query = await cli(
      [
        'query',
        "SELECT x_SourceType AS rows_of, count(*) AS n, string_agg(DISTINCT x_SourceRunId, ',') AS runs FROM focus_costs WHERE ChargeCategory <> 'Tax' GROUP BY ALL UNION ALL SELECT 'curated unbilled_usage', count(*), NULL FROM unbilled_usage ORDER BY ALL",
        '--json',
      ],
      folder,
    );
    assert.equal(query.code, 0, query.output);
    assert.deepEqual(lastJson<{ rows: unknown[] }>(query.output).rows, [
      { rows_of: 'curated unbilled_usage', n: '80', runs: null },
      {
        rows_of: 'unbilledReconciliation',
        n: '80',
        runs: second.find((run) => run.dataset !== 'unbilledUsage')?.runId,
      },
      { rows_of: 'unbilledUsage', n: '80', runs: second.find((run) => run.dataset === 'unbilledUsage')?.runId },
    ]);
  });

  it('drops the FOCUS files of the current unbilled usage into the local FinOps hub, the rerun replacing the first run, and leaves reconciliation out (FINOPS_HUB_DATASETS default)', () => {
    const usage = second.find((run) => run.dataset === 'unbilledUsage');
    const folder = /^Costs\/\d{4}\/\d{2}\/csp\/[0-9a-f-]{36}\/unbilled-usage\/USD\//;
    const names = [...hub.keys()]
      .filter((name) => folder.test(name))
      .map((name) => name.replace(folder, ''))
      .sort();
    assert.equal(names.length, 3, names.join(', '));
    assert.match(names[0] ?? '', new RegExp(`^${usage?.runId}__part-\\d{5}-.*-0\\.parquet$`));
    assert.match(names[1] ?? '', new RegExp(`^${usage?.runId}__part-\\d{5}-.*-0\\.parquet$`));
    assert.equal(names[2], 'manifest.json');
    assert.equal(hub.size, 3, `only unbilled usage, nothing of the first runs left: ${[...hub.keys()].join(', ')}`);
    assert.match(
      firstOutput,
      /curated 80 rows \(curated\/unbilled-usage\/[^)]*\); FinOps hub: ingestion\/Costs\/\d{4}\/\d{2}\/csp\//,
    );
    assert.doesNotMatch(firstOutput, /curated 80 rows \(curated\/unbilled-reconciliation\/[^)]*\); FinOps hub/);
  });

  it('npm start ends its first export with the billed cost of the top customers per currency', async () => {
    const start = spawnCli(['start', '--port', '0', '--force'], folder, SMALL);
    try {
      await start.waitFor(/Still serving on/, 120_000);
      const output = start.output();
      assert.match(
        output,
        /unbilled daily-rated usage: billed cost by customer \(FOCUS BilledCost, top 5 per currency\)/,
      );
      const rows = output.split('\n').filter((line) => /^ {2}USD +-?\d+\.\d{2} {2}\S/.test(line));
      assert.ok(rows.length >= 2 && rows.length <= 10, output);
      // The summary ends with a query command that works: run as printed, beside the serving command.
      const sql = /^ {2}npm run cli -- query "([^"]+)"$/m.exec(output)?.[1];
      assert.equal(sql, QUERY_EXAMPLE, output);
      const query = await cli(['query', sql, '--json'], folder);
      assert.equal(query.code, 0, query.output);
      assert.match(query.output, /Azurite of the running "start" command/);
      const found = lastJson<{ rows: Array<Record<string, string>> }>(query.output).rows;
      assert.ok(found.length > 0 && found.every((row) => /^-?\d+\.\d+$/.test(row.billed_cost ?? '')), query.output);
    } finally {
      start.child.kill('SIGINT');
      await start.exited;
    }
  });

  it('finishes, on the next run, a curation a killed command left in flight', async (t) => {
    const killed = spawnCli(['run', '--datasets', 'unbilledUsage', '--force', '--json'], folder, SMALL);
    await killed.waitFor(/Curation started/, 120_000);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const runId = /\[runId=(\S+) [^\]]*\] Curation started/.exec(killed.output())?.[1];
    assert.ok(runId !== undefined, killed.output());

    const again = await cli(['run', '--datasets', 'unbilledUsage', '--json'], folder);
    assert.equal(again.code, 0, again.output);
    const resumed = again.output.includes('Finishing 1 curation(s)');
    t.diagnostic(resumed ? 'the curation was resumed by the next run' : 'the curation had ended before the kill');
    if (resumed) {
      assert.match(again.output, new RegExp(`Earlier run USD current full ${runId}: succeeded; curated 80 rows`));
    }
    // Whether it finished before the kill or on this run: the killed run's version is the current one.
    const azurite = await startAzurite({ location: join(folder, '.azurite') });
    try {
      const container = BlobServiceClient.fromConnectionString(
        azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
      ).getContainerClient('partner-billing');
      const series = (first.find((r) => r.dataset === 'unbilledUsage')?.curatedPath ?? '').replace(/^curated\//, '');
      const manifest = JSON.parse(
        (await container.getBlobClient(`focus/${series}/manifest.json`).downloadToBuffer()).toString('utf8'),
      ) as { source: { runId: string } };
      assert.equal(manifest.source.runId, runId);
    } finally {
      await azurite.stop();
    }
  });
});
