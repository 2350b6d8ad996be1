/**
 * Delivery (issue 7, deliverable 8): at-least-once queues deliver messages twice, late and out of order,
 * and poison queues receive messages of runs that already ended. Every run still ends exactly once,
 * a final state is never rewritten, and a poisoned message of an ended run neither fails it nor alerts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { QueueNames, TelemetryEvents } from '../../src/names';
import type { RunRecord } from '../../src/pipeline/ports';
import { currencyFactory, type FaultEnv, type HostProcess, startFaultEnv } from './support/faultEnv';
import { checkSeries, describeReport, endEventsOf, scanForSecrets } from './support/invariants';
import { SEED, scaled, seededRandom } from './support/scale';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe(`delivery: duplicated, delayed, reordered and poisoned messages (seed ${SEED})`, () => {
  let env: FaultEnv;
  let host: HostProcess;
  const nextCurrency = currencyFactory('D');
  let duplicated = 0;

  before(async () => {
    env = await startFaultEnv();
    host = await env.spawnHost({ name: 'delivery' });
  });

  after(async () => {
    await host?.kill();
    await env?.stop();
  });

  /** Sends a message, optionally invisible for `delaySeconds` (a late delivery). */
  async function send(queue: string, body: unknown, delaySeconds = 0): Promise<void> {
    const client = env.queues.getQueueClient(queue);
    await client.createIfNotExists();
    const text = Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
    await client.sendMessage(text, delaySeconds > 0 ? { visibilityTimeout: delaySeconds } : {});
    duplicated++;
  }

  async function startRun(currency: string): Promise<string> {
    const posted = await env.post(host, { currencies: [currency] });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    return (posted.json as { runs: Array<{ runId: string }> }).runs[0]?.runId ?? '';
  }

  const rounds = scaled(4, 1);
  for (let round = 0; round < rounds; round++) {
    it(`round ${round + 1}: copies and status checks delivered up to 4 times, late and out of order, during and after the run`, async () => {
      const random = seededRandom(SEED + round);
      const currency = nextCurrency();
      env.emulator.configure({ pollsBeforeSuccess: 3, blobCount: 3 }, currency);
      const runId = await startRun(currency);
      // Before the copies exist: status messages of every kind, reordered.
      const statusBodies = [
        { version: 1, kind: 'poll', runId, attempt: 7 },
        { version: 1, kind: 'start', runId },
        { version: 1, kind: 'poll', runId, attempt: 0 },
        { version: 1, kind: 'poll', runId, attempt: 2 },
      ];
      for (const body of statusBodies) await send(QueueNames.status, body, Math.floor(random() * 3));
      const withBlobs = await env.waitUntil(`run ${runId} to list its blobs`, async () => {
        const run = (await env.ledger.getRun(runId))?.value;
        return run !== undefined && run.blobCount !== undefined ? run : undefined;
      });
      const names = (await env.ledger.listBlobs(runId)).map((b) => b.name);
      assert.equal(names.length, withBlobs.blobCount);
      // While copying: every copy up to three more times, reversed, some late; status checks again.
      for (let copy = 0; copy < 3; copy++) {
        for (const name of [...names].reverse()) {
          await send(QueueNames.copy, { version: 1, runId, blobName: name }, Math.floor(random() * 4));
        }
        await send(QueueNames.status, { version: 1, kind: 'poll', runId, attempt: copy }, Math.floor(random() * 3));
      }
      const [ended] = await env.waitForTerminal([runId], 90_000);
      assert.ok(ended !== undefined);
      // After the end: the same once more, some arriving late.
      for (const name of names) await send(QueueNames.copy, { version: 1, runId, blobName: name }, 1);
      await send(QueueNames.status, { version: 1, kind: 'start', runId }, 2);
      await send(QueueNames.status, { version: 1, kind: 'poll', runId, attempt: 9 }, 2);
      await sleep(3000);
      await env.drain(90_000);
      await sleep(1000);

      const final = (await env.ledger.getRun(runId))?.value as RunRecord;
      assert.equal(final.status, ended.status, 'the final status was not rewritten');
      assert.equal(final.completedAt, ended.completedAt, 'completed once');
      const report = await checkSeries(env, { currency });
      assert.deepEqual(report.problems, [], describeReport(report));
      assert.equal((await endEventsOf(env, runId)).length, 1, 'exactly one ExportRunCompleted/ExportRunFailed');
      const manifests = (await env.listDestination()).filter(
        (b) => b.path.includes(`currency=${currency}/`) && b.path.endsWith('/manifest.json'),
      );
      assert.equal(manifests.length, 1, 'one manifest.json');
      assert.equal(report.graphExports, 1, 'one Graph export');
    });
  }

  it('poison messages of runs that already ended (succeeded, failed, noData) neither change them nor alert', async () => {
    const ok = nextCurrency();
    const failed = nextCurrency();
    const noData = nextCurrency();
    env.emulator.configure(
      { outcome: 'failed', failureCode: '7012', failureMessage: 'Export processing failed' },
      failed,
    );
    env.emulator.configure({ outcome: 'noData' }, noData);
    const runIds = [await startRun(ok), await startRun(failed), await startRun(noData)];
    const ended = await env.waitForTerminal(runIds, 90_000);
    assert.deepEqual(
      ended.map((r) => r.status),
      ['succeeded', 'failed', 'noData'],
    );
    await env.drain();
    const blobName = (await env.ledger.listBlobs(runIds[0] ?? ''))[0]?.name ?? 'x.json.gz';
    for (const runId of runIds) {
      await send(QueueNames.statusPoison, { version: 1, kind: 'poll', runId, attempt: 3 });
      await send(QueueNames.statusPoison, { version: 1, kind: 'start', runId });
      await send(QueueNames.copyPoison, { version: 1, runId, blobName });
    }
    await sleep(1000);
    await env.drain(60_000);
    await sleep(1500);
    for (const [i, runId] of runIds.entries()) {
      const now = (await env.ledger.getRun(runId))?.value as RunRecord;
      const before = ended[i] as RunRecord;
      assert.equal(now.status, before.status, `${runId} stays ${before.status}`);
      assert.equal(now.completedAt, before.completedAt);
      assert.equal(now.errorCode, before.errorCode);
      assert.equal((await endEventsOf(env, runId)).length, 1, `${runId} ended once`);
      // The "message poisoned" alert (infra/queries/alert-message-poisoned.kql) skips events whose runStatus
      // is final unless endedRun is "true": an ExportMessagePoisoned of a run that had ended must carry its final
      // status and endedRun "false", or not be sent at all.
      const alerting = env.ingestion.items.filter(
        (item) =>
          item.name === TelemetryEvents.messagePoisoned &&
          item.properties['runId'] === runId &&
          (!['succeeded', 'unchanged', 'noData', 'failed'].includes(item.properties['runStatus'] ?? '') ||
            item.properties['endedRun'] === 'true'),
      );
      assert.deepEqual(
        alerting.map((e) => e.properties),
        [],
        `no alerting ExportMessagePoisoned (one with endedRun "true" or no final runStatus) for ${before.status} run ${runId}`,
      );
      assert.ok(
        !env.logs.some((l) => l.level === 'error' && l.line.includes(runId) && /poison/i.test(l.line)),
        `no error line for a poisoned message of ended run ${runId}`,
      );
    }
    for (const currency of [ok, failed, noData]) {
      const report = await checkSeries(env, { currency, expectSuccess: currency === ok });
      assert.deepEqual(report.problems, [], describeReport(report));
    }
  });

  it('totals and the secret scan', async () => {
    const scan = await scanForSecrets(env);
    console.log(`fault suite delivery: seed ${SEED}, ${duplicated} extra deliveries, ${scan.scanned} texts scanned`);
    assert.deepEqual(scan.problems, []);
  });
});
