import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { datasetBlobChunks } from '../../../src/emulator/datasetData';
import { datasetIdentity, exportDirectory } from '../../../src/emulator/exportDataStore';
import { BASIC_RECONCILIATION_COLUMNS, FULL_RECONCILIATION_COLUMNS } from '../../../src/emulator/reconciliationColumns';
import { FULL_USAGE_COLUMNS } from '../../../src/emulator/usageColumns';
import type { UsageDataSpec } from '../../../src/emulator/usageData';

const spec: UsageDataSpec = {
  seed: 5,
  currency: 'GBP',
  attributeSet: 'full',
  billingMonth: '202402',
  usageDays: 29,
  partnerTenantId: '0e195b37-4574-4539-bc42-0e539b9684c0',
  rowsPerBlob: 300,
  dataset: 'billedReconciliation',
  invoiceId: 'G016907411',
};

function rows(dataSpec: UsageDataSpec, blobIndex = 0): Array<Record<string, unknown>> {
  const text = Buffer.concat([...datasetBlobChunks(dataSpec, blobIndex, 4096)]).toString('utf8');
  assert.ok(text.endsWith('\n'));
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('reconciliation data generator', () => {
  it('documents 47 full and 35 basic columns, basic being a subset in the same order', () => {
    assert.equal(FULL_RECONCILIATION_COLUMNS.length, 47);
    assert.equal(BASIC_RECONCILIATION_COLUMNS.length, 35);
    assert.deepEqual(
      BASIC_RECONCILIATION_COLUMNS,
      FULL_RECONCILIATION_COLUMNS.filter((c) => BASIC_RECONCILIATION_COLUMNS.includes(c)),
    );
    for (const column of ['Quantity', 'CustomerDomainName', 'MpnId', 'ProductQualifiers']) {
      assert.ok(!BASIC_RECONCILIATION_COLUMNS.includes(column as never), `${column} is full only`);
    }
  });

  it('writes the documented columns of each attribute set, with consistent totals, in the invoice currency', () => {
    for (const [attributeSet, columns] of [
      ['full', FULL_RECONCILIATION_COLUMNS],
      ['basic', BASIC_RECONCILIATION_COLUMNS],
    ] as const) {
      const all = rows({ ...spec, attributeSet });
      assert.equal(all.length, 300);
      for (const row of all) {
        assert.deepEqual(Object.keys(row), [...columns]);
        assert.equal(row['InvoiceNumber'], 'G016907411');
        assert.equal(row['Currency'], 'GBP');
        const subtotal = row['Subtotal'] as number;
        const tax = row['TaxTotal'] as number;
        assert.ok(subtotal >= 0 && tax >= 0);
        assert.equal(row['Total'], Math.round((subtotal + tax) * 100) / 100);
        assert.match(String(row['ChargeStartDate']), /^2024-02-\d\dT00:00:00Z$/);
        assert.equal(row['ChargeEndDate'], '2024-02-29T00:00:00Z');
      }
    }
  });

  it('is deterministic per seed, dataset, invoice and blob, and unbilled rows carry no invoice number', () => {
    assert.deepEqual(rows(spec), rows(spec));
    assert.notDeepEqual(rows(spec, 0), rows(spec, 1));
    assert.notDeepEqual(rows(spec), rows({ ...spec, invoiceId: 'G016907412' }));
    const unbilled = rows({ ...spec, dataset: 'unbilledReconciliation', invoiceId: undefined });
    assert.ok(unbilled.every((row) => row['InvoiceNumber'] === ''));
  });

  it('writes billed usage in the usage columns with the invoice number', () => {
    const usage = rows({ ...spec, dataset: 'billedUsage' });
    assert.deepEqual(Object.keys(usage[0] ?? {}), [...FULL_USAGE_COLUMNS]);
    assert.ok(usage.every((row) => row['InvoiceNumber'] === 'G016907411'));
  });

  it('keeps the identity (eTag, blob names) and folder of unbilled usage as before datasets, and separates the others', () => {
    const unbilled = {
      ...spec,
      dataset: undefined,
      invoiceId: undefined,
      billingPeriod: 'current' as const,
      blobCount: 2,
    };
    assert.match(datasetIdentity(unbilled), /^unbilled\|/);
    assert.equal(datasetIdentity({ ...unbilled, dataset: 'unbilledUsage' }), datasetIdentity(unbilled));
    assert.notEqual(datasetIdentity({ ...unbilled, dataset: 'unbilledReconciliation' }), datasetIdentity(unbilled));
    const now = new Date('2024-03-05T10:20:00Z');
    assert.equal(
      exportDirectory(unbilled, now),
      'v1/202403051020/PartnerTenantId=0e195b37-4574-4539-bc42-0e539b9684c0/BillingMonth=202402/Currency=GBP/Fragment=full/PartitionType=default',
    );
    assert.equal(
      exportDirectory({ ...unbilled, dataset: 'billedUsage', invoiceId: 'G1' }, now),
      'billedusage/v1/PartnerTenantId=0e195b37-4574-4539-bc42-0e539b9684c0/BillingMonth=202402/InvoiceId=G1/InvoiceVersion=202403051020/Fragment=full/PartitionType=default',
    );
  });
});
