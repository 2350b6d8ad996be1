import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import type * as DuckDb from '@duckdb/node-api';
import { datasetOf } from '../datasets';
import type { CurationRecord } from '../pipeline/curationPorts';
import type { RunRecord } from '../pipeline/ports';
import { parseManifest, QUERY_EXAMPLE } from './curatedViews';

/** Customers shown per currency. */
const TOP = 5;

/**
 * A few readable lines about the data a command just curated (`npm start`): for each dataset, the billed cost of the
 * top customers per currency, read from the FOCUS parts each series' manifest.json names (downloaded to a temporary folder and
 * summed by DuckDB, loaded here and only here). Amounts of different currencies are never added.
 */
export async function dataSummary(
  container: ContainerClient,
  runs: RunRecord[],
  curations: Map<string, CurationRecord>,
): Promise<string[]> {
  const series = runs
    .map((run) => ({ run, curation: curations.get(run.runId) }))
    .filter(({ curation }) => curation?.status === 'succeeded' && curation.current !== false && curation.curatedPath);
  if (series.length === 0) return [];
  const dir = await mkdtemp(join(tmpdir(), 'csp-summary-'));
  try {
    const byDataset = new Map<string, string[]>();
    for (const [i, { run, curation }] of series.entries()) {
      const local = join(dir, String(i));
      await mkdir(local, { recursive: true });
      // The parts the series' manifest.json names: a part beside them (an older version not deleted yet, a newer one
      // being copied in) is not the current data.
      const folder = `focus/${curation?.curatedPath}`;
      const manifest = parseManifest(
        JSON.parse((await container.getBlobClient(`${folder}/manifest.json`).downloadToBuffer()).toString('utf8')),
      );
      if (manifest === undefined || manifest.files.length === 0) continue;
      for (const { name } of manifest.files) {
        await container.getBlobClient(`${folder}/${name}`).downloadToFile(join(local, name));
      }
      const title = datasetOf(run).title;
      byDataset.set(title, [...(byDataset.get(title) ?? []), join(local, '*.parquet')]);
    }
    const { DuckDBInstance } = require('@duckdb/node-api') as typeof DuckDb;
    const instance = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
      threads: '1',
      memory_limit: '256MB',
    });
    const connection = await instance.connect();
    const lines: string[] = [];
    try {
      for (const [title, globs] of byDataset) {
        const files = `[${globs.map((g) => `'${g.replace(/'/g, "''")}'`).join(', ')}]`;
        const reader = await connection.runAndReadAll(
          `WITH costs AS (
             SELECT BillingCurrency AS currency, coalesce(x_CustomerName, '(no customer)') AS customer, sum(BilledCost) AS cost
             FROM read_parquet(${files}, hive_partitioning = false)
             GROUP BY 1, 2)
           SELECT currency, customer, CAST(cost AS DECIMAL(38, 2))::VARCHAR
           FROM costs
           QUALIFY row_number() OVER (PARTITION BY currency ORDER BY cost DESC, customer) <= ${TOP}
           ORDER BY currency, cost DESC, customer`,
        );
        const rows = reader.getRowsJson() as [string, string, string][];
        if (rows.length === 0) continue;
        lines.push(`${title}: billed cost by customer (FOCUS BilledCost, top ${TOP} per currency)`);
        const width = Math.max(...rows.map(([, , cost]) => cost.length));
        for (const [currency, customer, cost] of rows)
          lines.push(`  ${currency}  ${cost.padStart(width)}  ${customer}`);
      }
    } finally {
      connection.closeSync();
      instance.closeSync();
    }
    if (lines.length > 0) {
      lines.push(
        'Go further with SQL over every current dataset (views unbilled_usage, …, focus_costs; "query --help"):',
        `  npm run cli -- query "${QUERY_EXAMPLE}"`,
      );
    }
    return lines;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
