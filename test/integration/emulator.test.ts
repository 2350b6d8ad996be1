import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { EMULATOR_DEV_TOKEN } from '../../src/adapters/graph/devToken';
import {
  type EmulatorOptions,
  type PartnerBillingEmulator,
  startPartnerBillingEmulator,
} from '../../src/emulator/partnerBillingEmulator';
import { BASIC_USAGE_COLUMNS, FULL_USAGE_COLUMNS } from '../../src/emulator/usageColumns';
import { exportSourceStorage } from '../../src/local/azurite';
import { useAzurite } from '../support/azurite';
import { asRecord, asString, json, type Reply, send } from '../support/http';

const GUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const EXPORT_PATH = '/reports/partners/billing/usage/unbilled/export';
const NAMESPACED_EXPORT_PATH = '/reports/partners/billing/usage/unbilled/microsoft.graph.partners.billing.export';

const azurite = useAzurite();

describe('partner billing emulator', () => {
  let emulator: PartnerBillingEmulator;

  const storageOptions = (): EmulatorOptions['storage'] => exportSourceStorage(azurite());

  const baseScenario = {
    dialect: 'inline',
    successStatus: 'succeeded',
    odataType: false,
    pollsBeforeSuccess: 0,
    durationMs: 0,
    retryAfterSeconds: 1,
    outcome: 'succeeded',
    blobCount: 2,
    rowsPerBlob: 150,
    seed: 7,
    sasLifetimeSeconds: 3600,
    expiredSasOnFirstManifests: 0,
    unknownStatusPolls: 0,
  } as const;

  before(async () => {
    emulator = await startPartnerBillingEmulator({ storage: storageOptions(), scenario: baseScenario });
  });
  after(async () => {
    await emulator.stop();
  });

  const authorized = (extra: Record<string, string> = {}): Record<string, string> => ({
    Authorization: `Bearer ${EMULATOR_DEV_TOKEN}`,
    ...extra,
  });

  const graph = (path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    send(path.startsWith('https://') ? path : `${emulator.baseUrl}${path}`, { ...options, ca: emulator.caCertPem });

  const postExport = (body: unknown, path = `${emulator.baseUrl}${EXPORT_PATH}`): Promise<Reply> =>
    send(path, {
      method: 'POST',
      headers: authorized({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
      ca: emulator.caCertPem,
    });

  const startExport = async (body: Record<string, unknown> = {}): Promise<string> => {
    const reply = await postExport({ currencyCode: 'USD', billingPeriod: 'current', attributeSet: 'full', ...body });
    assert.equal(reply.status, 202, reply.body.toString());
    return asString(reply.headers.location, 'Location');
  };

  const poll = async (location: string): Promise<Reply> => graph(location, { headers: authorized() });

  /** Polls until the operation leaves notStarted/running/unknownFutureValue; returns the final body. */
  const pollToEnd = async (location: string): Promise<Record<string, unknown>> => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const reply = await poll(location);
      assert.equal(reply.status, 200, reply.body.toString());
      const body = json(reply);
      if (!['notStarted', 'running', 'unknownFutureValue'].includes(asString(body['status']))) return body;
    }
    assert.fail('the operation never finished');
  };

  const manifestOf = async (operation: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const inline = operation['resourceLocation'];
    if (inline !== undefined) return asRecord(inline, 'resourceLocation');
    const link = asString(operation['resourceLocation@odata.navigationLink'], 'navigationLink');
    const reply = await graph(link, { headers: authorized() });
    assert.equal(reply.status, 200, reply.body.toString());
    return json(reply);
  };

  const blobUrls = (manifest: Record<string, unknown>): string[] => {
    const blobs = manifest['blobs'];
    assert.ok(Array.isArray(blobs));
    return blobs.map(
      (blob) =>
        `${asString(manifest['rootDirectory'])}/${asString(asRecord(blob)['name'])}?${asString(manifest['sasToken'])}`,
    );
  };

  describe('transport and authentication', () => {
    it('serves HTTPS with a certificate for 127.0.0.1 and localhost signed by the CA it exposes', async () => {
      assert.match(emulator.baseUrl, /^https:\/\/127\.0\.0\.1:\d+\/v1\.0$/);
      assert.equal(readFileSync(emulator.caCertPath, 'utf8'), emulator.caCertPem);
      await assert.rejects(send(`${emulator.baseUrl}${EXPORT_PATH}`, { method: 'POST' }), /certificate/i);
      const viaLocalhost = emulator.baseUrl.replace('127.0.0.1', 'localhost');
      const reply = await send(`${viaLocalhost}${EXPORT_PATH}`, {
        method: 'POST',
        headers: authorized({ 'Content-Type': 'application/json' }),
        body: JSON.stringify({ currencyCode: 'USD', billingPeriod: 'current' }),
        ca: emulator.caCertPem,
      });
      assert.equal(reply.status, 202);
      assert.ok(asString(reply.headers.location).startsWith(`${viaLocalhost}/reports/partners/billing/operations/`));
    });

    it('answers 401 with the Graph error envelope when the bearer token is missing or wrong', async () => {
      const variants: Array<Record<string, string>> = [
        {},
        { Authorization: 'Bearer not-the-token' },
        { Authorization: 'Basic abc' },
      ];
      for (const headers of variants) {
        const reply = await send(`${emulator.baseUrl}${EXPORT_PATH}`, {
          method: 'POST',
          headers: {
            'Content-Type': 'application/json',
            'client-request-id': 'c0ffee00-1111-2222-3333-444455556666',
            ...headers,
          },
          body: JSON.stringify({ currencyCode: 'USD', billingPeriod: 'current' }),
          ca: emulator.caCertPem,
        });
        assert.equal(reply.status, 401);
        const error = asRecord(json(reply)['error']);
        assert.equal(error['code'], 'InvalidAuthenticationToken');
        assert.equal(typeof error['message'], 'string');
        const inner = asRecord(error['innerError']);
        assert.match(asString(inner['request-id']), new RegExp(`^${GUID}$`));
        assert.equal(inner['client-request-id'], 'c0ffee00-1111-2222-3333-444455556666');
        assert.equal(typeof inner['date'], 'string');
        assert.equal(reply.headers['request-id'], inner['request-id']);
        assert.equal(reply.headers['client-request-id'], 'c0ffee00-1111-2222-3333-444455556666');
      }
      const last = emulator.requests.at(-1);
      assert.deepEqual(last && { ...last }, {
        method: 'POST',
        path: `/v1.0${EXPORT_PATH}`,
        authorized: false,
        status: 401,
      });
      assert.ok(!JSON.stringify(emulator.requests).includes(EMULATOR_DEV_TOKEN), 'the request log holds no token');
    });

    it('answers 404 for unknown operations, manifests and paths and 405 for a wrong method', async () => {
      const missing = '00000000-0000-4000-8000-000000000000';
      assert.equal(
        (await graph(`/reports/partners/billing/operations/${missing}`, { headers: authorized() })).status,
        404,
      );
      assert.equal(
        (await graph(`/reports/partners/billing/manifests/${missing}`, { headers: authorized() })).status,
        404,
      );
      assert.equal((await graph('/reports/partners/billing/nothing', { headers: authorized() })).status, 404);
      const wrongMethod = await graph(EXPORT_PATH, { headers: authorized() });
      assert.equal(wrongMethod.status, 405);
      assert.equal(asRecord(json(wrongMethod)['error'])['code'], 'MethodNotAllowed');
    });
  });

  describe('export POST', () => {
    it('rejects invalid bodies with a Graph-style 400 naming the problem', async () => {
      const cases: Array<{ contentType: string; body: string; mentions: RegExp }> = [
        { contentType: 'application/json', body: '{}', mentions: /currencyCode/ },
        {
          contentType: 'application/json',
          body: '{"currencyCode":"US","billingPeriod":"current"}',
          mentions: /currencyCode/,
        },
        {
          contentType: 'application/json',
          body: '{"currencyCode":"U5D","billingPeriod":"current"}',
          mentions: /currencyCode/,
        },
        {
          contentType: 'application/json',
          body: '{"currencyCode":42,"billingPeriod":"current"}',
          mentions: /currencyCode/,
        },
        { contentType: 'application/json', body: '{"currencyCode":"USD"}', mentions: /billingPeriod/ },
        {
          contentType: 'application/json',
          body: '{"currencyCode":"USD","billingPeriod":"previous"}',
          mentions: /billingPeriod/,
        },
        {
          contentType: 'application/json',
          body: '{"currencyCode":"USD","billingPeriod":"current","attributeSet":"everything"}',
          mentions: /attributeSet/,
        },
        {
          contentType: 'application/json',
          body: '{"currencyCode":"USD","billingPeriod":"current","invoiceId":"G1"}',
          mentions: /invoiceId/,
        },
        { contentType: 'application/json', body: '{"currencyCode":"USD",', mentions: /JSON/ },
        { contentType: 'application/json', body: '["USD"]', mentions: /object/ },
        {
          contentType: 'text/plain',
          body: '{"currencyCode":"USD","billingPeriod":"current"}',
          mentions: /Content-Type/,
        },
      ];
      for (const testCase of cases) {
        const reply = await graph(EXPORT_PATH, {
          method: 'POST',
          headers: authorized({ 'Content-Type': testCase.contentType }),
          body: testCase.body,
        });
        assert.equal(reply.status, 400, `${testCase.body} -> ${reply.status}`);
        const error = asRecord(json(reply)['error']);
        assert.equal(error['code'], 'BadRequest');
        assert.match(asString(error['message']), testCase.mentions, testCase.body);
        assert.ok(asRecord(error['innerError'])['request-id']);
      }
      const missingType = await graph(EXPORT_PATH, {
        method: 'POST',
        headers: authorized(),
        body: '{"currencyCode":"USD","billingPeriod":"current"}',
      });
      assert.equal(missingType.status, 400);
    });

    it('accepts both action path forms on v1.0 and beta with 202, an empty body and an absolute Location', async () => {
      const origin = new URL(emulator.baseUrl).origin;
      for (const version of ['v1.0', 'beta']) {
        for (const path of [EXPORT_PATH, NAMESPACED_EXPORT_PATH]) {
          const reply = await postExport(
            { currencyCode: 'usd', billingPeriod: 'last', attributeSet: 'basic' },
            `${origin}/${version}${path}`,
          );
          assert.equal(reply.status, 202, `${version}${path}`);
          assert.equal(reply.body.length, 0);
          assert.match(
            asString(reply.headers.location),
            new RegExp(
              `^${origin.replace(/\./g, '\\.')}/${version.replace('.', '\\.')}/reports/partners/billing/operations/${GUID}$`,
            ),
          );
          assert.ok(reply.headers['request-id']);
        }
      }
      const created = emulator.operations().at(-1);
      assert.ok(created);
      assert.equal(created.currency, 'USD');
      assert.equal(created.billingPeriod, 'last');
      assert.equal(created.attributeSet, 'basic');
      assert.equal(created.status, 'notStarted');
    });
  });

  describe('operation lifecycle', () => {
    it('answers notStarted then running with Retry-After, then succeeded with the manifest inline (live dialect)', async () => {
      emulator.configure({ pollsBeforeSuccess: 3, retryAfterSeconds: 7 });
      try {
        const location = await startExport();
        const statuses: string[] = [];
        for (let i = 0; i < 3; i++) {
          const reply = await poll(location);
          assert.equal(reply.status, 200);
          assert.equal(reply.headers['retry-after'], '7');
          const body = json(reply);
          assert.equal(body['@odata.type'], undefined);
          assert.equal(body['resourceLocation'], undefined);
          statuses.push(asString(body['status']));
        }
        assert.deepEqual(statuses, ['notStarted', 'running', 'running']);
        const done = await poll(location);
        assert.equal(done.headers['retry-after'], undefined);
        const operation = json(done);
        assert.equal(operation['status'], 'succeeded');
        assert.equal(operation['id'], location.split('/').at(-1));
        assert.match(asString(operation['createdDateTime']), /Z$/);
        assert.equal(operation['resourceLocation@odata.navigationLink'], undefined);
        assert.ok(!JSON.stringify(operation).includes('@odata.type'), 'no @odata.type anywhere');
        const manifest = asRecord(operation['resourceLocation']);
        assert.equal(manifest['schemaVersion'], '2');
        assert.equal(manifest['partitionType'], 'default');
        assert.equal(manifest['dataFormat'], 'compressedJSON');
        assert.match(asString(manifest['id']), new RegExp(`^${GUID}$`));
        assert.notEqual(manifest['id'], operation['id']);
        assert.match(asString(manifest['eTag']), /^[A-Za-z0-9]{17}$/);
        assert.equal(manifest['blobCount'], 2);
        const tracked = emulator.operations().find((candidate) => candidate.id === operation['id']);
        assert.equal(tracked?.status, 'succeeded');
        assert.equal(tracked?.manifestId, manifest['id']);
        assert.equal(tracked?.eTag, manifest['eTag']);
      } finally {
        emulator.configure({ pollsBeforeSuccess: 0, retryAfterSeconds: 1 });
      }
    });

    it('answers unknownFutureValue for the configured extra polls and omits Retry-After when it is 0', async () => {
      emulator.configure({ pollsBeforeSuccess: 2, unknownStatusPolls: 2, retryAfterSeconds: 0 });
      try {
        const location = await startExport();
        const statuses: string[] = [];
        for (let i = 0; i < 5; i++) {
          const reply = await poll(location);
          assert.equal(reply.headers['retry-after'], undefined);
          statuses.push(asString(json(reply)['status']));
        }
        assert.deepEqual(statuses, ['notStarted', 'unknownFutureValue', 'unknownFutureValue', 'running', 'succeeded']);
      } finally {
        emulator.configure({ pollsBeforeSuccess: 0, unknownStatusPolls: 0, retryAfterSeconds: 1 });
      }
    });

    it('keeps a slow operation running until its duration has passed', async () => {
      emulator.configure({ durationMs: 400 });
      try {
        const location = await startExport();
        assert.equal(json(await poll(location))['status'], 'notStarted');
        assert.equal(json(await poll(location))['status'], 'running');
        await new Promise((resolve) => setTimeout(resolve, 450));
        assert.equal(json(await poll(location))['status'], 'succeeded');
      } finally {
        emulator.configure({ durationMs: 0 });
      }
    });

    it('serves the documented dialect: completed, @odata.type, navigationLink and GET /manifests/{id}', async () => {
      emulator.configure({
        dialect: 'navigationLink',
        successStatus: 'completed',
        odataType: true,
        pollsBeforeSuccess: 1,
      });
      try {
        const location = await startExport({ currencyCode: 'EUR' });
        const running = json(await poll(location));
        assert.equal(running['@odata.type'], '#microsoft.graph.partners.billing.runningOperation');
        assert.equal(running['status'], 'notStarted');
        const operation = json(await poll(location));
        assert.equal(operation['@odata.type'], '#microsoft.graph.partners.billing.exportSuccessOperation');
        assert.equal(operation['status'], 'completed');
        assert.match(asString(operation['createdDateTime']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
        assert.match(asString(operation['lastActionDateTime']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
        assert.equal(operation['resourceLocation'], undefined);
        const link = asString(operation['resourceLocation@odata.navigationLink']);
        assert.match(
          link,
          new RegExp(`^${emulator.baseUrl.replace(/\./g, '\\.')}/reports/partners/billing/manifests/${GUID}$`),
        );
        const manifestReply = await graph(link, { headers: authorized() });
        assert.equal(manifestReply.status, 200);
        const manifest = json(manifestReply);
        assert.equal(manifest['@odata.type'], '#microsoft.graph.partners.billing.manifest');
        assert.equal(manifest['id'], link.split('/').at(-1));
        assert.equal(manifest['schemaVersion'], '1');
        assert.equal(manifest['partitionType'], 'Default');
        const downloaded = await send(blobUrls(manifest)[0]!);
        assert.equal(downloaded.status, 200);
        const unauthorizedManifest = await graph(link);
        assert.equal(unauthorizedManifest.status, 401);
      } finally {
        emulator.configure({ dialect: 'inline', successStatus: 'succeeded', odataType: false, pollsBeforeSuccess: 0 });
      }
    });

    it('fails operations with 5000 "No data available" (noData) or another code, per currency', async () => {
      emulator.configure({ outcome: 'noData' }, 'GBP');
      emulator.configure(
        { outcome: 'failed', failureCode: '9001', failureMessage: 'Internal processing error' },
        'JPY',
      );
      emulator.configure({ odataType: true }, 'JPY');
      try {
        const noData = await pollToEnd(await startExport({ currencyCode: 'GBP' }));
        assert.equal(noData['status'], 'failed');
        assert.deepEqual(noData['error'], { message: 'No data available', code: '5000' });
        assert.equal(noData['@odata.type'], undefined);
        const failed = await pollToEnd(await startExport({ currencyCode: 'JPY' }));
        assert.equal(failed['@odata.type'], '#microsoft.graph.partners.billing.failedOperation');
        assert.deepEqual(failed['error'], { message: 'Internal processing error', code: '9001' });
        const usd = await pollToEnd(await startExport({ currencyCode: 'USD' }));
        assert.equal(usd['status'], 'succeeded', 'other currencies keep the base scenario');
      } finally {
        emulator.configure({ outcome: 'succeeded', odataType: false }, 'GBP');
        emulator.configure({ outcome: 'succeeded', odataType: false }, 'JPY');
      }
    });

    it('answers injected 429 (with Retry-After) and 503 faults in order, then recovers', async () => {
      emulator.injectFaults(
        { kind: 'throttle', on: 'export', count: 1, retryAfterSeconds: 3 },
        { kind: 'unavailable', on: 'operation', count: 2 },
        { kind: 'throttle', on: 'any', count: 1 },
      );
      const throttled = await postExport({ currencyCode: 'USD', billingPeriod: 'current' });
      assert.equal(throttled.status, 429);
      assert.equal(throttled.headers['retry-after'], '3');
      assert.equal(asRecord(json(throttled)['error'])['code'], 'TooManyRequests');
      const location = await startExport();
      for (let i = 0; i < 2; i++) {
        const unavailable = await poll(location);
        assert.equal(unavailable.status, 503);
        assert.equal(unavailable.headers['retry-after'], undefined);
        assert.equal(asRecord(json(unavailable)['error'])['code'], 'ServiceUnavailable');
      }
      const anyFault = await poll(location);
      assert.equal(anyFault.status, 429);
      assert.equal(anyFault.headers['retry-after'], '1');
      const recovered = await poll(location);
      assert.equal(recovered.status, 200);
      assert.equal(json(recovered)['status'], 'succeeded', 'faulted GETs do not count as polls');

      emulator.configure({ dialect: 'navigationLink' });
      try {
        const operation = await pollToEnd(await startExport());
        emulator.injectFaults({ kind: 'unavailable', on: 'manifest', count: 1, retryAfterSeconds: 2 });
        const link = asString(operation['resourceLocation@odata.navigationLink']);
        const faulted = await graph(link, { headers: authorized() });
        assert.equal(faulted.status, 503);
        assert.equal(faulted.headers['retry-after'], '2');
        assert.equal((await graph(link, { headers: authorized() })).status, 200);
      } finally {
        emulator.configure({ dialect: 'inline' });
      }
    });
  });

  describe('export data', () => {
    it('writes gzip JSON lines with exactly the 54 full columns, downloadable at {rootDirectory}/{name}?{sasToken}', async () => {
      const operation = await pollToEnd(await startExport({ currencyCode: 'EUR', attributeSet: 'full' }));
      const manifest = await manifestOf(operation);
      const now = new Date();
      const month = `${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
      const root = asString(manifest['rootDirectory']);
      assert.match(
        root,
        new RegExp(
          `^${azurite().blobEndpoint}/msbilling/unbilledusagefastpath/v1/\\d{12}/PartnerTenantId=${GUID}/BillingMonth=${month}/Currency=EUR/Fragment=full/PartitionType=default$`,
        ),
      );
      assert.match(asString(manifest['sasToken']), /(^|&)sig=/);
      assert.doesNotMatch(asString(manifest['sasToken']), /^\?/);
      const blobs = manifest['blobs'];
      assert.ok(Array.isArray(blobs));
      assert.equal(blobs.length, manifest['blobCount']);
      for (const blob of blobs) {
        assert.match(asString(asRecord(blob)['name']), new RegExp(`^part-\\d{5}-${GUID}\\.c000\\.json\\.gz$`));
        assert.equal(asRecord(blob)['partitionValue'], 'default');
      }
      for (const url of blobUrls(manifest)) {
        const reply = await send(url);
        assert.equal(reply.status, 200);
        assert.match(asString(reply.headers['content-type']), /^application\/(x-)?gzip$/);
        assert.equal(reply.headers['content-encoding'], undefined);
        assert.equal(reply.body[0], 0x1f, 'gzip magic');
        assert.equal(reply.body[1], 0x8b, 'gzip magic');
        const lines = gunzipSync(reply.body).toString('utf8').split('\n');
        assert.equal(lines.pop(), '', 'every line ends with a newline');
        assert.equal(lines.length, 150);
        for (const line of lines) {
          const row = asRecord(JSON.parse(line));
          assert.deepEqual(Object.keys(row), [...FULL_USAGE_COLUMNS]);
          assert.equal(row['BillingCurrency'], 'EUR');
          assert.equal(row['PartnerId'], manifest['partnerTenantId']);
          assert.equal(typeof row['Quantity'], 'number');
          assert.match(
            asString(row['UsageDate']),
            new RegExp(`^${month.slice(0, 4)}-${month.slice(4)}-\\d\\dT00:00:00Z$`),
          );
        }
      }
      assert.equal(FULL_USAGE_COLUMNS.length, 54);
      assert.equal(new Set(FULL_USAGE_COLUMNS).size, 54);
    });

    it('writes exactly the 30 basic columns for attributeSet basic, under last month for billingPeriod last', async () => {
      const operation = await pollToEnd(await startExport({ billingPeriod: 'last', attributeSet: 'basic' }));
      const manifest = await manifestOf(operation);
      const now = new Date();
      const last = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
      const month = `${last.getUTCFullYear()}${String(last.getUTCMonth() + 1).padStart(2, '0')}`;
      assert.match(
        asString(manifest['rootDirectory']),
        new RegExp(`/BillingMonth=${month}/Currency=USD/Fragment=basic/`),
      );
      const reply = await send(blobUrls(manifest)[1]!);
      assert.equal(reply.status, 200);
      const lines = gunzipSync(reply.body).toString('utf8').trimEnd().split('\n');
      assert.equal(lines.length, 150);
      const row = asRecord(JSON.parse(lines[0]!));
      assert.deepEqual(Object.keys(row), [...BASIC_USAGE_COLUMNS]);
      assert.equal(BASIC_USAGE_COLUMNS.length, 30);
      for (const line of lines) assert.equal(Object.keys(asRecord(JSON.parse(line))).length, 30);
    });

    it('gives the same bytes and eTag for the same seed, also from a fresh emulator, and different ones for another seed', async () => {
      const download = async (target: PartnerBillingEmulator): Promise<{ eTag: string; bodies: Buffer[] }> => {
        const post = await send(`${target.baseUrl}${EXPORT_PATH}`, {
          method: 'POST',
          headers: authorized({ 'Content-Type': 'application/json' }),
          body: JSON.stringify({ currencyCode: 'AUD', billingPeriod: 'current' }),
          ca: target.caCertPem,
        });
        assert.equal(post.status, 202);
        const reply = await send(asString(post.headers.location), { headers: authorized(), ca: target.caCertPem });
        const manifest = asRecord(json(reply)['resourceLocation']);
        const bodies = await Promise.all(blobUrls(manifest).map(async (url) => (await send(url)).body));
        return { eTag: asString(manifest['eTag']), bodies };
      };
      const first = await download(emulator);
      const again = await download(emulator);
      assert.equal(again.eTag, first.eTag);
      assert.deepEqual(again.bodies, first.bodies);

      const other = await startPartnerBillingEmulator({ storage: storageOptions(), scenario: baseScenario });
      try {
        const fresh = await download(other);
        assert.equal(fresh.eTag, first.eTag, 'the eTag depends only on the data');
        assert.equal(fresh.bodies.length, first.bodies.length);
        for (const [index, body] of fresh.bodies.entries()) {
          assert.ok(body.equals(first.bodies[index]!), `blob ${index} is identical`);
        }
      } finally {
        await other.stop();
      }

      emulator.configure({ seed: 8 });
      try {
        const changed = await download(emulator);
        assert.notEqual(changed.eTag, first.eTag);
        assert.ok(!changed.bodies[0]!.equals(first.bodies[0]!));
      } finally {
        emulator.configure({ seed: 7 });
      }
    });

    it('serves an already-expired SAS on the first manifests (Azurite refuses it with 403) and a fresh one after', async () => {
      emulator.configure({ expiredSasOnFirstManifests: 1 });
      const location = await startExport({ currencyCode: 'CAD' });
      const expired = asRecord(json(await poll(location))['resourceLocation']);
      const se = new URLSearchParams(asString(expired['sasToken'])).get('se');
      assert.ok(se !== null && Date.parse(se) < Date.now(), 'se is in the past');
      const refused = await send(blobUrls(expired)[0]!);
      assert.equal(refused.status, 403);
      assert.match(refused.body.toString(), /Authentication|Authorization/);

      const fresh = asRecord(json(await poll(location))['resourceLocation']);
      assert.notEqual(fresh['sasToken'], expired['sasToken']);
      assert.equal(fresh['eTag'], expired['eTag']);
      assert.equal((await send(blobUrls(fresh)[0]!)).status, 200);
    });

    it('mints SAS tokens that really expire after sasLifetimeSeconds', async () => {
      emulator.configure({ sasLifetimeSeconds: 2 });
      try {
        const manifest = await manifestOf(await pollToEnd(await startExport({ currencyCode: 'CHF' })));
        const url = blobUrls(manifest)[0]!;
        const se = Date.parse(new URLSearchParams(asString(manifest['sasToken'])).get('se') ?? '');
        assert.ok(se > Date.now() && se <= Date.now() + 2000, 'se = now + 2 s (whole seconds)');
        assert.equal((await send(url)).status, 200);
        await new Promise((resolve) => setTimeout(resolve, se - Date.now() + 1100));
        assert.equal((await send(url)).status, 403);
      } finally {
        emulator.configure({ sasLifetimeSeconds: 3600 });
      }
    });
  });
});
