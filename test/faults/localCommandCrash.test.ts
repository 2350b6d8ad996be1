/**
 * The local command killed at every crash point: `run` (the real command line, `cli.js` in a temporary folder with
 * its embedded Azurite persisted in `.azurite/` and the embedded HTTPS emulator) kills itself with SIGKILL at a
 * crash point (EXPORT_FAULT_CRASH_POINT); the same command again, without it, must exit 0 within a minute with
 * every run ended, one run folder and one finished run per series, and no second Graph export outside the
 * documented window (Graph accepted, the operation not yet recorded: `start.afterGraphAccepted`).
 *
 * `supervise.afterResume` is reached only while a command resumes a run: a first command dies at
 * `start.afterRunRow`, a second dies resuming it, a third finishes it.
 *
 * Reduced (npm test): a seeded sample of two points, one of them among the points where the second command used
 * to wait until --timeout-minutes. Full (npm run test:faults): all 21.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import { CRASH_POINTS } from '../../src/crashPoints';
import { DEV_STORE_ACCOUNT, PARTNER_DEST_ACCOUNT, startAzurite } from '../../src/local/azurite';
import { TERMINAL_STATUSES } from '../../src/pipeline/ports';
import { cleanUp, spawnCli, tempWorkFolder } from '../support/cliProcess';
import { FULL, SEED, sample } from './support/scale';

const SETTINGS = {
  LOCAL_EMULATOR_BLOB_COUNT: '3',
  LOCAL_EMULATOR_ROWS_PER_BLOB: '100',
  LOCAL_EMULATOR_POLLS: '1',
  EXPORT_CURRENCIES: 'USD,EUR',
};
const SERIES = ['EUR/full', 'USD/full'];
/** What the issue asks of the same command again. */
const FINISH_WITHIN_MS = 60_000;
const EXPORT_POST = /emulator: POST \/v1\.0\/reports\/partners\/billing\/usage\/unbilled\/export -> 202/g;
/** The points after which the same command used to wait until --timeout-minutes (360 by default). */
const USED_TO_STALL = [
  'start.afterRunRow',
  'start.afterGraphAccepted',
  'start.afterWaitingWrite',
  'poll.afterPollWrite',
];

/** The commands killed one after the other (each at its `<point>#1`) before the one that must finish. */
function crashesFor(point: string): string[] {
  return point === 'supervise.afterResume' ? ['start.afterRunRow#1', 'supervise.afterResume#1'] : [`${point}#1`];
}

function points(): string[] {
  const only = process.env['FAULTS_ONLY'];
  if (only !== undefined) return CRASH_POINTS.filter((p) => p.includes(only));
  if (FULL) return [...CRASH_POINTS];
  const others = CRASH_POINTS.filter((p) => !USED_TO_STALL.includes(p));
  return [...sample(USED_TO_STALL, 1, SEED), ...sample(others, 1, SEED + 1)];
}

const folders: string[] = [];
after(() => cleanUp(folders));

/** What the data folder holds after the commands: the ledger's runs and the run folders of each series. */
async function inspect(folder: string) {
  const azurite = await startAzurite({ location: join(folder, '.azurite') });
  try {
    const ledger = new TableRunLedger({
      kind: 'connectionString',
      connectionString: azurite.connectionString(DEV_STORE_ACCOUNT.name),
    });
    const runs = await ledger.listRuns({ limit: 100 });
    const service = BlobServiceClient.fromConnectionString(azurite.connectionString(PARTNER_DEST_ACCOUNT.name));
    const folders = new Map<string, Set<string>>();
    for await (const blob of service.getContainerClient('partner-billing').listBlobsFlat()) {
      const match = /currency=([A-Z]{3})\/attributeSet=(\w+)\/run=([^/]+)\/manifest\.json$/.exec(blob.name);
      if (match === null) continue;
      const key = `${match[1]}/${match[2]}`;
      if (!folders.has(key)) folders.set(key, new Set());
      folders.get(key)?.add(match[3] ?? '');
    }
    return { runs, folders };
  } finally {
    await azurite.stop();
  }
}

describe(`the local run command killed at ${points().length} crash point(s) (seed ${SEED}), then run again`, () => {
  const seconds: string[] = [];
  after(() => console.log(`local command crash: time to finish after the kill: ${seconds.join(', ')}`));

  for (const point of points()) {
    it(`SIGKILL of run at ${point}, then the same command again: exits 0 within a minute, every run ended, one run per series`, {
      timeout: 240_000,
    }, async () => {
      const folder = tempWorkFolder('local-crash');
      folders.push(folder);
      let output = '';
      for (const crash of crashesFor(point)) {
        const killed = spawnCli(['run', '--verbose'], folder, { ...SETTINGS, EXPORT_FAULT_CRASH_POINT: crash });
        const guard = setTimeout(() => killed.child.kill('SIGKILL'), 120_000);
        const exit = await killed.exited;
        clearTimeout(guard);
        output += killed.output();
        assert.match(
          killed.output(),
          new RegExp(`fault: crash point ${crash} reached; SIGKILL`),
          `the command never reached ${crash} (exit ${JSON.stringify(exit)}):\n${killed.output()}`,
        );
        assert.equal(exit.signal, 'SIGKILL');
      }

      const began = Date.now();
      const again = spawnCli(['run', '--verbose', '--json'], folder, SETTINGS);
      let late = false;
      const guard = setTimeout(() => {
        late = true;
        again.child.kill('SIGKILL');
      }, FINISH_WITHIN_MS);
      const exit = await again.exited;
      clearTimeout(guard);
      const took = (Date.now() - began) / 1000;
      seconds.push(`${point} ${took.toFixed(1)} s`);
      output += again.output();
      assert.equal(
        late,
        false,
        `the same command again did not end within ${FINISH_WITHIN_MS / 1000} s:\n${again.output()}`,
      );
      assert.equal(exit.code, 0, `the same command again exits 0:\n${again.output()}`);

      const { runs, folders: runFolders } = await inspect(folder);
      const notEnded = runs.filter((r) => !TERMINAL_STATUSES.includes(r.status));
      assert.deepEqual(
        notEnded.map((r) => `${r.runId} ${r.status}`),
        [],
        'every run ended',
      );
      assert.deepEqual([...runFolders.keys()].sort(), SERIES, 'a run folder per series');
      for (const [key, found] of runFolders) assert.equal(found.size, 1, `one run folder for ${key}`);
      for (const key of SERIES) {
        const ofSeries = runs.filter((r) => `${r.currency}/${r.attributeSet}` === key);
        // A run that ended before the kill is followed by a new one (run starts exports), which finds the data
        // unchanged; a run in flight at the kill is finished, never doubled.
        assert.deepEqual(
          ofSeries.map((r) => r.status).sort(),
          ['succeeded', ...ofSeries.slice(1).map(() => 'unchanged')],
          `${key}: one run finished, the others found it unchanged (${ofSeries.map((r) => `${r.runId} ${r.status} ${r.error ?? ''}`).join('; ')})`,
        );
      }
      const exports = (output.match(EXPORT_POST) ?? []).length;
      const window = point === 'start.afterGraphAccepted' ? 1 : 0;
      const newRuns = runs.length - SERIES.length;
      assert.ok(
        exports <= SERIES.length + newRuns + window,
        `${exports} Graph exports for ${runs.length} runs (${window} allowed in the documented window)`,
      );
    });
  }
});
