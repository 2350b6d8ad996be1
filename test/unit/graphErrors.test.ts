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
import { type ExportError, isExportError } from '../../src/errors';
import type { PipelineDeps } from '../../src/pipeline/deps';
import { startExports } from '../../src/pipeline/startExports';
import { makeDeps } from '../support/fakes';

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
