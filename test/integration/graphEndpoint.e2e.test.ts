/**
 * A run is bound to the Graph endpoint it started with, end to end: a run started against emulator A (Azurite, the
 * local Functions host) and then handled by the same host configured with GRAPH_BASE_URL emulator B fails with
 * GRAPH_ENDPOINT_CHANGED; B is never asked about A's operation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../../src/emulator/partnerBillingEmulator';
import { exportSourceStorage } from '../../src/local/azurite';
import { type Harness, startHarness } from '../support/harness';

describe('a run resumed under another GRAPH_BASE_URL', () => {
  let h: Harness;
  let emulatorB: PartnerBillingEmulator;

  before(async () => {
    // Emulator A (the harness's) keeps the operation running for a while, so the run is waiting when B takes over.
    h = await startHarness({ scenario: { pollsBeforeSuccess: 30, retryAfterSeconds: 1 } });
    emulatorB = await startPartnerBillingEmulator({ storage: exportSourceStorage(h.azurite) });
  });

  after(async () => {
    await emulatorB?.stop();
    await h?.stop();
  });

  it('fails a waiting run with GRAPH_ENDPOINT_CHANGED instead of asking the other emulator', async () => {
    h.beginTest();
    const started = await h.startOne({ currencies: ['USD'] });
    const waiting = await h.waitForRun(started.runId, (run) => run.status === 'waiting');
    assert.equal(waiting.graphBaseUrl, h.emulator.baseUrl.replace(/\/+$/, ''));
    h.setEnv({ GRAPH_BASE_URL: emulatorB.baseUrl, GRAPH_CA_CERT_FILE: emulatorB.caCertPath });
    const [run] = await h.waitForTerminal([started.runId], 60_000);
    assert.equal(run?.status, 'failed');
    assert.equal(run?.errorCode, 'GRAPH_ENDPOINT_CHANGED');
    assert.ok(run?.error?.includes(emulatorB.baseUrl.replace(/\/+$/, '')), run?.error);
    assert.equal(run?.path, undefined, 'nothing was copied');
    await h.drain();
  });

  it('does not send the retried start of a run to the other emulator: the run fails with GRAPH_ENDPOINT_CHANGED', async () => {
    h.beginTest();
    // A refuses every start attempt (10 attempts of 3 requests each): the run waits for a retried start, and whichever
    // retry comes before the switch to B fails again, so no retried start can reach A however slow this test is.
    // Last in this file: the faults left on A would refuse the other test's start.
    h.emulator.injectFaults({ kind: 'unavailable', on: 'export', count: 30 });
    const started = await h.startOne({ currencies: ['EUR'] });
    assert.equal(started.status, 'starting', 'A refused the start: a retried start is queued (in about 1 s)');
    h.setEnv({ GRAPH_BASE_URL: emulatorB.baseUrl, GRAPH_CA_CERT_FILE: emulatorB.caCertPath });
    const [run] = await h.waitForTerminal([started.runId], 60_000);
    assert.equal(run?.status, 'failed', `${run?.status} ${run?.error ?? ''}`);
    assert.equal(run?.errorCode, 'GRAPH_ENDPOINT_CHANGED');
    assert.equal(run?.operationUrl, undefined, 'emulator B was never asked for an export');
    await h.drain();
  });
});
