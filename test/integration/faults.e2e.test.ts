import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { QueueNames, TelemetryEvents } from '../../src/names';
import { startGraphProxy } from '../support/graphProxy';
import { assertNoSecrets, assertRunFolder, type Harness, startHarness } from '../support/harness';

describe('export pipeline end to end under faults (Azurite, HTTPS emulator, local Functions host)', () => {
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

  it('retries through 429 (with Retry-After) and 503 answers from Graph and still succeeds, saying so in the log', async () => {
    h.beginTest();
    h.emulator.injectFaults(
      { kind: 'unavailable', on: 'export', count: 3, retryAfterSeconds: 1 },
      { kind: 'throttle', on: 'operation', count: 3, retryAfterSeconds: 1 },
      { kind: 'unavailable', on: 'operation', count: 3 },
    );
    const started = await h.startOne({ currencies: ['MXN'] });
    assert.equal(started.status, 'starting', 'the export POST is retried through the status queue');
    const [run] = await h.waitForTerminal([started.runId]);
    assert.ok(run !== undefined);
    await assertRunFolder(h, run);

    assert.equal(h.emulator.requests.filter((r) => r.status === 429).length, 3);
    assert.equal(h.emulator.requests.filter((r) => r.status === 503).length, 6);
    const runLines = h.logs.filter((l) => l.line.includes(`runId=${run.runId}`));
    const said = (text: string) => runLines.some((l) => l.line.includes(text));
    assert.ok(said('Starting the export failed transiently; retrying in 1 s'), 'the 503 on the POST was retried');
    assert.ok(said('Graph asked to wait (GRAPH_THROTTLED)'), 'the 429 on the status check was retried');
    assert.ok(
      said('Transient problem (GRAPH_UNAVAILABLE), the queue retries'),
      'the 503 on the status check was retried',
    );
    assert.ok(
      h.logs.some((l) => l.functionName === 'pollExportStatus' && l.line.includes('Attempt 1 failed')),
      'the queue redelivered the status check',
    );
    assert.ok(
      runLines.filter((l) => l.line.includes('retr')).every((l) => l.level === 'info'),
      'retried transient problems are information',
    );
  });

  it('ends noData (code 5000) without a folder, and failed with the Graph code for another failed operation', async () => {
    h.beginTest();
    h.emulator.configure({ outcome: 'noData' }, 'JPY');
    h.emulator.configure({ outcome: 'failed', failureCode: '7012', failureMessage: 'Export processing failed' }, 'KRW');
    const { runs } = await h.startExports({ currencies: ['JPY', 'KRW'] });
    assert.equal(runs.length, 2);
    const [noData, failed] = await h.waitForTerminal(runs.map((r) => r.runId));
    assert.ok(noData !== undefined && failed !== undefined);

    assert.equal(noData.currency, 'JPY');
    assert.equal(noData.status, 'noData');
    assert.equal(noData.errorCode, 'EXPORT_NO_DATA');
    assert.equal(noData.path, undefined);
    assert.equal(failed.currency, 'KRW');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.errorCode, 'EXPORT_FAILED');
    assert.match(failed.error ?? '', /7012/);
    assert.match(failed.error ?? '', /Export processing failed/);
    assert.deepEqual(await h.listDestination(), [], 'no folder is written');

    const lines = (runId: string) => h.logs.filter((l) => l.line.includes(`runId=${runId}`));
    assert.ok(
      lines(noData.runId).some((l) => l.level === 'warn' && l.line.includes('noData')),
      'noData is a warning',
    );
    assert.ok(!lines(noData.runId).some((l) => l.level === 'error'), 'noData is no error');
    assert.ok(
      lines(failed.runId).some((l) => l.level === 'error' && l.line.includes('7012')),
      'failed is an error',
    );
    const [completed] = await h.waitForEvents(TelemetryEvents.runCompleted, noData.runId);
    assert.equal(completed?.properties['status'], 'noData');
    const [failure] = await h.waitForEvents(TelemetryEvents.runFailed, failed.runId);
    assert.equal(failure?.properties['errorCode'], 'EXPORT_FAILED');
  });

  it('completes once when copy and status messages are delivered several times', async () => {
    h.beginTest();
    h.emulator.configure({ blobCount: 3 }, 'DKK');
    const started = await h.startOne({ currencies: ['DKK'] });
    const runId = started.runId;
    await h.waitForRun(runId, (run) => run.path !== undefined);
    const names = (await h.listBlobs(runId)).map((b) => b.name);
    assert.equal(names.length, 3);
    const duplicates: Array<Promise<void>> = [];
    for (let copy = 0; copy < 3; copy++) {
      for (const blobName of names) duplicates.push(h.sendMessage(QueueNames.copy, { version: 1, runId, blobName }));
      duplicates.push(h.sendMessage(QueueNames.status, { version: 1, kind: 'poll', runId, attempt: 0 }));
    }
    duplicates.push(h.sendMessage(QueueNames.status, { version: 1, kind: 'start', runId }));
    await Promise.all(duplicates);
    const [run] = await h.waitForTerminal([runId]);
    assert.ok(run !== undefined);
    await h.drain();
    // And once more after the run has ended.
    for (const blobName of names) await h.sendMessage(QueueNames.copy, { version: 1, runId, blobName });
    await h.sendMessage(QueueNames.status, { version: 1, kind: 'poll', runId, attempt: 3 });
    await h.drain();

    const ended = await h.getRun(runId);
    assert.equal(ended.status, 'succeeded');
    assert.equal(ended.completedAt, run.completedAt, 'the run completed once');
    await assertRunFolder(h, ended);
    const manifests = (await h.listDestination()).filter((b) => b.path.endsWith('/manifest.json'));
    assert.equal(manifests.length, 1, 'exactly one manifest.json');
    assert.equal((await h.waitForEvents(TelemetryEvents.runCompleted, runId)).length, 1);
    assert.equal(h.events(TelemetryEvents.runStarted, runId).length, 1);
    assert.equal(h.events(TelemetryEvents.runFailed, runId).length, 0);
    assert.ok(
      h.logsContaining(`runId=${runId}`).some((l) => /already copied|Duplicate/.test(l.line)),
      'the log shows the duplicates were recognised',
    );
  });

  it('fails the run with MESSAGE_POISONED and the reason when a blob copy keeps failing into the poison queue', async () => {
    h.beginTest();
    // Time to occupy the destination before the export succeeds.
    h.emulator.configure({ pollsBeforeSuccess: 4 }, 'CHF');
    const started = await h.startOne({ currencies: ['CHF'] });
    await h.emulator.idle();
    const sources = await h.listSource('/Currency=CHF/');
    assert.equal(sources.length, 2);
    const source = sources[0] ?? '';
    const month = /BillingMonth=(\d{4})(\d{2})/.exec(source);
    assert.ok(month !== null);
    const blobName = source.split('/').pop() ?? '';
    // Someone holds an infinite lease on the destination blob: every copy attempt is refused (412).
    const target = h
      .container()
      .getBlockBlobClient(
        `unbilled-usage/billingMonth=${month[1]}-${month[2]}/currency=CHF/attributeSet=full/run=${started.runId}/${blobName}`,
      );
    await target.upload('occupied', 8);
    await target.getBlobLeaseClient().acquireLease(-1);
    assert.equal((await h.getRun(started.runId)).status, 'waiting', 'the destination was occupied before the copies');

    const [run] = await h.waitForTerminal([started.runId]);
    assert.ok(run !== undefined);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'MESSAGE_POISONED');
    assert.match(run.error ?? '', new RegExp(`copy of ${blobName.replace(/\./g, '\\.')}`));
    assert.match(run.error ?? '', /export-copy-poison/);
    assert.match(run.error ?? '', /last error: COPY_FAILED/, 'the reason names the last error');
    assert.ok(
      h.logs.some((l) => l.functionName === 'copyExportBlob' && l.line.includes('moved to export-copy-poison')),
      'the host moved the message to the poison queue',
    );
    assert.ok(
      h.logs.some(
        (l) => l.functionName === 'exportCopyPoison' && l.level === 'error' && l.line.includes(started.runId),
      ),
      'exportCopyPoison failed the run',
    );
    assert.equal(
      (await h.listDestination()).filter((b) => b.path.endsWith('manifest.json') || b.path.endsWith('latest.json'))
        .length,
      0,
      'a failed run writes no manifest.json or latest.json',
    );
    const [failure] = await h.waitForEvents(TelemetryEvents.runFailed, run.runId);
    assert.equal(failure?.properties['errorCode'], 'MESSAGE_POISONED');
    await target.getBlobLeaseClient().breakLease(0);
  });

  it('rejects and records invalid queue messages without crashing the worker', async () => {
    h.beginTest();
    const rejectedBefore = (await h.ledger.listRejectedMessages(1000)).length;
    await h.queue(QueueNames.copy).sendMessage(Buffer.from('this is not JSON', 'utf8').toString('base64'));
    await h.sendMessage(QueueNames.status, { version: 2, kind: 'poll', runId: 'not-a-run' });
    await h.sendMessage(QueueNames.copy, { version: 1, runId: '20261125T060000000Z-0badc0de' });
    await h.queue(QueueNames.status).sendMessage('%%% not base64 %%%');
    await h.drain();

    const all = await h.ledger.listRejectedMessages(1000);
    const rejected = all.slice(0, all.length - rejectedBefore);
    const of = (queue: string) => rejected.filter((r) => r.queue === queue);
    assert.equal(rejected.length, 3, JSON.stringify(rejected));
    assert.equal(of(QueueNames.copy).length, 2);
    assert.ok(of(QueueNames.copy).every((r) => r.reason.includes('Invalid export-copy message')));
    assert.ok(of(QueueNames.copy).some((r) => r.excerpt.includes('this is not JSON')));
    assert.ok(
      of(QueueNames.copy).some((r) => r.reason.includes('blobName')),
      'the reason names the field',
    );
    assert.equal(of(QueueNames.status).length, 1);
    assert.match(of(QueueNames.status)[0]?.reason ?? '', /version/);
    assert.ok(h.logs.some((l) => l.level === 'error' && l.line.includes('Invalid export-copy message')));
    // Not base64: the host cannot hand it to any handler; as in Azure it moves on to a poison queue, never dropped.
    assert.ok(h.logs.some((l) => l.functionName === 'pollExportStatus' && l.line.includes('is not base64')));
    const kept = await h.queue(`${QueueNames.statusPoison}-poison`).peekMessages({ numberOfMessages: 32 });
    assert.ok(kept.peekedMessageItems.some((m) => m.messageText === '%%% not base64 %%%'));

    const started = await h.startOne({ currencies: ['SEK'] });
    const [run] = await h.waitForTerminal([started.runId]);
    assert.ok(run !== undefined);
    await assertRunFolder(h, run);
  });

  it('fails the run and writes nothing for a hostile or broken manifest', async () => {
    h.beginTest();
    const hostile: Record<string, (m: Record<string, unknown>) => Record<string, unknown>> = {
      HKD: (m) => withBlobs(m, [...blobsOf(m), { name: '../../escape.json.gz', partitionValue: 'default' }]),
      ZAR: (m) => withBlobs(m, [...blobsOf(m), { name: '/etc/passwd', partitionValue: 'default' }]),
      SGD: (m) => ({
        ...m,
        rootDirectory: String(m['rootDirectory']).replace(/^https?:\/\/[^/]+/, 'https://attacker.example.com'),
      }),
      INR: (m) => ({ ...m, blobCount: blobsOf(m).length + 1 }),
    };
    const proxy = await startGraphProxy({
      targetBaseUrl: h.emulator.baseUrl,
      targetCaPem: h.emulator.caCertPem,
      tamperManifest: (manifest) => {
        const currency = /Currency=([A-Z]{3})/.exec(String(manifest['rootDirectory']))?.[1] ?? '';
        return hostile[currency]?.(manifest) ?? manifest;
      },
    });
    try {
      h.setEnv({ GRAPH_BASE_URL: proxy.baseUrl, GRAPH_CA_CERT_FILE: proxy.caCertPath });
      const { runs } = await h.startExports({ currencies: Object.keys(hostile) });
      assert.equal(runs.length, 4);
      const ended = await h.waitForTerminal(runs.map((r) => r.runId));
      const reasons: Record<string, RegExp> = {
        HKD: /blob name "\.\.\/\.\.\/escape\.json\.gz" contains a "\.\." segment/,
        ZAR: /blob name "\/etc\/passwd" is an absolute path/,
        SGD: /attacker\.example\.com is not an Azure Blob endpoint/,
        INR: /"blobCount" is \d+ but \d+ blobs are listed/,
      };
      for (const run of ended) {
        assert.equal(run.status, 'failed', `${run.currency} failed`);
        assert.equal(run.errorCode, 'MANIFEST_INVALID', `${run.currency}: ${run.error ?? ''}`);
        assert.match(run.error ?? '', reasons[run.currency] ?? /^$/);
        assert.equal(run.path, undefined);
        assert.equal(run.blobsCopied, 0);
      }
      assert.deepEqual(await h.listDestination(), [], 'nothing is written in the destination');
      assert.ok(proxy.sasTokens.length >= 4, 'the manifests went through the tampering proxy');
    } finally {
      h.setEnv({ GRAPH_BASE_URL: h.emulator.baseUrl, GRAPH_CA_CERT_FILE: h.emulator.caCertPath });
      await proxy.stop();
    }
  });

  // Last on purpose: it scans what every test of this file left behind.
  it('leaves no SAS or bearer token in logs, ledger rows, manifest.json, latest.json or telemetry', async () => {
    const scanned = await assertNoSecrets(h);
    assert.ok(scanned.runs >= 10 && scanned.logLines > 50 && scanned.telemetryBodies > 0, JSON.stringify(scanned));
  });
});

function blobsOf(manifest: Record<string, unknown>): unknown[] {
  return Array.isArray(manifest['blobs']) ? manifest['blobs'] : [];
}

function withBlobs(manifest: Record<string, unknown>, blobs: unknown[]): Record<string, unknown> {
  return { ...manifest, blobs, blobCount: blobs.length };
}
