import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config';
import {
  attributeSetFor,
  DATASETS,
  datasetOf,
  exportRequestFor,
  fallbackBillingMonth,
  isBilled,
  layoutFor,
  prefixOf,
  runLabel,
  startLockKeyFor,
} from '../../src/datasets';
import { isExportError } from '../../src/errors';
import { latestPath, runFolder, startLockKey } from '../../src/pipeline/layout';

const MINIMAL: Readonly<Record<string, string>> = {
  EXPORT_CURRENCIES: 'USD',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig({ ...MINIMAL, ...env });
  } catch (error) {
    assert.ok(isExportError(error));
    return error.message.split('\n').slice(1);
  }
  assert.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

const RUN_ID = '20261125T114100123Z-9f3a1c2b';

describe('dataset configuration', () => {
  it('exports unbilled usage only, with discovery off, when nothing is set (today behaviour)', () => {
    const config = loadConfig(MINIMAL);
    assert.deepEqual(config.datasets, ['unbilledUsage']);
    assert.deepEqual(config.invoiceDiscovery, { mode: 'off', months: 3 });
    assert.deepEqual(config.partnerCenter, { baseUrl: 'https://api.partnercenter.microsoft.com/v1', emulator: false });
    assert.deepEqual(config.destination.prefixes, {
      unbilledUsage: 'unbilled-usage',
      unbilledReconciliation: 'unbilled-reconciliation',
      billedUsage: 'billed-usage',
      billedReconciliation: 'billed-reconciliation',
      billedAggregatedUsage: 'billed-aggregated-usage',
    });
  });

  it('accepts billed aggregated usage in EXPORT_DATASETS and its folder in DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE', () => {
    const config = loadConfig({
      ...MINIMAL,
      EXPORT_DATASETS: 'billedaggregatedusage,billedUsage',
      DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: '/exports/aggregated/',
    });
    assert.deepEqual(config.datasets, ['billedAggregatedUsage', 'billedUsage']);
    assert.equal(config.destination.prefixes.billedAggregatedUsage, 'exports/aggregated');
    assert.equal(prefixOf(config, 'billedAggregatedUsage'), 'exports/aggregated');
    const found = problems({ DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: 'billed-usage' });
    assert.equal(found.length, 1);
    assert.match(found[0] ?? '', /billedUsage and billedAggregatedUsage share the folder "billed-usage"/);
    assert.match(
      problems({ DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: 'a/../b' }).join('\n'),
      /DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: "a\/..\/b" is not a folder path/,
    );
  });

  it('reads every dataset, case-insensitively and without duplicates', () => {
    const config = loadConfig({
      ...MINIMAL,
      EXPORT_DATASETS: 'unbilledUsage, BILLEDUSAGE,billedReconciliation,unbilledReconciliation,billedUsage',
    });
    assert.deepEqual(config.datasets, [
      'unbilledUsage',
      'billedUsage',
      'billedReconciliation',
      'unbilledReconciliation',
    ]);
  });

  it('reports every dataset problem together, each naming the setting and what is accepted', () => {
    const found = problems({
      EXPORT_DATASETS: 'unbilledUsage,invoices',
      EXPORT_INVOICE_DISCOVERY: 'graph',
      EXPORT_INVOICE_MONTHS: '-1',
      PARTNER_CENTER_BASE_URL: 'http://api.partnercenter.microsoft.com/v1',
      DESTINATION_PREFIX_BILLED_USAGE: 'a/../b',
    });
    assert.equal(found.length, 5, found.join(' | '));
    assert.match(found.join('\n'), /EXPORT_DATASETS: "invoices" is not a dataset; accepted: any of unbilledUsage/);
    assert.match(found.join('\n'), /EXPORT_INVOICE_DISCOVERY: "graph" is not accepted; off or partnerCenter/);
    assert.match(found.join('\n'), /EXPORT_INVOICE_MONTHS: "-1" is not accepted/);
    assert.match(found.join('\n'), /PARTNER_CENTER_BASE_URL: .* must use https/);
    assert.match(found.join('\n'), /DESTINATION_PREFIX_BILLED_USAGE: "a\/..\/b" is not a folder path/);
  });

  it('refuses two datasets sharing one folder', () => {
    const found = problems({ DESTINATION_PREFIX_BILLED_USAGE: 'unbilled-usage' });
    assert.equal(found.length, 1);
    assert.match(found[0] ?? '', /unbilledUsage and billedUsage share the folder "unbilled-usage"/);
  });

  it('selects Partner Center emulator mode for a loopback root only', () => {
    const config = loadConfig({ ...MINIMAL, PARTNER_CENTER_BASE_URL: 'https://127.0.0.1:8443/partnercenter/v1/' });
    assert.deepEqual(config.partnerCenter, { baseUrl: 'https://127.0.0.1:8443/partnercenter/v1', emulator: true });
  });
});

describe('dataset descriptions', () => {
  const config = loadConfig({ ...MINIMAL, DESTINATION_PREFIX: 'exports/usage' });

  it('reads rows written before datasets existed as unbilled usage', () => {
    assert.equal(datasetOf({}).id, 'unbilledUsage');
    assert.equal(datasetOf({ dataset: 'billedUsage' }).id, 'billedUsage');
  });

  it('builds the documented request of each dataset', () => {
    const unbilled = { currency: 'EUR', billingPeriod: 'last' as const, attributeSet: 'basic' as const };
    assert.deepEqual(exportRequestFor(unbilled), {
      dataset: 'unbilledUsage',
      path: '/reports/partners/billing/usage/unbilled/export',
      body: { currencyCode: 'EUR', billingPeriod: 'last', attributeSet: 'basic' },
    });
    assert.deepEqual(exportRequestFor({ ...unbilled, dataset: 'unbilledReconciliation' }), {
      dataset: 'unbilledReconciliation',
      path: '/reports/partners/billing/reconciliation/unbilled/export',
      body: { currencyCode: 'EUR', billingPeriod: 'last', attributeSet: 'basic' },
    });
    const billed = { ...unbilled, currency: '', invoiceId: 'G000000001' };
    assert.deepEqual(exportRequestFor({ ...billed, dataset: 'billedUsage' }), {
      dataset: 'billedUsage',
      path: '/reports/partners/billing/usage/billed/export',
      body: { invoiceId: 'G000000001', attributeSet: 'basic' },
    });
    assert.deepEqual(exportRequestFor({ ...billed, dataset: 'billedReconciliation' }), {
      dataset: 'billedReconciliation',
      path: '/reports/partners/billing/reconciliation/billed/export',
      body: { invoiceId: 'G000000001', attributeSet: 'basic' },
    });
    assert.deepEqual(exportRequestFor({ ...billed, dataset: 'billedAggregatedUsage' }), {
      dataset: 'billedAggregatedUsage',
      path: '/reports/partners/billing/aggregatedUsage/billed/export',
      body: { invoiceId: 'G000000001' },
    });
  });

  it('keeps the unbilled usage layout and lock key byte for byte as before datasets', () => {
    const run = { runId: RUN_ID, currency: 'USD', billingPeriod: 'current' as const, attributeSet: 'full' as const };
    const key = { prefix: 'exports/usage', billingMonth: '2026-11', currency: 'USD', attributeSet: 'full' as const };
    assert.deepEqual(layoutFor(config, run, '2026-11'), {
      series: 'exports/usage/billingMonth=2026-11/currency=USD/attributeSet=full',
      runFolder: runFolder(key, RUN_ID),
      latestPath: latestPath(key),
    });
    assert.equal(startLockKeyFor(run), startLockKey('USD', 'current', 'full'));
    assert.equal(prefixOf(config, 'unbilledUsage'), 'exports/usage');
  });

  it('places unbilled reconciliation in the same shape under its own folder', () => {
    const run = {
      runId: RUN_ID,
      dataset: 'unbilledReconciliation' as const,
      currency: 'USD',
      billingPeriod: 'current' as const,
      attributeSet: 'full' as const,
    };
    assert.deepEqual(layoutFor(config, run, '2026-11'), {
      series: 'unbilled-reconciliation/billingMonth=2026-11/currency=USD/attributeSet=full',
      runFolder: `unbilled-reconciliation/billingMonth=2026-11/currency=USD/attributeSet=full/run=${RUN_ID}`,
      latestPath: 'unbilled-reconciliation/billingMonth=2026-11/currency=USD/attributeSet=full/latest.json',
    });
    assert.notEqual(startLockKeyFor(run), startLockKeyFor({ ...run, dataset: 'unbilledUsage' }));
  });

  it('places billed datasets per invoice, with latest.json per invoice and a lock per invoice', () => {
    const run = {
      runId: RUN_ID,
      dataset: 'billedUsage' as const,
      currency: '',
      billingPeriod: 'last' as const,
      attributeSet: 'basic' as const,
      invoiceId: 'G000000001',
    };
    assert.deepEqual(layoutFor(config, run, '2026-10'), {
      series: 'billed-usage/billingMonth=2026-10/invoiceId=G000000001/attributeSet=basic',
      runFolder: `billed-usage/billingMonth=2026-10/invoiceId=G000000001/attributeSet=basic/run=${RUN_ID}`,
      latestPath: 'billed-usage/billingMonth=2026-10/invoiceId=G000000001/attributeSet=basic/latest.json',
    });
    assert.equal(startLockKeyFor(run), 'billedUsage-G000000001-basic');
    assert.equal(startLockKeyFor({ ...run, dataset: 'billedReconciliation' }), 'billedReconciliation-G000000001-basic');
    assert.equal(fallbackBillingMonth(run, '2026-01-05T00:00:00Z'), '2025-12');
  });

  it('places billed aggregated usage per invoice under attributeSet=full whatever attribute set was asked for', () => {
    const attributeSet = attributeSetFor('billedAggregatedUsage', 'basic');
    assert.equal(attributeSet, 'full');
    assert.equal(attributeSetFor('billedUsage', 'basic'), 'basic');
    const run = {
      runId: RUN_ID,
      dataset: 'billedAggregatedUsage' as const,
      currency: '',
      billingPeriod: 'last' as const,
      attributeSet,
      invoiceId: 'G000000001',
    };
    const series = 'billed-aggregated-usage/billingMonth=2026-10/invoiceId=G000000001/attributeSet=full';
    assert.deepEqual(layoutFor(config, run, '2026-10'), {
      series,
      runFolder: `${series}/run=${RUN_ID}`,
      latestPath: `${series}/latest.json`,
    });
    assert.equal(startLockKeyFor(run), 'billedAggregatedUsage-G000000001-full');
    assert.equal(runLabel(run), 'billedAggregatedUsage G000000001 full');
    assert.equal(isBilled('billedAggregatedUsage'), true);
  });

  it('names a distinct folder setting and default for every dataset', () => {
    const settings = Object.values(DATASETS).map((d) => d.prefixSetting);
    assert.equal(new Set(settings).size, 5);
    assert.deepEqual(
      Object.values(DATASETS).map((d) => d.defaultPrefix),
      ['unbilled-usage', 'unbilled-reconciliation', 'billed-usage', 'billed-reconciliation', 'billed-aggregated-usage'],
    );
  });
});
