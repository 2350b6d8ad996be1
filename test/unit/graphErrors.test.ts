import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import {
  AggregateAuthenticationError,
  AuthenticationError,
  CredentialUnavailableError,
  type TokenCredential,
} from '@azure/identity';
import { GraphBillingExportApi } from '../../src/adapters/graph/graphBillingExportApi';
import { PartnerCenterInvoiceApi } from '../../src/adapters/graph/partnerCenterInvoiceApi';
import { destinationError } from '../../src/adapters/storage/clients';
import { classifyError, ExportError, isExportError } from '../../src/errors';
import { copyExportBlob } from '../../src/pipeline/copyExportBlob';
import { ManifestCache, type PipelineDeps } from '../../src/pipeline/deps';
import { parseCopyMessage, parseStatusMessage } from '../../src/pipeline/messages';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import { startExports } from '../../src/pipeline/startExports';
import { superviseRuns } from '../../src/pipeline/superviseRuns';
import { type FakeDeps, makeDeps, makeManifest, running, succeeded, testConfig } from '../support/fakes';

/** A loopback port nobody listens on: every call to it is refused at once, nothing leaves the machine. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  assert.ok(address !== null && typeof address === 'object');
  return address.port;
}

/** A credential that fails the way @azure/identity does, counting how often it was asked. */
function failingCredential(error: Error): TokenCredential & { asked: number } {
  return {
    asked: 0,
    async getToken() {
      this.asked += 1;
      throw error;
    },
  };
}

const workingCredential: TokenCredential = {
  async getToken() {
    return { token: 'test-token', expiresOnTimestamp: Date.now() + 3600_000 };
  },
};

async function graphAt(port: number, credential: TokenCredential): Promise<GraphBillingExportApi> {
  return new GraphBillingExportApi({
    baseUrl: `https://127.0.0.1:${port}/v1.0`,
    credential,
    emulator: true,
    sleep: async () => undefined,
  });
}

async function startError(graph: GraphBillingExportApi): Promise<ExportError> {
  try {
    await graph.startUnbilledExport({ currencyCode: 'USD', billingPeriod: 'current', attributeSet: 'full' });
  } catch (error) {
    assert.ok(isExportError(error), `an ExportError, not ${String(error)}`);
    return error;
  }
  assert.fail('the export was accepted');
}

/** What DefaultAzureCredential throws on a machine with no Azure CLI, no app settings and no managed identity. */
function nothingConfigured(): Error {
  return new AggregateAuthenticationError(
    [
      new CredentialUnavailableError('EnvironmentCredential is unavailable. No underlying credential could be used.'),
      new CredentialUnavailableError('ManagedIdentityCredential: Network unreachable.'),
      new CredentialUnavailableError('Azure CLI could not be found.'),
    ],
    'ChainedTokenCredential authentication failed.',
  );
}

describe('errors that say what to fix: the Graph credential', () => {
  it('fails the run at once with GRAPH_CREDENTIAL, naming the settings, when no credential can give a Graph token', async () => {
    const credential = failingCredential(nothingConfigured());
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const withGraph: PipelineDeps = { ...deps, graph: await graphAt(await closedPort(), credential) };
    const [started] = await startExports({ trigger: 'manual' }, withGraph);
    assert.equal(started?.status, 'failed');
    const run = (await deps.ledger.getRun(started?.runId ?? ''))?.value;
    assert.equal(run?.status, 'failed');
    assert.equal(run?.errorCode, 'GRAPH_CREDENTIAL');
    for (const setting of ['managed identity', 'AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET']) {
      assert.ok(run?.error?.includes(setting), `the reason names ${setting}: ${run?.error}`);
    }
    assert.match(run?.error ?? '', /partner tenant/);
    assert.equal(deps.queue.pendingStatus.length, 0, 'no start is retried');
    assert.equal(credential.asked, 1, 'asked once: retrying cannot configure a credential');
    assert.equal(deps.telemetry.failed.length, 1);
  });

  it('treats a single CredentialUnavailableError (a managed identity that is not there) as GRAPH_CREDENTIAL', async () => {
    const graph = await graphAt(
      await closedPort(),
      failingCredential(new CredentialUnavailableError('ManagedIdentityCredential: Network unreachable.')),
    );
    const error = await startError(graph);
    assert.equal(error.code, 'GRAPH_CREDENTIAL');
    assert.equal(error.retryable, false);
  });

  it('fails at once when Microsoft Entra ID refuses the app registration (an expired secret)', async () => {
    const refused = new AuthenticationError(401, {
      error: 'invalid_client',
      error_description: 'AADSTS7000215: Invalid client secret provided.',
    });
    const error = await startError(await graphAt(await closedPort(), failingCredential(refused)));
    assert.equal(error.code, 'GRAPH_CREDENTIAL');
    assert.equal(error.retryable, false);
    assert.match(error.message, /AADSTS7000215/);
  });

  it('retries a token endpoint that did not answer, and says it was the token endpoint, not Graph', async () => {
    const unreachable = new AuthenticationError(400, {
      error: 'EnvironmentCredential authentication failed.',
      error_description: 'endpoints_resolution_error: See https://aka.ms/msal.js.errors#endpoints_resolution_error',
    });
    const credential = failingCredential(unreachable);
    const error = await startError(await graphAt(await closedPort(), credential));
    assert.equal(error.code, 'GRAPH_NETWORK');
    assert.equal(error.retryable, true);
    assert.match(error.message, /token for Microsoft Graph/);
    assert.match(error.message, /login\.microsoftonline\.com/);
    assert.equal(credential.asked, 3, 'retried in process like any network failure');
  });

  it('says the same of the Partner Center credential, with the Partner Center codes', async () => {
    const api = new PartnerCenterInvoiceApi({
      baseUrl: `https://127.0.0.1:${await closedPort()}/v1`,
      credential: failingCredential(nothingConfigured()),
      emulator: true,
      sleep: async () => undefined,
    });
    const error = await api.listInvoices().then(
      () => assert.fail('listed'),
      (e: unknown) => e as ExportError,
    );
    assert.equal(error.code, 'PARTNER_CENTER_FAILED');
    assert.equal(error.retryable, false);
    assert.match(error.message, /AZURE_TENANT_ID/);
  });
});

describe('errors that say what to fix: an unreachable GRAPH_BASE_URL', () => {
  it('names GRAPH_BASE_URL and the refused endpoint instead of a bare "fetch failed"', async () => {
    const port = await closedPort();
    const error = await startError(await graphAt(port, workingCredential));
    assert.equal(error.code, 'GRAPH_NETWORK');
    assert.equal(error.retryable, true);
    assert.match(error.message, /GRAPH_BASE_URL/);
    assert.ok(error.message.includes(`https://127.0.0.1:${port}/v1.0`), error.message);
    assert.ok(error.message.includes(`ECONNREFUSED 127.0.0.1:${port}`), error.message);
  });
});

describe('a run is bound to the Graph endpoint and partner tenant it started with', () => {
  const EMULATOR_A = 'https://127.0.0.1:40001/v1.0';
  const EMULATOR_B = 'https://127.0.0.1:40002/v1.0';

  /** A USD run started by a host whose GRAPH_BASE_URL is emulator A (the fakes stand in: nothing is contacted). */
  async function startedOnA(): Promise<{ deps: FakeDeps; runId: string }> {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', GRAPH_BASE_URL: EMULATOR_A } });
    const [started] = await startExports({ trigger: 'manual' }, deps);
    assert.ok(started !== undefined && started.runId !== '');
    return { deps, runId: started.runId };
  }

  /** Another host on the same ledger and queues, configured with GRAPH_BASE_URL emulator B (its own caches). */
  function hostOnB(deps: FakeDeps): PipelineDeps {
    return {
      ...deps,
      config: testConfig({ EXPORT_CURRENCIES: 'USD', GRAPH_BASE_URL: EMULATOR_B }),
      manifests: new ManifestCache(),
    };
  }

  async function deliverStatus(deps: FakeDeps, host: PipelineDeps): Promise<void> {
    const next = deps.queue.pendingStatus.shift();
    assert.ok(next !== undefined, 'a status message is pending');
    deps.clock.advanceSeconds(next.delaySeconds);
    await pollExportStatus(parseStatusMessage(next.raw), host);
  }

  async function assertEndpointChanged(deps: FakeDeps, runId: string): Promise<void> {
    const run = (await deps.ledger.getRun(runId))?.value;
    assert.equal(run?.status, 'failed');
    assert.equal(run?.errorCode, 'GRAPH_ENDPOINT_CHANGED');
    assert.ok(run?.error?.includes(EMULATOR_A) && run.error.includes(EMULATOR_B), run?.error);
  }

  it('records the Graph root the run started with, without a query string', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', GRAPH_BASE_URL: `${EMULATOR_A}/` } });
    const [started] = await startExports({ trigger: 'manual' }, deps);
    assert.equal((await deps.ledger.getRun(started?.runId ?? ''))?.value.graphBaseUrl, EMULATOR_A);
  });

  it('fails a status check delivered to a host whose GRAPH_BASE_URL is another emulator, without asking it', async () => {
    const { deps, runId } = await startedOnA();
    deps.graph.scriptOperation('*', running());
    await deliverStatus(deps, hostOnB(deps));
    await assertEndpointChanged(deps, runId);
    assert.deepEqual(deps.graph.operationCalls, []);
  });

  it('does not send a retried start to the other endpoint', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD', GRAPH_BASE_URL: EMULATOR_A } });
    deps.graph.scriptStart(new ExportError('GRAPH_UNAVAILABLE', 'Graph answered 503', { retryable: true }));
    const [started] = await startExports({ trigger: 'manual' }, deps);
    assert.equal(started?.status, 'starting');
    await deliverStatus(deps, hostOnB(deps));
    await assertEndpointChanged(deps, started?.runId ?? '');
    assert.equal(deps.graph.startCalls.length, 1, 'only the first attempt, against A');
  });

  it('fails a copy delivered to a host of another endpoint instead of fetching a SAS there', async () => {
    const { deps, runId } = await startedOnA();
    deps.graph.scriptOperation('*', succeeded(makeManifest()));
    await deliverStatus(deps, deps);
    assert.equal((await deps.ledger.getRun(runId))?.value.status, 'copying');
    const copy = deps.queue.pendingCopies.shift();
    assert.ok(copy !== undefined);
    const callsBefore = deps.graph.operationCalls.length;
    await copyExportBlob(parseCopyMessage(copy.raw), hostOnB(deps));
    await assertEndpointChanged(deps, runId);
    assert.equal(deps.graph.operationCalls.length, callsBefore);
    assert.equal(deps.copier.calls.length, 0);
  });

  it('fails an overdue run the supervisor of another endpoint finds, instead of resuming it there', async () => {
    const { deps, runId } = await startedOnA();
    deps.queue.pendingStatus.length = 0; // the status check was lost
    deps.clock.advanceSeconds(3 * 3600);
    const report = await superviseRuns(hostOnB(deps));
    assert.equal(report.ended, 1);
    assert.equal(report.resumed, 0);
    await assertEndpointChanged(deps, runId);
    assert.equal(deps.queue.pendingStatus.length, 0, 'nothing re-sent');
  });

  it('keeps resuming runs recorded before the endpoint was (no graphBaseUrl on the row)', async () => {
    const { deps, runId } = await startedOnA();
    const row = deps.ledger.runs.get(runId);
    assert.ok(row !== undefined);
    delete row.value.graphBaseUrl;
    deps.graph.scriptOperation('*', running());
    await deliverStatus(deps, hostOnB(deps));
    const run = (await deps.ledger.getRun(runId))?.value;
    assert.equal(run?.status, 'waiting');
    assert.equal(run?.polls, 1);
  });

  it('fails a copy when the fresh SAS comes from another partner tenant', async () => {
    const { deps, runId } = await startedOnA();
    deps.graph.scriptOperation('*', succeeded(makeManifest({ partnerTenantId: 'tenant-a' })));
    await deliverStatus(deps, deps);
    const operation = (await deps.ledger.getRun(runId))?.value.operationUrl ?? '';
    deps.graph.scriptOperation(operation, succeeded(makeManifest({ partnerTenantId: 'tenant-b' })));
    const copy = deps.queue.pendingCopies.shift();
    assert.ok(copy !== undefined);
    // The same endpoint, a new process (empty manifest cache): the copy fetches the operation again.
    await copyExportBlob(parseCopyMessage(copy.raw), { ...deps, manifests: new ManifestCache() });
    const run = (await deps.ledger.getRun(runId))?.value;
    assert.equal(run?.status, 'failed');
    assert.equal(run?.errorCode, 'GRAPH_ENDPOINT_CHANGED');
    assert.match(run?.error ?? '', /tenant-b/);
  });
});

describe('errors that say what to fix: host storage and start attempts', () => {
  it('names AzureWebJobsStorage, the endpoint and the service of a host storage call nobody answered', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:10001'), {
      code: 'ECONNREFUSED',
      request: { url: 'http://127.0.0.1:10001/devstoreaccount1/export-status?timeout=30' },
    });
    const classified = classifyError(refused);
    assert.equal(classified.code, 'HOST_STORAGE_UNAVAILABLE');
    assert.equal(classified.retryable, true);
    assert.match(classified.message, /AzureWebJobsStorage/);
    assert.match(classified.message, /at http:\/\/127\.0\.0\.1:10001 \(queue service\)/);
    assert.doesNotMatch(classified.message, /timeout=30/);
  });

  it('fails a run after the start attempts it was started with, with the last error', async () => {
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const unreachable = () => new ExportError('GRAPH_NETWORK', 'Could not reach Microsoft Graph', { retryable: true });
    deps.graph.scriptStart(unreachable(), unreachable(), unreachable(), unreachable());
    const [started] = await startExports({ trigger: 'manual', maxStartAttempts: 3 }, deps);
    for (let attempt = 2; attempt <= 3; attempt++) {
      const next = deps.queue.pendingStatus.shift();
      assert.ok(next !== undefined, `start attempt ${attempt} is scheduled`);
      deps.clock.advanceSeconds(next.delaySeconds);
      await pollExportStatus(parseStatusMessage(next.raw), deps);
    }
    const run = (await deps.ledger.getRun(started?.runId ?? ''))?.value;
    assert.equal(run?.status, 'failed');
    assert.equal(run?.errorCode, 'GRAPH_NETWORK');
    assert.match(run?.error ?? '', /after 3 attempts/);
    assert.equal(deps.graph.startCalls.length, 3);
    assert.equal(deps.queue.pendingStatus.length, 0);
  });
});

describe('errors that say what to fix: the destination', () => {
  it('names DESTINATION_STORAGE and the refused endpoint when the destination account does not answer', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:10000'), { code: 'ECONNREFUSED' });
    const error = destinationError(refused, 'Creating the destination container partner-billing');
    assert.equal(error.code, 'DESTINATION_UNAVAILABLE');
    assert.equal(error.retryable, true);
    assert.match(error.message, /DESTINATION_STORAGE/);
    assert.match(error.message, /ECONNREFUSED 127\.0\.0\.1:10000/);
  });
});
