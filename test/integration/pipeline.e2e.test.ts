import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { after, afterEach, before, describe, it } from 'node:test';
import { QueueNames, TelemetryEvents, TelemetryMetrics } from '../../src/names';
import { COPY_MESSAGES_SPREAD } from '../../src/pipeline/copyBatches';
import { startGraphProxy } from '../support/graphProxy';
import {
  assertNoSecrets,
  assertRunFolder,
  type Harness,
  latestPattern,
  runFolderPattern,
  startHarness,
} from '../support/harness';

/** Blobs of the batched export: 200 with FAULTS_SCALE=full; 40 (still 16 batches) in the quick suite. */
const SMALL_BLOBS = process.env['FAULTS_SCALE'] === 'full' ? 200 : 40;

describe('export pipeline end to end (Azurite, HTTPS emulator, local Functions host)', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness();
  });

  after(async () => {
    await h?.stop();
  });

  afterEach(async () => {
    await h.drain();
  });

  it('exports two currencies for both billing periods into the documented layout, byte for byte', async () => {
    h.beginTest();
    h.setEnv({ EXPORT_CURRENCIES: 'USD,EUR', EXPORT_BILLING_PERIODS: 'current,last' });
    const { response, runs } = await h.startExports();
    assert.equal(response.status, 202);
    assert.equal(runs.length, 4);
    assert.deepEqual(runs.map((r) => `${r.currency}/${r.billingPeriod}`).sort(), [
      'EUR/current',
      'EUR/last',
      'USD/current',
      'USD/last',
    ]);
    const ended = await h.waitForTerminal(runs.map((r) => r.runId));
    for (const run of ended) {
      assert.equal(run.trigger, 'manual');
      await assertRunFolder(h, run);
    }

    const months = new Set(ended.map((r) => r.billingMonth));
    assert.equal(months.size, 2, 'current and last are two billing months');
    const all = await h.listDestination();
    const runPattern = runFolderPattern();
    const latest = latestPattern();
    for (const blob of all) {
      assert.ok(runPattern.test(blob.path) || latest.test(blob.path), `unexpected blob ${blob.path}`);
    }
    assert.equal(all.filter((b) => latest.test(b.path)).length, 4);
    assert.equal(all.filter((b) => b.path.endsWith('/manifest.json')).length, 4);
  });

  it(`exports ${SMALL_BLOBS} small blobs with ${COPY_MESSAGES_SPREAD} copy messages (batches), each blob copied once and listed in manifest.json`, async () => {
    h.beginTest();
    h.emulator.configure({ blobCount: SMALL_BLOBS, rowsPerBlob: 2 }, 'CHF');
    const copySends: string[] = [];
    const onRequest = (message: unknown): void => {
      const request = (message as { request: ClientRequest }).request;
      if (request.method === 'POST' && request.path.split('?')[0]!.endsWith(`/${QueueNames.copy}/messages`)) {
        copySends.push(request.path);
      }
    };
    subscribe('http.client.request.start', onRequest);
    try {
      const { runs } = await h.startExports({ currencies: ['CHF'] });
      assert.equal(runs.length, 1);
      // The emulator writes the blobs to Azurite first: longer than the default wait on a loaded machine.
      const [run] = await h.waitForTerminal(
        runs.map((r) => r.runId),
        300_000,
      );
      assert.equal(run?.status, 'succeeded');
      assert.equal(run?.blobCount, SMALL_BLOBS);
      await assertRunFolder(h, run!);
      assert.equal(copySends.length, COPY_MESSAGES_SPREAD, 'one copy message per batch, not one per blob');
      const methods = (await h.listBlobs(run!.runId)).map((b) => b.method);
      assert.equal(methods.length, SMALL_BLOBS);
      assert.ok(
        methods.every((m) => m === 'copyFromUrl'),
        'each blob copied once, none found already there by a second copy',
      );
    } finally {
      unsubscribe('http.client.request.start', onRequest);
    }
  });

  it('accepts both Graph dialects: inline manifest with @odata.type, and navigationLink + GET manifest with status completed', async () => {
    h.beginTest();
    h.emulator.configure({ dialect: 'inline', successStatus: 'succeeded', odataType: true }, 'CAD');
    h.emulator.configure({ dialect: 'navigationLink', successStatus: 'completed', odataType: false }, 'GBP');
    const { runs } = await h.startExports({ currencies: ['CAD', 'GBP'] });
    assert.equal(runs.length, 2);
    const ended = await h.waitForTerminal(runs.map((r) => r.runId));
    for (const run of ended) await assertRunFolder(h, run);

    const byCurrency = new Map(ended.map((run) => [run.currency, run]));
    const gbp = h.emulator.operations().find((op) => op.id === byCurrency.get('GBP')?.operationId);
    const cad = h.emulator.operations().find((op) => op.id === byCurrency.get('CAD')?.operationId);
    assert.equal(gbp?.status, 'completed');
    assert.equal(cad?.status, 'succeeded');
    const manifestGets = h.emulator.requests.filter((r) => r.method === 'GET' && r.path.includes('/manifests/'));
    assert.ok(
      manifestGets.some((r) => r.path.endsWith(`/manifests/${gbp?.manifestId}`) && r.status === 200),
      'the navigationLink manifest was fetched',
    );
    assert.ok(!manifestGets.some((r) => r.path.endsWith(`/manifests/${cad?.manifestId}`)), 'the inline one was not');
  });

  it('ends a second run with the same data unchanged without a new folder, and copies again with force', async () => {
    h.beginTest();
    const first = await h.startOne({ currencies: ['AUD'] });
    const [done] = await h.waitForTerminal([first.runId]);
    assert.ok(done !== undefined);
    await assertRunFolder(h, done);
    const series = `unbilled-usage/billingMonth=${done.billingMonth}/currency=AUD/attributeSet=full`;
    const runFolders = async () =>
      new Set((await h.listDestination(`${series}/run=`)).map((b) => b.path.split('/')[4])).size;
    assert.equal(await runFolders(), 1);

    const second = await h.startOne({ currencies: ['AUD'] });
    assert.notEqual(second.runId, first.runId);
    const [unchanged] = await h.waitForTerminal([second.runId]);
    assert.equal(unchanged?.status, 'unchanged');
    assert.equal(unchanged?.eTag, done.eTag);
    assert.equal(await runFolders(), 1, 'no new folder for unchanged data');
    const latestBefore = JSON.parse((await h.downloadDestination(`${series}/latest.json`)).toString('utf8'));
    assert.equal(latestBefore.runId, first.runId);

    const forced = await h.startOne({ currencies: ['AUD'], force: true });
    const [copied] = await h.waitForTerminal([forced.runId]);
    assert.ok(copied !== undefined);
    assert.equal(copied.force, true);
    await assertRunFolder(h, copied);
    assert.equal(await runFolders(), 2, 'force copies into a new folder');
  });

  it('fetches a fresh SAS from Graph when the export SAS has expired, and the run succeeds', async () => {
    h.beginTest();
    h.emulator.configure({ expiredSasOnFirstManifests: 1 }, 'NZD');
    const started = await h.startOne({ currencies: ['NZD'] });
    const [run] = await h.waitForTerminal([started.runId]);
    assert.ok(run !== undefined);
    await assertRunFolder(h, run);
    const refreshed = h.logsContaining('SAS expired').filter((l) => l.line.includes(`runId=${run.runId}`));
    assert.ok(refreshed.length >= 1, 'the log says the SAS was refreshed');
    const operationGets = h.emulator.requests.filter(
      (r) => r.method === 'GET' && r.path.endsWith(`/operations/${run.operationId}`),
    );
    assert.ok(operationGets.length >= 2, 'the operation was fetched again for a fresh manifest');
  });

  it('sends ExportRunStarted and ExportRunCompleted with the run dimensions and measurements to Application Insights', async () => {
    h.beginTest();
    const started = await h.startOne({ currencies: ['BRL'], billingPeriods: ['last'] });
    const [run] = await h.waitForTerminal([started.runId]);
    assert.ok(run !== undefined);
    await assertRunFolder(h, run);
    await h.drain();

    const [start] = await h.waitForEvents(TelemetryEvents.runStarted, run.runId);
    assert.deepEqual(
      { ...start?.properties },
      {
        runId: run.runId,
        currency: 'BRL',
        billingPeriod: 'last',
        attributeSet: 'full',
        status: 'starting',
        trigger: 'manual',
        dataset: 'unbilledUsage', // issue 10: a dataset dimension on every event
      },
      'the operation id is not known yet when the run starts',
    );
    const completed = await h.waitForEvents(TelemetryEvents.runCompleted, run.runId);
    assert.equal(completed.length, 1);
    const [done] = completed;
    assert.deepEqual(
      { ...done?.properties },
      {
        runId: run.runId,
        currency: 'BRL',
        billingPeriod: 'last',
        attributeSet: 'full',
        status: 'succeeded',
        operationId: run.operationId,
        trigger: 'manual',
        dataset: 'unbilledUsage',
      },
    );
    assert.ok(run.operationId !== undefined && run.operationId !== '');
    const measurements = done?.measurements ?? {};
    assert.deepEqual(Object.keys(measurements).sort(), ['blobCount', 'byteCount', 'durationMs', 'polls']);
    assert.equal(measurements['blobCount'], run.blobCount);
    assert.equal(measurements['byteCount'], run.byteCount);
    assert.equal(measurements['polls'], run.polls);
    assert.ok((measurements['polls'] ?? 0) >= 1);
    assert.equal(measurements['durationMs'], Date.parse(run.completedAt ?? '') - Date.parse(run.startedAt));
    assert.ok((measurements['durationMs'] ?? 0) > 0);
    for (const metric of Object.values(TelemetryMetrics)) {
      const points = h.ingestion.items.filter(
        (item) => item.baseType === 'MetricData' && item.name === metric && item.properties['currency'] === 'BRL',
      );
      assert.equal(points.length, 1, `one ${metric} data point`);
      assert.equal(points[0]?.properties['status'], 'succeeded');
    }
    assert.equal(done?.tags['ai.cloud.role'], 'csp-unbilled-export');
  });

  // Last on purpose: it scans what every test of this file left behind.
  it('keeps SAS tokens and bearer tokens out of logs, ledger rows, manifest.json, latest.json and telemetry', async () => {
    h.beginTest();
    let runId = '';
    const proxy = await startGraphProxy({ targetBaseUrl: h.emulator.baseUrl, targetCaPem: h.emulator.caCertPem });
    try {
      h.setEnv({ GRAPH_BASE_URL: proxy.baseUrl, GRAPH_CA_CERT_FILE: proxy.caCertPath });
      h.emulator.configure({ expiredSasOnFirstManifests: 1, dialect: 'navigationLink' }, 'NOK');
      h.emulator.injectFaults({ kind: 'throttle', on: 'manifest', count: 3, retryAfterSeconds: 1 });
      const started = await h.startOne({ currencies: ['NOK'] });
      const [run] = await h.waitForTerminal([started.runId]);
      assert.ok(run !== undefined);
      await assertRunFolder(h, run);
      await h.drain();
      runId = run.runId;
    } finally {
      h.setEnv({ GRAPH_BASE_URL: h.emulator.baseUrl, GRAPH_CA_CERT_FILE: h.emulator.caCertPath });
      await proxy.stop();
    }
    assert.ok(proxy.sasTokens.length >= 2, 'an expired and a fresh SAS were served');

    const scanned = await assertNoSecrets(h, proxy.sasTokens);
    assert.ok(scanned.runs >= 10 && scanned.files >= 10 && scanned.telemetryBodies > 0, JSON.stringify(scanned));
    const lines = h.logsContaining(`runId=${runId}`);
    assert.ok(
      lines.some((l) => l.line.includes('SAS expired')),
      'the expired SAS was met and refreshed',
    );
    assert.ok(
      lines.some((l) => l.line.includes('GRAPH_THROTTLED')),
      'the throttled manifest GET was logged',
    );
  });
});
