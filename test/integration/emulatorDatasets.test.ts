import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { EMULATOR_DEV_TOKEN, EMULATOR_PARTNER_CENTER_DEV_TOKEN } from '../../src/adapters/graph/devToken';
import { AGGREGATED_USAGE_COLUMNS } from '../../src/emulator/aggregatedUsageColumns';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../../src/emulator/partnerBillingEmulator';
import { BASIC_RECONCILIATION_COLUMNS, FULL_RECONCILIATION_COLUMNS } from '../../src/emulator/reconciliationColumns';
import { BASIC_USAGE_COLUMNS, FULL_USAGE_COLUMNS } from '../../src/emulator/usageColumns';
import { exportSourceStorage } from '../../src/local/azurite';
import { useAzurite } from '../support/azurite';
import { asRecord, asString, json, type Reply, send } from '../support/http';

const azurite = useAzurite();

function monthsBack(count: number): string {
  const now = new Date();
  const date = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - count, 1));
  return `${date.getUTCFullYear()}${String(date.getUTCMonth() + 1).padStart(2, '0')}`;
}

describe('partner billing emulator: every dataset and the Partner Center invoices list', () => {
  let emulator: PartnerBillingEmulator;

  before(async () => {
    emulator = await startPartnerBillingEmulator({
      storage: exportSourceStorage(azurite()),
      scenario: { pollsBeforeSuccess: 0, blobCount: 2, rowsPerBlob: 60, seed: 3 },
    });
  });
  after(async () => {
    await emulator.stop();
  });

  const graphHeaders = { Authorization: `Bearer ${EMULATOR_DEV_TOKEN}`, 'Content-Type': 'application/json' };
  const partnerCenterHeaders = { Authorization: `Bearer ${EMULATOR_PARTNER_CENTER_DEV_TOKEN}` };

  const post = (path: string, body: unknown): Promise<Reply> =>
    send(`${emulator.baseUrl}/reports/partners/billing${path}`, {
      method: 'POST',
      headers: graphHeaders,
      body: JSON.stringify(body),
      ca: emulator.caCertPem,
    });

  /** Starts an export, polls it to the end, returns the final operation body. */
  const exportToEnd = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const accepted = await post(path, body);
    assert.equal(accepted.status, 202, accepted.body.toString());
    const location = asString(accepted.headers.location);
    for (let attempt = 0; attempt < 20; attempt++) {
      const reply = await send(location, { headers: graphHeaders, ca: emulator.caCertPem });
      assert.equal(reply.status, 200);
      const operation = json(reply);
      if (!['notStarted', 'running'].includes(asString(operation['status']))) return operation;
    }
    assert.fail('the operation did not finish');
  };

  const rowsOf = async (manifest: Record<string, unknown>): Promise<Array<Record<string, unknown>>> => {
    const blobs = manifest['blobs'];
    assert.ok(Array.isArray(blobs));
    const rows: Array<Record<string, unknown>> = [];
    for (const blob of blobs) {
      const url = `${asString(manifest['rootDirectory'])}/${asString(asRecord(blob)['name'])}?${asString(manifest['sasToken'])}`;
      const reply = await send(url);
      assert.equal(reply.status, 200);
      for (const line of gunzipSync(reply.body).toString('utf8').trimEnd().split('\n')) {
        rows.push(asRecord(JSON.parse(line)));
      }
    }
    return rows;
  };

  it('answers with @odata.type on the operation and the manifest by default, as Microsoft examples do', async () => {
    const operation = await exportToEnd('/usage/unbilled/export', { currencyCode: 'USD', billingPeriod: 'current' });
    assert.equal(operation['@odata.type'], '#microsoft.graph.partners.billing.exportSuccessOperation');
    assert.equal(asRecord(operation['resourceLocation'])['@odata.type'], '#microsoft.graph.partners.billing.manifest');
  });

  it('serves unbilled reconciliation in the 47 full and 35 basic documented columns, without invoice number', async () => {
    for (const [attributeSet, columns] of [
      ['full', FULL_RECONCILIATION_COLUMNS],
      ['basic', BASIC_RECONCILIATION_COLUMNS],
    ] as const) {
      const operation = await exportToEnd('/reconciliation/unbilled/export', {
        currencyCode: 'EUR',
        billingPeriod: 'current',
        attributeSet,
      });
      assert.equal(operation['status'], 'succeeded');
      const manifest = asRecord(operation['resourceLocation']);
      assert.match(asString(manifest['rootDirectory']), /\/unbilledreconciliation\/v1\/\d{12}\/.*\/Currency=EUR\//);
      const rows = await rowsOf(manifest);
      assert.equal(rows.length, 120);
      for (const row of rows) {
        assert.deepEqual(Object.keys(row), [...columns]);
        assert.equal(row['Currency'], 'EUR');
        assert.equal(row['InvoiceNumber'], '');
        assert.equal(row['Total'], Math.round(((row['Subtotal'] as number) + (row['TaxTotal'] as number)) * 100) / 100);
      }
    }
    assert.equal(FULL_RECONCILIATION_COLUMNS.length, 47);
    assert.equal(BASIC_RECONCILIATION_COLUMNS.length, 35);
  });

  it('serves billed usage of a known invoice in the usage columns, every row carrying the invoice number', async () => {
    const operation = await exportToEnd('/usage/billed/export', { invoiceId: 'G000000001', attributeSet: 'basic' });
    const manifest = asRecord(operation['resourceLocation']);
    assert.match(
      asString(manifest['rootDirectory']),
      new RegExp(
        `/billedusage/v1/PartnerTenantId=[^/]+/BillingMonth=${monthsBack(1)}/InvoiceId=G000000001/InvoiceVersion=\\d{12}/Fragment=basic/PartitionType=default$`,
      ),
    );
    const rows = await rowsOf(manifest);
    assert.equal(rows.length, 120);
    for (const row of rows) {
      assert.deepEqual(Object.keys(row), [...BASIC_USAGE_COLUMNS]);
      assert.equal(row['InvoiceNumber'], 'G000000001');
      assert.equal(row['BillingCurrency'], 'USD');
    }
    const full = await exportToEnd('/usage/billed/microsoft.graph.partners.billing.export', {
      invoiceId: 'G000000002',
    });
    const fullRows = await rowsOf(asRecord(full['resourceLocation']));
    assert.deepEqual(Object.keys(fullRows[0] ?? {}), [...FULL_USAGE_COLUMNS]);
    assert.equal(fullRows[0]?.['BillingCurrency'], 'EUR');
  });

  it('serves billed reconciliation of a known invoice, with the same bytes and eTag for the same invoice', async () => {
    const first = asRecord(
      (await exportToEnd('/reconciliation/billed/export', { invoiceId: 'G000000003' }))['resourceLocation'],
    );
    const again = asRecord(
      (await exportToEnd('/reconciliation/billed/export', { invoiceId: 'g000000003' }))['resourceLocation'],
    );
    assert.equal(first['eTag'], again['eTag']);
    assert.match(asString(first['rootDirectory']), new RegExp(`/BillingMonth=${monthsBack(2)}/InvoiceId=G000000003/`));
    const rows = await rowsOf(first);
    assert.deepEqual(Object.keys(rows[0] ?? {}), [...FULL_RECONCILIATION_COLUMNS]);
    assert.ok(rows.every((row) => row['InvoiceNumber'] === 'G000000003'));
    const usage = asRecord(
      (await exportToEnd('/usage/billed/export', { invoiceId: 'G000000003' }))['resourceLocation'],
    );
    assert.notEqual(usage['eTag'], first['eTag'], 'each dataset has its own data version');
  });

  it('serves billed aggregated usage of a known invoice, summing the billed usage of that invoice to the millionth', async () => {
    const operation = await exportToEnd('/aggregatedUsage/billed/export', { invoiceId: 'G000000001' });
    assert.equal(operation['status'], 'succeeded');
    const manifest = asRecord(operation['resourceLocation']);
    assert.match(
      asString(manifest['rootDirectory']),
      new RegExp(
        `/billedaggregatedusage/v1/PartnerTenantId=[^/]+/BillingMonth=${monthsBack(1)}/InvoiceId=G000000001/InvoiceVersion=\\d{12}/Fragment=full/PartitionType=default$`,
      ),
    );
    const rows = await rowsOf(manifest);
    for (const row of rows) {
      assert.deepEqual(Object.keys(row), [...AGGREGATED_USAGE_COLUMNS]);
      assert.equal(row['InvoiceNumber'], 'G000000001');
      assert.equal(row['BillingCurrency'], 'USD');
    }
    const usage = await rowsOf(
      asRecord((await exportToEnd('/usage/billed/export', { invoiceId: 'G000000001' }))['resourceLocation']),
    );
    assert.equal(usage.length, 120);
    assert.ok(rows.length > 0 && rows.length < usage.length, `${rows.length} aggregated rows`);
    const micros = (list: Array<Record<string, unknown>>, column: string): number =>
      list.reduce((sum, row) => sum + Math.round(Number(row[column]) * 1_000_000), 0);
    for (const column of ['BillingPreTaxTotal', 'PricingPreTaxTotal', 'Quantity']) {
      assert.equal(micros(rows, column), micros(usage, column), column);
    }

    const namespaced = await exportToEnd('/aggregatedUsage/billed/microsoft.graph.partners.billing.export', {
      invoiceId: 'g000000001',
    });
    assert.equal(asRecord(namespaced['resourceLocation'])['eTag'], manifest['eTag'], 'same invoice, same data');
    const withAttributeSet = await post('/aggregatedUsage/billed/export', {
      invoiceId: 'G000000001',
      attributeSet: 'full',
    });
    assert.equal(withAttributeSet.status, 400);
    assert.match(asString(asRecord(json(withAttributeSet)['error'])['message']), /'attributeSet'/);
    const unknown = await post('/aggregatedUsage/billed/export', { invoiceId: 'G999999999' });
    assert.equal(unknown.status, 404);
  });

  it('answers an unknown invoice with a Graph error (404 in the Graph envelope) and a bad billed body with 400', async () => {
    const unknown = await post('/usage/billed/export', { invoiceId: 'G999999999', attributeSet: 'full' });
    assert.equal(unknown.status, 404);
    const error = asRecord(json(unknown)['error']);
    assert.equal(error['code'], 'ResourceNotFound');
    assert.match(asString(error['message']), /G999999999/);
    const missing = await post('/reconciliation/billed/export', { attributeSet: 'full' });
    assert.equal(missing.status, 400);
    assert.match(asString(asRecord(json(missing)['error'])['message']), /invoiceId/);
    const unbilledBody = await post('/usage/billed/export', { currencyCode: 'USD', invoiceId: 'G000000001' });
    assert.equal(unbilledBody.status, 400);
    assert.match(asString(asRecord(json(unbilledBody)['error'])['message']), /currencyCode/);
  });

  it('lists the invoices as Partner Center documents them, paged, with its own token only', async () => {
    const list = await send(`${emulator.partnerCenterBaseUrl}/invoices`, {
      headers: partnerCenterHeaders,
      ca: emulator.caCertPem,
    });
    assert.equal(list.status, 200, list.body.toString());
    const body = json(list);
    assert.equal(body['totalCount'], 3);
    assert.deepEqual(body['attributes'], { objectType: 'Collection' });
    const items = body['items'];
    assert.ok(Array.isArray(items));
    const first = asRecord(items[0]);
    assert.deepEqual(Object.keys(first), [
      'id',
      'invoiceDate',
      'billingPeriodStartDate',
      'billingPeriodEndDate',
      'totalCharges',
      'paidAmount',
      'currencyCode',
      'currencySymbol',
      'pdfDownloadLink',
      'invoiceDetails',
      'documentType',
      'invoiceType',
      'links',
      'attributes',
    ]);
    assert.deepEqual(first['attributes'], { objectType: 'Invoice' });
    assert.deepEqual(
      items.map((item) => asRecord(item)['id']),
      ['G000000001', 'G000000002', 'G000000003'],
    );
    const page = json(
      await send(`${emulator.partnerCenterBaseUrl}/invoices?size=2&offset=0`, {
        headers: partnerCenterHeaders,
        ca: emulator.caCertPem,
      }),
    );
    assert.equal(page['totalCount'], 2);
    assert.equal(asRecord(asRecord(page['links'])['next'])['uri'], '/invoices?size=2&offset=2');

    const graphTokenToPartnerCenter = await send(`${emulator.partnerCenterBaseUrl}/invoices`, {
      headers: { Authorization: `Bearer ${EMULATOR_DEV_TOKEN}` },
      ca: emulator.caCertPem,
    });
    assert.equal(graphTokenToPartnerCenter.status, 401);
    const partnerCenterTokenToGraph = await send(`${emulator.baseUrl}/reports/partners/billing/usage/billed/export`, {
      method: 'POST',
      headers: { ...partnerCenterHeaders, 'Content-Type': 'application/json' },
      body: JSON.stringify({ invoiceId: 'G000000001' }),
      ca: emulator.caCertPem,
    });
    assert.equal(partnerCenterTokenToGraph.status, 401);
  });

  it('throttles the invoices list on demand, as it does Graph', async () => {
    emulator.injectFaults({ kind: 'throttle', on: 'invoices', count: 1, retryAfterSeconds: 3 });
    const throttled = await send(`${emulator.partnerCenterBaseUrl}/invoices`, {
      headers: partnerCenterHeaders,
      ca: emulator.caCertPem,
    });
    assert.equal(throttled.status, 429);
    assert.equal(throttled.headers['retry-after'], '3');
    const ok = await send(`${emulator.partnerCenterBaseUrl}/invoices`, {
      headers: partnerCenterHeaders,
      ca: emulator.caCertPem,
    });
    assert.equal(ok.status, 200);
  });

  it('records the dataset and invoice of every operation', () => {
    const operations = emulator.operations();
    assert.ok(operations.some((o) => o.dataset === 'billedUsage' && o.invoiceId === 'G000000001'));
    assert.ok(operations.some((o) => o.dataset === 'unbilledReconciliation' && o.invoiceId === undefined));
    assert.ok(
      operations.some(
        (o) => o.dataset === 'billedAggregatedUsage' && o.invoiceId === 'G000000001' && o.attributeSet === 'full',
      ),
    );
  });
});
