/**
 * Scale-out (issue 7, deliverable 8): two local host processes on the same queues and ledger. Both are
 * asked at the same moment to start every series (as the timers of two instances would), then share the
 * status checks and copies. Every series is started once (one run, one Graph export), all succeed, and
 * the duration is reported (not asserted).
 *
 * Full: 30 currencies × 2 periods × 10 blobs. Reduced: 3 × 2 × 2.
 *
 * The two instances' clocks are 5 minutes ahead and 5 minutes behind (EXPORT_FAULT_CLOCK_OFFSET_MS), and each
 * writes its run rows 300 ms after taking the series' start lock: the start lock must not take either for a dead
 * holder. Then a run whose host's clock said it started 15 days ago, and that
 * nothing moved since, is ended by one supervisor sweep.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { currencyFactory, type FaultEnv, type HostProcess, startFaultEnv } from './support/faultEnv';
import {
  addReports,
  checkSeries,
  describeReport,
  emptyReport,
  scanForSecrets,
  terminalEvents,
} from './support/invariants';
import { scaled } from './support/scale';

const CURRENCIES = scaled(30, 3);
const BLOBS = scaled(10, 2);

const MINUTE_MS = 60_000;

describe(`scale-out: two host processes with clocks ±5 minutes apart, ${CURRENCIES} currencies × 2 periods × ${BLOBS} blobs`, () => {
  let env: FaultEnv;
  const hosts: HostProcess[] = [];

  before(async () => {
    env = await startFaultEnv({
      scenario: { blobCount: BLOBS, rowsPerBlob: 50, pollsBeforeSuccess: 1 },
      // No crash here: the visibility of a received message is long, as in the Functions host (which renews it).
      settings: { EXPORT_BILLING_PERIODS: 'current,last', FAULTS_RECEIVE_VISIBILITY_SECONDS: '120' },
    });
    // Each run row is written 300 ms after its start lock: the other instance reads the lock before the row.
    const skewed = (minutes: number) => ({
      EXPORT_FAULT_CLOCK_OFFSET_MS: String(minutes * MINUTE_MS),
      FAULTS_RUN_ROW_DELAY_MS: '300',
    });
    hosts.push(
      await env.spawnHost({ name: 'instance1', env: skewed(5) }),
      await env.spawnHost({ name: 'instance2', env: skewed(-5) }),
    );
  });

  after(async () => {
    for (const h of hosts) await h.kill();
    await env?.stop();
  });

  it('both instances, clocks ±5 minutes apart, start every series at once: one run and one Graph export per series, all succeed', async () => {
    const next = currencyFactory('S');
    const currencies = Array.from({ length: CURRENCIES }, () => next());
    const body = { currencies, billingPeriods: ['current', 'last'] };
    const began = Date.now();
    // The instance behind asks first, the one ahead 100 ms later: the first series' lock is then read by a host
    // whose clock says its holder took it 10 minutes ago, while the holder is still writing its run row.
    const answers = await Promise.all(
      hosts.map(async (h, i) => {
        if (i === 0) await new Promise((resolve) => setTimeout(resolve, 100));
        return env.post(h, body);
      }),
    );
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

  it('a run 15 days in flight is ended by one supervisor sweep (RUN_STALLED, ExportRunFailed), and its series starts again', async () => {
    const currency = currencyFactory('Q')();
    // A host whose clock is 15 days behind records the run, then dies before asking Graph; nothing moves it since.
    const old = await env.spawnHost({
      name: 'fifteenDaysAgo',
      crashPoint: 'start.afterRunRow',
      env: { EXPORT_FAULT_CLOCK_OFFSET_MS: String(-15 * 24 * 60 * MINUTE_MS) },
    });
    await env.post(old, { currencies: [currency], billingPeriods: ['current'] }).catch(() => undefined);
    assert.equal((await old.exited).crashPoint, 'start.afterRunRow#1');
    const [stuck] = await env.runsOf(currency);
    assert.equal(stuck?.status, 'starting');
    assert.ok(Date.now() - Date.parse(stuck?.startedAt ?? '') > 14 * 24 * 60 * MINUTE_MS, stuck?.startedAt);

    const swept = await env.supervise();
    assert.equal((swept.result as { ended?: number } | null)?.ended, 1, JSON.stringify(swept.result));
    const [ended] = await env.waitForTerminal([stuck?.runId ?? ''], 10_000);
    assert.equal(ended?.status, 'failed');
    assert.equal(ended?.errorCode, 'RUN_STALLED', ended?.error);

    const again = await env.post(hosts[0]!, { currencies: [currency], billingPeriods: ['current'] });
    assert.equal(again.status, 202, JSON.stringify(again.json));
    const [restarted] = (again.json as { runs: Array<{ runId: string; alreadyInFlight: boolean }> }).runs;
    assert.equal(restarted?.alreadyInFlight, false, 'the ended run no longer holds the series');
    await env.waitForTerminal([restarted?.runId ?? ''], 60_000);
    const report = await checkSeries(env, { currency });
    assert.deepEqual(report.problems, [], describeReport(report));
    assert.deepEqual(
      terminalEvents(env, stuck?.runId ?? '').map((e) => [e.name, e.properties['errorCode']]),
      [['ExportRunFailed', 'RUN_STALLED']],
    );
    assert.equal(report.graphExports, 1, 'the run that died before asking Graph exported nothing');
  });
});
