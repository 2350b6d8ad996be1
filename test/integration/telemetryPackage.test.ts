/**
 * Telemetry of the deployment package, as deployed: dist/package (the esbuild bundle `npm run build` makes) copied
 * into an empty folder far from any node_modules, loaded by a fresh Node process the way the Functions worker loads
 * it (package.json `main`, a stand-in for `@azure/functions-core` that keeps the registered functions and hooks), its
 * handlers invoked as the worker invokes them, against Azurite, the partner billing emulator over HTTPS and a local
 * Application Insights ingestion endpoint. What reaches the endpoint is what operators would see.
 *
 * TELEMETRY_PACKAGE_DIR=<folder> checks another built package (e.g. the one of an older commit).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../../src/emulator/partnerBillingEmulator';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  exportSourceStorage,
  PARTNER_DEST_ACCOUNT,
  startAzurite,
} from '../../src/local/azurite';
import { FunctionNames } from '../../src/names';
import { uniqueName } from '../support/azurite';
import { TEST_SCENARIO } from '../support/harness';
import { type IngestedItem, type IngestionServer, startIngestionServer } from '../support/ingestionServer';
import { fakeFunctionsCoreJs, runNodeScript } from '../support/nodeScript';

const PACKAGE_DIR = process.env['TELEMETRY_PACKAGE_DIR'] ?? join(__dirname, '..', '..', 'package');
const SAS_SIGNATURE = 'PACKAGESECRET42';
const LOOPBACK_GUARD = join(__dirname, '..', 'support', 'loopbackOnly.js');

/**
 * Runs in the package folder: the worker's part. Loads `main`, then invokes the functions named in argv[1] one after
 * the other, each with the W3C trace context the host would hand it; reports each invocation's outcome.
 */
const WORKER = String.raw`
const Module = require('node:module');
const { join } = require('node:path');
const { format } = require('node:util');
const appDir = process.cwd();
const functions = new Map();
const hooks = { preInvocation: [], postInvocation: [], log: [], appStart: [], appTerminate: [] };
${fakeFunctionsCoreJs(`  version: '3.10.1',
  setProgrammingModel() {},
  registerFunction(metadata, callback) { functions.set(metadata.name, callback); return { dispose() {} }; },
  registerHook(name, callback) {
    hooks[name].push(callback);
    return { dispose() { hooks[name].splice(hooks[name].indexOf(callback), 1); } };
  },
  log() {},`)}
require(join(appDir, require(join(appDir, 'package.json')).main));

async function invoke(step) {
  // A managed identity token, from the package's own composition root and identity SDK, inside an invocation.
  const identity = async () => {
    const composition = require(join(appDir, 'core.js'))['src/composition.ts'];
    const { credential } = composition.telemetryOptions({ APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=' + step.identityClientId });
    const token = await credential.getToken('https://storage.azure.com/.default');
    return { status: token && token.token ? 200 : 500 };
  };
  const callback = step.identityClientId ? identity : functions.get(step.functionName);
  if (callback === undefined) throw new Error('not registered: ' + step.functionName);
  const invocationContext = {
    invocationId: step.invocationId,
    functionName: step.functionName,
    traceContext: { traceParent: step.traceParent, traceState: '', attributes: {} },
    triggerMetadata: { dequeueCount: 1 },
    options: { trigger: {}, extraInputs: [], extraOutputs: [] },
  };
  for (const level of ['trace', 'debug', 'info', 'warn', 'error']) {
    const mapped = { info: 'information', warn: 'warning' }[level] ?? level;
    invocationContext[level] = (...args) => {
      for (const hook of [...hooks.log]) hook({ level: mapped, message: format(...args), category: 'user', invocationContext });
    };
  }
  invocationContext.log = invocationContext.info;
  let input = step.input;
  if (step.http) {
    const body = JSON.stringify(step.http.body ?? {});
    input = { method: step.http.method, url: step.http.url, headers: new Headers(), query: new URLSearchParams(),
      params: step.http.params ?? {}, text: async () => body, json: async () => JSON.parse(body) };
  }
  for (const [name, value] of Object.entries(step.env ?? {})) process.env[name] = value;
  const inputs = [input, invocationContext];
  const pre = { invocationContext, inputs, functionCallback: callback, hookData: {}, appHookData: {} };
  for (const hook of hooks.preInvocation) await hook(pre);
  let result;
  let error;
  try {
    result = await pre.functionCallback(...pre.inputs);
  } catch (thrown) {
    error = thrown;
  }
  const post = { invocationContext, inputs, result, error, hookData: {}, appHookData: {} };
  for (const hook of hooks.postInvocation) await hook(post);
  for (const [name, value] of Object.entries(step.restoreEnv ?? {})) process.env[name] = value;
  return { status: result && result.status, body: result && result.jsonBody, error: post.error ? String(post.error.message).slice(0, 300) : null };
}

(async () => {
  const outcomes = [];
  for (const step of JSON.parse(process.argv[1])) outcomes.push(await invoke(step));
  // Alive as a worker stays: the exporters send what they hold on their own schedule; the test ends the process.
  process.stdout.write('REPORT ' + JSON.stringify(outcomes) + '\n');
  setInterval(() => {}, 60_000);
})().catch((error) => { process.stderr.write(String(error && error.stack || error)); process.exit(1); });
`;

interface Step {
  functionName: string;
  invocationId: string;
  traceParent: string;
  http?: { method: string; url: string; body?: unknown; params?: Record<string, string> };
  input?: unknown;
  env?: Record<string, string>;
  restoreEnv?: Record<string, string>;
  /** Instead of a function: a managed identity token for this client id, inside the invocation. */
  identityClientId?: string;
}

interface Outcome {
  status: number | undefined;
  body: unknown;
  error: string | null;
}

function traceParentOf(traceId: string): string {
  return `00-${traceId}-${'1'.repeat(15)}${Math.floor(Math.random() * 10)}-01`;
}

function randomTraceId(): string {
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
}

function ofOperation(items: IngestedItem[], traceId: string, baseType?: string): IngestedItem[] {
  return items.filter(
    (item) => item.tags['ai.operation.id'] === traceId && (baseType === undefined || item.baseType === baseType),
  );
}

function describeItems(items: IngestedItem[]): string {
  return items
    .map(
      (item) =>
        `${item.baseType} ${item.name} op=${item.tags['ai.operation.id']} parent=${item.tags['ai.operation.parentId']} ${String(item.baseData['data'] ?? '')}`,
    )
    .join('\n');
}

/**
 * Runs the worker in `appDir` until it has reported its invocations and `done(items)` holds for what the ingestion
 * endpoint received (or 20 s have passed), then stops it.
 */
async function runWorker(
  appDir: string,
  steps: Step[],
  env: Record<string, string>,
  done: () => boolean,
): Promise<Outcome[]> {
  const childEnv: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(childEnv)) if (name.startsWith('APPLICATIONINSIGHTS_')) delete childEnv[name];
  const child = spawn(process.execPath, ['-e', WORKER, JSON.stringify(steps)], {
    cwd: appDir,
    // test/support/loopbackOnly: nothing the package starts (telemetry, identity) leaves the machine.
    env: { ...childEnv, NO_PROXY: '127.0.0.1,localhost', NODE_OPTIONS: `--require ${LOOPBACK_GUARD}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    const report = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString('utf8');
        const line = stdout.split('\n').find((l) => l.startsWith('REPORT '));
        if (line !== undefined && stdout.includes(`${line}\n`)) resolve(line.slice('REPORT '.length));
      });
      void closed.then((status) => reject(new Error(`the package's worker ended (${status}):\n${stdout}\n${stderr}`)));
    });
    const deadline = Date.now() + 20_000;
    while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250));
    return JSON.parse(report) as Outcome[];
  } finally {
    child.kill();
    await closed;
  }
}

describe('Start-up of the deployment package with a connection string', () => {
  it('registers the telemetry hooks and loads nothing else: core.js and OpenTelemetry wait for the first invocation', async () => {
    const appDir = mkdtempSync(join(tmpdir(), 'telemetry-startup-'));
    try {
      cpSync(join(PACKAGE_DIR, 'main.js'), join(appDir, 'main.js'));
      cpSync(join(PACKAGE_DIR, 'core.js'), join(appDir, 'core.js'));
      cpSync(join(PACKAGE_DIR, 'package.json'), join(appDir, 'package.json'));
      const script = `${WORKER.slice(0, WORKER.indexOf('async function invoke'))}
        process.stdout.write('REPORT ' + JSON.stringify({
          hooks: Object.fromEntries(Object.entries(hooks).map(([name, list]) => [name, list.length])),
          functions: functions.size,
          loaded: Object.keys(require.cache).filter((file) => file.startsWith(appDir)).map((file) => file.slice(appDir.length + 1)),
        }) + '\\n');`;
      const ran = await runNodeScript(script, {
        cwd: appDir,
        env: {
          ...process.env,
          NODE_OPTIONS: `--require ${LOOPBACK_GUARD}`,
          APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${'0'.repeat(8)}-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/`,
        },
      });
      assert.ok(ran.report !== undefined, `${ran.stdout}\n${ran.stderr}`);
      const report = ran.report as {
        hooks: Record<string, number>;
        functions: number;
        loaded: string[];
      };
      assert.deepEqual(
        report.loaded.filter((file) => file.endsWith('.js') && !file.startsWith('__worker__')),
        ['main.js'],
        'start-up loaded more than main.js',
      );
      assert.deepEqual(report.hooks, { preInvocation: 1, postInvocation: 1, log: 1, appStart: 0, appTerminate: 0 });
      assert.equal(report.functions, Object.keys(FunctionNames).length);
    } finally {
      rmSync(appDir, { recursive: true, force: true });
    }
  });
});

describe('Telemetry of the deployment package (dist/package in a folder without node_modules)', () => {
  let azurite: AzuriteInstance | undefined;
  let emulator: PartnerBillingEmulator | undefined;
  let ingestion: IngestionServer;
  let appDir: string;
  let outcomes: Outcome[];
  const started = { traceId: randomTraceId(), invocationId: 'package-start' };
  const listed = { traceId: randomTraceId(), invocationId: 'package-list' };
  const failed = { traceId: randomTraceId(), invocationId: 'package-fail' };
  const discovered = { traceId: randomTraceId(), invocationId: 'package-timer' };
  const identified = { traceId: randomTraceId(), invocationId: 'package-identity' };
  const MSI_TOKEN = 'msi-package-token-7f3c';
  let identityServer: Server | undefined;
  let identityUrl = '';
  let items: IngestedItem[] = [];

  before(async () => {
    assert.ok(
      existsSync(join(PACKAGE_DIR, 'main.js')),
      `${PACKAGE_DIR}/main.js is missing: build the deployment package first (npm run build)`,
    );
    appDir = mkdtempSync(join(tmpdir(), 'telemetry-package-'));
    cpSync(PACKAGE_DIR, appDir, { recursive: true, filter: (source) => !source.includes('duckdb') });
    azurite = await startAzurite();
    emulator = await startPartnerBillingEmulator({ storage: exportSourceStorage(azurite), scenario: TEST_SCENARIO });
    ingestion = await startIngestionServer();
    // A managed identity endpoint (App Service protocol) on loopback: the credential never looks for another.
    identityServer = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      const expires = String(Math.floor(Date.now() / 1000) + 3600);
      response.end(JSON.stringify({ access_token: MSI_TOKEN, expires_on: expires, token_type: 'Bearer' }));
    });
    await new Promise<void>((resolve) => identityServer?.listen(0, '127.0.0.1', resolve));
    identityUrl = `http://127.0.0.1:${(identityServer.address() as AddressInfo).port}/msi/token`;
    const env = {
      IDENTITY_ENDPOINT: identityUrl,
      IDENTITY_HEADER: 'package-identity-header',
      EXPORT_CURRENCIES: 'USD',
      EXPORT_BILLING_PERIODS: 'current',
      EXPORT_ATTRIBUTE_SET: 'full',
      EXPORT_SCHEDULE: '0 0 6 * * *',
      EXPORT_CURATION: 'off',
      GRAPH_BASE_URL: emulator.baseUrl,
      GRAPH_CA_CERT_FILE: emulator.caCertPath,
      AzureWebJobsStorage: azurite.connectionString(DEV_STORE_ACCOUNT.name),
      DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
      DESTINATION_CONTAINER: uniqueName('pkg'),
      DESTINATION_PREFIX: 'unbilled-usage',
      APPLICATIONINSIGHTS_CONNECTION_STRING: ingestion.connectionString,
      NODE_EXTRA_CA_CERTS: ingestion.caCertPath,
    };
    const steps: Step[] = [
      {
        functionName: FunctionNames.startExportsHttp,
        invocationId: started.invocationId,
        traceParent: traceParentOf(started.traceId),
        http: { method: 'POST', url: 'http://localhost:7071/api/exports', body: { currencies: ['EUR'] } },
      },
      {
        functionName: FunctionNames.listExportRuns,
        invocationId: listed.invocationId,
        traceParent: traceParentOf(listed.traceId),
        http: { method: 'GET', url: 'http://localhost:7071/api/exports/runs' },
      },
      {
        // A setting the app cannot use: the handler throws before any call, with a SAS in the problem it reports.
        functionName: FunctionNames.pollExportStatus,
        invocationId: failed.invocationId,
        traceParent: traceParentOf(failed.traceId),
        input: { version: 1 },
        env: { EXPORT_CURRENCIES: `US?sig=${SAS_SIGNATURE}` },
        restoreEnv: { EXPORT_CURRENCIES: 'USD' },
      },
      {
        functionName: 'identity',
        invocationId: identified.invocationId,
        traceParent: traceParentOf(identified.traceId),
        identityClientId: '11111111-2222-3333-4444-555555555555',
      },
      {
        // The daily timer with invoice discovery: Partner Center's invoice list, then the billed runs it starts.
        functionName: FunctionNames.startExportsTimer,
        invocationId: discovered.invocationId,
        traceParent: traceParentOf(discovered.traceId),
        input: { isPastDue: false },
        env: {
          EXPORT_DATASETS: 'billedUsage',
          EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
          EXPORT_INVOICE_MONTHS: '3',
          PARTNER_CENTER_BASE_URL: emulator.partnerCenterBaseUrl,
        },
      },
    ];
    // Until every invocation has its dependencies or exception (the exporters send every few seconds).
    const arrived = (traceId: string, baseType: string) => ofOperation(ingestion.items, traceId, baseType).length > 0;
    outcomes = await runWorker(
      appDir,
      steps,
      env,
      () =>
        arrived(started.traceId, 'EventData') &&
        arrived(listed.traceId, 'RemoteDependencyData') &&
        arrived(failed.traceId, 'ExceptionData') &&
        arrived(discovered.traceId, 'EventData') &&
        arrived(identified.traceId, 'RemoteDependencyData'),
    );
    // What is still in flight for the first operation (its spans end in order).
    await new Promise((resolve) => setTimeout(resolve, 500));
    items = ingestion.items;
  });

  after(async () => {
    await new Promise((resolve) => identityServer?.close(resolve) ?? resolve(undefined));
    await ingestion?.stop();
    await emulator?.stop();
    await azurite?.stop();
    if (appDir !== undefined) rmSync(appDir, { recursive: true, force: true });
  });

  it('invokes the handlers of the package: an export starts, the runs list, a bad setting fails, the timer runs', () => {
    assert.equal(outcomes[0]?.status, 202, JSON.stringify(outcomes[0]));
    assert.equal(outcomes[1]?.status, 200, JSON.stringify(outcomes[1]));
    assert.notEqual(outcomes[2]?.error ?? null, null, JSON.stringify(outcomes[2]));
    assert.equal(outcomes[3]?.status, 200, JSON.stringify(outcomes[3]));
    assert.equal(outcomes[4]?.error ?? null, null, JSON.stringify(outcomes[4]));
  });

  it("sends the invocation's Storage calls (SDK operations and their HTTP requests) and its Graph call as dependencies under its operation id", () => {
    const mine = ofOperation(items, started.traceId, 'RemoteDependencyData');
    const detail = `dependencies of operation ${started.traceId}:\n${describeItems(mine)}\nall:\n${describeItems(items)}`;
    const data = mine.map((d) => String(d.baseData['data'] ?? ''));
    const names = mine.map((d) => d.name);
    const graphHost = new URL(emulator?.baseUrl ?? '').host;
    assert.ok(
      data.some((url) => url.includes(graphHost) && url.endsWith('/reports/partners/billing/usage/unbilled/export')),
      `no Graph dependency: ${detail}`,
    );
    const tableHost = new URL(azurite?.tableEndpoint ?? '').host;
    const queueHost = new URL(azurite?.queueEndpoint ?? '').host;
    assert.ok(
      data.some((url) => url.includes(tableHost)),
      `no HTTP dependency on Table Storage (the run ledger): ${detail}`,
    );
    assert.ok(
      data.some((url) => url.includes(queueHost)),
      `no HTTP dependency on Queue Storage (the status check): ${detail}`,
    );
    assert.ok(
      names.some((name) => /^TableClient[.-]/.test(name)),
      `no Azure SDK operation of the run ledger (TableClient.*): ${detail}`,
    );
    assert.ok(
      names.some((name) => /^QueueClient[.-]/.test(name)),
      `no Azure SDK operation of the queue (QueueClient.*): ${detail}`,
    );
    // Each HTTP request once: by the SDK's span or by node:https, never both (a node:https span of a request the SDK
    // traced would be a child of the SDK's HTTP span).
    const requests = mine.filter((d) => String(d.baseData['data'] ?? '').startsWith('http'));
    const requestIds = new Set(requests.map((d) => String(d.baseData['id'])));
    assert.deepEqual(
      requests.filter((d) => requestIds.has(d.tags['ai.operation.parentId'] ?? '')).map((d) => d.raw),
      [],
    );
    for (const dependency of mine) assert.notEqual(dependency.tags['ai.operation.parentId'] ?? '', '', dependency.raw);
  });

  it('sends the Storage read of a ledger query as a dependency of its invocation', () => {
    const tableHost = new URL(azurite?.tableEndpoint ?? '').host;
    const mine = ofOperation(items, listed.traceId, 'RemoteDependencyData');
    assert.ok(
      mine.some((d) => String(d.baseData['data'] ?? '').includes(tableHost)),
      `no Table Storage dependency of the ledger read:\n${describeItems(mine)}`,
    );
  });

  it('sends the Partner Center invoice list of invoice discovery as a dependency of the timer invocation', () => {
    const partnerCenter = new URL(emulator?.partnerCenterBaseUrl ?? '');
    const mine = ofOperation(items, discovered.traceId, 'RemoteDependencyData');
    assert.ok(
      mine.some((d) =>
        String(d.baseData['data'] ?? '').startsWith(`${partnerCenter.origin}${partnerCenter.pathname}/invoices`),
      ),
      `no Partner Center dependency:\n${describeItems(mine)}`,
    );
  });

  it('sends a managed identity token request as a dependency of its invocation, without the token', () => {
    const mine = ofOperation(items, identified.traceId, 'RemoteDependencyData');
    assert.ok(
      mine.some((d) => String(d.baseData['data'] ?? '') === identityUrl),
      `no managed identity dependency:\n${describeItems(mine)}`,
    );
    for (const text of ingestion.rawBodies) assert.ok(!text.includes(MSI_TOKEN), 'a managed identity token was sent');
  });

  it("records a failed invocation's exception under its operation id, redacted", () => {
    const exceptions = ofOperation(items, failed.traceId, 'ExceptionData');
    assert.equal(exceptions.length, 1, `one exception expected:\n${describeItems(ofOperation(items, failed.traceId))}`);
    const errors = ofOperation(items, failed.traceId, 'MessageData');
    assert.ok(errors.length >= 1, 'the log line of the failed invocation');
    for (const line of errors) {
      assert.equal(line.properties['InvocationId'], failed.invocationId, line.raw);
      assert.equal(line.properties['Category'], `Function.${FunctionNames.pollExportStatus}.User`, line.raw);
    }
  });

  it('sends no SAS signature, token or query string to the ingestion endpoint', () => {
    for (const text of [...ingestion.rawBodies, ...ingestion.requests.map((r) => JSON.stringify(r.headers))]) {
      assert.ok(!text.includes(SAS_SIGNATURE), 'a SAS signature reached the ingestion endpoint');
      assert.ok(!/sig=/i.test(text), 'a SAS sig= parameter reached the ingestion endpoint');
    }
    for (const dependency of items.filter((item) => item.baseType === 'RemoteDependencyData')) {
      assert.ok(!String(dependency.baseData['data']).includes('?'), `a query string in ${dependency.raw}`);
    }
  });
});
