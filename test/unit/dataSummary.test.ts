import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { DuckDBInstance } from '@duckdb/node-api';
import { QUERY_EXAMPLE } from '../../src/local/curatedViews';
import { dataSummary } from '../../src/local/dataSummary';
import type { CurationRecord } from '../../src/pipeline/curationPorts';
import type { RunRecord } from '../../src/pipeline/ports';

const root = mkdtempSync(join(tmpdir(), 'csp-summary-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

const OLD = '20261206T060000000Z-00000001';
const NEW = '20261207T060000000Z-00000002';
const SERIES = 'unbilled-usage/exportMonth=2026-12/exportCurrency=USD/exportAttributeSet=full';

/** A FOCUS-like Parquet file: `rows` rows of one customer's cost. */
async function parquet(db: DuckDBInstance, customer: string, cost: string, rows: number): Promise<Buffer> {
  const path = join(root, `${customer}-${rows}.parquet`);
  const connection = await db.connect();
  try {
    await connection.run(
      `COPY (SELECT 'USD' AS BillingCurrency, '${customer}' AS x_CustomerName, CAST('${cost}' AS DECIMAL(38, 12)) AS BilledCost FROM range(${rows})) TO '${path}' (FORMAT parquet)`,
    );
  } finally {
    connection.closeSync();
  }
  return readFileSync(path);
}

/** A container of in-memory blobs (the two reads dataSummary makes). */
function fakeContainer(blobs: Map<string, Buffer>): ContainerClient {
  const body = (name: string) => {
    const found = blobs.get(name);
    if (found === undefined) throw Object.assign(new Error(`BlobNotFound ${name}`), { statusCode: 404 });
    return found;
  };
  return {
    getBlobClient: (name: string) => ({
      downloadToBuffer: async () => body(name),
      downloadToFile: async (path: string) => writeFileSync(path, body(name)),
    }),
  } as unknown as ContainerClient;
}

describe('npm start: the summary of the data it landed', () => {
  it('sums only the parts manifest.json names (an older version’s part beside them is left out) and ends with a query command', async () => {
    const db = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
    const folder = `focus/${SERIES}`;
    const blobs = new Map<string, Buffer>([
      [`${folder}/${OLD}-part-00000-0.parquet`, await parquet(db, 'Contoso', '1000', 3)],
      [`${folder}/${NEW}-part-00000-0.parquet`, await parquet(db, 'Contoso', '1.25', 2)],
      [`${folder}/${NEW}-part-00001-0.parquet`, await parquet(db, 'Fabrikam', '0.5', 1)],
      [
        `${folder}/manifest.json`,
        Buffer.from(
          JSON.stringify({
            source: { runId: NEW },
            files: [
              { name: `${NEW}-part-00000-0.parquet`, rowCount: 2 },
              { name: `${NEW}-part-00001-0.parquet`, rowCount: 1 },
            ],
          }),
        ),
      ],
    ]);
    db.closeSync();
    const run = { runId: NEW, dataset: 'unbilledUsage' } as RunRecord;
    const curation = { runId: NEW, status: 'succeeded', current: true, curatedPath: SERIES } as CurationRecord;
    const lines = await dataSummary(fakeContainer(blobs), [run], new Map([[NEW, curation]]));
    assert.deepEqual(lines, [
      'unbilled daily-rated usage: billed cost by customer (FOCUS BilledCost, top 5 per currency)',
      '  USD  2.50  Contoso',
      '  USD  0.50  Fabrikam',
      'Go further with SQL over every current dataset (views unbilled_usage, …, focus_costs; "query --help"):',
      `  npm run cli -- query "${QUERY_EXAMPLE}"`,
    ]);
  });
});
