/**
 * The `files` command through the real command line (spawned `cli.js` processes in a temporary folder with the
 * embedded Azurite persisted in its `.azurite/` and the embedded emulator): after real runs it lists the current
 * data of each series, every run folder, one run's folder and the curated folders, downloads byte-identical
 * files (compared with the destination's bytes read through the Storage SDK), skips them the second time, and
 * refuses bad flags before starting anything. Also: a destination given by DESTINATION_STORAGE is read as it is,
 * and `start` says how to open the files (the local account only when the destination is the embedded one).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { type AzuriteInstance, PARTNER_DEST_ACCOUNT, startAzurite } from '../../src/local/azurite';
import { cleanUp, spawnCli, tempWorkFolder } from '../support/cliProcess';

const SMALL = {
  LOCAL_EMULATOR_BLOB_COUNT: '2',
  LOCAL_EMULATOR_ROWS_PER_BLOB: '50',
  LOCAL_EMULATOR_POLLS: '1',
  EXPORT_CURRENCIES: 'USD,EUR',
};

interface FileRow {
  path: string;
  size: number;
  contentType: string | null;
  lastModified: string | null;
  kind: 'raw' | 'curated' | 'focus';
  dataset: string | null;
  series: string | null;
  runId: string | null;
  localPath?: string | null;
  download?: 'written' | 'skipped' | 'refused';
}

const folders: string[] = [];
function workFolder(name: string): string {
  const folder = tempWorkFolder(name);
  folders.push(folder);
  return folder;
}
after(() => cleanUp(folders));

/** The last JSON line a command printed. */
function lastJson<T>(output: string): T {
  const line = output
    .trim()
    .split('\n')
    .reverse()
    .find((candidate) => candidate.startsWith('{'));
  assert.ok(line !== undefined, `a JSON line was printed:\n${output}`);
  return JSON.parse(line) as T;
}

async function cli(args: string[], cwd: string, env: Record<string, string> = {}) {
  const command = spawnCli(args, cwd, { ...SMALL, ...env });
  const { code } = await command.exited;
  return { code, output: command.output() };
}

/** Runs `body` with the destination container of the data folder, read through an Azurite of the test's own. */
async function withDestination<T>(folder: string, body: (container: ContainerClient) => Promise<T>): Promise<T> {
  const azurite = await startAzurite({ location: join(folder, '.azurite') });
  try {
    const service = BlobServiceClient.fromConnectionString(azurite.connectionString(PARTNER_DEST_ACCOUNT.name));
    return await body(service.getContainerClient('partner-billing'));
  } finally {
    await azurite.stop();
  }
}

describe('command line: files lists and downloads what landed', () => {
  const folder = workFolder('files');
  /** The run ids, by series folder, in start order; the destination's bytes by path. */
  const runsBySeries = new Map<string, string[]>();
  const currentRun = new Map<string, string>();
  const destinationBytes = new Map<string, Buffer>();
  let firstRunOutput = '';

  before(async () => {
    const first = await cli(['run', '--datasets', 'unbilledUsage,unbilledReconciliation', '--json'], folder);
    assert.equal(first.code, 0, first.output);
    firstRunOutput = first.output;
    // A second USD run of unbilled usage: that series then has an older folder that is not the current data.
    const second = await cli(['run', '--currencies', 'USD', '--force', '--json'], folder);
    assert.equal(second.code, 0, second.output);
    for (const { output } of [first, second]) {
      for (const run of lastJson<{ runs: Array<{ runId: string; path: string }> }>(output).runs) {
        const series = run.path.slice(0, run.path.lastIndexOf('/run='));
        runsBySeries.set(series, [...(runsBySeries.get(series) ?? []), run.runId]);
      }
    }
    // What the curation step writes lands under curated/ and focus/: listed as it is.
    await withDestination(folder, async (container) => {
      for (const [path, text] of [
        ['curated/unbilled-usage/billingMonth=2026-12/part-0.parquet', 'PAR1 curated usage'],
        ['focus/unbilled-reconciliation/billingMonth=2026-12/part-0.parquet', 'PAR1 focus reconciliation'],
        ['focus/manifest.json', '{"focusVersion":"1.2"}'],
      ] as const) {
        await container.getBlockBlobClient(path).upload(text, text.length, {
          blobHTTPHeaders: {
            blobContentType: path.endsWith('.json') ? 'application/json' : 'application/octet-stream',
          },
        });
      }
      for await (const blob of container.listBlobsFlat()) {
        destinationBytes.set(blob.name, await container.getBlobClient(blob.name).downloadToBuffer());
        if (blob.name.endsWith('/latest.json')) {
          const pointer = JSON.parse(destinationBytes.get(blob.name)!.toString('utf8')) as { runId: string };
          currentRun.set(blob.name.slice(0, -'/latest.json'.length), pointer.runId);
        }
      }
    });
  });

  it('run says how to open the files with the files command, and prints no account key (its Azurite stops with it)', () => {
    assert.match(firstRunOutput, /Open the files: {2}npm run cli -- files/);
    assert.doesNotMatch(firstRunOutput, /account key/);
  });

  it('files --json lists, for each series, its latest.json and the run folder it names, and curated/ and focus/', {
    timeout: 300_000,
  }, async () => {
    const { code, output } = await cli(['files', '--json'], folder);
    assert.equal(code, 0, output);
    const { container, files } = lastJson<{ container: string; files: FileRow[] }>(output);
    assert.equal(container, 'partner-billing');
    assert.equal(currentRun.size, 4, 'four series: two datasets, two currencies');
    const expected = [...destinationBytes.keys()]
      .filter(
        (path) =>
          path.startsWith('curated/') ||
          path.startsWith('focus/') ||
          [...currentRun].some(
            ([series, runId]) => path === `${series}/latest.json` || path.startsWith(`${series}/run=${runId}/`),
          ),
      )
      .sort();
    assert.deepEqual(
      files.map((file) => file.path),
      expected,
    );
    const [usdSeries, usdRuns] = [...runsBySeries].find(([series]) =>
      /^unbilled-usage\/.*currency=USD\//.test(series),
    )!;
    assert.equal(usdRuns.length, 2, 'unbilled usage USD ran twice');
    assert.equal(currentRun.get(usdSeries), usdRuns[1], 'latest.json names the newer run');
    assert.ok(
      files.every((file) => file.runId !== usdRuns[0]),
      'the older USD folder is not current data',
    );
    for (const file of files) {
      assert.equal(file.size, destinationBytes.get(file.path)!.length, `size of ${file.path}`);
      assert.ok(file.lastModified !== null && !Number.isNaN(Date.parse(file.lastModified)));
    }
    const manifest = files.find((file) => file.path.endsWith('/manifest.json') && file.kind === 'raw')!;
    assert.equal(manifest.contentType, 'application/json');
    assert.ok(manifest.series !== null && manifest.runId === currentRun.get(manifest.series));
    assert.deepEqual(
      files.filter((file) => file.kind !== 'raw').map((file) => [file.path, file.kind, file.dataset]),
      [
        ['curated/unbilled-usage/billingMonth=2026-12/part-0.parquet', 'curated', 'unbilledUsage'],
        ['focus/manifest.json', 'focus', null],
        ['focus/unbilled-reconciliation/billingMonth=2026-12/part-0.parquet', 'focus', 'unbilledReconciliation'],
      ],
    );
    assert.deepEqual([...new Set(files.filter((file) => file.kind === 'raw').map((file) => file.dataset))].sort(), [
      'unbilledReconciliation',
      'unbilledUsage',
    ]);
  });

  it('files prints the current data grouped by dataset and series with sizes', { timeout: 300_000 }, async () => {
    const { code, output } = await cli(['files'], folder);
    assert.equal(code, 0, output);
    assert.match(output, /Current data \(each series' latest\.json and the run folder it names\):/);
    for (const [series, runId] of currentRun) {
      assert.match(output, new RegExp(`\\n {4}${series.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/ {2}\\(4 files, `));
      assert.ok(output.includes(`run=${runId}/manifest.json`));
    }
    assert.match(output, /\n {2}unbilledReconciliation\n/);
    assert.match(output, /\n {2}unbilledUsage\n/);
    assert.match(output, /curated\/ {2}\(1 files, 18 B\)/);
    assert.match(output, /in the embedded Azurite of \.azurite\//);
  });

  it('files --all lists every run folder; --run ID only that run’s; --dataset narrows to a dataset', {
    timeout: 300_000,
  }, async () => {
    const all = lastJson<{ files: FileRow[] }>((await cli(['files', '--all', '--json'], folder)).output).files;
    const allRuns = new Set(all.map((file) => file.runId).filter((id) => id !== null));
    assert.deepEqual([...allRuns].sort(), [...runsBySeries.values()].flat().sort(), 'every run folder');
    assert.equal(
      all.filter((file) => file.kind === 'raw').length,
      [...destinationBytes.keys()].filter((p) => !/^(curated|focus)\//.test(p)).length,
    );

    const older = [...runsBySeries.values()].find((ids) => ids.length === 2)![0]!;
    const one = await cli(['files', '--run', older, '--json'], folder);
    assert.equal(one.code, 0, one.output);
    const runFiles = lastJson<{ files: FileRow[] }>(one.output).files;
    assert.equal(runFiles.length, 3, 'manifest.json and the two data blobs');
    assert.ok(runFiles.every((file) => file.runId === older && file.path.includes(`/run=${older}/`)));

    const usage = lastJson<{ files: FileRow[] }>(
      (await cli(['files', '--dataset', 'unbilledUsage', '--json'], folder)).output,
    ).files;
    assert.ok(usage.length > 0);
    assert.ok(
      usage.every((file) => file.dataset === 'unbilledUsage'),
      'raw and curated files of that dataset only',
    );
    assert.ok(usage.some((file) => file.kind === 'curated'));

    const missing = await cli(['files', '--run', '20200101T000000000Z-00000000'], folder);
    assert.equal(missing.code, 1, missing.output);
    assert.match(
      missing.output,
      /RUN_NOT_FOUND: No files of run 20200101T000000000Z-00000000 in container "partner-billing"/,
    );
  });

  it('files --download DIR writes byte-identical files at their container paths; a second download skips them all', {
    timeout: 300_000,
  }, async () => {
    const target = join(folder, 'download');
    const first = await cli(['files', '--all', '--download', target, '--json'], folder);
    assert.equal(first.code, 0, first.output);
    const rows = lastJson<{ files: FileRow[] }>(first.output).files;
    assert.equal(rows.length, destinationBytes.size, 'everything in the container');
    for (const row of rows) {
      assert.equal(row.download, 'written', row.path);
      assert.equal(row.localPath, join(target, ...row.path.split('/')));
      assert.deepEqual(readFileSync(row.localPath!), destinationBytes.get(row.path), `bytes of ${row.path}`);
    }
    assert.match(first.output, new RegExp(`Downloaded ${rows.length} files \\(.+\\) into ${target}; 0 already there`));
    const stamps = rows.map((row) => statSync(row.localPath!).mtimeMs);

    const second = await cli(['files', '--all', '--download', target, '--json'], folder);
    assert.equal(second.code, 0, second.output);
    const again = lastJson<{ files: FileRow[] }>(second.output).files;
    // JSON pointers and manifests are rewritten in place by later runs (often with the same length): fetched again.
    const isJson = (path: string) => path.endsWith('.json');
    assert.deepEqual(
      again.map((row) => row.download),
      again.map((row) => (isJson(row.path) ? 'written' : 'skipped')),
    );
    rows.forEach((row, index) => {
      if (!isJson(row.path)) assert.equal(statSync(row.localPath!).mtimeMs, stamps[index], `${row.path} not rewritten`);
    });
    const jsonCount = rows.filter((row) => isJson(row.path)).length;
    assert.ok(jsonCount > 0);
    assert.match(
      second.output,
      new RegExp(`Downloaded ${jsonCount} files \\(.+\\) into ${target}; ${rows.length - jsonCount} already there`),
    );
  });
});

describe('command line: files refuses bad flags before starting anything', () => {
  it('an unknown flag, a bad run id, --run with --all, a flag without its value, a bad setting: an error naming it and what is accepted, exit 2, no Azurite started', {
    timeout: 180_000,
  }, async () => {
    const folder = workFolder('files-flags');
    const cases: Array<[string[], RegExp]> = [
      [
        ['files', '--bogus'],
        /^error USAGE_INVALID: files: unknown flag --bogus\. Accepted: --run ID, --all, --dataset D, --download DIR, --json, --help\. See "files --help"\.$/m,
      ],
      [
        ['files', '--run', 'yesterday'],
        /^error USAGE_INVALID: files: --run: "yesterday" is not a run id; a run id as "runs" prints it is accepted/m,
      ],
      [['files', '--run', '20261207T060000123Z-9f3a1c2b', '--all'], /--run and --all: give one of the two/],
      [['files', '--download'], /^error USAGE_INVALID: files: --download needs a value\. Accepted: --download DIR/m],
      [['files', '--dataset', 'usage'], /--dataset: "usage" is not a dataset; accepted: any of unbilledUsage, /],
      [['files', 'everything'], /unexpected argument "everything"/],
    ];
    const settings = [
      [
        ['files'],
        { DESTINATION_CONTAINER: 'Not_A_Container' },
        /DESTINATION_CONTAINER: "Not_A_Container" is not a container name/,
      ],
    ] as const;
    for (const [args, env, pattern] of settings) {
      const { code, output } = await cli([...args], folder, env);
      assert.equal(code, 2, `${args.join(' ')}:\n${output}`);
      assert.match(output, pattern);
    }
    for (const [args, pattern] of cases) {
      const { code, output } = await cli(args, folder);
      assert.equal(code, 2, `${args.join(' ')}:\n${output}`);
      assert.match(output, pattern);
    }
    assert.equal(existsSync(join(folder, '.azurite')), false, 'nothing was started');
  });

  it('files --help prints every flag with an example and exits 0', { timeout: 120_000 }, async () => {
    const { code, output } = await cli(['files', '--help'], workFolder('files-help'));
    assert.equal(code, 0, output);
    for (const flag of ['--run ID', '--all', '--dataset D', '--download DIR', '--json', '--help']) {
      assert.ok(output.includes(flag), `${flag} in:\n${output}`);
    }
    assert.match(output, /Examples:\n {2}npm run cli -- files\n/);
  });
});

describe('command line: files of a configured destination, and start says how to open the files', () => {
  let azurite: AzuriteInstance;
  before(async () => {
    azurite = await startAzurite();
  });
  after(() => azurite.stop());

  it('with DESTINATION_STORAGE set, files reads that account as it is and starts no Azurite of its own', {
    timeout: 180_000,
  }, async () => {
    const service = BlobServiceClient.fromConnectionString(azurite.connectionString(PARTNER_DEST_ACCOUNT.name));
    const container = service.getContainerClient('exports');
    await container.createIfNotExists();
    const series = 'usage/billingMonth=2026-11/currency=USD/attributeSet=basic';
    const runId = '20261130T060000000Z-0a0b0c0d';
    const blobs: Array<[string, string]> = [
      [`${series}/run=${runId}/part-1.json.gz`, 'gzip bytes'],
      [`${series}/run=${runId}/manifest.json`, '{"runId":"x"}'],
      [`${series}/latest.json`, JSON.stringify({ runId, path: `${series}/run=${runId}` })],
      ['focus/usage/part-0.parquet', 'PAR1'],
    ];
    for (const [path, text] of blobs) await container.getBlockBlobClient(path).upload(text, text.length);
    const folder = workFolder('files-configured');
    const { code, output } = await cli(['files', '--json'], folder, {
      DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
      DESTINATION_CONTAINER: 'exports',
      DESTINATION_PREFIX: 'usage',
    });
    assert.equal(code, 0, output);
    assert.deepEqual(
      lastJson<{ files: FileRow[] }>(output).files.map((file) => [file.path, file.kind, file.dataset]),
      [
        ['focus/usage/part-0.parquet', 'focus', 'unbilledUsage'],
        [`${series}/latest.json`, 'raw', 'unbilledUsage'],
        [`${series}/run=${runId}/manifest.json`, 'raw', 'unbilledUsage'],
        [`${series}/run=${runId}/part-1.json.gz`, 'raw', 'unbilledUsage'],
      ],
    );
    assert.match(output, new RegExp(`Container ${azurite.blobEndpoint}/partnerdest/exports\\.`));
    assert.doesNotMatch(output, /AccountKey|account key/);
    assert.equal(existsSync(join(folder, '.azurite')), false, 'no embedded Azurite');
  });

  it('start prints the files command and the local account name, key and endpoint; files then uses its Azurite', {
    timeout: 360_000,
  }, async () => {
    const folder = workFolder('files-start');
    const start = spawnCli(['start', '--port', '0'], folder, SMALL);
    try {
      await start.waitFor(/Still serving on/);
      const output = start.output();
      assert.match(output, /Open the files: {2}npm run cli -- files/);
      assert.match(output, /development values of the local Azurite, not secrets/);
      assert.equal(/account name {3}(\S+)/.exec(output)?.[1], PARTNER_DEST_ACCOUNT.name);
      assert.equal(/account key {4}(\S+)/.exec(output)?.[1], PARTNER_DEST_ACCOUNT.key);
      const endpoint = /blob endpoint {2}(http:\/\/127\.0\.0\.1:\d+\/partnerdest)/.exec(output)?.[1];
      assert.ok(endpoint !== undefined, output);
      // What Storage Explorer does with those values: read the container.
      const attached = BlobServiceClient.fromConnectionString(/connection {5}(\S+)/.exec(output)![1]!);
      const names: string[] = [];
      for await (const blob of attached.getContainerClient('partner-billing').listBlobsFlat()) names.push(blob.name);
      assert.ok(
        names.some((name) => name.endsWith('/latest.json')),
        names.join('\n'),
      );

      const files = await cli(['files', '--json'], folder);
      assert.equal(files.code, 0, files.output);
      assert.match(files.output, /in the Azurite of the running "start" command \(pid \d+\)/);
      const listed = lastJson<{ files: FileRow[] }>(files.output).files;
      assert.equal(listed.filter((file) => file.path.endsWith('/latest.json')).length, 2, 'USD and EUR');
    } finally {
      start.child.kill('SIGINT');
      await start.exited;
    }
  });

  it('start with the destination in DESTINATION_STORAGE prints the files command but no account or key', {
    timeout: 360_000,
  }, async () => {
    const folder = workFolder('files-start-configured');
    const start = spawnCli(['start', '--port', '0'], folder, {
      ...SMALL,
      DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
      DESTINATION_CONTAINER: 'mine',
    });
    try {
      await start.waitFor(/Still serving on/);
      assert.match(start.output(), /Open the files: {2}npm run cli -- files/);
      assert.doesNotMatch(start.output(), /account key|AccountKey|Storage Explorer/);
    } finally {
      start.child.kill('SIGINT');
      await start.exited;
    }
  });
});
