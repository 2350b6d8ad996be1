import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TokenCredential } from '@azure/identity';
import { GraphBillingExportApi } from '../../src/adapters/graph/graphBillingExportApi';
import { PARTNER_CENTER_SCOPE, PartnerCenterInvoiceApi } from '../../src/adapters/graph/partnerCenterInvoiceApi';
import { emulatorCredential, emulatorPartnerCenterCredential } from '../../src/composition';
import { exportRequestFor } from '../../src/datasets';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../../src/emulator/partnerBillingEmulator';
import { isExportError } from '../../src/errors';
import { exportSourceStorage } from '../../src/local/azurite';
import { useAzurite } from '../support/azurite';

const azurite = useAzurite();

/** Records the scopes asked for and hands out the inner credential's token. */
function recording(inner: TokenCredential): TokenCredential & { scopes: string[] } {
  const scopes: string[] = [];
  return {
    scopes,
    async getToken(scope) {
      scopes.push(...(Array.isArray(scope) ? scope : [scope]));
      return inner.getToken(scope);
    },
  };
}

describe('Partner Center invoices client and dataset exports against the emulator', () => {
  let emulator: PartnerBillingEmulator;

  before(async () => {
    emulator = await startPartnerBillingEmulator({
      storage: exportSourceStorage(azurite()),
      scenario: { pollsBeforeSuccess: 0, blobCount: 1, rowsPerBlob: 10 },
    });
  });
  after(async () => {
    await emulator.stop();
  });

  it('lists every invoice through the pages, asking only for the Partner Center scope', async () => {
    const credential = recording(emulatorPartnerCenterCredential);
    const api = new PartnerCenterInvoiceApi({
      baseUrl: emulator.partnerCenterBaseUrl,
      credential,
      emulator: true,
      caCertPem: emulator.caCertPem,
      pageSize: 2,
    });
    const invoices = await api.listInvoices();
    assert.deepEqual(
      invoices.map((i) => [i.id, i.currencyCode, i.documentType]),
      [
        ['G000000001', 'USD', 'invoice'],
        ['G000000002', 'EUR', 'invoice'],
        ['G000000003', 'USD', 'invoice'],
      ],
    );
    assert.ok(credential.scopes.length >= 2, 'one token per page');
    assert.ok(credential.scopes.every((scope) => scope === PARTNER_CENTER_SCOPE));
    const pcRequests = emulator.requests.filter((r) => r.path === '/v1/invoices');
    assert.equal(pcRequests.length, 2);
    assert.ok(pcRequests.every((r) => r.authorized && r.status === 200));
  });

  it('fails with PARTNER_CENTER_FAILED, naming the registration, when given a Graph token', async () => {
    const api = new PartnerCenterInvoiceApi({
      baseUrl: emulator.partnerCenterBaseUrl,
      credential: emulatorCredential,
      emulator: true,
      caCertPem: emulator.caCertPem,
    });
    await assert.rejects(api.listInvoices(), (error: unknown) => {
      assert.ok(isExportError(error));
      assert.equal(error.code, 'PARTNER_CENTER_FAILED');
      assert.equal(error.status, 401);
      assert.match(error.message, /register it in Partner Center/);
      return true;
    });
  });

  it('retries a throttled list and reports a persisting outage as retryable', async () => {
    const api = new PartnerCenterInvoiceApi({
      baseUrl: emulator.partnerCenterBaseUrl,
      credential: emulatorPartnerCenterCredential,
      emulator: true,
      caCertPem: emulator.caCertPem,
      sleep: async () => undefined,
    });
    emulator.injectFaults({ kind: 'throttle', on: 'invoices', count: 1, retryAfterSeconds: 1 });
    assert.equal((await api.listInvoices()).length, 3);
    emulator.injectFaults({ kind: 'unavailable', on: 'invoices', count: 3 });
    await assert.rejects(api.listInvoices(), (error: unknown) => {
      assert.ok(isExportError(error));
      assert.equal(error.code, 'PARTNER_CENTER_UNAVAILABLE');
      assert.equal(error.retryable, true);
      return true;
    });
  });

  it('refuses to send a Partner Center token to any host but Partner Center outside emulator mode', () => {
    for (const baseUrl of [
      'https://graph.microsoft.com/v1.0',
      'https://example.com/v1',
      emulator.partnerCenterBaseUrl,
    ]) {
      assert.throws(
        () => new PartnerCenterInvoiceApi({ baseUrl, credential: emulatorPartnerCenterCredential, emulator: false }),
        (error: unknown) => isExportError(error) && error.code === 'GRAPH_HOST_REFUSED',
      );
    }
    assert.doesNotThrow(
      () =>
        new PartnerCenterInvoiceApi({
          baseUrl: 'https://api.partnercenter.microsoft.com/v1',
          credential: emulatorPartnerCenterCredential,
          emulator: false,
        }),
    );
  });

  it('starts the export of every dataset with the Graph token, and names the invoice when Graph does not know it', async () => {
    const graph = new GraphBillingExportApi({
      baseUrl: emulator.baseUrl,
      credential: emulatorCredential,
      emulator: true,
      caCertPem: emulator.caCertPem,
    });
    const unbilled = { currency: 'USD', billingPeriod: 'current' as const, attributeSet: 'basic' as const };
    const billed = { ...unbilled, currency: '', billingPeriod: 'last' as const, invoiceId: 'G000000002' };
    for (const run of [
      { ...unbilled, dataset: 'unbilledUsage' as const },
      { ...unbilled, dataset: 'unbilledReconciliation' as const },
      { ...billed, dataset: 'billedUsage' as const },
      { ...billed, dataset: 'billedReconciliation' as const },
    ]) {
      const started = await graph.startExport(exportRequestFor(run));
      const state = await graph.getOperation(started.operationUrl);
      assert.equal(state.kind, 'succeeded', run.dataset);
    }
    const datasets = emulator.operations().map((o) => `${o.dataset}:${o.invoiceId ?? ''}`);
    assert.deepEqual(datasets.slice(-4), [
      'unbilledUsage:',
      'unbilledReconciliation:',
      'billedUsage:G000000002',
      'billedReconciliation:G000000002',
    ]);
    await assert.rejects(
      graph.startExport(exportRequestFor({ ...billed, dataset: 'billedUsage', invoiceId: 'G404' })),
      (error: unknown) => {
        assert.ok(isExportError(error));
        assert.equal(error.code, 'GRAPH_NOT_FOUND');
        assert.equal(error.retryable, false);
        assert.match(error.message, /G404/);
        assert.match(error.message, /check the invoice id/);
        return true;
      },
    );
    await assert.rejects(
      graph.startExport({ dataset: 'billedUsage', path: '/me/messages', body: {} }),
      (error: unknown) => isExportError(error) && error.code === 'GRAPH_PROTOCOL',
    );
    const authorizedInvoiceCalls = emulator.requests.filter((r) => r.path === '/v1/invoices' && r.authorized);
    assert.ok(authorizedInvoiceCalls.length > 0);
    assert.ok(
      emulator.requests.filter((r) => r.path.startsWith('/v1.0/')).every((r) => r.authorized),
      'every Graph call carried the Graph token',
    );
  });
});
