import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError, isExportError } from '../../src/errors';
import { parseStartBody } from '../../src/functions/startExportsHttp';
import { inDiscoveryWindow, type PartnerInvoice } from '../../src/pipeline/invoiceDiscovery';
import { parseRunQuery, publicRun } from '../../src/pipeline/listRuns';
import type { ExportManifest, RunRecord } from '../../src/pipeline/ports';
import { type StartRequest, startExports } from '../../src/pipeline/startExports';
import { drain, type FakeDeps, makeDeps, makeManifest, operationUrl, succeeded } from '../support/fakes';

/** A billed manifest of invoice `invoiceId` for usage of September 2024. */
function billedManifest(invoiceId: string, eTag = 'BilledETag0000001'): ExportManifest {
  return makeManifest({
    eTag,
    rootDirectory: `https://adlsreconbuprodeastus201.blob.core.windows.net/billedusagefastpath/v1/PartnerTenantId=6e75cca6-47f0-47a3-a928-9d5315750bd9/BillingMonth=202409/InvoiceId=${invoiceId}/InvoiceVersion=202410080713/Fragment=full/PartitionType=default`,
  });
}

/** Starts `request` and drives every run to its end, each operation answering with `manifestFor(n)`. */
async function runToEnd(deps: FakeDeps, request: Partial<StartRequest>, manifestFor: (n: number) => ExportManifest) {
  const before = deps.graph.exportCalls.length;
  const started = await startExports({ trigger: 'manual', ...request }, deps);
  for (let n = before + 1; n <= deps.graph.exportCalls.length; n++) {
    deps.graph.scriptOperation(operationUrl(n), succeeded(manifestFor(n)));
  }
  const drained = await drain(deps, deps.queue);
  assert.deepEqual(drained.errors, []);
  return started;
}

class ListedInvoices {
  calls = 0;
  constructor(private readonly invoices: PartnerInvoice[] | Error) {}
  async listInvoices(): Promise<PartnerInvoice[]> {
    this.calls++;
    if (this.invoices instanceof Error) throw this.invoices;
    return this.invoices;
  }
}

describe('datasets through the pipeline', () => {
  it('starts every configured daily dataset per currency and period, each with its own request', async () => {
    const deps = makeDeps({
      env: { EXPORT_CURRENCIES: 'USD', EXPORT_DATASETS: 'unbilledUsage,unbilledReconciliation' },
    });
    const started = await startExports({ trigger: 'schedule' }, deps);
    assert.deepEqual(
      started.map((s) => [s.dataset, s.currency, s.billingPeriod, s.invoiceId]),
      [
        ['unbilledUsage', 'USD', 'current', undefined],
        ['unbilledReconciliation', 'USD', 'current', undefined],
      ],
    );
    assert.deepEqual(
      deps.graph.exportCalls.map((c) => [c.dataset, c.path, c.body]),
      [
        [
          'unbilledUsage',
          '/reports/partners/billing/usage/unbilled/export',
          { currencyCode: 'USD', billingPeriod: 'current', attributeSet: 'full' },
        ],
        [
          'unbilledReconciliation',
          '/reports/partners/billing/reconciliation/unbilled/export',
          { currencyCode: 'USD', billingPeriod: 'current', attributeSet: 'full' },
        ],
      ],
    );
    assert.equal(deps.ledger.run(started[1]!.runId).dataset, 'unbilledReconciliation');
    assert.deepEqual(
      deps.telemetry.started.map((r) => r.dataset),
      ['unbilledUsage', 'unbilledReconciliation'],
    );
  });

  it('lands unbilled reconciliation in its own folder with the same shape, manifest.json naming the dataset', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const [run] = await runToEnd(deps, { datasets: ['unbilledReconciliation'] }, () => makeManifest());
    const row = deps.ledger.run(run!.runId);
    assert.equal(row.status, 'succeeded');
    const series = 'unbilled-reconciliation/billingMonth=2024-10/currency=USD/attributeSet=full';
    assert.equal(row.path, `${series}/run=${run!.runId}`);
    const manifest = deps.destination.json(`${row.path}/manifest.json`) as Record<string, unknown>;
    assert.equal(manifest['dataset'], 'unbilledReconciliation');
    assert.equal(manifest['invoiceId'], null);
    assert.equal(manifest['currency'], 'USD');
    assert.deepEqual(deps.destination.json(`${series}/latest.json`), {
      runId: run!.runId,
      path: row.path,
      eTag: row.eTag,
      completedAt: row.completedAt,
    });
  });

  it('lands each billed dataset of an invoice per invoice, latest.json per invoice, and is unchanged for the same eTag', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const started = await runToEnd(
      deps,
      { datasets: ['billedUsage', 'billedReconciliation'], invoiceIds: ['g016907411'] },
      () => billedManifest('G016907411'),
    );
    assert.deepEqual(
      deps.graph.exportCalls.map((c) => [c.path, c.body]),
      [
        ['/reports/partners/billing/usage/billed/export', { invoiceId: 'G016907411', attributeSet: 'full' }],
        ['/reports/partners/billing/reconciliation/billed/export', { invoiceId: 'G016907411', attributeSet: 'full' }],
      ],
    );
    for (const [index, prefix] of ['billed-usage', 'billed-reconciliation'].entries()) {
      const row = deps.ledger.run(started[index]!.runId);
      assert.equal(row.status, 'succeeded');
      assert.equal(row.invoiceId, 'G016907411');
      const series = `${prefix}/billingMonth=2024-09/invoiceId=G016907411/attributeSet=full`;
      assert.equal(row.path, `${series}/run=${row.runId}`);
      const manifest = deps.destination.json(`${row.path}/manifest.json`) as Record<string, unknown>;
      assert.equal(manifest['dataset'], index === 0 ? 'billedUsage' : 'billedReconciliation');
      assert.equal(manifest['invoiceId'], 'G016907411');
      assert.equal((deps.destination.json(`${series}/latest.json`) as { runId: string }).runId, row.runId);
    }
    assert.ok(deps.telemetry.completed.every((c) => c.run.invoiceId === 'G016907411'));

    // The same invoice again by hand: Graph has the same data version, nothing is copied twice.
    const again = await runToEnd(deps, { datasets: ['billedUsage'], invoiceIds: ['G016907411'] }, () =>
      billedManifest('G016907411'),
    );
    assert.equal(deps.ledger.run(again[0]!.runId).status, 'unchanged');
    // With force it copies again.
    const forced = await runToEnd(deps, { datasets: ['billedUsage'], invoiceIds: ['G016907411'], force: true }, () =>
      billedManifest('G016907411'),
    );
    assert.equal(deps.ledger.run(forced[0]!.runId).status, 'succeeded');
  });

  it('lands billed aggregated usage per invoice under attributeSet=full, its request naming the invoice only', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_ATTRIBUTE_SET: 'basic' } });
    const started = await runToEnd(
      deps,
      { datasets: ['billedUsage', 'billedAggregatedUsage'], invoiceIds: ['G016907411'] },
      (n) => billedManifest('G016907411', `BilledETag000000${n}`),
    );
    assert.deepEqual(
      deps.graph.exportCalls.map((c) => [c.dataset, c.path, c.body]),
      [
        [
          'billedUsage',
          '/reports/partners/billing/usage/billed/export',
          { invoiceId: 'G016907411', attributeSet: 'basic' },
        ],
        [
          'billedAggregatedUsage',
          '/reports/partners/billing/aggregatedUsage/billed/export',
          { invoiceId: 'G016907411' },
        ],
      ],
    );
    const row = deps.ledger.run(started[1]!.runId);
    assert.equal(row.status, 'succeeded');
    assert.equal(row.attributeSet, 'full');
    const series = 'billed-aggregated-usage/billingMonth=2024-09/invoiceId=G016907411/attributeSet=full';
    assert.equal(row.path, `${series}/run=${row.runId}`);
    const manifest = deps.destination.json(`${row.path}/manifest.json`) as Record<string, unknown>;
    assert.equal(manifest['dataset'], 'billedAggregatedUsage');
    assert.equal(manifest['attributeSet'], 'full');
    assert.equal((deps.destination.json(`${series}/latest.json`) as { runId: string }).runId, row.runId);
  });

  it('keeps one lock per dataset and invoice: a second start of the same invoice is already in flight, another dataset is not', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const first = await startExports({ trigger: 'manual', datasets: ['billedUsage'], invoiceIds: ['G1'] }, deps);
    const second = await startExports(
      { trigger: 'manual', datasets: ['billedUsage', 'billedReconciliation', 'unbilledUsage'], invoiceIds: ['G1'] },
      deps,
    );
    assert.equal(first[0]?.alreadyInFlight, false);
    assert.deepEqual(
      second.map((s) => [s.dataset, s.alreadyInFlight]),
      [
        ['unbilledUsage', false],
        ['billedUsage', true],
        ['billedReconciliation', false],
      ],
    );
    assert.equal(second[1]?.runId, first[0]?.runId);
  });

  it('starts nothing for billed datasets without invoices when discovery is off, and says so', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_DATASETS: 'unbilledUsage,billedUsage' } });
    const started = await startExports({ trigger: 'schedule' }, deps);
    assert.deepEqual(
      started.map((s) => s.dataset),
      ['unbilledUsage'],
    );
    assert.ok(deps.logger.lines.some((l) => l.level === 'warn' && /EXPORT_INVOICE_DISCOVERY is off/.test(l.message)));
  });
});

describe('invoice discovery', () => {
  const env = {
    EXPORT_CURRENCIES: 'USD',
    EXPORT_DATASETS: 'unbilledUsage,billedUsage,billedReconciliation',
    EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
    EXPORT_INVOICE_MONTHS: '1',
  };
  const invoices: PartnerInvoice[] = [
    { id: 'G000000010', invoiceDate: '2024-10-05T00:00:00Z', documentType: 'invoice' },
    { id: 'G000000009', invoiceDate: '2024-09-06T00:00:00Z', documentType: 'invoice' },
    { id: 'G000000008', invoiceDate: '2024-08-06T00:00:00Z', documentType: 'invoice' },
    { id: 'V000000001', invoiceDate: '2024-10-01T00:00:00Z', documentType: 'voidNote' },
  ];

  it('exports the billed datasets of every invoice of the window, and the schedule never exports a landed invoice again', async () => {
    const deps = makeDeps({ env });
    deps.invoices = new ListedInvoices(invoices);
    const first = await runToEnd(deps, { trigger: 'schedule' } as Partial<StartRequest>, (n) =>
      billedManifest(n <= 3 ? 'G000000010' : 'G000000009'),
    );
    assert.deepEqual(
      first.map((s) => [s.dataset, s.invoiceId ?? '']),
      [
        ['unbilledUsage', ''],
        ['billedUsage', 'G000000010'],
        ['billedReconciliation', 'G000000010'],
        ['billedUsage', 'G000000009'],
        ['billedReconciliation', 'G000000009'],
      ],
    );
    assert.ok(first.every((s) => deps.ledger.run(s.runId).status === 'succeeded'));

    deps.clock.advanceSeconds(86_400);
    const next = await startExports({ trigger: 'schedule' }, deps);
    assert.deepEqual(
      next.map((s) => s.dataset),
      ['unbilledUsage'],
      'landed invoices are not exported again by the schedule',
    );
  });

  it('never exports a landed invoice of billed aggregated usage again, even with EXPORT_ATTRIBUTE_SET=basic', async () => {
    const deps = makeDeps({
      env: { ...env, EXPORT_DATASETS: 'billedAggregatedUsage', EXPORT_ATTRIBUTE_SET: 'basic' },
    });
    deps.invoices = new ListedInvoices(invoices);
    const first = await runToEnd(deps, { trigger: 'schedule' } as Partial<StartRequest>, (n) =>
      billedManifest(n === 1 ? 'G000000010' : 'G000000009', `AggregatedETag0${n}`),
    );
    assert.deepEqual(
      first.map((s) => [s.dataset, s.invoiceId, s.attributeSet]),
      [
        ['billedAggregatedUsage', 'G000000010', 'full'],
        ['billedAggregatedUsage', 'G000000009', 'full'],
      ],
    );
    assert.ok(first.every((s) => deps.ledger.run(s.runId).status === 'succeeded'));
    deps.clock.advanceSeconds(86_400);
    const next = await startExports({ trigger: 'schedule' }, deps);
    assert.deepEqual(next, [], 'landed invoices are not exported again by the schedule');
  });

  it('starts the daily datasets even when Partner Center fails, then reports the failure', async () => {
    const deps = makeDeps({ env });
    deps.invoices = new ListedInvoices(new ExportError('PARTNER_CENTER_FAILED', 'Partner Center: 401'));
    await assert.rejects(startExports({ trigger: 'schedule' }, deps), (error: unknown) => {
      assert.ok(isExportError(error));
      assert.equal(error.code, 'PARTNER_CENTER_FAILED');
      return true;
    });
    assert.equal(deps.graph.exportCalls.length, 1, 'unbilled usage started');
    assert.ok(deps.logger.lines.some((l) => l.level === 'error' && /Invoice discovery failed/.test(l.message)));
  });

  it('uses the invoices given by hand instead of discovery', async () => {
    const deps = makeDeps({ env });
    const listed = new ListedInvoices(invoices);
    deps.invoices = listed;
    const started = await startExports(
      { trigger: 'manual', datasets: ['billedUsage'], invoiceIds: ['G000000008'] },
      deps,
    );
    assert.deepEqual(
      started.map((s) => s.invoiceId),
      ['G000000008'],
    );
    assert.equal(listed.calls, 0);
  });

  it('counts invoices issued this month and the N months before', () => {
    const now = new Date('2024-10-08T06:00:00Z');
    assert.equal(inDiscoveryWindow('2024-09-01T00:00:00Z', now, 1), true);
    assert.equal(inDiscoveryWindow('2024-08-31T23:59:59Z', now, 1), false);
    assert.equal(inDiscoveryWindow('2024-10-09T00:00:00Z', now, 1), false, 'not in the future');
    assert.equal(inDiscoveryWindow('2024-10-01T00:00:00Z', now, 0), true);
  });
});

describe('dataset interfaces', () => {
  it('accepts datasets and invoiceIds in the HTTP body and names what is accepted otherwise', () => {
    assert.deepEqual(parseStartBody('{"datasets":["billedUsage"],"invoiceIds":"g1,G2"}'), {
      request: {
        trigger: 'manual',
        currencies: undefined,
        billingPeriods: undefined,
        attributeSet: undefined,
        force: undefined,
        datasets: ['billedUsage'],
        invoiceIds: ['G1', 'G2'],
      },
    });
    const bad = parseStartBody('{"datasets":["invoices"]}');
    assert.ok('problem' in bad);
    assert.match(
      bad.problem,
      /"datasets":\["unbilledUsage","unbilledReconciliation","billedUsage","billedReconciliation","billedAggregatedUsage"\]/,
    );
    const badInvoice = parseStartBody('{"invoiceIds":["G 1"]}');
    assert.ok('problem' in badInvoice);
    assert.match(badInvoice.problem, /invoiceIds: "G 1" is not an invoice id/);
  });

  it('filters the history by dataset and invoice, and shows old rows as unbilled usage', () => {
    assert.deepEqual(parseRunQuery({ dataset: 'billedUsage', invoiceId: 'g000000001' }), {
      since: undefined,
      until: undefined,
      status: undefined,
      currency: undefined,
      dataset: 'billedUsage',
      invoiceId: 'G000000001',
      limit: 50,
    });
    assert.throws(() => parseRunQuery({ dataset: 'usage' }), /dataset: "usage" is not a dataset/);
    const old = { runId: 'r', currency: 'USD' } as unknown as RunRecord;
    assert.equal(publicRun(old).dataset, 'unbilledUsage');
  });
});
