import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BASIC_USAGE_COLUMNS, FULL_USAGE_COLUMNS } from '../../../src/emulator/usageColumns';
import { billingMonthOf, type UsageDataSpec, usageBlobChunks, usageDaysAt } from '../../../src/emulator/usageData';

const spec: UsageDataSpec = {
  seed: 3,
  currency: 'EUR',
  attributeSet: 'full',
  billingMonth: '202402',
  usageDays: 29,
  partnerTenantId: '0e195b37-4574-4539-bc42-0e539b9684c0',
  rowsPerBlob: 500,
};

function rows(dataSpec: UsageDataSpec, blobIndex = 0): Array<Record<string, unknown>> {
  const text = Buffer.concat([...usageBlobChunks(dataSpec, blobIndex, 4096)]).toString('utf8');
  assert.ok(text.endsWith('\n'));
  return text
    .trimEnd()
    .split('\n')
    .map((line) => {
      const row: unknown = JSON.parse(line);
      assert.ok(typeof row === 'object' && row !== null);
      return row as Record<string, unknown>;
    });
}

describe('usage data generator', () => {
  it('documents 54 full and 30 basic columns, basic being a subset in the same order', () => {
    assert.equal(FULL_USAGE_COLUMNS.length, 54);
    assert.equal(BASIC_USAGE_COLUMNS.length, 30);
    assert.deepEqual(
      BASIC_USAGE_COLUMNS,
      FULL_USAGE_COLUMNS.filter((column) => BASIC_USAGE_COLUMNS.includes(column)),
    );
    for (const column of ['AdditionalInfo', 'UnitType', 'ResourceURI', 'BenefitOrderID']) {
      assert.ok(BASIC_USAGE_COLUMNS.includes(column as (typeof BASIC_USAGE_COLUMNS)[number]), column);
    }
    for (const column of ['Unit', 'MeterId', 'Tier2MpnId', 'BenefitID']) {
      assert.ok(!BASIC_USAGE_COLUMNS.includes(column as (typeof BASIC_USAGE_COLUMNS)[number]), column);
    }
  });

  it('writes rowsPerBlob rows with exactly the columns of the attribute set', () => {
    const full = rows(spec);
    assert.equal(full.length, 500);
    for (const row of full) assert.deepEqual(Object.keys(row), [...FULL_USAGE_COLUMNS]);
    const basic = rows({ ...spec, attributeSet: 'basic' });
    for (const row of basic) assert.deepEqual(Object.keys(row), [...BASIC_USAGE_COLUMNS]);
  });

  it('makes consistent, plausible values', () => {
    for (const row of rows(spec)) {
      assert.equal(row['BillingCurrency'], 'EUR');
      assert.equal(row['PricingCurrency'], 'USD');
      assert.equal(row['InvoiceNumber'], '', 'unbilled rows have no invoice');
      assert.match(String(row['UsageDate']), /^2024-02-(0[1-9]|1\d|2[0-9])T00:00:00Z$/);
      assert.equal(row['ChargeStartDate'], '2024-02-01T00:00:00Z');
      assert.equal(row['ChargeEndDate'], '2024-02-29T00:00:00Z');
      const quantity = Number(row['Quantity']);
      const pricing = Number(row['PricingPreTaxTotal']);
      const billing = Number(row['BillingPreTaxTotal']);
      assert.ok(quantity > 0);
      assert.ok(Math.abs(pricing - quantity * Number(row['EffectiveUnitPrice'])) < 1e-5);
      assert.ok(Math.abs(billing - pricing * Number(row['PCToBCExchangeRate'])) < 1e-5);
      assert.match(
        String(row['ResourceURI']),
        new RegExp(`^/subscriptions/${String(row['EntitlementId'])}/resourceGroups/`),
      );
    }
  });

  it('is deterministic for a seed and differs across seeds and blobs', () => {
    const bytes = (dataSpec: UsageDataSpec, index = 0) => Buffer.concat([...usageBlobChunks(dataSpec, index)]);
    assert.ok(bytes(spec).equals(bytes(spec)));
    assert.ok(!bytes(spec).equals(bytes({ ...spec, seed: 4 })));
    assert.ok(!bytes(spec, 0).equals(bytes(spec, 1)));
  });

  it('maps billing periods to months and counts the usage days present', () => {
    const now = new Date(Date.UTC(2026, 0, 15, 8));
    assert.equal(billingMonthOf('current', now), '202601');
    assert.equal(billingMonthOf('last', now), '202512');
    assert.equal(usageDaysAt('202601', now), 14);
    assert.equal(usageDaysAt('202512', now), 31);
    assert.equal(usageDaysAt('202601', new Date(Date.UTC(2026, 0, 1))), 1);
  });
});
