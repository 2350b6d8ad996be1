import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AGGREGATED_USAGE_COLUMNS } from '../../../src/emulator/aggregatedUsageColumns';
import { aggregatedUsageBlobChunks, aggregatedUsageRows } from '../../../src/emulator/aggregatedUsageData';
import { FULL_USAGE_COLUMNS } from '../../../src/emulator/usageColumns';
import { type UsageDataSpec, usageBlobChunks } from '../../../src/emulator/usageData';

const billedUsage: UsageDataSpec = {
  seed: 5,
  currency: 'EUR',
  attributeSet: 'full',
  billingMonth: '202410',
  usageDays: 31,
  partnerTenantId: '0e195b37-4574-4539-bc42-0e539b9684c0',
  rowsPerBlob: 700,
  dataset: 'billedUsage',
  invoiceId: 'G000000002',
  blobCount: 3,
};
const aggregated: UsageDataSpec = { ...billedUsage, dataset: 'billedAggregatedUsage' };

function lines(chunks: Iterable<Buffer>): Array<Record<string, unknown>> {
  const text = Buffer.concat([...chunks]).toString('utf8');
  return text === ''
    ? []
    : text
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Sum of a money or quantity column in millionths: exact for the six decimals the generator writes. */
function micros(rows: Array<Record<string, unknown>>, column: string): number {
  return rows.reduce((sum, row) => sum + Math.round(Number(row[column]) * 1_000_000), 0);
}

describe('billed aggregated usage data', () => {
  it('writes the billed usage full columns without UsageDate, plus PartnerPrice and PriceBenefits', () => {
    assert.equal(AGGREGATED_USAGE_COLUMNS.length, 55);
    assert.ok(!AGGREGATED_USAGE_COLUMNS.includes('UsageDate' as never));
    assert.deepEqual(
      AGGREGATED_USAGE_COLUMNS.filter((c) => c !== 'PartnerPrice' && c !== 'PriceBenefits'),
      FULL_USAGE_COLUMNS.filter((c) => c !== 'UsageDate'),
    );
    for (const row of aggregatedUsageRows(aggregated))
      assert.deepEqual(Object.keys(row), [...AGGREGATED_USAGE_COLUMNS]);
  });

  it('sums the billed usage of the same invoice per customer, subscription and resource meter, to the millionth', () => {
    const usage = [0, 1, 2].flatMap((blob) => lines(usageBlobChunks(billedUsage, blob)));
    assert.equal(usage.length, 2100);
    const rows = [0, 1, 2].flatMap((blob) => lines(aggregatedUsageBlobChunks(aggregated, blob, 1024)));
    const key = (row: Record<string, unknown>): string =>
      [row['CustomerId'], row['EntitlementId'], row['ResourceURI'], row['MeterId']].join('|');
    assert.equal(new Set(rows.map(key)).size, rows.length, 'one row per customer, subscription and resource meter');
    assert.equal(new Set(usage.map(key)).size, rows.length, 'every billed usage series has its aggregated row');
    for (const column of ['BillingPreTaxTotal', 'PricingPreTaxTotal', 'Quantity']) {
      assert.equal(micros(rows, column), micros(usage, column), column);
    }
    const sample = rows[0]!;
    const ofSample = usage.filter((row) => key(row) === key(sample));
    assert.equal(micros([sample], 'BillingPreTaxTotal'), micros(ofSample, 'BillingPreTaxTotal'));
    for (const column of ['ProductId', 'SkuId', 'MeterId', 'UnitPrice', 'EffectiveUnitPrice', 'ChargeStartDate']) {
      assert.equal(sample[column], ofSample[0]?.[column], column);
    }
    for (const row of rows) {
      assert.equal(row['InvoiceNumber'], 'G000000002');
      assert.equal(row['BillingCurrency'], 'EUR');
      assert.equal(row['PartnerPrice'], row['EffectiveUnitPrice'], 'no promotion in the emulated invoice');
      assert.equal(row['PriceBenefits'], '');
    }
  });

  it('cuts the rows into blobCount consecutive blobs, each row once, the same bytes every time', () => {
    const all = aggregatedUsageRows(aggregated);
    const blobs = [0, 1, 2].map((blob) => lines(aggregatedUsageBlobChunks(aggregated, blob)));
    assert.deepEqual(blobs.flat(), JSON.parse(JSON.stringify(all)));
    assert.ok(blobs.every((rows) => rows.length > 0));
    assert.deepEqual(
      Buffer.concat([...aggregatedUsageBlobChunks(aggregated, 1)]),
      Buffer.concat([...aggregatedUsageBlobChunks(aggregated, 1)]),
    );
  });
});
