/**
 * Near-simultaneous starts of one series (the timer and a portal Test/Run, two HTTP calls, two command lines)
 * against the real run ledger on Azurite: exactly one Graph export, every other start returns that run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import { newRunId, startLockKey } from '../../src/pipeline/layout';
import { type StartedRun, startExports } from '../../src/pipeline/startExports';
import { uniqueName, useAzurite } from '../support/azurite';
import { makeDeps } from '../support/fakes';

const azurite = useAzurite();

/**
 * The real ledger, whose run-row writes take `slowMs` longer: the window between a starter taking the series'
 * start lock and writing its run row, which another starter must not take for a dead holder.
 */
function ledgerOnAzurite(
  slowMs: number,
  tableNames = { runs: uniqueName('runs'), blobs: uniqueName('blobs'), locks: uniqueName('locks') },
  clock = { now: () => new Date() },
): TableRunLedger {
  const ledger = new TableRunLedger(
    { kind: 'connectionString', connectionString: azurite().connectionString('devstoreaccount1') },
    { tableNames, clock },
  );
  const createRun = ledger.createRun.bind(ledger);
  ledger.createRun = async (run) => {
    await new Promise((resolve) => setTimeout(resolve, slowMs));
    return createRun(run);
  };
  return ledger;
}

describe('concurrent starts of one series on the real ledger (Azurite)', () => {
  for (const [starters, slowMs] of [
    [2, 0],
    [8, 0],
    [2, 300],
    [8, 300],
  ] as const) {
    it(`starts exactly one Graph export when ${starters} starts race (run rows written ${slowMs} ms late)`, async () => {
      const ledger = ledgerOnAzurite(slowMs);
      const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
      // Each starter is its own process in real life: its own deps, the shared ledger and Graph.
      const starts: Array<Promise<StartedRun[]>> = [];
      for (let i = 0; i < starters; i++) {
        const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
        const own = { ...deps, ledger, clock: { now: () => new Date() }, newRunId, sleep };
        starts.push(startExports({ trigger: i === 0 ? 'schedule' : 'manual' }, own));
      }
      const results = (await Promise.all(starts)).flat();
      assert.equal(deps.graph.startCalls.length, 1, 'exactly one Graph export');
      const runIds = new Set(results.map((r) => r.runId));
      assert.equal(runIds.size, 1, `every start names the same run: ${JSON.stringify(results)}`);
      assert.equal(results.filter((r) => !r.alreadyInFlight).length, 1, 'one start created the run');
      assert.deepEqual(
        results.map((r) => r.error),
        results.map(() => undefined),
      );
    });
  }
});

describe('starts of one series by two hosts whose clocks are 5 minutes apart (Azurite)', () => {
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  /** A host of its own: its clock off by `offsetMs`, its ledger (same tables) and Graph shared with the others. */
  function host(deps: ReturnType<typeof makeDeps>, tables: Parameters<typeof ledgerOnAzurite>[1], offsetMs: number) {
    const clock = { now: () => new Date(Date.now() + offsetMs) };
    return { ...deps, ledger: ledgerOnAzurite(300, tables, clock), clock, newRunId, sleep };
  }

  for (const [first, second] of [
    [-5, 5],
    [5, -5],
  ] as const) {
    it(`starts one Graph export when the host ${first > 0 ? 'ahead' : 'behind'} takes the lock and the other starts 50 ms later`, async () => {
      const tables = { runs: uniqueName('runs'), blobs: uniqueName('blobs'), locks: uniqueName('locks') };
      const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
      const starts = [startExports({ trigger: 'schedule' }, host(deps, tables, first * 60_000))];
      await sleep(50);
      starts.push(startExports({ trigger: 'manual' }, host(deps, tables, second * 60_000)));
      const results = (await Promise.all(starts)).flat();
      assert.equal(deps.graph.startCalls.length, 1, `exactly one Graph export: ${JSON.stringify(results)}`);
      assert.equal(new Set(results.map((r) => r.runId)).size, 1, `both name the same run: ${JSON.stringify(results)}`);
      assert.deepEqual(
        results.map((r) => r.error),
        [undefined, undefined],
      );
    });
  }

  it('takes over the lock of a holder that never recorded itself once 15 s passed by the storage clock, whichever clock is ahead', async () => {
    const cases = [
      { holder: 5, starter: -5 },
      { holder: -5, starter: 5 },
    ];
    const outcomes = await Promise.all(
      cases.map(async ({ holder, starter }) => {
        const tables = { runs: uniqueName('runs'), blobs: uniqueName('blobs'), locks: uniqueName('locks') };
        const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
        // The holder took the series' lock and died before writing its run row.
        const dead = host(deps, tables, holder * 60_000);
        assert.equal(
          await dead.ledger.acquireStartLock(startLockKey('USD', 'current', 'full'), 'dead-holder', async () => false),
          undefined,
        );
        const began = Date.now();
        const [result] = await startExports({ trigger: 'manual' }, host(deps, tables, starter * 60_000));
        return { holder, result, seconds: (Date.now() - began) / 1000, exports: deps.graph.startCalls.length };
      }),
    );
    for (const { holder, result, seconds, exports } of outcomes) {
      const label = `holder ${holder > 0 ? 'ahead' : 'behind'}: ${JSON.stringify(result)} after ${seconds} s`;
      assert.equal(result?.error, undefined, label);
      assert.equal(result?.alreadyInFlight, false, label);
      assert.equal(exports, 1, label);
      assert.ok(seconds >= 15 && seconds < 30, `after the 15 s grace, not minutes later: ${label}`);
    }
  });
});
