import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  ContainerClient,
  newPipeline,
  type RequestPolicy,
  StorageSharedKeyCredential,
  type WebResource,
} from '@azure/storage-blob';
import { BlobFinOpsHubDrop, HUB_INGESTION_CONTAINER } from '../../src/adapters/storage/finOpsHubDrop';
import { buildFinOpsHubDrop } from '../../src/composition';
import { loadConfig } from '../../src/config';
import { isExportError } from '../../src/errors';
import type { HubFile, HubVersion } from '../../src/pipeline/ports';
import { uniqueName, useAzurite } from '../support/azurite';

const azurite = useAzurite();
const TENANT = '5d2c1a55-0000-4000-8000-00000000abcd';
const OLD_ID = '20261201T060000000Z-aaaa0001';
const NEW_ID = '20261207T060000000Z-bbbb0002';
const NEWER_ID = '20261207T070000000Z-cccc0003';

/** One request the adapter sent: method, blob path inside the container ('' for the container) and `comp=`. */
interface Sent {
  method: string;
  path: string;
  list: boolean;
  comp: string | null;
}

/** The requests that change a blob, one per blob write (a block upload's Put Block calls left out) or delete. */
function blobChanges(log: Sent[]): string[] {
  return log
    .filter((r) => r.path !== '' && (r.method === 'DELETE' || (r.method === 'PUT' && r.comp !== 'block')))
    .map((r) => `${r.method} ${r.path}`);
}

/** Runs before a request is sent; may throw to fail it as a crash would, or publish something else first. */
type Hook = (request: Sent) => Promise<void> | void;

/**
 * The hub's `ingestion` container on Azurite (account partnerdest), reached through a pipeline that records every
 * request and lets a test act before one is sent.
 */
function hubContainer(hook?: { current: Hook | undefined }, log?: Sent[], key?: string): ContainerClient {
  const account = 'partnerdest';
  const pipeline = newPipeline(new StorageSharedKeyCredential(account, key ?? azurite().accountKey(account)), {
    retryOptions: { maxTries: 1 },
  });
  pipeline.factories.unshift({
    create: (next: RequestPolicy): RequestPolicy => ({
      async sendRequest(request: WebResource) {
        const url = new URL(request.url);
        const prefix = `/${account}/${HUB_INGESTION_CONTAINER}/`;
        const path = url.pathname.startsWith(prefix) ? decodeURIComponent(url.pathname.slice(prefix.length)) : '';
        const comp = url.searchParams.get('comp');
        const sent: Sent = { method: request.method, path, list: comp === 'list', comp };
        await hook?.current?.(sent);
        log?.push(sent);
        return next.sendRequest(request);
      },
    }),
  });
  return new ContainerClient(`${azurite().blobEndpoint}/${account}/${HUB_INGESTION_CONTAINER}`, pipeline);
}

function drop(container: ContainerClient, createContainer = true): BlobFinOpsHubDrop {
  return new BlobFinOpsHubDrop(container, { scope: 'csp/{partnerTenantId}', createContainer });
}

function file(name: string, content: Buffer, announced = content.length): HubFile {
  return { name, byteCount: announced, open: () => Readable.from([content]) };
}

/** A version of a series of its own (each test its own series, so tests share the ingestion container safely). */
function version(series: string[], ingestionId: string, files: HubFile[]): HubVersion {
  return { billingMonth: '2026-12', series, partnerTenantId: TENANT, ingestionId, files };
}

function folderOf(series: string[]): string {
  return `Costs/2026/12/csp/${TENANT}/${series.join('/')}/`;
}

/** The folder's blobs: name → content, and the manifest's metadata. */
async function folder(
  series: string[],
): Promise<{ names: string[]; manifest: unknown; manifestId: string | undefined }> {
  const container = hubContainer();
  const names: string[] = [];
  let manifestId: string | undefined;
  for await (const item of container.listBlobsFlat({ prefix: folderOf(series), includeMetadata: true })) {
    const name = item.name.slice(folderOf(series).length);
    names.push(name);
    if (name === 'manifest.json') manifestId = item.metadata?.['ingestionid'];
  }
  let manifest: unknown;
  if (names.includes('manifest.json')) {
    const body = await container.getBlobClient(`${folderOf(series)}manifest.json`).downloadToBuffer();
    manifest = JSON.parse(body.toString('utf8'));
  }
  return { names: names.sort(), manifest, manifestId };
}

async function content(series: string[], name: string): Promise<Buffer> {
  return hubContainer()
    .getBlobClient(`${folderOf(series)}${name}`)
    .downloadToBuffer();
}

const A = randomBytes(3000);
const B = randomBytes(5000);
const C = randomBytes(700);

describe('BlobFinOpsHubDrop against Azurite', () => {
  it('writes every file as {ingestionId}__{name} under Costs/{yyyy}/{mm}/{scope}/{series}/, then a non-empty manifest.json', async () => {
    const series = [uniqueName('usage'), 'USD'];
    const outcome = await drop(hubContainer()).publish(
      version(series, OLD_ID, [file('part-00000.parquet', A), file('part-00001.parquet', B)]),
    );
    assert.deepEqual(outcome, { kind: 'published', folder: folderOf(series), filesWritten: 2, filesDeleted: 0 });
    const found = await folder(series);
    assert.deepEqual(found.names, [`${OLD_ID}__part-00000.parquet`, `${OLD_ID}__part-00001.parquet`, 'manifest.json']);
    assert.ok((await content(series, `${OLD_ID}__part-00001.parquet`)).equals(B));
    assert.equal(found.manifestId, OLD_ID);
    assert.deepEqual(found.manifest, {
      generator: 'csp-unbilled-export',
      dataset: 'Costs',
      billingMonth: '2026-12',
      ingestionId: OLD_ID,
      files: [
        { name: `${OLD_ID}__part-00000.parquet`, byteCount: A.length },
        { name: `${OLD_ID}__part-00001.parquet`, byteCount: B.length },
      ],
    });
  });

  it('replaces the previous version: only the new parquet files and the manifest remain, and the manifest is written last', async () => {
    const series = [uniqueName('usage'), 'USD'];
    const neighbour = [series[0]!, 'EUR'];
    await drop(hubContainer()).publish(version(neighbour, OLD_ID, [file('part-00000.parquet', C)]));
    await drop(hubContainer()).publish(
      version(series, OLD_ID, [file('part-00000.parquet', A), file('part-00001.parquet', B)]),
    );

    const log: Sent[] = [];
    const outcome = await drop(hubContainer(undefined, log)).publish(
      version(series, NEW_ID, [file('part-00000.parquet', C)]),
    );
    assert.deepEqual(outcome, { kind: 'published', folder: folderOf(series), filesWritten: 1, filesDeleted: 2 });
    const found = await folder(series);
    assert.deepEqual(found.names, [`${NEW_ID}__part-00000.parquet`, 'manifest.json']);
    assert.equal(found.manifestId, NEW_ID);
    assert.equal((found.manifest as { ingestionId: string }).ingestionId, NEW_ID);

    assert.deepEqual(blobChanges(log), [
      `PUT ${folderOf(series)}${NEW_ID}__part-00000.parquet`,
      `DELETE ${folderOf(series)}${OLD_ID}__part-00000.parquet`,
      `DELETE ${folderOf(series)}${OLD_ID}__part-00001.parquet`,
      `PUT ${folderOf(series)}manifest.json`,
    ]);
    assert.deepEqual((await folder(neighbour)).names, [`${OLD_ID}__part-00000.parquet`, 'manifest.json']);
  });

  it('publishing the same version twice gives the same folder, and the second publish writes nothing', async () => {
    const series = [uniqueName('usage'), 'USD'];
    const v = version(series, NEW_ID, [file('part-00000.parquet', A), file('part-00001.parquet', B)]);
    await drop(hubContainer()).publish(v);
    const before = await folder(series);
    const log: Sent[] = [];
    const outcome = await drop(hubContainer(undefined, log)).publish(v);
    assert.deepEqual(outcome, { kind: 'alreadyPublished', folder: folderOf(series) });
    assert.deepEqual(await folder(series), before);
    assert.deepEqual(blobChanges(log), [], 'no write, no delete');
  });

  it('redone after a crash part-way through the parquet files, gives the same result as one clean publish', async () => {
    const series = [uniqueName('usage'), 'USD'];
    await drop(hubContainer()).publish(version(series, OLD_ID, [file('part-00000.parquet', C)]));
    const crashing: HubFile = {
      name: 'part-00001.parquet',
      byteCount: B.length,
      open: () =>
        new Readable({
          read() {
            this.destroy(new Error('killed'));
          },
        }),
    };
    await assert.rejects(
      drop(hubContainer()).publish(version(series, NEW_ID, [file('part-00000.parquet', A), crashing])),
    );
    const halfway = await folder(series);
    assert.ok(halfway.names.includes(`${NEW_ID}__part-00000.parquet`));
    assert.equal(halfway.manifestId, OLD_ID, 'the old manifest still stands: the hub was not told to ingest');

    const outcome = await drop(hubContainer()).publish(
      version(series, NEW_ID, [file('part-00000.parquet', A), file('part-00001.parquet', B)]),
    );
    assert.equal(outcome.kind, 'published');
    const found = await folder(series);
    assert.deepEqual(found.names, [`${NEW_ID}__part-00000.parquet`, `${NEW_ID}__part-00001.parquet`, 'manifest.json']);
    assert.equal(found.manifestId, NEW_ID);
  });

  it('redone after a crash between deleting the old files and writing the manifest, writes the manifest', async () => {
    const series = [uniqueName('usage'), 'USD'];
    await drop(hubContainer()).publish(version(series, OLD_ID, [file('part-00000.parquet', C)]));
    const hook: { current: Hook | undefined } = {
      current: (r) => {
        if (r.method === 'PUT' && r.path.endsWith('manifest.json')) throw new Error('killed before the manifest');
      },
    };
    await assert.rejects(
      drop(hubContainer(hook)).publish(version(series, NEW_ID, [file('part-00000.parquet', A)])),
      /killed before the manifest/,
    );
    const halfway = await folder(series);
    assert.deepEqual(halfway.names, [`${NEW_ID}__part-00000.parquet`, 'manifest.json']);
    assert.equal(halfway.manifestId, OLD_ID);

    const outcome = await drop(hubContainer()).publish(version(series, NEW_ID, [file('part-00000.parquet', A)]));
    assert.deepEqual(outcome, { kind: 'published', folder: folderOf(series), filesWritten: 1, filesDeleted: 0 });
    assert.equal((await folder(series)).manifestId, NEW_ID);
  });

  it('does nothing when the folder already holds a newer version (an older ingestion id arrives late)', async () => {
    const series = [uniqueName('usage'), 'USD'];
    await drop(hubContainer()).publish(version(series, NEW_ID, [file('part-00000.parquet', A)]));
    const before = await folder(series);
    const log: Sent[] = [];
    const outcome = await drop(hubContainer(undefined, log)).publish(
      version(series, OLD_ID, [file('part-00000.parquet', C), file('part-00001.parquet', B)]),
    );
    assert.deepEqual(outcome, { kind: 'superseded', folder: folderOf(series), newerIngestionId: NEW_ID });
    assert.deepEqual(await folder(series), before);
    assert.deepEqual(blobChanges(log), []);
  });

  it('when a newer version is published while an older one writes its files, the newer one wins and no old file stays', async () => {
    const series = [uniqueName('usage'), 'USD'];
    const hook: { current: Hook | undefined } = { current: undefined };
    let lists = 0;
    hook.current = async (r) => {
      // The older publish's second listing (after its uploads): the newer version is published meanwhile.
      if (r.list && ++lists === 2) {
        hook.current = undefined;
        await drop(hubContainer()).publish(version(series, NEWER_ID, [file('part-00000.parquet', B)]));
      }
    };
    const outcome = await drop(hubContainer(hook)).publish(
      version(series, NEW_ID, [file('part-00000.parquet', A), file('part-00001.parquet', C)]),
    );
    assert.deepEqual(outcome, { kind: 'superseded', folder: folderOf(series), newerIngestionId: NEWER_ID });
    const found = await folder(series);
    assert.deepEqual(found.names, [`${NEWER_ID}__part-00000.parquet`, 'manifest.json']);
    assert.equal(found.manifestId, NEWER_ID);
  });

  it("when a newer version completes between the older one's deletes and its manifest, the older manifest is not written over it", async () => {
    const series = [uniqueName('usage'), 'USD'];
    await drop(hubContainer()).publish(version(series, OLD_ID, [file('part-00000.parquet', C)]));
    const hook: { current: Hook | undefined } = { current: undefined };
    hook.current = async (r) => {
      if (r.method === 'PUT' && r.path.endsWith('manifest.json')) {
        hook.current = undefined;
        await drop(hubContainer()).publish(version(series, NEWER_ID, [file('part-00000.parquet', B)]));
      }
    };
    const outcome = await drop(hubContainer(hook)).publish(version(series, NEW_ID, [file('part-00000.parquet', A)]));
    assert.deepEqual(outcome, { kind: 'superseded', folder: folderOf(series), newerIngestionId: NEWER_ID });
    const found = await folder(series);
    assert.deepEqual(found.names, [`${NEWER_ID}__part-00000.parquet`, 'manifest.json']);
    assert.equal(found.manifestId, NEWER_ID);
    assert.equal((found.manifest as { ingestionId: string }).ingestionId, NEWER_ID);
  });

  it('refuses to mark a version complete when a file has another length than announced', async () => {
    const series = [uniqueName('usage'), 'USD'];
    await assert.rejects(
      drop(hubContainer()).publish(version(series, NEW_ID, [file('part-00000.parquet', A, A.length + 1)])),
      (error: unknown) =>
        isExportError(error) && error.code === 'FINOPS_HUB_FAILED' && /not the 3001 announced/.test(error.message),
    );
    assert.ok(!(await folder(series)).names.includes('manifest.json'));
  });

  it('refuses a version without files, whose manifest would leave the previous rows in the hub, and writes nothing', async () => {
    const series = [uniqueName('usage'), 'USD'];
    await drop(hubContainer()).publish(version(series, OLD_ID, [file('part-00000.parquet', C)]));
    await assert.rejects(
      drop(hubContainer()).publish(version(series, NEW_ID, [])),
      (error: unknown) =>
        isExportError(error) && error.code === 'FINOPS_HUB_FAILED' && /Parquet file of zero rows/.test(error.message),
    );
    const found = await folder(series);
    assert.deepEqual(found.names, [`${OLD_ID}__part-00000.parquet`, 'manifest.json']);
    assert.equal(found.manifestId, OLD_ID);
  });

  for (const [what, change] of [
    ['a billing month that is not YYYY-MM', { billingMonth: '2026-13' }],
    ['an ingestion id with "__"', { ingestionId: 'a__b' }],
    ['a file name that is not a plain .parquet name', { files: [file('../x.parquet', A)] }],
    ['a series folder with a slash', { series: ['usage/USD'] }],
  ] as const) {
    it(`refuses ${what} before writing anything (FINOPS_HUB_FAILED)`, async () => {
      const series = [uniqueName('usage'), 'USD'];
      await assert.rejects(
        drop(hubContainer()).publish({ ...version(series, NEW_ID, [file('part-00000.parquet', A)]), ...change }),
        (error: unknown) => isExportError(error) && error.code === 'FINOPS_HUB_FAILED' && !error.retryable,
      );
      assert.deepEqual((await folder(series)).names, []);
    });
  }

  it('names the role to grant when the hub account refuses the identity (FINOPS_HUB_FORBIDDEN, not retried)', async () => {
    const wrongKey = randomBytes(64).toString('base64');
    await assert.rejects(
      drop(hubContainer(undefined, undefined, wrongKey), false).publish(
        version([uniqueName('usage'), 'USD'], NEW_ID, [file('part-00000.parquet', A)]),
      ),
      (error: unknown) =>
        isExportError(error) &&
        error.code === 'FINOPS_HUB_FORBIDDEN' &&
        !error.retryable &&
        /Storage Blob Data Contributor role on the hub's ingestion container/.test(error.message),
    );
  });

  it('does not create the ingestion container outside Azurite: an account without it is not a hub (FINOPS_HUB_FAILED)', async () => {
    const pipeline = newPipeline(new StorageSharedKeyCredential('msbilling', azurite().accountKey('msbilling')));
    const container = new ContainerClient(`${azurite().blobEndpoint}/msbilling/${HUB_INGESTION_CONTAINER}`, pipeline);
    await assert.rejects(
      drop(container, false).publish(version(['usage', 'USD'], NEW_ID, [file('part-00000.parquet', A)])),
      (error: unknown) =>
        isExportError(error) &&
        error.code === 'FINOPS_HUB_FAILED' &&
        /has no "ingestion" container/.test(error.message),
    );
    assert.equal(await container.exists(), false);
  });

  it('is built from the settings by composition: an Azurite hub in emulator mode gets its ingestion container', async () => {
    const settings = {
      EXPORT_CURRENCIES: 'USD',
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
      GRAPH_BASE_URL: 'https://127.0.0.1:8443/v1.0',
    };
    assert.equal(buildFinOpsHubDrop(loadConfig(settings)), undefined, 'off without FINOPS_HUB_STORAGE');
    const config = loadConfig({
      ...settings,
      FINOPS_HUB_STORAGE: azurite().connectionString('devstoreaccount1'),
      FINOPS_HUB_SCOPE: 'partner-billing/{partnerTenantId}',
    });
    const hub = buildFinOpsHubDrop(config);
    assert.ok(hub !== undefined);
    const outcome = await hub.publish(version(['usage', 'USD'], NEW_ID, [file('part-00000.parquet', A)]));
    assert.equal(outcome.kind, 'published');
    assert.equal(outcome.folder, `Costs/2026/12/partner-billing/${TENANT}/usage/USD/`);
  });
});
