/**
 * The curation step on its real adapters (Azure Table ledger, Blob store and destination on Azurite, DuckDB): a file
 * whose conversion dies half-way through its uploads is converted again on redelivery into the same parts, byte for
 * byte, and the fan-in publishes one version whose manifest adds up to the raw files.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BlobServiceClient } from '@azure/storage-blob';
import { DuckDbCurationEngine } from '../../src/adapters/curation/duckDbCurationEngine';
import { BlobCurationStore } from '../../src/adapters/storage/blobCurationStore';
import { BlobDestination } from '../../src/adapters/storage/blobDestination';
import { createTableClient } from '../../src/adapters/storage/clients';
import { TableCurationLedger } from '../../src/adapters/storage/tableCurationLedger';
import { datasetBlobChunks } from '../../src/emulator/datasetData';
import { DEV_STORE_ACCOUNT, PARTNER_DEST_ACCOUNT } from '../../src/local/azurite';
import { type CuratedManifest, curateExportFile, startCuration } from '../../src/pipeline/curateExport';
import type { CurationStore } from '../../src/pipeline/curationPorts';
import { parseCurateMessage } from '../../src/pipeline/messages';
import type { RunRecord } from '../../src/pipeline/ports';
import { uniqueName, useAzurite } from '../support/azurite';
import { RecordingCurationQueue } from '../support/curationFakes';
import { makeDeps } from '../support/fakes';

const RUN_ID = '20261125T114100123Z-9f3a1c2b';
const RUN_PATH = `unbilled-usage/billingMonth=2026-11/currency=USD/attributeSet=full/run=${RUN_ID}`;
const FILES = ['part-00000-a.c000.json.gz', 'part-00001-a.c000.json.gz'];

function rawFile(index: number): Buffer {
  const spec = {
    seed: 11,
    currency: 'USD',
    attributeSet: 'full' as const,
    billingMonth: '202611',
    usageDays: 30,
    partnerTenantId: '3f2a1b4c-0000-4000-8000-000000000001',
    rowsPerBlob: 60,
    dataset: 'unbilledUsage' as const,
  };
  return gzipSync(Buffer.concat([...datasetBlobChunks(spec, index)]));
}

describe('curation on Azurite and DuckDB', () => {
  const azurite = useAzurite();

  it('converts a file again after a crash mid-upload into the same parts, and publishes one version', {
    timeout: 120_000,
  }, async () => {
    const az = azurite();
    const container = BlobServiceClient.fromConnectionString(
      az.connectionString(PARTNER_DEST_ACCOUNT.name),
    ).getContainerClient(uniqueName('curate'));
    await container.createIfNotExists();
    for (const [i, name] of FILES.entries()) {
      const body = rawFile(i);
      await container.getBlockBlobClient(`${RUN_PATH}/${name}`).upload(body, body.length);
    }
    const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const run: RunRecord = {
      runId: RUN_ID,
      currency: 'USD',
      billingPeriod: 'current',
      attributeSet: 'full',
      trigger: 'manual',
      status: 'succeeded',
      force: false,
      startedAt: '2026-11-25T11:41:00.123Z',
      updatedAt: '2026-11-25T11:45:00.000Z',
      completedAt: '2026-11-25T11:45:00.000Z',
      polls: 1,
      blobCount: 2,
      blobsCopied: 2,
      byteCount: 1,
      billingMonth: '2026-11',
      path: RUN_PATH,
      eTag: 'etag-1',
    };
    await deps.ledger.createRun(run);
    await deps.ledger.addBlobs(RUN_ID, FILES);
    for (const name of FILES) {
      await deps.ledger.markBlobCopied(RUN_ID, name, {
        byteCount: 1,
        contentType: undefined,
        method: 'copyFromUrl',
        copiedAt: run.updatedAt,
      });
    }
    const real = new BlobCurationStore(container);
    let uploads = 0;
    let dieAtUpload: number | undefined = 2;
    const store: CurationStore = {
      download: (path, file) => real.download(path, file),
      copy: (from, to) => real.copy(from, to),
      delete: (path) => real.delete(path),
      list: (prefix) => real.list(prefix),
      async upload(file, path) {
        uploads += 1;
        if (uploads === dieAtUpload) throw new Error('the process died');
        return real.upload(file, path);
      },
    };
    const queue = new RecordingCurationQueue();
    const ledger = new TableCurationLedger(
      { kind: 'connectionString', connectionString: az.connectionString(DEV_STORE_ACCOUNT.name) },
      { tableNames: { curations: uniqueName('curations'), files: uniqueName('curationFiles') } },
    );
    const curating = Object.assign(deps, {
      destination: new BlobDestination(container),
      curation: { ledger, queue, store, engine: new DuckDbCurationEngine() },
    });
    const staged = async () => {
      const out = new Map<string, string>();
      for await (const blob of container.listBlobsFlat({ prefix: '_curation-staging/' })) {
        const bytes = await container.getBlobClient(blob.name).downloadToBuffer();
        out.set(blob.name, createHash('sha256').update(bytes).digest('hex'));
      }
      return out;
    };

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
    const series = 'unbilled-usage/exportMonth=2026-11/exportCurrency=USD/exportAttributeSet=full';
    const manifest = (await new BlobDestination(container).readJson(`focus/${series}/manifest.json`))
      ?.value as CuratedManifest;
    assert.equal(manifest.source.runId, RUN_ID);
    assert.equal(manifest.files.length, 2);
    assert.equal(
      manifest.files.reduce((n, f) => n + f.rowCount, 0),
      120,
    );
    assert.deepEqual(manifest.totals.focus, manifest.totals.raw);
    const parts: string[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: `curated/${series}/` })) parts.push(blob.name);
    assert.equal(parts.filter((p) => p.endsWith('.parquet')).length, 2);
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
