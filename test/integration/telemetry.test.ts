/**
 * Telemetry on OpenTelemetry, checked at the local Application Insights ingestion endpoint.
 *
 * This process plays the Azure Functions worker: a stand-in for `@azure/functions-core` (the module only the
 * worker injects) keeps the hooks the app registers and runs them around an invocation as the worker does
 * (preInvocation hooks in order, the handler, postInvocation hooks; every context.log line to the log hooks),
 * with a W3C trace context as the host hands it. Everything else is real: the app's start-up (src/index.ts),
 * the Functions instrumentation, the Azure Monitor distro and exporter, Azurite, the partner billing emulator
 * over HTTPS and the local Functions host. Scenarios that need a process of their own (no connection string,
 * Entra authentication, an endpoint that refuses or never answers) run in child processes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Module from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { format } from 'node:util';
import type * as AzureFunctions from '@azure/functions';
import { TelemetryEvents, TelemetryMetrics } from '../../src/names';
import type { RunIdentity } from '../../src/pipeline/ports';
import type * as TelemetryModule from '../../src/telemetry/appInsightsTelemetry';
import type { Harness } from '../support/harness';
import { type IngestedItem, type IngestionMode, startIngestionServer } from '../support/ingestionServer';
import { runNodeScript } from '../support/nodeScript';
// The telemetry runtime starts in this process: nothing it does may leave the machine.
import '../support/loopbackOnly';

const SAS_SIGNATURE = 'SECRET123';
const JWT = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXJ0bmVyLWFwcCJ9.c2lnbmF0dXJlLXBhcnQ';
const SAS_URL = `https://x.blob.core.windows.net/c/b?sv=2021&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=${SAS_SIGNATURE}`;
const DIST = join(__dirname, '..', '..');

const run: RunIdentity = {
  runId: 'run-20300101-usd-current',
  currency: 'USD',
  billingPeriod: 'current',
  attributeSet: 'full',
  trigger: 'schedule',
};
const measurements = { durationMs: 125_000, blobCount: 3, byteCount: 7_340_032, polls: 4 };

// ---------------------------------------------------------------------------------------------------------
// The worker side: a stand-in for @azure/functions-core.

type Hook = (context: Record<string, unknown>) => unknown;
const hooks: Record<string, Hook[]> = {
  preInvocation: [],
  postInvocation: [],
  log: [],
  appStart: [],
  appTerminate: [],
};

const fakeCore = {
  version: '3.10.1',
  setProgrammingModel(): void {},
  registerFunction() {
    return { dispose() {} };
  },
  registerHook(name: string, callback: Hook) {
    const list = hooks[name];
    if (list === undefined) throw new RangeError(`unknown hook ${name}`);
    list.push(callback);
    return {
      dispose() {
        list.splice(list.indexOf(callback), 1);
      },
    };
  },
  log(): void {},
};

function installFakeCore(): void {
  const fakePath = join(__dirname, '__fake_azure_functions_core__.js');
  const loader = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolve = loader._resolveFilename;
  loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    return request === '@azure/functions-core' ? fakePath : resolve.call(this, request, ...rest);
  };
  const fake = new Module(fakePath);
  fake.filename = fakePath;
  fake.loaded = true;
  fake.exports = fakeCore;
  require.cache[fakePath] = fake;
}

/** A W3C trace context as the host hands it, and its trace id (the operation id in Application Insights). */
function hostTraceContext(): { traceId: string; traceParent: string } {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, traceParent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
}

/** Runs a handler as the worker does: preInvocation hooks, the handler, postInvocation hooks; logs to log hooks. */
async function invokeAsWorker(
  functions: typeof AzureFunctions,
  functionName: string,
  handler: (input: unknown, context: AzureFunctions.InvocationContext) => Promise<unknown>,
  input: unknown,
): Promise<{ traceId: string; result: unknown; error: unknown }> {
  const { traceId, traceParent } = hostTraceContext();
  let invocationContext: AzureFunctions.InvocationContext | undefined;
  invocationContext = new functions.InvocationContext({
    functionName,
    invocationId: randomBytes(8).toString('hex'),
    traceContext: { traceParent, traceState: '', attributes: {} },
    logHandler: (level, ...args) => {
      const message = format(...args);
      for (const hook of [...(hooks['log'] ?? [])]) hook({ level, message, category: 'user', invocationContext });
    },
  });
  const inputs: unknown[] = [input, invocationContext];
  const pre: Record<string, unknown> = { invocationContext, functionCallback: handler, inputs, hookData: {} };
  for (const hook of hooks['preInvocation'] ?? []) await hook(pre);
  let result: unknown;
  let error: unknown;
  try {
    result = await (pre['functionCallback'] as (...args: unknown[]) => Promise<unknown>)(...inputs);
  } catch (thrown) {
    error = thrown;
  }
  const post: Record<string, unknown> = { invocationContext, inputs, result, error, hookData: {} };
  for (const hook of hooks['postInvocation'] ?? []) await hook(post);
  return { traceId, result, error: post['error'] };
}

// ---------------------------------------------------------------------------------------------------------

function only(items: IngestedItem[], baseType: string, name: string): IngestedItem {
  const found = items.filter((item) => item.baseType === baseType && item.name === name);
  assert.equal(found.length, 1, `one ${baseType} "${name}" expected, got ${found.length}`);
  return found[0] as IngestedItem;
}

function ofOperation(items: IngestedItem[], traceId: string, baseType?: string): IngestedItem[] {
  return items.filter(
    (item) => item.tags['ai.operation.id'] === traceId && (baseType === undefined || item.baseType === baseType),
  );
}

function describeItems(items: IngestedItem[]): string {
  return items
    .map((item) => `${item.baseType} ${item.name} op=${item.tags['ai.operation.id']} ${String(item.baseData['data'])}`)
    .join('\n');
}

function assertNoSecret(texts: string[], extraSecrets: string[] = []): void {
  for (const text of texts) {
    assert.ok(!text.includes(SAS_SIGNATURE), 'a SAS signature reached the ingestion endpoint');
    assert.ok(!/sig=/i.test(text), 'a SAS sig= parameter reached the ingestion endpoint');
    assert.ok(!text.includes(JWT), 'a bearer token reached the ingestion endpoint');
    assert.ok(!text.includes('eyJ'), 'something like a JWT reached the ingestion endpoint');
    for (const secret of extraSecrets) assert.ok(!text.includes(secret), `a secret reached the ingestion endpoint`);
  }
}

/**
 * Runs `script` (CommonJS, with `dist` and `report(value)` in scope) in a fresh Node process. Asynchronous: the
 * ingestion endpoint the child talks to is served by this process.
 */
async function runChild(
  script: string,
  env: Record<string, string | undefined>,
): Promise<{ report: unknown; stderr: string }> {
  const prelude = `const dist = ${JSON.stringify(DIST)}; const report = (value) => console.log('REPORT ' + JSON.stringify(value));`;
  const childEnv: Record<string, string | undefined> = { ...process.env, NO_PROXY: '127.0.0.1,localhost' };
  for (const name of Object.keys(childEnv)) if (name.startsWith('APPLICATIONINSIGHTS_')) delete childEnv[name];
  const code = `${prelude}\n(async () => {\n${script}\n})().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });`;
  const { report, stderr } = await runNodeScript(code, { env: { ...childEnv, ...env } });
  return { report, stderr };
}

/** A child process that sends one event to an ingestion endpoint in `mode`, and what the endpoint saw. */
async function childAgainst(
  mode: IngestionMode | 'stopped',
  script: string,
): Promise<{ report: unknown; stderr: string; server: Awaited<ReturnType<typeof startIngestionServer>> }> {
  const server = await startIngestionServer();
  try {
    if (mode === 'stopped') await server.stop();
    else server.setMode(mode);
    const child = await runChild(script, {
      NODE_EXTRA_CA_CERTS: server.caCertPath,
      TEST_CONNECTION_STRING: server.connectionString,
    });
    return { ...child, server };
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------

describe('Telemetry without a connection string', () => {
  it('loads no OpenTelemetry module, registers no hook and sends nothing, app and functions loaded', async () => {
    const { report } = await runChild(
      `
      const { readdirSync } = require('node:fs');
      require(dist + '/src/index.js');
      for (const file of readdirSync(dist + '/src/functions')) if (file.endsWith('.js')) require(dist + '/src/functions/' + file);
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      const { noTelemetry } = require(dist + '/src/pipeline/ports.js');
      const same = [undefined, '', '   '].map((cs) => t.createTelemetry(cs) === noTelemetry);
      const functions = require('@azure/functions');
      const instrumented = t.instrumentFunctionsApp(functions, undefined, () => ({}));
      const telemetry = t.createTelemetry(undefined);
      telemetry.runStarted({ runId: 'r', currency: 'USD', billingPeriod: 'current', attributeSet: 'full', trigger: 'manual' });
      await telemetry.flush();
      const loaded = Object.keys(require.cache).filter((p) => /[\\\\/]node_modules[\\\\/](@opentelemetry|@azure[\\\\/]monitor-opentelemetry|@azure[\\\\/]functions-opentelemetry-instrumentation|applicationinsights)[\\\\/]/.test(p));
      report({ same, instrumented, loaded: loaded.slice(0, 5), runtime: t.telemetryRuntime() !== undefined });
    `,
      {},
    );
    assert.deepEqual(report, { same: [true, true, true], instrumented: false, loaded: [], runtime: false });
  });

  it('falls back to no telemetry when the connection string has no instrumentation key', async () => {
    const { report } = await runChild(
      `
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      const { noTelemetry } = require(dist + '/src/pipeline/ports.js');
      report(t.createTelemetry('IngestionEndpoint=https://127.0.0.1:9/') === noTelemetry);
    `,
      {},
    );
    assert.equal(report, true);
  });
  it('reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING', async () => {
    const { report } = await runChild(
      `
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      report([
        t.parseAuthenticationString('ClientId=1111-2222;Authorization=AAD'),
        t.parseAuthenticationString('Authorization=aad'),
        t.parseAuthenticationString(undefined) ?? null,
        t.parseAuthenticationString('ClientId=1111') ?? null,
      ]);
    `,
      {},
    );
    assert.deepEqual(report, [{ clientId: '1111-2222' }, {}, null, null]);
  });
});

describe('Telemetry in a process of its own', () => {
  it('authenticates with a bearer token from the given credential, under the given role name', async () => {
    const { report, server } = await childAgainst(
      'accept',
      `
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      const scopes = [];
      const credential = { async getToken(scope) { scopes.push(...(Array.isArray(scope) ? scope : [scope])); return { token: 'entra-test-token', expiresOnTimestamp: Date.now() + 3600000 }; } };
      const telemetry = t.createTelemetry(process.env.TEST_CONNECTION_STRING, { credential, roleName: 'partner-exports' });
      telemetry.runStarted({ runId: 'r', currency: 'USD', billingPeriod: 'current', attributeSet: 'full', trigger: 'manual' });
      await telemetry.flush();
      report({ scopes: [...new Set(scopes)] });
    `,
    );
    assert.deepEqual(report, { scopes: ['https://monitor.azure.com/.default'] });
    const tracks = server.requests.filter((request) => request.path === '/v2.1/track');
    assert.ok(tracks.length >= 1, 'nothing reached the ingestion endpoint');
    for (const request of tracks) assert.equal(request.headers.authorization, 'Bearer entra-test-token');
    assert.equal(only(server.items, 'EventData', TelemetryEvents.runStarted).tags['ai.cloud.role'], 'partner-exports');
  });

  it('sends with a managed identity token when APPLICATIONINSIGHTS_AUTHENTICATION_STRING asks for Entra ID', async () => {
    // The composition root reads the setting; the managed identity endpoint (App Service protocol) is local.
    const { report, server } = await childAgainst(
      'accept',
      `
      const http = require('node:http');
      const asked = [];
      const identity = http.createServer((request, response) => {
        asked.push({ url: request.url, header: request.headers['x-identity-header'] });
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ access_token: 'msi-test-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource: 'https://monitor.azure.com', token_type: 'Bearer' }));
      });
      await new Promise((resolve) => identity.listen(0, '127.0.0.1', resolve));
      process.env.IDENTITY_ENDPOINT = 'http://127.0.0.1:' + identity.address().port + '/msi/token';
      process.env.IDENTITY_HEADER = 'test-identity-header';
      const { telemetryOptions } = require(dist + '/src/composition.js');
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      const options = telemetryOptions({ APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=11111111-2222-3333-4444-555555555555' });
      const telemetry = t.createTelemetry(process.env.TEST_CONNECTION_STRING, options);
      telemetry.runStarted({ runId: 'r', currency: 'USD', billingPeriod: 'current', attributeSet: 'full', trigger: 'manual' });
      await telemetry.flush();
      identity.close();
      report(asked);
    `,
    );
    const asked = report as Array<{ url: string; header: string }>;
    assert.ok(asked.length >= 1, 'the managed identity endpoint was not asked');
    const query = new URL(asked[0]?.url ?? '', 'http://127.0.0.1').searchParams;
    assert.equal(query.get('resource'), 'https://monitor.azure.com');
    assert.equal(query.get('client_id'), '11111111-2222-3333-4444-555555555555');
    assert.equal(asked[0]?.header, 'test-identity-header');
    const tracks = server.requests.filter((request) => request.path === '/v2.1/track');
    assert.ok(tracks.length >= 1, 'nothing reached the ingestion endpoint');
    for (const request of tracks) assert.equal(request.headers.authorization, 'Bearer msi-test-token');
    only(server.items, 'EventData', TelemetryEvents.runStarted);
  });

  it('resolves flush when the ingestion endpoint cannot be reached', async () => {
    const { report } = await childAgainst(
      'stopped',
      `
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      const telemetry = t.createTelemetry(process.env.TEST_CONNECTION_STRING, { flushTimeoutMs: 60000 });
      telemetry.runFailed({ runId: 'r', currency: 'USD', billingPeriod: 'current', attributeSet: 'full', trigger: 'manual', status: 'failed', errorCode: 'X', error: 'boom' }, { durationMs: 1, blobCount: 0, byteCount: 0, polls: 1 });
      await telemetry.flush();
      report('flushed');
    `,
    );
    assert.equal(report, 'flushed');
  });

  it('resolves flush after its timeout, with a warning, when the ingestion endpoint never answers', async () => {
    const { report, stderr, server } = await childAgainst(
      'silent',
      `
      const t = require(dist + '/src/telemetry/appInsightsTelemetry.js');
      const telemetry = t.createTelemetry(process.env.TEST_CONNECTION_STRING, { flushTimeoutMs: 3000 });
      telemetry.runStarted({ runId: 'r', currency: 'USD', billingPeriod: 'current', attributeSet: 'full', trigger: 'manual' });
      await telemetry.flush();
      report('flushed');
    `,
    );
    assert.equal(report, 'flushed');
    assert.ok(server.requests.length >= 1, 'the exporter never reached the endpoint');
    assert.match(stderr, /no answer from the ingestion endpoint within 3000 ms/);
  });
});

describe('Telemetry of the app on OpenTelemetry (one process, the worker played by this test)', () => {
  let h: Harness;
  let functions: typeof AzureFunctions;
  let telemetry: typeof TelemetryModule;
  const flush = async (): Promise<void> => {
    await telemetry.telemetryRuntime()?.flush(20_000);
  };

  before(async () => {
    installFakeCore();
    // Loaded only now: @azure/functions must find the worker's module.
    const { startHarness } = require('../support/harness') as typeof import('../support/harness');
    h = await startHarness({ scenario: { blobCount: 2 } });
    functions = require('@azure/functions') as typeof AzureFunctions;
    // The app's start-up, as the worker loads it (package.json "main"): settings are in process.env now.
    require('../../src/index');
    telemetry = require('../../src/telemetry/appInsightsTelemetry') as typeof TelemetryModule;
  });

  after(async () => {
    await h?.stop();
  });

  it('registers the OpenTelemetry hooks at start-up and loads OpenTelemetry only with the first invocation', async () => {
    assert.equal((hooks['preInvocation'] ?? []).length, 1, 'the start-up hook (it runs the Functions instrumentation)');
    assert.equal((hooks['log'] ?? []).length, 1, 'the log hook (it runs the Functions instrumentation)');
    assert.equal((hooks['postInvocation'] ?? []).length, 1, 'the exception hook');
    assert.equal(telemetry.telemetryRuntime(), undefined, 'OpenTelemetry started before any invocation');
    for (const name of [
      join('@azure', 'monitor-opentelemetry'),
      join('@azure', 'functions-opentelemetry-instrumentation'),
    ]) {
      const loaded = Object.keys(require.cache).some((path) => path.includes(name));
      assert.equal(loaded, false, `${name} was loaded at start-up`);
    }
    await invokeAsWorker(functions, 'warmUp', async () => undefined, undefined);
    assert.notEqual(telemetry.telemetryRuntime(), undefined, 'OpenTelemetry did not start with the first invocation');
  });

  it('sends the run events to customEvents with their dimensions and measurements, redacted, and the run metrics', async () => {
    const t = telemetry.createTelemetry(h.ingestion.connectionString);
    const error = `Copy of ${SAS_URL} failed: 403 for Authorization: Bearer ${JWT}`;
    const runId = `${run.runId}-${randomBytes(3).toString('hex')}`;
    const mine = { ...run, runId };
    const operationId = 'op-7f3c';
    t.runStarted(mine);
    t.runCompleted({ ...mine, operationId, status: 'succeeded' }, measurements);
    t.runFailed(
      { ...mine, trigger: 'manual', operationId, status: 'failed', errorCode: 'COPY_FAILED', error },
      { ...measurements, polls: 9 },
    );
    t.messagePoisoned({
      queue: 'export-copy-poison',
      runId,
      reason: `Message for ${SAS_URL} was dequeued 5 times`,
      runStatus: 'failed',
      endedRun: true,
      dataset: 'billedUsage',
      invoiceId: 'G000000001',
    });
    t.runResumed({ ...mine, status: 'waiting' }, { step: 'status check', resumes: 2 });
    t.runMissing({ runId, queue: 'export-status', step: 'A status check' });
    t.runUnreadable({
      runId,
      field: 'dataset',
      problem: `Run ledger row exportRuns/run/${runId}: field dataset is not one of unbilledUsage.`,
    });
    // Never throws, even when a run cannot be read.
    const unreadable = Object.defineProperty({ ...mine }, 'currency', {
      get() {
        throw new Error(`unreadable field next to ${SAS_URL}`);
      },
    });
    assert.doesNotThrow(() => t.runStarted(unreadable));
    await t.flush();

    const items = h.ingestion.items.filter((item) => item.properties['runId'] === runId);
    const dimensions = { currency: 'USD', billingPeriod: 'current', attributeSet: 'full', dataset: 'unbilledUsage' };
    const started = only(items, 'EventData', TelemetryEvents.runStarted);
    assert.deepEqual(started.properties, { runId, ...dimensions, status: 'starting', trigger: 'schedule' });
    assert.deepEqual(started.measurements, {});
    assert.equal(started.tags['ai.cloud.role'], 'csp-unbilled-export');

    const completed = only(items, 'EventData', TelemetryEvents.runCompleted);
    assert.deepEqual(completed.properties, {
      runId,
      ...dimensions,
      status: 'succeeded',
      operationId,
      trigger: 'schedule',
    });
    assert.deepEqual(completed.measurements, measurements);

    const failed = only(items, 'EventData', TelemetryEvents.runFailed);
    assert.deepEqual(failed.properties, {
      runId,
      ...dimensions,
      status: 'failed',
      operationId,
      trigger: 'manual',
      errorCode: 'COPY_FAILED',
      error: 'Copy of https://x.blob.core.windows.net/c/b failed: 403 for Authorization: Bearer [REDACTED]',
    });
    assert.deepEqual(failed.measurements, { ...measurements, polls: 9 });

    const poisoned = only(items, 'EventData', TelemetryEvents.messagePoisoned);
    assert.deepEqual(poisoned.properties, {
      queue: 'export-copy-poison',
      runId,
      reason: 'Message for https://x.blob.core.windows.net/c/b was dequeued 5 times',
      runStatus: 'failed',
      endedRun: 'true',
      dataset: 'billedUsage',
      invoiceId: 'G000000001',
    });
    assert.deepEqual(only(items, 'EventData', TelemetryEvents.runMissing).properties, {
      runId,
      queue: 'export-status',
      step: 'A status check',
    });
    assert.deepEqual(only(items, 'EventData', TelemetryEvents.runUnreadable).properties, {
      runId,
      field: 'dataset',
      problem: `Run ledger row exportRuns/run/${runId}: field dataset is not one of unbilledUsage.`,
    });
    const resumed = only(items, 'EventData', TelemetryEvents.runResumed);
    assert.deepEqual(resumed.properties, {
      runId,
      ...dimensions,
      status: 'waiting',
      trigger: 'schedule',
      step: 'status check',
    });
    assert.deepEqual(resumed.measurements, { resumes: 2 });
    // Events, not traces: nothing of this run arrived as a message.
    assert.deepEqual(
      items.filter((item) => item.baseType !== 'EventData').map((item) => item.baseType),
      [],
    );

    for (const [status, polls] of [
      ['succeeded', 4],
      ['failed', 9],
    ] as const) {
      for (const [name, value] of [
        [TelemetryMetrics.durationMs, measurements.durationMs],
        [TelemetryMetrics.byteCount, measurements.byteCount],
        [TelemetryMetrics.blobCount, measurements.blobCount],
        [TelemetryMetrics.polls, polls],
      ] as const) {
        const points = h.ingestion.items.filter(
          (item) =>
            item.baseType === 'MetricData' &&
            item.name === name &&
            item.properties['status'] === status &&
            item.properties['currency'] === 'USD',
        );
        assert.equal(points.length, 1, `metric ${name} (${status})`);
        assert.deepEqual(points[0]?.properties, { ...dimensions, status });
        assert.deepEqual(points[0]?.measurements, { value });
      }
    }
    assertNoSecret(items.map((item) => item.raw));
  });

  it('sends the curation events to customEvents with their dimensions and measurements, redacted', async () => {
    const t = telemetry.createTelemetry(h.ingestion.connectionString);
    const runId = `${run.runId}-${randomBytes(3).toString('hex')}`;
    const details = {
      ...run,
      runId,
      billingMonth: '2026-11',
      curationVersion: '1.0',
      curatedPath: 'unbilled-usage/exportMonth=2026-11/exportCurrency=USD/exportAttributeSet=full',
      current: true,
      fileCount: 2,
      rowsRead: 80,
      rowsConverted: 79,
      rowsRejected: 1,
      durationMs: 1234,
    };
    t.curationCompleted({ ...details, hubIngestionId: runId });
    t.curationFailed({
      ...details,
      current: false,
      errorCode: 'CURATION_TOTALS_MISMATCH',
      error: `Totals differ; source ${SAS_URL}`,
    });
    await t.flush();

    const items = h.ingestion.items.filter((item) => item.properties['runId'] === runId);
    const measurements = { fileCount: 2, rowsRead: 80, rowsConverted: 79, rowsRejected: 1, durationMs: 1234 };
    const dimensions = {
      runId,
      currency: 'USD',
      billingPeriod: 'current',
      attributeSet: 'full',
      status: 'succeeded',
      trigger: 'schedule',
      dataset: 'unbilledUsage',
      billingMonth: '2026-11',
      curationVersion: '1.0',
      curatedPath: details.curatedPath,
    };
    const completed = only(items, 'EventData', TelemetryEvents.curationCompleted);
    assert.deepEqual(completed.properties, {
      ...dimensions,
      curationStatus: 'succeeded',
      current: 'true',
      hubIngestionId: runId,
    });
    assert.deepEqual(completed.measurements, measurements);
    const failed = only(items, 'EventData', TelemetryEvents.curationFailed);
    assert.deepEqual(failed.properties, {
      ...dimensions,
      curationStatus: 'failed',
      current: 'false',
      errorCode: 'CURATION_TOTALS_MISMATCH',
      error: 'Totals differ; source https://x.blob.core.windows.net/c/b',
    });
    assert.deepEqual(failed.measurements, measurements);
  });

  it("correlates an invocation's log lines, custom event, Graph and Storage calls under its operation id", async () => {
    const request = new functions.HttpRequest({
      method: 'POST',
      url: 'http://localhost:7071/api/exports',
      headers: { 'content-type': 'application/json' },
      body: { string: JSON.stringify({ currencies: ['EUR'] }) },
    });
    const { traceId, result, error } = await invokeAsWorker(
      functions,
      'startExportsHttp',
      (input, context) => h.host.handlers.startExportsHttp(input as AzureFunctions.HttpRequest, context),
      request,
    );
    assert.equal(error, undefined);
    const response = result as AzureFunctions.HttpResponseInit;
    assert.equal(response.status, 202, JSON.stringify(response.jsonBody));
    const runId = (response.jsonBody as { runs: Array<{ runId: string }> }).runs[0]?.runId ?? '';
    assert.notEqual(runId, '');
    await flush();

    const mine = ofOperation(h.ingestion.items, traceId);
    const detail = `items of operation ${traceId}:\n${describeItems(mine)}`;
    const started = only(mine, 'EventData', TelemetryEvents.runStarted);
    assert.equal(started.properties['runId'], runId);
    assert.equal(started.properties['currency'], 'EUR');
    const lines = ofOperation(mine, traceId, 'MessageData');
    assert.ok(lines.length >= 1, `no log line of the invocation: ${detail}`);
    assert.ok(
      lines.some((line) => String(line.baseData['message']).includes(runId)),
      `no log line names the run: ${detail}`,
    );
    for (const line of lines) {
      assert.equal(line.properties['Category'], 'Function.startExportsHttp.User', line.raw);
      assert.notEqual(line.properties['InvocationId'] ?? '', '', line.raw);
    }
    const dependencies = ofOperation(mine, traceId, 'RemoteDependencyData');
    const graphHost = new URL(h.emulator.baseUrl).host;
    assert.ok(
      dependencies.some(
        (d) =>
          String(d.baseData['data']).includes(graphHost) &&
          String(d.baseData['data']).endsWith('/reports/partners/billing/usage/unbilled/export'),
      ),
      `no Graph dependency: ${detail}`,
    );
    const azuriteHosts = [h.azurite.blobEndpoint, h.azurite.queueEndpoint, h.azurite.tableEndpoint].map(
      (endpoint) => new URL(endpoint).host,
    );
    assert.ok(
      dependencies.some((d) => azuriteHosts.some((host) => String(d.baseData['data']).includes(host))),
      `no Storage dependency: ${detail}`,
    );
    // Every dependency is a child of the invocation (the host's span or a span below it).
    for (const item of mine) assert.ok((item.tags['ai.operation.parentId'] ?? '') !== '', item.raw);
    // Nothing this invocation did went out under another operation id.
    const graphElsewhere = h.ingestion.items.filter(
      (item) =>
        item.baseType === 'RemoteDependencyData' &&
        item.tags['ai.operation.id'] !== traceId &&
        String(item.baseData['data']).endsWith('/reports/partners/billing/usage/unbilled/export') &&
        item.properties['runId'] === undefined,
    );
    assert.deepEqual(
      graphElsewhere.map((item) => item.raw),
      [],
    );

    // The rest of the run (driven by the local host) ends with a complete ExportRunCompleted event.
    const [done] = await h.waitForTerminal([runId]);
    assert.equal(done?.status, 'succeeded');
    await h.drain();
    await flush();
    const completed = only(h.events(TelemetryEvents.runCompleted, runId), 'EventData', TelemetryEvents.runCompleted);
    assert.deepEqual(Object.keys(completed.properties).sort(), [
      'attributeSet',
      'billingPeriod',
      'currency',
      'dataset',
      'operationId',
      'runId',
      'status',
      'trigger',
    ]);
    assert.deepEqual(Object.keys(completed.measurements).sort(), ['blobCount', 'byteCount', 'durationMs', 'polls']);
    assert.equal(completed.measurements['blobCount'], 2);
  });

  it("records a failed invocation's exception, redacted, under its operation id with its logs and calls", async () => {
    const { traceId, error } = await invokeAsWorker(
      functions,
      'failingInvocation',
      async (_input, context) => {
        context.warn(`About to read ${SAS_URL} with Authorization: Bearer ${JWT}`);
        await h.container().exists();
        throw new Error(`Copy of ${SAS_URL} failed for Authorization: Bearer ${JWT}`);
      },
      undefined,
    );
    assert.ok(error instanceof Error);
    await flush();
    const mine = ofOperation(h.ingestion.items, traceId);
    const detail = `items of operation ${traceId}:\n${describeItems(mine)}`;
    const exceptions = ofOperation(mine, traceId, 'ExceptionData');
    assert.equal(exceptions.length, 1, `one exception expected: ${detail}`);
    const details = ((exceptions[0]?.baseData['exceptions'] ?? []) as Array<{ message: string; stack: string }>)[0];
    assert.equal(
      details?.message,
      'Copy of https://x.blob.core.windows.net/c/b failed for Authorization: Bearer [REDACTED]',
    );
    assert.ok(details?.stack.includes('https://x.blob.core.windows.net/c/b failed'), details?.stack);
    const warnings = ofOperation(mine, traceId, 'MessageData').map((item) => item.baseData['message']);
    assert.deepEqual(warnings, [
      'About to read https://x.blob.core.windows.net/c/b with Authorization: Bearer [REDACTED]',
    ]);
    const blobHost = new URL(h.azurite.blobEndpoint).host;
    assert.ok(
      ofOperation(mine, traceId, 'RemoteDependencyData').some((d) => String(d.baseData['data']).includes(blobHost)),
      `no Storage dependency: ${detail}`,
    );
  });

  // Last on purpose: it scans everything the tests of this block sent.
  it('sends no SAS, token or query string: not in a dependency URL, a span attribute, a log line or an event', async () => {
    await flush();
    const dependencies = h.ingestion.items.filter((item) => item.baseType === 'RemoteDependencyData');
    assert.ok(dependencies.length > 0);
    for (const dependency of dependencies) {
      assert.ok(!String(dependency.baseData['data']).includes('?'), `a query string in ${dependency.raw}`);
      for (const value of Object.values(dependency.properties)) assert.ok(!/\?\S*=/.test(value), dependency.raw);
    }
    assertNoSecret(h.ingestion.rawBodies);
    assertNoSecret(h.ingestion.requests.map((request) => JSON.stringify(request.headers)));
  });
});
