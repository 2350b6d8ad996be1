/**
 * The curation step on its real adapters (Azure Table ledger, Blob store and destination on Azurite, DuckDB, a FinOps
 * hub's `ingestion` container in Azurite's `finopshub` account): a file whose conversion dies half-way through its
 * uploads is converted again on redelivery into the same parts, byte for byte; the fan-in publishes one version whose
 * manifest adds up to the raw files and drops its FOCUS parts into the hub with manifest.json last; a newer run
 * replaces the hub folder's older ingestion, and a fan-in redone after it died before the hub's manifest.json writes
 * the same names.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  BlobServiceClient,
  ContainerClient,
  newPipeline,
  type RequestPolicy,
  StorageSharedKeyCredential,
  type WebResource,
} from '@azure/storage-blob';
import { DuckDbCurationEngine } from '../../src/adapters/curation/duckDbCurationEngine';
import { BlobCurationStore } from '../../src/adapters/storage/blobCurationStore';
import { BlobDestination } from '../../src/adapters/storage/blobDestination';
import { createTableClient } from '../../src/adapters/storage/clients';
import { BlobFinOpsHubDrop, HUB_INGESTION_CONTAINER } from '../../src/adapters/storage/finOpsHubDrop';
import { TableCurationLedger } from '../../src/adapters/storage/tableCurationLedger';
import { datasetBlobChunks } from '../../src/emulator/datasetData';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  FINOPS_HUB_ACCOUNT,
  PARTNER_DEST_ACCOUNT,
} from '../../src/local/azurite';
import {
  type CuratedManifest,
  curateExportFile,
  startCuration,
  superviseCurations,
} from '../../src/pipeline/curateExport';
import type { CurationStore } from '../../src/pipeline/curationPorts';
import { parseCurateMessage } from '../../src/pipeline/messages';
import type { RunRecord } from '../../src/pipeline/ports';
import { uniqueName, useAzurite } from '../support/azurite';
import { RecordingCurationQueue } from '../support/curationFakes';
import { makeDeps } from '../support/fakes';

const RUN_ID = '20261125T114100123Z-9f3a1c2b';
const NEWER_RUN_ID = '20261126T060000000Z-0c4d5e6f';
const FILES = ['part-00000-a.c000.json.gz', 'part-00001-a.c000.json.gz'];
const TENANT = '3f2a1b4c-0000-4000-8000-000000000001';
const SERIES = 'unbilled-usage/exportMonth=2026-11/exportCurrency=USD/exportAttributeSet=full';

function runPath(runId: string): string {
  return `unbilled-usage/billingMonth=2026-11/currency=USD/attributeSet=full/run=${runId}`;
}

function rawFile(index: number): Buffer {
  const spec = {
    seed: 11,
    currency: 'USD',
    attributeSet: 'full' as const,
    billingMonth: '202611',
    usageDays: 30,
    partnerTenantId: TENANT,
    rowsPerBlob: 60,
    dataset: 'unbilledUsage' as const,
  };
  return gzipSync(Buffer.concat([...datasetBlobChunks(spec, index)]));
}

/** One blob write (a block upload's Put Block calls left out) or delete the hub adapter sent, by path in `ingestion`. */
type HubRequest = { method: string; path: string };

/**
 * The hub's `ingestion` container (Azurite account finopshub), through a pipeline that logs every blob write and
 * delete and lets a test fail a request before it is sent (a process that dies there).
 */
function hubContainer(az: AzuriteInstance, log: HubRequest[], failBefore?: (r: HubRequest) => boolean) {
  const account = FINOPS_HUB_ACCOUNT.name;
  const pipeline = newPipeline(new StorageSharedKeyCredential(account, az.accountKey(account)), {
    retryOptions: { maxTries: 1 },
  });
  pipeline.factories.unshift({
    create: (next: RequestPolicy): RequestPolicy => ({
      async sendRequest(request: WebResource) {
        const url = new URL(request.url);
        const prefix = `/${account}/${HUB_INGESTION_CONTAINER}/`;
        const path = url.pathname.startsWith(prefix) ? decodeURIComponent(url.pathname.slice(prefix.length)) : '';
        const sent = { method: request.method, path };
        if (failBefore?.(sent) === true) throw new Error('the process died');
        if (
          path !== '' &&
          (request.method === 'DELETE' || (request.method === 'PUT' && url.searchParams.get('comp') !== 'block'))
        ) {
          log.push(sent);
        }
        return next.sendRequest(request);
      },
    }),
  });
  return new ContainerClient(`${az.blobEndpoint}/${account}/${HUB_INGESTION_CONTAINER}`, pipeline);
}

/** The hub folder's blob names and a hash of each. */
async function hubFolder(az: AzuriteInstance, folder: string): Promise<Map<string, string>> {
  const container = hubContainer(az, []);
  const out = new Map<string, string>();
  for await (const blob of container.listBlobsFlat({ prefix: folder })) {
    const bytes = await container.getBlobClient(blob.name).downloadToBuffer();
    out.set(blob.name.slice(folder.length), createHash('sha256').update(bytes).digest('hex'));
  }
  return out;
}

/** The destination blobs under a prefix, by name without it, with a hash of each. */
async function hashes(container: ContainerClient, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const blob of container.listBlobsFlat({ prefix })) {
    const bytes = await container.getBlobClient(blob.name).downloadToBuffer();
    out.set(blob.name.slice(prefix.length), createHash('sha256').update(bytes).digest('hex'));
  }
  return out;
}

/**
 * A succeeded run of USD unbilled usage whose raw files are in the destination (written here, as the copy would),
 * on a fake run ledger, with the curation ledger in Azurite's tables.
 */
async function succeededRun(
  deps: ReturnType<typeof makeDeps>,
  container: ContainerClient,
  runId: string,
  files: readonly string[],
): Promise<RunRecord> {
  for (const [i, name] of files.entries()) {
    const body = rawFile(i);
    await container.getBlockBlobClient(`${runPath(runId)}/${name}`).upload(body, body.length);
  }
  const startedAt = `${runId.slice(0, 4)}-${runId.slice(4, 6)}-${runId.slice(6, 8)}T${runId.slice(9, 11)}:${runId.slice(11, 13)}:00.000Z`;
  const run: RunRecord = {
    runId,
    currency: 'USD',
    billingPeriod: 'current',
    attributeSet: 'full',
    trigger: 'manual',
    status: 'succeeded',
    force: true,
    startedAt,
    updatedAt: startedAt,
    completedAt: startedAt,
    polls: 1,
    blobCount: files.length,
    blobsCopied: files.length,
    byteCount: 1,
    billingMonth: '2026-11',
    path: runPath(runId),
    eTag: `etag-${runId}`,
    partnerTenantId: TENANT,
  };
  await deps.ledger.createRun(run);
  await deps.ledger.addBlobs(runId, [...files]);
  for (const name of files) {
    await deps.ledger.markBlobCopied(runId, name, {
      byteCount: 1,
      contentType: undefined,
      method: 'copyFromUrl',
      copiedAt: run.updatedAt,
    });
  }
  return run;
}

describe('curation on Azurite and DuckDB', () => {
  const azurite = useAzurite();

  function setup(hub: BlobFinOpsHubDrop) {
    const az = azurite();
    const container = BlobServiceClient.fromConnectionString(
      az.connectionString(PARTNER_DEST_ACCOUNT.name),
    ).getContainerClient(uniqueName('curate'));
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const queue = new RecordingCurationQueue();
    const ledger = new TableCurationLedger(
      { kind: 'connectionString', connectionString: az.connectionString(DEV_STORE_ACCOUNT.name) },
      { tableNames: { curations: uniqueName('curations'), files: uniqueName('curationFiles') } },
    );
    return { az, container, deps, queue, ledger, hub };
  }

  /** Each test its own scope folder in the shared `ingestion` container. */
  function hubDrop(log: HubRequest[], failBefore?: (r: HubRequest) => boolean) {
    const scope = `${uniqueName('csp')}/{partnerTenantId}`;
    const drop = new BlobFinOpsHubDrop(hubContainer(azurite(), log, failBefore), { scope, createContainer: true });
    return { drop, folder: `Costs/2026/11/${scope.replace('{partnerTenantId}', TENANT)}/unbilled-usage/USD/` };
  }

  it('converts a file again after a crash mid-upload into the same parts, publishes one version and drops its FOCUS parts into the FinOps hub, manifest.json last', {
    timeout: 120_000,
  }, async () => {
    const hubLog: HubRequest[] = [];
    const { drop, folder } = hubDrop(hubLog);
    const { az, container, deps, queue, ledger } = setup(drop);
    await container.createIfNotExists();
    const run = await succeededRun(deps, container, RUN_ID, FILES);
    const real = new BlobCurationStore(container);
    let uploads = 0;
    let dieAtUpload: number | undefined = 2;
    const store: CurationStore = {
      download: (path, file) => real.download(path, file),
      openRead: (path) => real.openRead(path),
      copy: (from, to) => real.copy(from, to),
      delete: (path) => real.delete(path),
      list: (prefix) => real.list(prefix),
      async upload(file, path) {
        uploads += 1;
        if (uploads === dieAtUpload) throw new Error('the process died');
        return real.upload(file, path);
      },
    };
    const curating = Object.assign(deps, {
      destination: new BlobDestination(container),
      finOpsHub: drop,
      curation: { ledger, queue, store, engine: new DuckDbCurationEngine() },
    });
    const staged = () => hashes(container, '_curation-staging/');

    await startCuration(curating, run);
    assert.equal(queue.pending.length, 2);
    const first = queue.pending.shift() as string;
    await assert.rejects(curateExportFile(parseCurateMessage(first), curating), /the process died/);
    const beforeRedo = await staged();
    assert.equal(beforeRedo.size, 1, 'the curated part was staged, the FOCUS one was not');
    dieAtUpload = undefined;
    await curateExportFile(parseCurateMessage(first), curating);
    const afterRedo = await staged();
    assert.equal(afterRedo.size, 2);
    for (const [name, hash] of beforeRedo) assert.equal(afterRedo.get(name), hash, `${name}: the same bytes again`);

    await curateExportFile(parseCurateMessage(queue.pending.shift() as string), curating);
    const curation = (await ledger.getCuration(RUN_ID))?.value;
    assert.equal(curation?.status, 'succeeded', curation?.error);
    assert.equal(curation?.rowsConverted, 120);
    assert.deepEqual(await staged(), new Map(), 'staging emptied');
    const manifest = (await new BlobDestination(container).readJson(`focus/${SERIES}/manifest.json`))
      ?.value as CuratedManifest;
    assert.equal(manifest.source.runId, RUN_ID);
    assert.equal(manifest.files.length, 2);
    assert.equal(
      manifest.files.reduce((n, f) => n + f.rowCount, 0),
      120,
    );
    assert.deepEqual(manifest.totals.focus, manifest.totals.raw);
    const parts: string[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: `curated/${SERIES}/` })) parts.push(blob.name);
    assert.equal(parts.filter((p) => p.endsWith('.parquet')).length, 2);

    // The FinOps hub: the FOCUS parts, byte for byte, as {ingestion id}__{name}, then manifest.json.
    const focusParts = await hashes(container, `focus/${SERIES}/`);
    const inHub = await hubFolder(az, folder);
    const expected = ['part-00000-a.c000-0.parquet', 'part-00001-a.c000-0.parquet'];
    assert.deepEqual([...inHub.keys()].sort(), [...expected.map((name) => `${RUN_ID}__${name}`), 'manifest.json']);
    for (const name of expected) {
      assert.equal(inHub.get(`${RUN_ID}__${name}`), focusParts.get(`${RUN_ID}-${name}`), `${name}: the FOCUS part`);
    }
    assert.deepEqual(
      hubLog.map((r) => `${r.method} ${r.path.slice(folder.length)}`),
      [...expected.map((name) => `PUT ${RUN_ID}__${name}`), 'PUT manifest.json'],
    );
    assert.equal(curation?.hubIngestionId, RUN_ID);
    assert.equal(curation?.hubFolder, folder);
    assert.ok(curation?.hubDroppedAt !== undefined);
    assert.equal(deps.telemetry.curationsCompleted[0]?.hubIngestionId, RUN_ID);
  });

  it("a newer run replaces the hub folder's older ingestion, and its fan-in redone after dying before the hub's manifest.json writes the same names", {
    timeout: 120_000,
  }, async () => {
    const hubLog: HubRequest[] = [];
    let dieBeforeManifest = false;
    const { drop, folder } = hubDrop(
      hubLog,
      (r) => dieBeforeManifest && r.method === 'PUT' && r.path.endsWith('/manifest.json'),
    );
    const { az, container, deps, queue, ledger } = setup(drop);
    await container.createIfNotExists();
    const curating = Object.assign(deps, {
      destination: new BlobDestination(container),
      finOpsHub: drop,
      curation: { ledger, queue, store: new BlobCurationStore(container), engine: new DuckDbCurationEngine() },
    });
    const deliverAll = async () => {
      while (queue.pending.length > 0) {
        await curateExportFile(parseCurateMessage(queue.pending.shift() as string), curating).catch(() => undefined);
      }
    };
    const older = await succeededRun(deps, container, RUN_ID, FILES.slice(0, 1));
    await startCuration(curating, older);
    await deliverAll();
    const name = 'part-00000-a.c000-0.parquet';
    assert.deepEqual([...(await hubFolder(az, folder)).keys()].sort(), [`${RUN_ID}__${name}`, 'manifest.json']);

    // The newer run (a forced rerun) dies after its FOCUS file, before the hub's manifest.json.
    dieBeforeManifest = true;
    const newer = await succeededRun(deps, container, NEWER_RUN_ID, FILES.slice(0, 1));
    await startCuration(curating, newer);
    await deliverAll();
    const died = (await ledger.getCuration(NEWER_RUN_ID))?.value;
    assert.equal(died?.status, 'publishing', 'the fan-in did not end');
    assert.equal(died?.hubDroppedAt, undefined);
    const halfway = await hubFolder(az, folder);
    assert.deepEqual([...halfway.keys()].sort(), [`${NEWER_RUN_ID}__${name}`, 'manifest.json']);
    assert.match(
      (await hubContainer(az, []).getBlobClient(`${folder}manifest.json`).downloadToBuffer()).toString(),
      new RegExp(RUN_ID),
      'the older manifest still stands: the hub was not told to ingest a half-written version',
    );

    // The supervisor sends the publish message again; the redone fan-in writes the same names, manifest.json last.
    dieBeforeManifest = false;
    hubLog.length = 0;
    await superviseCurations(curating, { runIds: [NEWER_RUN_ID], ownerGone: true });
    await deliverAll();
    const done = (await ledger.getCuration(NEWER_RUN_ID))?.value;
    assert.equal(done?.status, 'succeeded', done?.error);
    assert.equal(done?.hubIngestionId, NEWER_RUN_ID);
    const after = await hubFolder(az, folder);
    assert.deepEqual([...after.keys()].sort(), [`${NEWER_RUN_ID}__${name}`, 'manifest.json']);
    assert.equal(after.get(`${NEWER_RUN_ID}__${name}`), halfway.get(`${NEWER_RUN_ID}__${name}`), 'the same file again');
    assert.deepEqual(
      hubLog.map((r) => `${r.method} ${r.path.slice(folder.length)}`),
      [`PUT ${NEWER_RUN_ID}__${name}`, 'PUT manifest.json'],
    );
    assert.match(
      (await hubContainer(az, []).getBlobClient(`${folder}manifest.json`).downloadToBuffer()).toString(),
      new RegExp(NEWER_RUN_ID),
    );
  });

  it('never resets a converted file when a second start of the same curation races the first (ledger file rows)', async () => {
    const az = azurite();
    const connection = {
      kind: 'connectionString' as const,
      connectionString: az.connectionString(DEV_STORE_ACCOUNT.name),
    };
    const names = { curations: uniqueName('curations'), files: uniqueName('curationFiles') };
    // The second start lists the file rows before the first start writes them, then writes its own after the first
    // start's worker converted a file (the supervisor starting a curation whose finisher was slow).
    let between: (() => Promise<void>) | undefined;
    const factory = (name: string) => {
      const client = createTableClient(connection, name);
      if (name !== names.files) return client;
      const list = client.listEntities.bind(client);
      client.listEntities = ((options?: Parameters<typeof list>[0]) => {
        const pause = between;
        between = undefined;
        const rows = list(options);
        return (async function* () {
          const listed = [];
          for await (const row of rows) listed.push(row);
          if (pause !== undefined) await pause();
          yield* listed;
        })();
      }) as unknown as typeof client.listEntities;
      return client;
    };
    const second = new TableCurationLedger(factory, { tableNames: names });
    const first = new TableCurationLedger(connection, { tableNames: names });
    const record = {
      runId: RUN_ID,
      status: 'pending' as const,
      curationVersion: '1.0',
      fileCount: 2,
      startedAt: '2026-11-25T11:46:00.000Z',
      updatedAt: '2026-11-25T11:46:00.000Z',
    };
    const result = {
      rowsRead: 1,
      rowsConverted: 1,
      rejected: { count: 0, reasons: {} },
      parts: [],
      totals: { raw: {}, curated: {}, focus: {} },
      focusVersion: '1.2',
    };
    between = async () => {
      await first.createCuration(record, FILES);
      await first.markFileConverted(RUN_ID, FILES[0] as string, result, '2026-11-25T11:47:00.000Z');
    };
    await second.createCuration(record, FILES);

    const files = await first.listFiles(RUN_ID);
    assert.deepEqual(
      files.map((file) => [file.name, file.status]),
      [
        [FILES[0], 'converted'],
        [FILES[1], 'pending'],
      ],
    );
    assert.deepEqual(files[0]?.result, result);
  });

  it('copies a staged part into its series folder on the service side, replacing an older copy whole', async () => {
    const az = azurite();
    const container = BlobServiceClient.fromConnectionString(
      az.connectionString(PARTNER_DEST_ACCOUNT.name),
    ).getContainerClient(uniqueName('copy'));
    await container.createIfNotExists();
    const staged = '_curation-staging/r/curated/part-0.parquet';
    const target = 'curated/series/part-0.parquet';
    const body = Buffer.from('PAR1 the part PAR1');
    await container.getBlockBlobClient(target).upload('an older, longer copy of the part', 33);
    await container
      .getBlockBlobClient(staged)
      .upload(body, body.length, { blobHTTPHeaders: { blobContentType: 'application/vnd.apache.parquet' } });

    await new BlobCurationStore(container).copy(staged, target);

    const properties = await container.getBlobClient(target).getProperties();
    assert.equal(properties.copyStatus, 'success', 'a Copy Blob of the service, not bytes streamed through us');
    assert.equal(properties.copySource, container.getBlobClient(staged).url);
    assert.equal(properties.contentType, 'application/vnd.apache.parquet');
    assert.deepEqual(await container.getBlobClient(target).downloadToBuffer(), body);
    await assert.rejects(new BlobCurationStore(container).copy('_curation-staging/r/curated/gone.parquet', target), {
      code: 'COPY_FAILED',
      retryable: true,
    });
  });
});
