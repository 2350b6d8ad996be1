/**
 * Near-simultaneous starts of one series (the timer and a portal Test/Run, two HTTP calls, two command lines)
 * against the real run ledger on Azurite: exactly one Graph export, every other start returns that run.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import { newRunId } from '../../src/pipeline/layout';
import { type StartedRun, startExports } from '../../src/pipeline/startExports';
import { uniqueName, useAzurite } from '../support/azurite';
import { makeDeps } from '../support/fakes';

const azurite = useAzurite();

/**
 * The real ledger, whose run-row writes take `slowMs` longer: the window between a starter taking the series'
 * start lock and writing its run row, which another starter must not take for a dead holder.
 */
function ledgerOnAzurite(slowMs: number): TableRunLedger {
  const ledger = new TableRunLedger(
    { kind: 'connectionString', connectionString: azurite().connectionString('devstoreaccount1') },
    { tableNames: { runs: uniqueName('runs'), blobs: uniqueName('blobs'), locks: uniqueName('locks') } },
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
