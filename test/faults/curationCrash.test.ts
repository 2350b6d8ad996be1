/**
 * Crash and resume of the curation step: a host process is killed by SIGKILL at a curation crash point while it
 * curates a forced rerun of a series that already has a current version; a fresh host (and the supervisor, for a
 * publication nobody carries on) takes over. Every case must end with the curation `succeeded`, each series folder
 * holding exactly the new version's parts (a DuckDB glob counts every raw row once), the parts redone after the kill
 * identical in name and bytes to those the killed process staged, the totals equal to the raw files' own sums, and
 * the raw run `succeeded` and untouched.
 *
 * Reduced (npm test): two seeded points, one of the per-file conversion and one of the fan-in. Full: all of them.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { TableCurationLedger } from '../../src/adapters/storage/tableCurationLedger';
import { CURATION_CRASH_POINTS } from '../../src/crashPoints';
import { DEV_STORE_ACCOUNT } from '../../src/local/azurite';
import { QueueNames, TelemetryEvents } from '../../src/names';
import { addDecimals, type CuratedManifest } from '../../src/pipeline/curateExport';
import type { CurationRecord } from '../../src/pipeline/curationPorts';
import type { RunRecord } from '../../src/pipeline/ports';
import { currencyFactory, type FaultEnv, startFaultEnv } from './support/faultEnv';
import { FULL, SEED, sample } from './support/scale';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const KINDS = ['curated', 'focus'] as const;
/** How long a message the killed host had received stays invisible (short: these conversions take a second). */
const VISIBILITY_SECONDS = 4;

/** The reduced set: one point of the per-file conversion and one of the fan-in, chosen by the seed. */
function reducedPoints(): string[] {
  const convert = CURATION_CRASH_POINTS.filter((p) => p.startsWith('curate.'));
  const publish = CURATION_CRASH_POINTS.filter((p) => p.startsWith('publish.'));
  return [...sample(convert, 1, SEED), ...sample(publish, 1, SEED + 1)];
}

const ONLY = process.env['FAULTS_ONLY'];
/** The full suite's case of duplicate deliveries (its own series). */
const DUPLICATES = 'duplicates';
const WITH_DUPLICATES = FULL && (ONLY === undefined || DUPLICATES.includes(ONLY));
const POINTS = (FULL ? [...CURATION_CRASH_POINTS] : reducedPoints()).filter(
  (p) => ONLY === undefined || p.includes(ONLY),
);

describe(`curation crash and resume: SIGKILL at ${POINTS.length} curation crash point(s) (seed ${SEED})`, () => {
  let env: FaultEnv;
  let curations: TableCurationLedger;
  let work: string;
  let duck: DuckDBInstance;
  const nextCurrency = currencyFactory('C');
  const series = new Map<string, string>(
    [...POINTS, ...(WITH_DUPLICATES ? [DUPLICATES] : [])].map((c) => [c, nextCurrency()]),
  );
  const baselineRuns = new Map<string, string>();

  const curationOf = async (runId: string): Promise<CurationRecord | undefined> =>
    (await curations.getCuration(runId))?.value;

  async function waitCurations(runIds: string[], ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = await Promise.all(runIds.map(curationOf));
      if (found.every((c) => c?.status === 'succeeded' || c?.status === 'failed')) return true;
      if (Date.now() > deadline) return false;
      await sleep(250);
    }
  }

  async function drainCurate(): Promise<void> {
    let quiet = 0;
    await env.waitUntil('export-curate to drain', async () => {
      const counts = await Promise.all(
        [QueueNames.curate, QueueNames.curatePoison].map(async (name) => {
          try {
            return (await env.queues.getQueueClient(name).getProperties()).approximateMessagesCount ?? 0;
          } catch {
            return 0;
          }
        }),
      );
      quiet = counts.every((c) => c === 0) ? quiet + 1 : 0;
      return quiet >= 4 ? true : undefined;
    });
  }

  /** The series path (below curated/ and focus/) of a currency's baseline curation. */
  async function seriesOf(currency: string): Promise<string> {
    return (await curationOf(baselineRuns.get(currency) as string))?.curatedPath as string;
  }

  async function readManifest(folder: string): Promise<CuratedManifest> {
    return JSON.parse((await env.downloadDestination(`${folder}/manifest.json`)).toString('utf8')) as CuratedManifest;
  }

  async function parquetIn(folder: string): Promise<Array<{ name: string; byteCount: number }>> {
    return (await env.listDestination(`${folder}/`))
      .map((b) => ({ name: b.path.slice(folder.length + 1), byteCount: b.byteCount }))
      .filter((b) => !b.name.includes('/') && b.name.endsWith('.parquet'))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** What DuckDB counts over a glob of the folder's Parquet files (downloaded as they are). */
  async function globCount(folder: string): Promise<number> {
    const dir = await mkdtemp(join(work, 'glob-'));
    for (const part of await parquetIn(folder)) {
      await writeFile(join(dir, part.name), await env.downloadDestination(`${folder}/${part.name}`));
    }
    const connection = await duck.connect();
    try {
      const reader = await connection.runAndReadAll(
        `SELECT count(*)::INTEGER AS n FROM read_parquet('${dir}/*.parquet')`,
      );
      return Number(reader.getRowObjects()[0]?.['n']);
    } finally {
      connection.closeSync();
    }
  }

  /** One row of a DuckDB query over the named parts of a folder (downloaded as they are); `{files}` is their list. */
  async function queryParts(folder: string, names: string[], sql: string): Promise<Record<string, unknown>> {
    const dir = await mkdtemp(join(work, 'parts-'));
    for (const name of names) {
      await writeFile(join(dir, name), await env.downloadDestination(`${folder}/${name}`));
    }
    const list = `[${names.map((name) => `'${join(dir, name)}'`).join(', ')}]`;
    const connection = await duck.connect();
    try {
      const reader = await connection.runAndReadAll(sql.replace('{files}', list));
      return reader.getRowObjects()[0] ?? {};
    } finally {
      connection.closeSync();
    }
  }

  /**
   * docs/data.md, "What a reader sees while a new version replaces the old one", checked on the state a publisher
   * killed between copying a table's parts and writing its manifest.json leaves (the same state a reader meets for
   * those seconds in a publication that goes on): a glob over the folder returns both versions; manifest.json names
   * the old version's parts only, all present, and reading them gives the old version's rows and totals exactly;
   * in FOCUS, filtering on `x_SourceRunId` equal to the manifest's `source.runId` does too.
   */
  async function assertMidSwitch(folder: string, oldRunId: string, newRunId: string): Promise<void> {
    const manifest = await readManifest(folder);
    assert.equal(manifest.source.runId, oldRunId, `${folder}: manifest.json still names the old version`);
    const inFolder = (await parquetIn(folder)).map((p) => p.name);
    const named = manifest.files.map((f) => f.name);
    assert.ok(
      named.every((name) => inFolder.includes(name)),
      `${folder}: every part manifest.json names is there`,
    );
    assert.ok(
      inFolder.some((name) => name.startsWith(newRunId)),
      `${folder}: the new version's parts are in the folder beside the old ones`,
    );
    const oldRows = manifest.files.reduce((n, f) => n + f.rowCount, 0);
    assert.equal(manifest.rows.converted, oldRows);
    assert.ok((await globCount(folder)) > oldRows, `${folder}: a glob sees both versions while they are switched`);
    const listed = await queryParts(
      folder,
      named,
      "SELECT count(*)::INTEGER AS n, sum(BilledCost)::VARCHAR AS cost FROM read_parquet({files}) WHERE ChargeCategory <> 'Tax'",
    );
    const [totalsCurrency, measures] = Object.entries(manifest.totals.focus)[0] ?? ['', {}];
    assert.equal(Number(listed['n']), oldRows, `${folder}: the files manifest.json lists hold the old version's rows`);
    assert.equal(
      addDecimals(String(listed['cost']), '0'),
      addDecimals(measures['BillingPreTaxTotal'] ?? '0', '0'),
      `${folder}: their BilledCost is the manifest's ${totalsCurrency} total`,
    );
    const filtered = await queryParts(
      folder,
      inFolder,
      `SELECT count(*)::INTEGER AS n FROM read_parquet({files}) WHERE x_SourceRunId = '${oldRunId}'`,
    );
    assert.equal(Number(filtered['n']), oldRows, `${folder}: x_SourceRunId = source.runId counts the old rows once`);
  }

  /** The raw run's JSON lines, read from its folder. */
  async function rawLines(run: RunRecord): Promise<Array<Record<string, unknown>>> {
    const lines: Array<Record<string, unknown>> = [];
    for (const blob of await env.listDestination(`${run.path}/`)) {
      if (!blob.path.endsWith('.json.gz')) continue;
      const text = gunzipSync(await env.downloadDestination(blob.path)).toString('utf8');
      for (const line of text.split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line));
    }
    return lines;
  }

  /**
   * The invariants of an ended curation of a forced rerun: `succeeded` and current; each series folder holds exactly
   * the parts its manifest names, all the rerun's; a DuckDB glob counts every raw line once; parts that were staged
   * before (`staged`, `{kind}/{name}`) are byte-identical; the totals are the raw lines' own sums; staging is empty;
   * the raw run is `succeeded` and its folder as it was. Returns the raw lines.
   */
  async function checkCuratedOnce(
    runId: string,
    runAtKill: RunRecord,
    rawAtKill: Array<{ path: string; byteCount: number }>,
    staged: Map<string, Buffer>,
  ): Promise<Array<Record<string, unknown>>> {
    const curation = await curationOf(runId);
    assert.equal(curation?.status, 'succeeded', `${JSON.stringify(curation)}\n${env.recentLogs(30)}`);
    assert.equal(curation?.current, true);
    const lines = await rawLines(runAtKill);
    assert.equal(curation?.rowsRead, lines.length);
    assert.equal(curation?.rowsConverted, lines.length);
    const path = curation?.curatedPath as string;
    for (const kind of KINDS) {
      const folder = `${kind}/${path}`;
      const manifest = await readManifest(folder);
      assert.equal(manifest.source.runId, runId, `${folder}: the rerun's version is current`);
      const inFolder = await parquetIn(folder);
      assert.deepEqual(
        inFolder,
        manifest.files.map((f) => ({ name: f.name, byteCount: f.byteCount })),
        `${folder} holds exactly the parts its manifest names`,
      );
      assert.ok(
        inFolder.every((p) => p.name.startsWith(runId)),
        `${folder}: no part of an older version is left`,
      );
      assert.equal(
        manifest.files.reduce((n, f) => n + f.rowCount, 0),
        lines.length,
        `${folder}: manifest row counts`,
      );
      assert.equal(await globCount(folder), lines.length, `${folder}: a DuckDB glob counts every raw row once`);
      for (const part of inFolder) {
        const before = staged.get(`${kind}/${part.name}`);
        if (before === undefined) continue;
        assert.ok(
          (await env.downloadDestination(`${folder}/${part.name}`)).equals(before),
          `${folder}/${part.name}: redone after the kill, byte-identical to the part the killed process staged`,
        );
      }
      // The totals the manifest states are the raw lines' own exact sums.
      for (const [totalsCurrency, measures] of Object.entries(manifest.totals.raw)) {
        for (const [measure, value] of Object.entries(measures)) {
          const key = (row: Record<string, unknown>) =>
            Object.keys(row).find((k) => k.toLowerCase() === measure.toLowerCase());
          const sum = lines.reduce((total, row) => {
            const k = key(row);
            const cell = k === undefined ? undefined : row[k];
            return cell === undefined || cell === null || cell === '' ? total : addDecimals(total, String(cell));
          }, '0');
          assert.equal(addDecimals(value, '0'), sum, `${folder}: raw ${totalsCurrency} ${measure}`);
          assert.equal(
            addDecimals(manifest.totals.curated[totalsCurrency]?.[measure] ?? '0', '0'),
            sum,
            `${folder}: curated ${totalsCurrency} ${measure}`,
          );
        }
      }
    }
    assert.deepEqual(await env.listDestination(`_curation-staging/${runId}/`), [], 'staging is emptied');
    const runAfter = (await env.ledger.getRun(runId))?.value as RunRecord;
    assert.equal(runAfter.status, 'succeeded');
    assert.equal(runAfter.completedAt, runAtKill.completedAt);
    assert.deepEqual(await env.listDestination(`${runAtKill.path}/`), rawAtKill, 'the raw run folder is untouched');
    const baseline = baselineRuns.get(runAtKill.currency) as string;
    assert.equal((await curationOf(baseline))?.status, 'succeeded', 'the older curation stays as it ended');
    return lines;
  }

  before(async () => {
    env = await startFaultEnv({
      settings: { EXPORT_CURATION: 'on', FAULTS_RECEIVE_VISIBILITY_SECONDS: String(VISIBILITY_SECONDS) },
    });
    curations = new TableCurationLedger({
      kind: 'connectionString',
      connectionString: env.azurite.connectionString(DEV_STORE_ACCOUNT.name),
    });
    work = await mkdtemp(join(tmpdir(), 'curation-faults-'));
    await mkdir(work, { recursive: true });
    duck = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
    // A current version of every series first: the crashed rerun has an old version to replace.
    const host = await env.spawnHost({ name: 'baseline' });
    try {
      const posted = await env.post(host, { currencies: [...series.values()] });
      assert.equal(posted.status, 202, JSON.stringify(posted.json));
      const runs = (posted.json as { runs: Array<{ runId: string; currency: string }> }).runs;
      await env.waitForTerminal(runs.map((r) => r.runId));
      assert.ok(
        await waitCurations(
          runs.map((r) => r.runId),
          120_000,
        ),
        env.recentLogs(30),
      );
      for (const r of runs) {
        assert.equal((await curationOf(r.runId))?.status, 'succeeded', env.recentLogs(30));
        baselineRuns.set(r.currency, r.runId);
      }
      await env.drain();
      await drainCurate();
    } finally {
      await host.stop();
    }
  });

  after(async () => {
    duck?.closeSync();
    await env?.stop();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  for (const point of POINTS) {
    it(`SIGKILL at ${point}, restart: the curation succeeds once with exactly the new version's parts and the raw totals`, async () => {
      const currency = series.get(point) as string;
      // The parts of the second table, focus/, for publish.afterPartsCopied: the state docs/data.md describes is then
      // checked with FOCUS's own columns (curated/ is made current first).
      const at = point === 'publish.afterPartsCopied' ? `${point}#2` : `${point}#1`;
      const crashed = await env.spawnHost({ name: `curation-crash:${point}`, crashPoint: at });
      const posted = await env.post(crashed, { currencies: [currency], force: true });
      assert.equal(posted.status, 202, JSON.stringify(posted.json));
      const runId = (posted.json as { runs: Array<{ runId: string }> }).runs[0]?.runId as string;
      const deadline = Date.now() + 90_000;
      while (crashed.exit === undefined && Date.now() < deadline) await sleep(200);
      if (crashed.exit === undefined) {
        await crashed.kill('SIGKILL');
        assert.fail(`${point}: crash point never reached; curation ${JSON.stringify(await curationOf(runId))}`);
      }
      assert.equal(crashed.exit.crashPoint, at, JSON.stringify(crashed.exit));
      const killedAt = Date.now();

      // What the killed process left: the raw run (already succeeded) and the parts it had staged.
      const runAtKill = (await env.ledger.getRun(runId))?.value as RunRecord;
      assert.equal(runAtKill.status, 'succeeded');
      const rawAtKill = await env.listDestination(`${runAtKill.path}/`);
      const staged = new Map<string, Buffer>();
      for (const blob of await env.listDestination(`_curation-staging/${runId}/`)) {
        // `_curation-staging/{runId}/{kind}/{part}`: a file's curated and FOCUS parts share their names.
        staged.set(blob.path.split('/').slice(-2).join('/'), await env.downloadDestination(blob.path));
      }

      if (point === 'publish.afterPartsCopied') {
        const seriesPath = (await readManifest(`curated/${await seriesOf(currency)}`)).source.runId;
        assert.equal(seriesPath, runId, 'curated/ was made current before focus/ parts were copied');
        await assertMidSwitch(`focus/${await seriesOf(currency)}`, baselineRuns.get(currency) as string, runId);
      }

      const resumed = await env.spawnHost({ name: `curation-resume:${point}` });
      let supervisorCalls = 0;
      try {
        // Redelivery (after the receive visibility) finishes a conversion; a publication the killed process had
        // begun is the supervisor's to resume, once the stall limit has passed since the kill.
        const stallMs = Math.ceil(Number(env.settings['EXPORT_STALL_MINUTES']) * 60_000);
        let done = false;
        if (point.startsWith('publish.')) await sleep(Math.max(0, killedAt + stallMs + 500 - Date.now()));
        else done = await waitCurations([runId], VISIBILITY_SECONDS * 1000 + 3000);
        while (!done && supervisorCalls < 6) {
          supervisorCalls++;
          await env.supervise({ name: `curation-supervisor:${point}` });
          done = await waitCurations([runId], VISIBILITY_SECONDS * 1000 + 3000);
        }
        await drainCurate();
      } finally {
        await resumed.stop();
      }

      const lines = await checkCuratedOnce(runId, runAtKill, rawAtKill, staged);
      console.log(
        `curation crash ${point}: ${lines.length} rows, ${staged.size} part(s) staged at the kill, supervisor calls ${supervisorCalls}`,
      );
    });
  }
  if (WITH_DUPLICATES) {
    it('two hosts given every file message and the fan-in twice at once curate the rerun once, exactly', async () => {
      const currency = series.get(DUPLICATES) as string;
      const hosts = [await env.spawnHost({ name: 'duplicates-a' }), await env.spawnHost({ name: 'duplicates-b' })];
      try {
        const posted = await env.post(hosts[0] as (typeof hosts)[number], { currencies: [currency], force: true });
        assert.equal(posted.status, 202, JSON.stringify(posted.json));
        const runId = (posted.json as { runs: Array<{ runId: string }> }).runs[0]?.runId as string;
        // As soon as the curation's own messages are out: a copy of each, and the fan-in twice (the supervisor's
        // publish message beside a publisher, at-least-once delivery), to the two hosts serving export-curate.
        await env.waitUntil('the curation to start', async () => (await curationOf(runId))?.filesQueuedAt);
        const files = await curations.listFiles(runId);
        const duplicates = [
          ...files.map((file) => ({ version: 1, kind: 'file', runId, blobName: file.name })),
          { version: 1, kind: 'publish', runId },
          { version: 1, kind: 'publish', runId },
        ];
        await Promise.all(duplicates.map((message) => env.sendMessage(QueueNames.curate, message)));
        assert.ok(await waitCurations([runId], 90_000), env.recentLogs(30));
        await drainCurate();
        const run = (await env.ledger.getRun(runId))?.value as RunRecord;
        const raw = await env.listDestination(`${run.path}/`);
        await checkCuratedOnce(runId, run, raw, new Map());
        const endEvents = () =>
          env.ingestion.items.filter(
            (item) =>
              item.baseType === 'EventData' &&
              (item.name === TelemetryEvents.curationCompleted || item.name === TelemetryEvents.curationFailed) &&
              item.properties['runId'] === runId,
          );
        await env.waitUntil('the curation end event', async () => (endEvents().length > 0 ? true : undefined), 15_000);
        // A second one would come from another worker's flush (every 300 ms): give it time to show.
        await sleep(1500);
        const events = endEvents();
        assert.deepEqual(
          events.map((e) => e.name),
          [TelemetryEvents.curationCompleted],
          'one end event',
        );
      } finally {
        await Promise.all(hosts.map((host) => host.stop()));
      }
    });
  }
});
