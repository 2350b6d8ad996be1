/**
 * Storage faults (issue 7, deliverable 8), injected by fault proxies in front of Azurite: the destination
 * refusing server-side copy (the copier streams instead), 503 throttling of the destination, a source blob
 * missing (404) or shorter than announced, the destination container deleted mid-run, and a 403 from host
 * storage (a role not granted: the run fails at once, naming the role).
 * The sources go through a proxy too: a Graph proxy rewrites each manifest's rootDirectory to it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createTableClient } from '../../src/adapters/storage/clients';
import { DEV_STORE_ACCOUNT, PARTNER_DEST_ACCOUNT } from '../../src/local/azurite';
import { QueueNames, TableNames, TelemetryEvents } from '../../src/names';
import type { RunRecord } from '../../src/pipeline/ports';
import type { SupervisionReport } from '../../src/pipeline/superviseRuns';
import { uniqueName } from '../support/azurite';
import { type FaultAction, type FaultProxy, startFaultProxy } from '../support/faultProxy';
import { finishWithSupervisor } from './support/crashCase';
import { type FaultEnv, type HostProcess, startFaultEnv } from './support/faultEnv';
import { checkSeries, describeReport, endEventsOf, scanForSecrets, terminalEvents } from './support/invariants';
import { FULL } from './support/scale';

const storageError = (status: number, code: string, message: string): FaultAction => ({
  kind: 'status',
  status,
  headers: {
    'content-type': 'application/xml',
    'x-ms-error-code': code,
    ...(status === 503 ? { 'retry-after': '1' } : {}),
  },
  body: `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
});

function connectionString(account: string, key: string, blob: string, queue: string, table: string): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${account};AccountKey=${key};` +
    `BlobEndpoint=${blob}/${account};QueueEndpoint=${queue}/${account};TableEndpoint=${table}/${account};`
  );
}

describe('storage faults through fault proxies in front of Azurite', () => {
  let env: FaultEnv;
  let destinationProxy: FaultProxy;
  let sourceProxy: FaultProxy;
  let graphProxy: FaultProxy;
  let host: HostProcess;
  /** Container creates (`PUT ?restype=container`) of the destination still to refuse, and with which status. */
  let containerCreatesToRefuse = 0;
  let containerRefusalStatus = 503;
  const counters = new Map<string, number>();
  const count = (key: string) => {
    const n = (counters.get(key) ?? 0) + 1;
    counters.set(key, n);
    return n;
  };
  /** Currency of a storage request: `currency=XXX` (destination) or `Currency=XXX` (source) in its path. */
  const currencyIn = (request: { url: string }) => /[Cc]urrency=([A-Z]{3})/.exec(decodeURIComponent(request.url))?.[1];

  before(async () => {
    env = await startFaultEnv({ scenario: { blobCount: 3 } });
    const blobOrigin = env.azurite.blobEndpoint;
    destinationProxy = await startFaultProxy({
      target: blobOrigin,
      currencyOf: currencyIn,
      decide: (request) => {
        const currency = request.currency;
        const isCopy = request.headers['x-ms-copy-source'] !== undefined;
        if (request.method === 'PUT' && request.url.includes('restype=container') && containerCreatesToRefuse > 0) {
          containerCreatesToRefuse--;
          return containerRefusalStatus === 503
            ? storageError(503, 'ServerBusy', 'The server is busy.')
            : storageError(containerRefusalStatus, 'BadGateway', 'The gateway could not reach the service.');
        }
        if (currency === 'TAA' && request.method === 'PUT' && isCopy) {
          return storageError(403, 'CannotVerifyCopySource', 'Server failed to authenticate the copy source.');
        }
        if (currency === 'TAB' && request.method === 'PUT' && count('TAB/put') <= 4) {
          return storageError(503, 'ServerBusy', 'The server is busy.');
        }
        return undefined;
      },
    });
    sourceProxy = await startFaultProxy({
      target: blobOrigin,
      currencyOf: currencyIn,
      decide: (request) => {
        const currency = request.currency;
        const name = request.url.split('?')[0] ?? '';
        if (currency === 'TAD' && request.method === 'GET' && count(`TAD/${name}`) === 1) {
          return { kind: 'truncate', bytes: 100 };
        }
        return undefined;
      },
    });
    graphProxy = await startFaultProxy({
      target: env.emulator.baseUrl,
      targetCaPem: env.emulator.caCertPem,
      rewriteJson: (json) => {
        const body = json as { resourceLocation?: Record<string, unknown> };
        const manifest = body.resourceLocation;
        const root = manifest?.['rootDirectory'];
        if (manifest === undefined || typeof root !== 'string') return json;
        manifest['rootDirectory'] = root.split(blobOrigin).join(sourceProxy.origin);
        if (/Currency=TAH/.test(root)) {
          manifest['blobs'] = [];
          manifest['blobCount'] = 0;
        }
        if (/Currency=TAC/.test(root) && Array.isArray(manifest['blobs'])) {
          manifest['blobs'].push({ name: 'part-missing.json.gz', partitionValue: 'default' });
          manifest['blobCount'] = manifest['blobs'].length;
        }
        return json;
      },
    });
    host = await env.spawnHost({ name: 'storage-faults', env: destinationSettings() });
  });

  after(async () => {
    await env?.killAll();
    await graphProxy?.stop();
    await sourceProxy?.stop();
    await destinationProxy?.stop();
    await env?.stop();
  });

  function destinationSettings(container?: string): Record<string, string> {
    const key = env.azurite.accountKey(PARTNER_DEST_ACCOUNT.name);
    return {
      GRAPH_BASE_URL: graphProxy.baseUrl,
      GRAPH_CA_CERT_FILE: graphProxy.caCertPath ?? '',
      DESTINATION_STORAGE: connectionString(
        PARTNER_DEST_ACCOUNT.name,
        key,
        destinationProxy.origin,
        env.azurite.queueEndpoint,
        env.azurite.tableEndpoint,
      ),
      FAULTS_RECEIVE_VISIBILITY_SECONDS: '60',
      ...(container === undefined ? {} : { DESTINATION_CONTAINER: container }),
    };
  }

  /**
   * This case's own host, whose host storage reaches its queue or table service through `proxy`. The shared host
   * stops first: this one must be the only one serving the queues, or the shared one answers past the proxy.
   */
  async function spawnHostBehind(
    name: string,
    service: 'queue' | 'table',
    proxy: FaultProxy,
    extra: Record<string, string> = {},
  ): Promise<HostProcess> {
    await host.stop();
    const hostConnection = connectionString(
      DEV_STORE_ACCOUNT.name,
      env.azurite.accountKey(DEV_STORE_ACCOUNT.name),
      env.azurite.blobEndpoint,
      service === 'queue' ? proxy.origin : env.azurite.queueEndpoint,
      service === 'table' ? proxy.origin : env.azurite.tableEndpoint,
    );
    return env.spawnHost({ name, env: { ...destinationSettings(), AzureWebJobsStorage: hostConnection, ...extra } });
  }

  async function startAndSettle(h: HostProcess, currencies: string[]) {
    const posted = await env.post(h, { currencies });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const runs = (posted.json as { runs: Array<{ runId: string }> }).runs;
    return env.settle(
      runs.map((r) => r.runId),
      180_000,
    );
  }

  it('refused server-side copy (streamed), 503 throttling, a missing source blob, a source shorter than announced', async () => {
    const ended = await startAndSettle(host, ['TAA', 'TAB', 'TAC', 'TAD']);
    await env.drain(30_000).catch(() => undefined);
    const failures: string[] = [];
    const check = async (currency: string, fn: () => Promise<void>) => {
      try {
        await fn();
      } catch (error) {
        failures.push(`${currency}: ${(error as Error).message.split('\n').slice(0, 3).join(' ')}`);
      }
    };
    const runOf = (currency: string) => {
      const run = ended.find((r) => r.currency === currency);
      assert.ok(run !== undefined, 'a run');
      return run;
    };
    await check('TAA', async () => {
      const run = runOf('TAA');
      assert.equal(run.status, 'succeeded', `${run.status} ${run.error ?? ''}`);
      const methods = (await env.ledger.listBlobs(run.runId)).map((b) => b.method);
      assert.ok(methods.length > 0 && methods.every((m) => m === 'stream'), `streamed: ${methods.join(',')}`);
      // A streamed copy hashes its bytes: manifest.json carries that Content-MD5 (checkSeries compares it with them).
      const manifest = JSON.parse((await env.downloadDestination(`${run.path}/manifest.json`)).toString('utf8')) as {
        blobs: Array<{ contentMd5?: string }>;
      };
      assert.ok(manifest.blobs.length > 0 && manifest.blobs.every((b) => b.contentMd5 !== undefined), 'contentMd5');
      assert.ok(
        destinationProxy.log.some((e) => e.currency === 'TAA' && e.status === 403),
        'the refusal was served',
      );
    });
    await check('TAB', async () => {
      const run = runOf('TAB');
      assert.equal(run.status, 'succeeded', `${run.status} ${run.error ?? ''}`);
      assert.ok(destinationProxy.log.filter((e) => e.currency === 'TAB' && e.status === 503).length >= 4);
    });
    await check('TAC', async () => {
      const run = runOf('TAC');
      assert.equal(run.status, 'failed', `${run.status} ${run.error ?? ''}`);
      assert.match(`${run.error ?? ''} ${run.lastError ?? ''}`, /part-missing\.json\.gz|does not exist|404/);
    });
    await check('TAD', async () => {
      const run = runOf('TAD');
      assert.equal(run.status, 'succeeded', `${run.status} ${run.error ?? ''}`);
      assert.ok(
        sourceProxy.log.some((e) => e.currency === 'TAD' && e.action === 'truncate'),
        'bodies were cut short',
      );
    });
    for (const currency of ['TAA', 'TAB', 'TAC', 'TAD']) {
      await check(currency, async () => {
        const run = runOf(currency);
        assert.equal((await endEventsOf(env, run.runId)).length, 1, 'ended once');
        const report = await checkSeries(env, { currency, expectSuccess: currency !== 'TAC' });
        assert.deepEqual(report.problems, [], describeReport(report));
      });
    }
    assert.deepEqual(failures, []);
  });

  it('the destination container deleted mid-run: the run ends (not stuck) and no folder is misreported', async () => {
    await host.stop(); // this case's own host must be the only one serving the queues
    const container = uniqueName('deleted');
    env.containers.push(container);
    env.emulator.configure({ blobCount: 8, pollsBeforeSuccess: 1 }, 'TAE');
    const h = await env.spawnHost({
      name: 'storage-container-deleted',
      env: { ...destinationSettings(container), EXPORT_COPY_CONCURRENCY: '1', FAULTS_BATCH_SIZE: '1' },
    });
    try {
      const posted = await env.post(h, { currencies: ['TAE'] });
      assert.equal(posted.status, 202, JSON.stringify(posted.json));
      const runId = (posted.json as { runs: Array<{ runId: string }> }).runs[0]?.runId ?? '';
      await env.waitUntil('the first copied blob', async () => {
        const run = (await env.ledger.getRun(runId))?.value;
        return run !== undefined && (run.blobsCopied >= 1 || (run.status !== 'copying' && run.path !== undefined))
          ? run
          : undefined;
      });
      await env.destination(container).delete();
      const [run] = await env.settle([runId], 180_000);
      assert.ok(run !== undefined);
      assert.ok(['succeeded', 'failed'].includes(run.status), `ended, not ${run.status}`);
      if (run.status === 'failed') assert.match(run.error ?? '', /container|ContainerNotFound|404/i);
      const report = await checkSeries(env, { currency: 'TAE', container, expectSuccess: false });
      assert.deepEqual(report.problems, [], describeReport(report));
      assert.equal((await endEventsOf(env, runId)).length, 1);
    } finally {
      await h.stop();
    }
  });

  it('a 403 from host storage (no role to send queue messages) fails the run at once, naming the role', async () => {
    const queueProxy = await startFaultProxy({
      target: env.azurite.queueEndpoint,
      decide: (request) =>
        request.method === 'POST' && request.url.includes(`/${QueueNames.copy}/messages`)
          ? storageError(
              403,
              'AuthorizationPermissionMismatch',
              'This request is not authorized to perform this operation using this permission.',
            )
          : undefined,
    });
    const h = await spawnHostBehind('storage-host-403', 'queue', queueProxy, {
      FAULTS_RECEIVE_VISIBILITY_SECONDS: '8',
    });
    try {
      const [run] = await startAndSettle(h, ['TAF']);
      assert.ok(run !== undefined);
      const refused = queueProxy.log.filter((e) => e.status === 403).length;
      assert.equal(run.status, 'failed', `${run.status} ${run.error ?? ''}`);
      assert.match(
        run.error ?? '',
        /Storage Queue Data (Contributor|Message Sender)/,
        `names the role to grant: ${run.errorCode} ${run.error} (${refused} refused sends)`,
      );
      assert.notEqual(run.errorCode, 'MESSAGE_POISONED', 'failed at once, not retried into the poison queue');
      assert.ok(
        !env.logs.some((l) => l.host === h.name && /Attempt [2-9] failed/.test(l.line) && l.line.includes('403')),
        `failed at once, not redelivered (${refused} refused sends)`,
      );
      assert.equal((await endEventsOf(env, run.runId)).length, 1);
    } finally {
      await h.stop();
      await queueProxy.stop();
    }
  });

  it('host storage failing for the first currency of the timer does not stop the others; the invocation fails naming it', async () => {
    const tableProxy = await startFaultProxy({
      target: env.azurite.tableEndpoint,
      decide: (request) =>
        request.method === 'POST' && request.body.toString('utf8').includes('UAH-current-full')
          ? storageError(503, 'ServerBusy', 'The server is busy.')
          : undefined,
    });
    const h = await spawnHostBehind('storage-timer-one-fails', 'table', tableProxy, {
      EXPORT_CURRENCIES: 'UAH,UGX,UYU',
    });
    try {
      const response = await fetch(`${h.http}/admin/functions/startExportsTimer`, { method: 'POST' });
      assert.equal(response.status, 202);
      const others = await env.waitUntil(
        'UGX and UYU to be started although UAH failed',
        async () => {
          const runs = [...(await env.runsOf('UGX')), ...(await env.runsOf('UYU'))];
          return runs.length >= 2 ? runs : undefined;
        },
        60_000,
      );
      const ended = await env.settle(
        others.map((r) => r.runId),
        120_000,
      );
      assert.deepEqual(
        ended.map((r) => `${r.currency} ${r.status}`),
        ['UGX succeeded', 'UYU succeeded'],
      );
      await env.waitUntil(
        'an error of startExportsTimer naming UAH',
        async () =>
          env.logs.some(
            (l) => l.host === h.name && l.fn === 'startExportsTimer' && l.level === 'error' && l.line.includes('UAH'),
          )
            ? true
            : undefined,
        30_000,
      );
    } finally {
      await h.stop();
      await tableProxy.stop();
    }
  });

  it('sending the first status check fails after Graph accepted: the run is still checked and completes', async () => {
    let refused = 0;
    const queueProxy = await startFaultProxy({
      target: env.azurite.queueEndpoint,
      // The queue SDK tries a send 4 times: all four attempts of the first send fail.
      decide: (request) =>
        request.method === 'POST' && request.url.includes(`/${QueueNames.status}/messages`) && refused++ < 4
          ? storageError(503, 'ServerBusy', 'The server is busy.')
          : undefined,
    });
    const h = await spawnHostBehind('storage-first-status-fails', 'queue', queueProxy);
    try {
      const posted = await env.post(h, { currencies: ['TAG'] });
      assert.ok([202, 500].includes(posted.status), JSON.stringify(posted.json));
      const started = await env.waitUntil('a run of TAG', async () => (await env.runsOf('TAG'))[0]);
      await finishWithSupervisor(env, 'TAG');
      const [run] = await env.settle([started.runId], 5_000);
      assert.equal(run?.status, 'succeeded', `${run?.status} ${run?.error ?? ''}`);
      assert.ok(refused >= 4, 'the first status message was refused');
      const report = await checkSeries(env, { currency: 'TAG' });
      assert.deepEqual(report.problems, [], describeReport(report));
    } finally {
      await h.stop();
      await queueProxy.stop();
    }
  });

  it('an export with zero blobs whose completion write fails once still ends, exactly once', async () => {
    let refused = 0;
    const tableProxy = await startFaultProxy({
      target: env.azurite.tableEndpoint,
      // The table SDK tries a write 4 times: all four attempts of the first final-status write fail.
      decide: (request) =>
        request.method !== 'GET' &&
        /"status":"(succeeded|unchanged|noData)"/.test(request.body.toString('utf8')) &&
        refused++ < 4
          ? storageError(503, 'ServerBusy', 'The server is busy.')
          : undefined,
    });
    const h = await spawnHostBehind('storage-empty-export', 'table', tableProxy);
    try {
      const posted = await env.post(h, { currencies: ['TAH'] });
      assert.equal(posted.status, 202, JSON.stringify(posted.json));
      const runId = (posted.json as { runs: Array<{ runId: string }> }).runs[0]?.runId ?? '';
      await finishWithSupervisor(env, 'TAH');
      const [run] = await env.settle([runId], 5_000);
      assert.ok(
        run !== undefined && ['succeeded', 'noData'].includes(run.status),
        `${run?.status} ${run?.error ?? ''}`,
      );
      assert.ok(refused >= 4, 'the completion write was refused');
      // The end event reaches the ingestion endpoint a moment after the ledger write (telemetry is flushed every
      // 300 ms): wait for it, then for any second one.
      await env.waitUntil(
        'its end event',
        async () => (terminalEvents(env, runId).length > 0 ? true : undefined),
        10_000,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(terminalEvents(env, runId).length, 1, 'ended once');
      const report = await checkSeries(env, { currency: 'TAH', expectSuccess: false });
      assert.deepEqual(report.problems, [], describeReport(report));
    } finally {
      await h.stop();
      await tableProxy.stop();
    }
  });

  it(`a destination ${FULL ? '503 (every SDK try)' : '502'} during the timer: the container is tried again and every currency of the day starts and succeeds`, async () => {
    await host.stop(); // this case's own host must be the only one serving the queues
    const container = uniqueName('busy');
    env.containers.push(container);
    // The SDK's first container create must reject. Full scale: 503 ServerBusy to each of its 4 tries (it retries
    // 503 with 0, 4 and 12 s waits); reduced: one 502, which the SDK does not retry, so it rejects at once.
    containerRefusalStatus = FULL ? 503 : 502;
    containerCreatesToRefuse = FULL ? 4 : 1;
    const h = await env.spawnHost({
      name: 'storage-timer-destination-503',
      env: { ...destinationSettings(container), EXPORT_CURRENCIES: 'BAM,BBD' },
    });
    try {
      const response = await fetch(`${h.http}/admin/functions/startExportsTimer`, { method: 'POST' });
      assert.equal(response.status, 202);
      const started = await env.waitUntil(
        'BAM and BBD to start although the first container create failed',
        async () => {
          const runs = [...(await env.runsOf('BAM')), ...(await env.runsOf('BBD'))];
          return runs.length >= 2 ? runs : undefined;
        },
        60_000,
      );
      const ended = await env.settle(
        started.map((r) => r.runId),
        120_000,
      );
      assert.deepEqual(
        ended.map((r) => `${r.currency} ${r.status}`),
        ['BAM succeeded', 'BBD succeeded'],
      );
      assert.equal(containerCreatesToRefuse, 0, 'the first container create was refused');
      for (const currency of ['BAM', 'BBD']) {
        const report = await checkSeries(env, { currency, container });
        assert.deepEqual(report.problems, [], describeReport(report));
      }
    } finally {
      containerCreatesToRefuse = 0;
      await h.stop();
    }
  });

  it('an unreadable row among good ones: the supervisor still resumes and fails the good runs, and reports the row', async () => {
    await host.stop();
    const now = Date.now();
    const runIdAt = (ms: number) =>
      `${new Date(ms).toISOString().replace(/[-:]/g, '').replace('.', '')}-${randomBytes(4).toString('hex')}`;
    const row = (currency: string, startedMs: number, fields: Partial<RunRecord>): RunRecord => ({
      runId: runIdAt(startedMs),
      currency,
      billingPeriod: 'current',
      attributeSet: 'full',
      trigger: 'schedule',
      status: 'starting',
      force: false,
      startedAt: new Date(startedMs).toISOString(),
      updatedAt: new Date(startedMs).toISOString(),
      polls: 0,
      blobsCopied: 0,
      byteCount: 0,
      startAttempts: 0,
      ...fields,
    });
    // As a start that died right after writing its row leaves it (crash point start.afterRunRow): resumed.
    const interrupted = row('UCA', now - 60_000, {});
    // Started two days ago and never ended: past every limit, failed.
    const ancient = row('UCB', now - 2 * 86400_000, {
      status: 'waiting',
      updatedAt: new Date(now - 60_000).toISOString(),
    });
    for (const r of [interrupted, ancient]) await env.ledger.createRun(r);
    // Written by a newer version before a rollback: a dataset this version does not know.
    const { runId: newer, ...fields } = row('UCC', now - 60_000, {});
    const runs = createTableClient(
      { kind: 'connectionString', connectionString: String(env.settings['AzureWebJobsStorage']) },
      TableNames.runs,
    );
    await runs.createEntity({ partitionKey: 'run', rowKey: newer, ...fields, dataset: 'billedUsageNextGen' });
    try {
      const { result } = await env.supervise({ name: 'supervisor-unreadable-row' });
      const report = result as SupervisionReport;
      assert.ok(report.resumed >= 1 && report.ended >= 1 && report.errors >= 1, JSON.stringify(report));
      assert.ok(
        env.logs.some((l) => l.level === 'error' && l.line.includes(newer) && l.line.includes('RUN_UNREADABLE')),
        'an error line names the row',
      );
      await env.waitUntil(
        'ExportRunUnreadable of the row',
        async () =>
          env.ingestion.items.some(
            (item) => item.name === TelemetryEvents.runUnreadable && item.properties['runId'] === newer,
          )
            ? true
            : undefined,
        10_000,
      );
      const failed = (await env.ledger.getRun(ancient.runId))?.value;
      assert.equal(failed?.status, 'failed');
      assert.equal(failed?.errorCode, 'RUN_STALLED');
      const h = await env.spawnHost({ name: 'storage-unreadable-row' });
      try {
        const [resumed] = await env.settle([interrupted.runId], 60_000);
        assert.equal(resumed?.status, 'succeeded', `${resumed?.status} ${resumed?.error ?? ''}`);
      } finally {
        await h.stop();
      }
    } finally {
      // The other cases list the whole ledger (the secret scan): the row goes once this case has seen it handled.
      await runs.deleteEntity('run', newer);
    }
  });

  it('no SAS or token in any log, ledger row, telemetry item or blob', async () => {
    const scan = await scanForSecrets(env);
    assert.deepEqual(scan.problems, []);
  });
});
