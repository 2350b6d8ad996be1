import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { AGGREGATED_USAGE_COLUMNS } from '../../src/emulator/aggregatedUsageColumns';
import { assertNoSecrets, assertRunFolder, type Harness, startHarness } from '../support/harness';

describe('every partner billing dataset end to end (Azurite, HTTPS emulator, local Functions host)', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ http: true });
  });

  after(async () => {
    await h?.stop();
  });

  afterEach(async () => {
    await h.drain();
  });

  async function call(method: 'GET' | 'POST', path: string, body?: string) {
    assert.ok(h.httpBaseUrl !== undefined);
    const response = await fetch(`${h.httpBaseUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  it('lands all four datasets of POST /api/exports in their layouts, byte for byte, each with its own manifest.json', async () => {
    h.beginTest();
    const started = await call(
      'POST',
      '/api/exports',
      JSON.stringify({
        currencies: ['USD'],
        datasets: ['unbilledUsage', 'unbilledReconciliation', 'billedUsage', 'billedReconciliation'],
        invoiceIds: ['G000000001'],
      }),
    );
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const runs = started.body['runs'] as Array<Record<string, unknown>>;
    assert.deepEqual(
      runs.map((r) => [r['dataset'], r['invoiceId'] ?? null]),
      [
        ['unbilledUsage', null],
        ['unbilledReconciliation', null],
        ['billedUsage', 'G000000001'],
        ['billedReconciliation', 'G000000001'],
      ],
    );
    const ended = await h.waitForTerminal(runs.map((r) => String(r['runId'])));
    for (const run of ended) await assertRunFolder(h, run);

    const all = (await h.listDestination()).map((b) => b.path);
    const shapes = [
      /^unbilled-usage\/billingMonth=\d{4}-\d{2}\/currency=USD\/attributeSet=full\/(run=[^/]+\/[^/]+|latest\.json)$/,
      /^unbilled-reconciliation\/billingMonth=\d{4}-\d{2}\/currency=USD\/attributeSet=full\/(run=[^/]+\/[^/]+|latest\.json)$/,
      /^billed-usage\/billingMonth=\d{4}-\d{2}\/invoiceId=G000000001\/attributeSet=full\/(run=[^/]+\/[^/]+|latest\.json)$/,
      /^billed-reconciliation\/billingMonth=\d{4}-\d{2}\/invoiceId=G000000001\/attributeSet=full\/(run=[^/]+\/[^/]+|latest\.json)$/,
    ];
    for (const path of all)
      assert.ok(
        shapes.some((shape) => shape.test(path)),
        `unexpected blob ${path}`,
      );
    for (const shape of shapes) {
      assert.equal(all.filter((p) => shape.test(p) && p.endsWith('/latest.json')).length, 1, String(shape));
    }

    const history = await call('GET', '/api/exports/runs?dataset=billedReconciliation&invoiceId=G000000001');
    assert.equal(history.status, 200);
    const listed = history.body['runs'] as Array<Record<string, unknown>>;
    assert.ok(listed.length >= 1);
    assert.ok(listed.every((r) => r['dataset'] === 'billedReconciliation' && r['invoiceId'] === 'G000000001'));
    const unbilled = (await call('GET', '/api/exports/runs?dataset=unbilledUsage')).body['runs'] as Array<
      Record<string, unknown>
    >;
    assert.ok(unbilled.length >= 1 && unbilled.every((r) => r['dataset'] === 'unbilledUsage'));

    const completed = h.events('ExportRunCompleted');
    for (const dataset of ['unbilledUsage', 'unbilledReconciliation', 'billedUsage', 'billedReconciliation']) {
      assert.ok(
        completed.some((item) => JSON.stringify(item).includes(`"dataset":"${dataset}"`)),
        `an ExportRunCompleted event carries dataset ${dataset}`,
      );
    }
  });

  it('fails a billed run of an invoice Graph does not know, with the invoice named', async () => {
    h.beginTest();
    const started = await call('POST', '/api/exports', '{"datasets":["billedUsage"],"invoiceIds":["G404"]}');
    assert.equal(started.status, 202);
    const [run] = started.body['runs'] as Array<Record<string, unknown>>;
    const [ended] = await h.waitForTerminal([String(run?.['runId'])]);
    assert.equal(ended?.status, 'failed');
    assert.equal(ended?.errorCode, 'GRAPH_NOT_FOUND');
    assert.match(ended?.error ?? '', /G404/);
  });

  it('finds new invoices from the timer through Partner Center and never exports a landed invoice again', async () => {
    h.beginTest();
    h.setEnv({
      EXPORT_CURRENCIES: 'USD',
      EXPORT_DATASETS: 'billedUsage',
      EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
      EXPORT_INVOICE_MONTHS: '3',
      PARTNER_CENTER_BASE_URL: h.emulator.partnerCenterBaseUrl,
    });
    const since = new Date().toISOString();
    await h.host.runTimerNow();
    const first = await h.ledger.listRuns({ since, dataset: 'billedUsage' });
    // G000000001 landed in the first test of this file (same ledger): only the two others are new.
    assert.deepEqual(first.map((r) => r.invoiceId).sort(), ['G000000002', 'G000000003']);
    const ended = await h.waitForTerminal(first.map((r) => r.runId));
    for (const run of ended) {
      assert.equal(run.trigger, 'schedule');
      await assertRunFolder(h, run);
    }
    assert.ok(h.emulator.requests.some((r) => r.path === '/v1/invoices' && r.authorized && r.status === 200));

    const again = new Date().toISOString();
    await h.host.runTimerNow();
    assert.deepEqual(await h.ledger.listRuns({ since: again, dataset: 'billedUsage' }), [], 'nothing new to export');
  });

  it('lands billed aggregated usage per invoice under attributeSet=full, by hand and through invoice discovery, each invoice once', async () => {
    h.beginTest();
    const started = await call(
      'POST',
      '/api/exports',
      JSON.stringify({ datasets: ['billedAggregatedUsage'], invoiceIds: ['G000000002'], attributeSet: 'basic' }),
    );
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const [run] = started.body['runs'] as Array<Record<string, unknown>>;
    assert.equal(run?.['attributeSet'], 'full', 'the export takes no attribute set: it lands as full');
    const [landed] = await h.waitForTerminal([String(run?.['runId'])]);
    assert.ok(landed !== undefined);
    await assertRunFolder(h, landed);
    assert.match(
      landed.path ?? '',
      /^billed-aggregated-usage\/billingMonth=\d{4}-\d{2}\/invoiceId=G000000002\/attributeSet=full\/run=[^/]+$/,
    );
    const [firstBlob] = await h.listBlobs(landed.runId);
    const text = gunzipSync(await h.downloadDestination(`${landed.path}/${firstBlob?.name}`)).toString('utf8');
    const row = JSON.parse(text.split('\n')[0] ?? '{}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(row), [...AGGREGATED_USAGE_COLUMNS]);
    assert.equal(row['InvoiceNumber'], 'G000000002');
    const posted = h.emulator.operations().find((o) => o.dataset === 'billedAggregatedUsage');
    assert.equal(posted?.attributeSet, 'full');

    h.setEnv({
      EXPORT_CURRENCIES: 'USD',
      EXPORT_DATASETS: 'billedAggregatedUsage',
      EXPORT_ATTRIBUTE_SET: 'basic',
      EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
      EXPORT_INVOICE_MONTHS: '3',
      PARTNER_CENTER_BASE_URL: h.emulator.partnerCenterBaseUrl,
    });
    const since = new Date().toISOString();
    await h.host.runTimerNow();
    const discovered = await h.ledger.listRuns({ since, dataset: 'billedAggregatedUsage' });
    assert.deepEqual(discovered.map((r) => r.invoiceId).sort(), ['G000000001', 'G000000003']);
    for (const ended of await h.waitForTerminal(discovered.map((r) => r.runId))) {
      assert.equal(ended.trigger, 'schedule');
      assert.equal(ended.attributeSet, 'full');
      await assertRunFolder(h, ended);
    }
    const again = new Date().toISOString();
    await h.host.runTimerNow();
    assert.deepEqual(await h.ledger.listRuns({ since: again, dataset: 'billedAggregatedUsage' }), [], 'all landed');
  });

  it('leaves no SAS or bearer token (Graph or Partner Center) anywhere', async () => {
    const scanned = await assertNoSecrets(h);
    assert.ok(scanned.runs >= 5, JSON.stringify(scanned));
  });
});
