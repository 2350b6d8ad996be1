/**
 * Scale-out (issue 7, deliverable 8): two local host processes on the same queues and ledger. Both are
 * asked at the same moment to start every series (as the timers of two instances would), then share the
 * status checks and copies. Every series is started once (one run, one Graph export), all succeed, and
 * the duration is reported (not asserted).
 *
 * Full: 30 currencies × 2 periods × 10 blobs. Reduced: 3 × 2 × 2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { currencyFactory, type FaultEnv, type HostProcess, startFaultEnv } from './support/faultEnv';
import { addReports, checkSeries, describeReport, emptyReport, scanForSecrets } from './support/invariants';
import { scaled } from './support/scale';

const CURRENCIES = scaled(30, 3);
const BLOBS = scaled(10, 2);

describe(`scale-out: two host processes, ${CURRENCIES} currencies × 2 periods × ${BLOBS} blobs`, () => {
  let env: FaultEnv;
  const hosts: HostProcess[] = [];

  before(async () => {
    env = await startFaultEnv({
      scenario: { blobCount: BLOBS, rowsPerBlob: 50, pollsBeforeSuccess: 1 },
      // No crash here: the visibility of a received message is long, as in the Functions host (which renews it).
      settings: { EXPORT_BILLING_PERIODS: 'current,last', FAULTS_RECEIVE_VISIBILITY_SECONDS: '120' },
    });
    hosts.push(await env.spawnHost({ name: 'instance1' }), await env.spawnHost({ name: 'instance2' }));
  });

  after(async () => {
    for (const h of hosts) await h.kill();
    await env?.stop();
  });

  it('both instances start every series at once: one run and one Graph export per series, all succeed', async () => {
    const next = currencyFactory('S');
    const currencies = Array.from({ length: CURRENCIES }, () => next());
    const body = { currencies, billingPeriods: ['current', 'last'] };
    const began = Date.now();
    const answers = await Promise.all(hosts.map((h) => env.post(h, body)));
    for (const a of answers) assert.equal(a.status, 202, JSON.stringify(a.json));
    const started = answers.map((a) => (a.json as { runs: Array<{ runId: string; alreadyInFlight: boolean }> }).runs);
    const runIds = [...new Set(started.flat().map((r) => r.runId))];
    const ended = await env.waitForTerminal(runIds, 600_000);
    const seconds = (Date.now() - began) / 1000;
    await env.drain(120_000);

    const total = emptyReport();
    for (const currency of currencies) {
      const report = await checkSeries(env, { currency, periods: ['current', 'last'] });
      addReports(total, report);
      for (const period of ['current', 'last']) {
        const runs = (await env.runsOf(currency)).filter((r) => r.billingPeriod === period);
        if (runs.length !== 1) total.problems.push(`${currency} ${period}: ${runs.length} runs (started twice)`);
      }
    }
    const byHost = hosts.map((h) => env.logs.filter((l) => l.host === h.name && l.fn === 'copyExportBlob').length);
    console.log(
      `fault suite scale-out: ${CURRENCIES} currencies × 2 periods × ${BLOBS} blobs = ${ended.length} runs, ` +
        `${total.blobsVerified} blobs verified, ${total.graphExports} Graph exports, ${seconds.toFixed(1)} s from the starts to the last run's end; ` +
        `copy log lines per instance ${byHost.join('/')}`,
    );
    assert.deepEqual(total.problems, [], describeReport(total));
    assert.equal(runIds.length, CURRENCIES * 2, 'one run per series across both instances');
    assert.equal(total.graphExports, CURRENCIES * 2, 'one Graph export per series');
    assert.equal(total.succeeded, CURRENCIES * 2);
    assert.equal(total.blobsVerified, CURRENCIES * 2 * BLOBS);
    const scan = await scanForSecrets(env);
    assert.deepEqual(scan.problems, []);
  });
});
