/**
 * Ctrl-C, SIGTERM and a second command, through the real command line (spawned `cli.js` processes in a
 * temporary folder, each with the embedded Azurite persisted in that folder's `.azurite/` and the embedded
 * HTTPS emulator). The emulator is kept small through LOCAL_EMULATOR_* settings; one copy at a time
 * (LOCAL_QUEUE_BATCH_SIZE=1) gives the interrupt a copy phase to land in. Test timeouts only guard against
 * hangs (messages left invisible for ten minutes hang the second command); the one duration asserted is the minute
 * within which serve must finish the runs a killed command left in flight (README).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { PARTNER_DEST_ACCOUNT, startAzurite } from '../../src/local/azurite';
import { LOCK_FILE } from '../../src/local/dataFolderLock';
import {
  azuriteChildren,
  azuritesOn,
  type CliProcess,
  cleanUp,
  isAlive,
  spawnCli,
  tempWorkFolder,
} from '../support/cliProcess';

const BLOBS = 24;
const SMALL = {
  LOCAL_EMULATOR_BLOB_COUNT: String(BLOBS),
  LOCAL_EMULATOR_ROWS_PER_BLOB: '100',
  LOCAL_EMULATOR_POLLS: '1',
  LOCAL_QUEUE_BATCH_SIZE: '1',
  EXPORT_CURRENCIES: 'USD,EUR',
};
const EXPORT_POST = /emulator: POST \/v1\.0\/reports\/partners\/billing\/usage\/unbilled\/export -> 202/g;

const folders: string[] = [];
function workFolder(name: string): string {
  const folder = tempWorkFolder(name);
  folders.push(folder);
  return folder;
}

after(() => cleanUp(folders));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `pid` has started an Azurite child; returns its pids. */
async function azuriteOf(cli: CliProcess): Promise<number[]> {
  for (;;) {
    const pids = azuriteChildren(cli.pid);
    if (pids.length > 0) return pids;
    if (cli.child.exitCode !== null) assert.fail(`the command ended without starting Azurite:\n${cli.output()}`);
    await sleep(20);
  }
}

/** The run folders of the destination, by series (`currency=USD/attributeSet=full`), read through a fresh Azurite. */
async function runFolders(folder: string): Promise<Map<string, Set<string>>> {
  const azurite = await startAzurite({ location: join(folder, '.azurite') });
  try {
    const service = BlobServiceClient.fromConnectionString(azurite.connectionString(PARTNER_DEST_ACCOUNT.name));
    const container = service.getContainerClient('partner-billing');
    const series = new Map<string, Set<string>>();
    for await (const blob of container.listBlobsFlat()) {
      const match = /currency=([A-Z]{3})\/attributeSet=(\w+)\/run=([^/]+)\/manifest\.json$/.exec(blob.name);
      if (match === null) continue;
      const key = `${match[1]}/${match[2]}`;
      if (!series.has(key)) series.set(key, new Set());
      series.get(key)!.add(match[3]!);
    }
    return series;
  } finally {
    await azurite.stop();
  }
}

describe('command line: Ctrl-C, SIGTERM and a second command', () => {
  it('SIGINT while blobs are copied, then the same command again: resumes and finishes, one folder and one Graph export per series', {
    timeout: 300_000,
  }, async () => {
    const folder = workFolder('interrupt');
    const first = spawnCli(['run', '--verbose', '--json'], folder, SMALL);
    const started = await first.waitFor(/Started 2 run\(s\): USD current full (\S+), EUR current full (\S+)/);
    await first.waitFor(new RegExp(`copying [1-9]\\d*/${BLOBS} blobs`));
    const azurites = azuriteChildren(first.pid);
    assert.equal(azurites.length, 1, 'one Azurite runs for the command');
    first.child.kill('SIGINT');
    const firstEnd = await first.exited;
    for (const pid of azurites) assert.equal(isAlive(pid), false, `Azurite ${pid} is stopped`);
    assert.deepEqual(azuritesOn(folder), [], 'no Azurite is left on the data folder');
    assert.equal(firstEnd.code, 130, `Ctrl-C exits 130 after stopping everything:\n${first.output()}`);
    assert.match(first.output(), /Received SIGINT: handing unfinished queue messages back/);
    assert.equal(existsSync(join(folder, '.azurite', LOCK_FILE)), false, 'the data folder is released');

    const second = spawnCli(['run', '--verbose', '--json'], folder, SMALL);
    const secondEnd = await second.exited;
    assert.equal(secondEnd.code, 0, `the same command again finishes:\n${second.output()}`);
    assert.match(second.output(), /Already in flight, finishing: /);
    const summary = JSON.parse(second.stdout().trim().split('\n').pop()!) as {
      runs: Array<{ runId: string; currency: string; status: string; blobCount: number }>;
    };
    assert.deepEqual(
      summary.runs.map((r) => [r.currency, r.runId, r.status, r.blobCount]).sort(),
      [
        ['EUR', started[2], 'succeeded', BLOBS],
        ['USD', started[1], 'succeeded', BLOBS],
      ],
      'the interrupted runs themselves finished',
    );
    const posts = (first.output().match(EXPORT_POST) ?? []).length + (second.output().match(EXPORT_POST) ?? []).length;
    assert.equal(posts, 2, 'one Graph export per series over both commands');
    const series = await runFolders(folder);
    assert.deepEqual([...series.keys()].sort(), ['EUR/full', 'USD/full']);
    for (const [key, runs] of series) assert.equal(runs.size, 1, `one complete run folder for ${key}`);
  });

  it('SIGKILL while blobs are copied, then the same command again: the dead command’s lock and Azurite are taken over, its runs are resumed and finish', {
    timeout: 300_000,
  }, async () => {
    const folder = workFolder('sigkill');
    const settings = { ...SMALL, LOCAL_QUEUE_LEASE_SECONDS: '2' };
    const first = spawnCli(['run', '--verbose'], folder, settings);
    const started = await first.waitFor(/Started 2 run\(s\): USD current full (\S+), EUR current full (\S+)/);
    await first.waitFor(new RegExp(`copying [1-9]\\d*/${BLOBS} blobs`));
    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok(existsSync(join(folder, '.azurite', LOCK_FILE)), 'the killed command could not release its lock');

    const second = spawnCli(['run', '--verbose', '--json'], folder, settings);
    const secondEnd = await second.exited;
    assert.equal(secondEnd.code, 0, `the same command again finishes:\n${second.output()}`);
    const summary = JSON.parse(second.stdout().trim().split('\n').pop()!) as {
      runs: Array<{ runId: string; status: string }>;
    };
    assert.deepEqual(
      summary.runs.map((r) => [r.runId, r.status]).sort(),
      [
        [started[1], 'succeeded'],
        [started[2], 'succeeded'],
      ].sort(),
    );
    const posts = (first.output().match(EXPORT_POST) ?? []).length + (second.output().match(EXPORT_POST) ?? []).length;
    assert.equal(posts, 2, 'one Graph export per series over both commands');
    assert.deepEqual(azuritesOn(folder), [], 'no Azurite is left on the data folder');
    const series = await runFolders(folder);
    for (const [key, runs] of series) assert.equal(runs.size, 1, `one complete run folder for ${key}`);
    assert.equal(series.size, 2);
  });

  it('SIGKILL of run after a status check was recorded but not sent, then serve: resumes the runs at start-up and finishes them within a minute', {
    timeout: 240_000,
  }, async () => {
    const folder = workFolder('serve-resume');
    const settings = { ...SMALL, LOCAL_EMULATOR_BLOB_COUNT: '2' };
    const killed = spawnCli(['run'], folder, { ...settings, EXPORT_FAULT_CRASH_POINT: 'poll.afterPollWrite' });
    assert.equal((await killed.exited).signal, 'SIGKILL', killed.output());
    assert.match(killed.output(), /fault: crash point poll\.afterPollWrite#1 reached/);

    const began = Date.now();
    const serve = spawnCli(['serve', '--port', '0'], folder, settings);
    await serve.waitFor(/Timer: /);
    // Nothing else moves these runs: the status check the killed command recorded was never sent, and serve's
    // supervisor timer would find them only after its 10 minutes plus EXPORT_STALL_MINUTES.
    let statuses: string[] = [];
    while (Date.now() - began < 60_000) {
      const runs = spawnCli(['runs', '--json'], folder);
      if ((await runs.exited).code === 0) {
        const listed = JSON.parse(runs.stdout().trim().split('\n').pop()!) as { runs: Array<{ status: string }> };
        statuses = listed.runs.map((r) => r.status);
        if (statuses.length === 2 && statuses.every((s) => s === 'succeeded')) break;
      }
      await sleep(1000);
    }
    serve.child.kill('SIGINT');
    assert.equal((await serve.exited).code, 0, serve.output());
    assert.deepEqual(statuses, ['succeeded', 'succeeded'], `both runs finished within a minute:\n${serve.output()}`);
    assert.match(
      serve.output(),
      /The supervisor resumed the run \(status check\): the command that was running it stopped/,
    );
  });

  it('SIGKILL of run before its start reached Graph, then start: resumes the runs at start-up and finishes them within a minute', {
    timeout: 240_000,
  }, async () => {
    const folder = workFolder('start-resume');
    const settings = { ...SMALL, LOCAL_EMULATOR_BLOB_COUNT: '2' };
    const killed = spawnCli(['run'], folder, { ...settings, EXPORT_FAULT_CRASH_POINT: 'start.afterRunRow' });
    assert.equal((await killed.exited).signal, 'SIGKILL', killed.output());

    const start = spawnCli(['start', '--port', '0'], folder, settings);
    await start.waitFor(/Still serving on/, 60_000);
    start.child.kill('SIGINT');
    assert.equal((await start.exited).code, 0, start.output());
    assert.match(start.output(), /The supervisor resumed the run \(start\): the command that was running it stopped/);
    assert.match(start.output(), /Already in flight, finishing: USD current full \S+ \(\w+\)/);
    assert.match(start.output(), /USD current full: succeeded/);
    assert.match(start.output(), /EUR current full: succeeded/);
  });

  it('SIGTERM during the run phase of start, and during the start of Azurite, leaves no Azurite running', {
    timeout: 180_000,
  }, async () => {
    const folder = workFolder('sigterm');
    const start = spawnCli(['start', '--port', '0'], folder, SMALL);
    await start.waitFor(/Started 2 run\(s\)/);
    const azurites = azuriteChildren(start.pid);
    assert.equal(azurites.length, 1);
    start.child.kill('SIGTERM');
    const end = await start.exited;
    for (const pid of azurites) assert.equal(isAlive(pid), false, `Azurite ${pid} is stopped`);
    assert.deepEqual(azuritesOn(folder), []);
    assert.equal(end.code, 143, `SIGTERM exits 143 after stopping everything:\n${start.output()}`);

    const early = spawnCli(['start', '--port', '0'], folder, SMALL);
    const starting = await azuriteOf(early);
    early.child.kill('SIGTERM');
    const earlyEnd = await early.exited;
    for (const pid of starting) assert.equal(isAlive(pid), false, `Azurite ${pid} (still starting) is stopped`);
    assert.deepEqual(azuritesOn(folder), []);
    assert.equal(earlyEnd.code, 143, early.output());
  });

  it('runs while start serves uses the running Azurite; run refuses; Ctrl-C of start then stops it', {
    timeout: 180_000,
  }, async () => {
    const folder = workFolder('second');
    const start = spawnCli(['start', '--port', '0'], folder, { ...SMALL, LOCAL_EMULATOR_BLOB_COUNT: '2' });
    await start.waitFor(/Still serving on/);
    const [azurite] = azuriteChildren(start.pid);
    assert.ok(azurite !== undefined);

    const runs = spawnCli(['runs', '--json'], folder);
    const seen = new Set<number>();
    let ended = false;
    void runs.exited.then(() => {
      ended = true;
    });
    while (!ended) {
      for (const pid of azuriteChildren(runs.pid)) seen.add(pid);
      for (const pid of azuritesOn(folder)) seen.add(pid);
      await sleep(20);
    }
    assert.equal((await runs.exited).code, 0, runs.output());
    assert.deepEqual([...seen], [azurite], 'only the serving command’s Azurite ever ran on the data folder');
    assert.match(runs.output(), new RegExp(`Using the Azurite \\(pid ${azurite}, .*"start" command`));
    const listed = JSON.parse(runs.stdout().trim().split('\n').pop()!) as { runs: Array<{ status: string }> };
    assert.deepEqual(
      listed.runs.map((r) => r.status),
      ['succeeded', 'succeeded'],
    );

    const run = spawnCli(['run'], folder, SMALL);
    const refused = await run.exited;
    assert.equal(refused.code, 3, run.output());
    assert.match(run.output(), /Another csp-unbilled-export command \("start", pid \d+.*stop that command first/);
    assert.deepEqual(azuriteChildren(run.pid), []);

    start.child.kill('SIGINT');
    assert.equal((await start.exited).code, 0, 'Ctrl-C is the normal end of serving');
    assert.equal(isAlive(azurite), false);
    assert.deepEqual(azuritesOn(folder), []);
  });
});
