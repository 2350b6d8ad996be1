import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sep } from 'node:path';
import { describe, it } from 'node:test';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { TelemetryEvents, TelemetryMetrics } from '../../src/names';
import { noTelemetry, type RunIdentity } from '../../src/pipeline/ports';
import { createTelemetry, parseAuthenticationString } from '../../src/telemetry/appInsightsTelemetry';
import { type IngestedItem, startIngestionServer } from '../support/ingestionServer';

const SAS_SIGNATURE = 'SECRET123';
const JWT = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXJ0bmVyLWFwcCJ9.c2lnbmF0dXJlLXBhcnQ';
const SAS_URL = `https://x.blob.core.windows.net/c/b?sv=2021&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=${SAS_SIGNATURE}`;

const run: RunIdentity = {
  runId: 'run-20300101-usd-current',
  currency: 'USD',
  billingPeriod: 'current',
  attributeSet: 'full',
  trigger: 'schedule',
};
const measurements = { durationMs: 125_000, blobCount: 3, byteCount: 7_340_032, polls: 4 };

function sdkLoaded(): boolean {
  const marker = `${sep}node_modules${sep}applicationinsights${sep}`;
  return Object.keys(require.cache).some((path) => path.includes(marker));
}

function only(items: IngestedItem[], baseType: string, name: string): IngestedItem {
  const found = items.filter((item) => item.baseType === baseType && item.name === name);
  assert.equal(found.length, 1, `one ${baseType} "${name}" expected, got ${found.length}`);
  return found[0]!;
}

/** A copy of `value` whose `key` throws when read. */
function unreadable<T extends object>(value: T, key: keyof T & string): T {
  return Object.defineProperty({ ...value }, key, {
    get() {
      throw new Error(`unreadable field next to ${SAS_URL}`);
    },
  });
}

function assertNoSecret(texts: string[]): void {
  for (const text of texts) {
    assert.ok(!text.includes(SAS_SIGNATURE), 'a SAS signature reached the ingestion endpoint');
    assert.ok(!text.includes('sig='), 'a SAS sig= parameter reached the ingestion endpoint');
    assert.ok(!text.includes(JWT), 'a bearer token reached the ingestion endpoint');
    assert.ok(!text.includes('eyJ'), 'something like a JWT reached the ingestion endpoint');
  }
}

describe('Application Insights telemetry', () => {
  // First in the file on purpose: node:test runs a file's tests in order, in a process of their own.
  it('sends nothing, and does not load the Application Insights SDK, without a connection string', async () => {
    const server = await startIngestionServer();
    try {
      for (const connectionString of [undefined, '', '   ']) {
        const telemetry = createTelemetry(connectionString);
        assert.equal(telemetry, noTelemetry);
        telemetry.runStarted(run);
        telemetry.runCompleted({ ...run, status: 'succeeded' }, measurements);
        telemetry.runFailed({ ...run, status: 'failed', errorCode: 'X', error: SAS_URL }, measurements);
        telemetry.messagePoisoned({
          queue: 'export-status-poison',
          runId: run.runId,
          reason: 'bad',
          runStatus: 'copying',
        });
        await telemetry.flush();
      }
      assert.equal(sdkLoaded(), false, 'the applicationinsights package was loaded');
      assert.deepEqual(server.requests, []);
    } finally {
      await server.stop();
    }
  });

  it('sends the run events with redacted dimensions and their measurements, and the run metrics', async () => {
    const server = await startIngestionServer();
    try {
      const telemetry = createTelemetry(server.connectionString);
      assert.notEqual(telemetry, noTelemetry);
      const operationId = 'op-7f3c';
      const error = `Copy of ${SAS_URL} failed: 403 for Authorization: Bearer ${JWT}`;
      telemetry.runStarted(run);
      telemetry.runCompleted({ ...run, operationId, status: 'succeeded' }, measurements);
      telemetry.runFailed(
        { ...run, trigger: 'manual', operationId, status: 'failed', errorCode: 'COPY_FAILED', error },
        { ...measurements, polls: 9 },
      );
      telemetry.messagePoisoned({
        queue: 'export-copy-poison',
        runId: run.runId,
        reason: `Message for ${SAS_URL} was dequeued 5 times`,
        runStatus: 'copying',
      });
      await telemetry.flush();

      assert.ok(server.requests.length >= 1);
      for (const request of server.requests) {
        assert.equal(request.method, 'POST');
        assert.equal(request.path, '/v2.1/track');
      }

      const dimensions = { currency: 'USD', billingPeriod: 'current', attributeSet: 'full' };
      const started = only(server.items, 'EventData', TelemetryEvents.runStarted);
      assert.deepEqual(started.properties, {
        runId: run.runId,
        ...dimensions,
        status: 'starting',
        trigger: 'schedule',
        dataset: 'unbilledUsage', // issue 10: a dataset dimension on every event
      });
      assert.deepEqual(started.measurements, {});
      assert.equal(started.tags['ai.cloud.role'], 'csp-unbilled-export');

      const completed = only(server.items, 'EventData', TelemetryEvents.runCompleted);
      assert.deepEqual(completed.properties, {
        runId: run.runId,
        ...dimensions,
        status: 'succeeded',
        operationId,
        trigger: 'schedule',
        dataset: 'unbilledUsage', // issue 10: a dataset dimension on every event
      });
      assert.deepEqual(completed.measurements, measurements);

      const failed = only(server.items, 'EventData', TelemetryEvents.runFailed);
      const { error: failedError, ...failedRest } = failed.properties;
      assert.deepEqual(failedRest, {
        runId: run.runId,
        ...dimensions,
        status: 'failed',
        operationId,
        trigger: 'manual',
        dataset: 'unbilledUsage',
        errorCode: 'COPY_FAILED',
      });
      assert.equal(
        failedError,
        'Copy of https://x.blob.core.windows.net/c/b?[REDACTED] failed: 403 for Authorization: Bearer [REDACTED]',
      );
      assert.deepEqual(failed.measurements, { ...measurements, polls: 9 });

      const poisoned = only(server.items, 'EventData', TelemetryEvents.messagePoisoned);
      assert.deepEqual(poisoned.properties, {
        queue: 'export-copy-poison',
        runId: run.runId,
        reason: 'Message for https://x.blob.core.windows.net/c/b?[REDACTED] was dequeued 5 times',
        runStatus: 'copying',
      });

      const metrics = server.items.filter((item) => item.baseType === 'MetricData');
      assert.equal(metrics.length, 8);
      for (const [status, polls] of [
        ['succeeded', 4],
        ['failed', 9],
      ] as const) {
        const expected: Array<[string, number]> = [
          [TelemetryMetrics.durationMs, measurements.durationMs],
          [TelemetryMetrics.byteCount, measurements.byteCount],
          [TelemetryMetrics.blobCount, measurements.blobCount],
          [TelemetryMetrics.polls, polls],
        ];
        for (const [name, value] of expected) {
          const metric = metrics.filter((item) => item.name === name && item.properties['status'] === status);
          assert.equal(metric.length, 1, `metric ${name} (${status})`);
          assert.deepEqual(metric[0]!.properties, { ...dimensions, status });
          assert.deepEqual(metric[0]!.measurements, { value });
        }
      }

      assertNoSecret(server.rawBodies);
      assertNoSecret(server.requests.map((request) => JSON.stringify(request.headers)));
    } finally {
      await server.stop();
    }
  });

  it('authenticates with a bearer token from the given credential, under the given role name', async () => {
    const server = await startIngestionServer();
    try {
      const scopes: string[] = [];
      const credential: TokenCredential = {
        async getToken(scope): Promise<AccessToken> {
          scopes.push(...(Array.isArray(scope) ? scope : [scope]));
          return { token: 'entra-test-token', expiresOnTimestamp: Date.now() + 3_600_000 };
        },
      };
      const telemetry = createTelemetry(server.connectionString, { credential, roleName: 'partner-exports' });
      telemetry.runStarted(run);
      await telemetry.flush();

      assert.equal(server.requests.length, 1);
      assert.equal(server.requests[0]!.headers.authorization, 'Bearer entra-test-token');
      assert.deepEqual(scopes, ['https://monitor.azure.com//.default']);
      assert.equal(
        only(server.items, 'EventData', TelemetryEvents.runStarted).tags['ai.cloud.role'],
        'partner-exports',
      );
    } finally {
      await server.stop();
    }
  });

  it('resolves flush when the ingestion endpoint cannot be reached', async () => {
    const server = await startIngestionServer();
    await server.stop();
    const telemetry = createTelemetry(server.connectionString, { flushTimeoutMs: 5_000 });
    telemetry.runFailed({ ...run, status: 'failed', errorCode: 'X', error: 'boom' }, measurements);
    const started = Date.now();
    await telemetry.flush();
    assert.ok(Date.now() - started < 4_000, 'flush waited for its timeout instead of the connection error');
  });

  it('resolves flush after its timeout when the ingestion endpoint never answers', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { port } = silent.address() as AddressInfo;
      const telemetry = createTelemetry(
        `InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:${port}/`,
        { flushTimeoutMs: 300 },
      );
      telemetry.runStarted(run);
      const started = Date.now();
      await telemetry.flush();
      const waited = Date.now() - started;
      assert.ok(waited >= 250 && waited < 3_000, `flush took ${waited} ms`);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('warns when the ingestion endpoint refuses the items, as it does without Entra authentication', async (t) => {
    const refusing = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(401, { 'content-type': 'application/json' });
        response.end(
          JSON.stringify({
            itemsReceived: 1,
            itemsAccepted: 0,
            errors: [{ index: 0, statusCode: 401, message: 'Unauthorized, local authentication is disabled' }],
          }),
        );
      });
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { port } = refusing.address() as AddressInfo;
      const warn = t.mock.method(console, 'warn', () => {});
      const telemetry = createTelemetry(
        `InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:${port}/`,
      );
      telemetry.runStarted(run);
      await telemetry.flush();
      const messages = warn.mock.calls.map((call) => String(call.arguments[0]));
      assert.ok(
        messages.some((message) => message.includes('accepted 0 of 1 items') && message.includes('401')),
        messages.join('\n'),
      );
    } finally {
      refusing.closeAllConnections();
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
  });

  it('never throws from a telemetry call, even when a run cannot be read', async () => {
    const server = await startIngestionServer();
    try {
      const telemetry = createTelemetry(server.connectionString);
      assert.doesNotThrow(() => telemetry.runStarted(unreadable(run, 'runId')));
      assert.doesNotThrow(() =>
        telemetry.runCompleted(unreadable({ ...run, status: 'succeeded' }, 'currency'), measurements),
      );
      assert.doesNotThrow(() =>
        telemetry.messagePoisoned(unreadable({ queue: 'q', runId: undefined, reason: 'r', runStatus: '' }, 'reason')),
      );
      await telemetry.flush();
    } finally {
      await server.stop();
    }
  });

  it('falls back to no telemetry when the connection string has no instrumentation key', () => {
    assert.equal(createTelemetry('IngestionEndpoint=http://127.0.0.1:9/'), noTelemetry);
  });

  it('reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING', () => {
    assert.deepEqual(parseAuthenticationString('ClientId=1111-2222;Authorization=AAD'), { clientId: '1111-2222' });
    assert.deepEqual(parseAuthenticationString('Authorization=aad'), { clientId: undefined });
    assert.equal(parseAuthenticationString(undefined), undefined);
    assert.equal(parseAuthenticationString('ClientId=1111'), undefined);
  });
});
