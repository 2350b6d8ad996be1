import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  BlobSASPermissions,
  type BlobServiceClient,
  type BlockBlobClient,
  type ContainerClient,
  generateBlobSASQueryParameters,
  RestError,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import {
  type BlobCopierClients,
  type CopyDestinationClient,
  containerCopyClients,
  ServerSideBlobCopier,
  type ServerSideBlobCopierOptions,
} from '../../src/adapters/storage/blobCopier';
import { BlobDestination } from '../../src/adapters/storage/blobDestination';
import { createBlobServiceClient } from '../../src/adapters/storage/clients';
import { type ExportError, isExportError } from '../../src/errors';
import { uniqueName, useAzurite } from '../support/azurite';

const azurite = useAzurite();
const MiB = 1024 * 1024;
const OPTIONS: ServerSideBlobCopierOptions = { singleCopyMaxBytes: MiB, blockSizeBytes: 256 * 1024, concurrency: 4 };

function blobService(account: string, connectionString?: string): BlobServiceClient {
  return createBlobServiceClient({
    kind: 'connectionString',
    connectionString: connectionString ?? azurite().connectionString(account),
  });
}

/** A source blob in Microsoft's account (msbilling) and a read-only service SAS URL for it, as Graph hands out. */
async function sourceBlob(
  size: number,
  contentType = 'application/gzip',
  expiresOn = new Date(Date.now() + 3600_000),
  /** Upload in blocks (Put Block List, no Content-MD5), as the emulator writes export blobs; else one Put Blob. */
  inBlocks = false,
): Promise<{ data: Buffer; url: string; blob: BlockBlobClient; sasUrl(expiresOn: Date): string }> {
  const container = blobService('msbilling').getContainerClient(uniqueName('exports'));
  await container.create();
  const name = 'BillingMonth=202603/part-0001.json.gz';
  const blob = container.getBlockBlobClient(name);
  const data = randomBytes(size);
  await blob.uploadData(data, {
    blobHTTPHeaders: { blobContentType: contentType },
    ...(inBlocks ? { blockSize: 64 * 1024, maxSingleShotSize: 64 * 1024 } : {}),
  });
  const credential = new StorageSharedKeyCredential('msbilling', azurite().accountKey('msbilling'));
  const sasUrl = (expiry: Date): string => {
    // Azurite 3.35 does not know the SDK's default service version (2026-04-06): pin one it verifies.
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container.containerName,
        blobName: name,
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: expiry,
        version: '2025-11-05',
      },
      credential,
    );
    // The source URL must use the same host:port string as the destination (Azurite's copy check).
    return `${blob.url}?${sas.toString()}`;
  };
  return { data, url: sasUrl(expiresOn), blob, sasUrl };
}

async function destinationContainer(): Promise<ContainerClient> {
  const container = blobService('partnerdest').getContainerClient(uniqueName('partner-billing'));
  await container.create();
  return container;
}

async function contentOf(container: ContainerClient, path: string): Promise<Buffer> {
  return container.getBlockBlobClient(path).downloadToBuffer();
}

async function copyError(promise: Promise<unknown>): Promise<ExportError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isExportError(error), `an ExportError is thrown, got ${String(error)}`);
    assert.doesNotMatch(error.message, /sig=/i, 'no SAS signature in the message');
    return error;
  }
  assert.fail('the copy was expected to fail');
}

/** The real destination clients, except that the destination refuses every server-side copy (a restricted copy scope). */
function refusingServerSideCopies(container: ContainerClient): BlobCopierClients & { refused: string[] } {
  const real = containerCopyClients(container);
  const refused: string[] = [];
  const refuse = (what: string): never => {
    refused.push(what);
    throw new RestError('This request is not authorized to perform this operation using this permission.', {
      statusCode: 403,
      code: 'CannotVerifyCopySource',
    });
  };
  return {
    refused,
    source: real.source,
    destination(path): CopyDestinationClient {
      const blob = container.getBlockBlobClient(path);
      return {
        getProperties: () => blob.getProperties(),
        syncCopyFromURL: async () => refuse('syncCopyFromURL'),
        stageBlockFromURL: async () => refuse('stageBlockFromURL'),
        commitBlockList: (ids, options) => blob.commitBlockList(ids, options),
        beginCopyFromURL: async () => refuse('beginCopyFromURL'),
        uploadStream: (stream, bufferSize, concurrency, options) =>
          blob.uploadStream(stream, bufferSize, concurrency, options),
        setHTTPHeaders: (headers) => blob.setHTTPHeaders(headers),
      };
    },
  };
}

describe('ServerSideBlobCopier against Azurite', () => {
  it('copies across accounts with Copy Blob From URL: byte-identical, content type and length preserved', async () => {
    const source = await sourceBlob(300 * 1024 + 17, 'application/x-gzip');
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, OPTIONS);
    const path = 'unbilled-usage/run=1/BillingMonth=202603/part-0001.json.gz';

    const result = await copier.copy({ sourceUrl: source.url, destinationPath: path });

    const properties = await container.getBlockBlobClient(path).getProperties();
    // The copy is not read back: its ETag is the one of the copy's answer, and the service carried the content type and
    // the Content-MD5 over (the fan-in's listing shows them).
    assert.deepEqual(result, {
      byteCount: source.data.length,
      contentType: 'application/x-gzip',
      method: 'copyFromUrl',
      destinationEtag: properties.etag,
    });
    assert.equal(properties.contentLength, source.data.length);
    assert.equal(properties.contentType, 'application/x-gzip');
    assert.equal(Buffer.from(properties.contentMD5 ?? []).toString('base64'), md5Of(source.data));
    assert.ok((await contentOf(container, path)).equals(source.data));
  });

  it('does nothing for a redelivered copy of a blob already there with the same length', async () => {
    const source = await sourceBlob(64 * 1024);
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, OPTIONS);
    await copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/a.json.gz' });
    const before = await container.getBlockBlobClient('run=1/a.json.gz').getProperties();

    const again = await copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/a.json.gz' });

    assert.equal(again.method, 'alreadyPresent');
    assert.equal(again.byteCount, source.data.length);
    const after = await container.getBlockBlobClient('run=1/a.json.gz').getProperties();
    assert.equal(after.etag, before.etag, 'the destination blob was not written again');
  });

  it('asks for a fresh SAS (SOURCE_EXPIRED, retryable) when the source SAS has expired', async () => {
    const source = await sourceBlob(1024);
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, OPTIONS);
    const expired = source.sasUrl(new Date(Date.now() - 60_000));

    const error = await copyError(copier.copy({ sourceUrl: expired, destinationPath: 'run=1/a.json.gz' }));

    assert.equal(error.code, 'SOURCE_EXPIRED');
    assert.equal(error.retryable, true);
    assert.equal(await container.getBlockBlobClient('run=1/a.json.gz').exists(), false);
  });

  it('falls back to an asynchronous copy above singleCopyMaxBytes, as Azurite has no Put Block From URL', async () => {
    const source = await sourceBlob(3 * MiB + 123);
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, OPTIONS);

    const result = await copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/big.json.gz' });

    assert.equal(result.method, 'asyncCopy');
    assert.equal(result.byteCount, source.data.length);
    const properties = await container.getBlockBlobClient('run=1/big.json.gz').getProperties();
    assert.equal(properties.contentType, 'application/gzip');
    assert.ok((await contentOf(container, 'run=1/big.json.gz')).equals(source.data));
  });

  it('streams through the function when the destination cannot verify the copy source (404 CannotVerifyCopySource)', async () => {
    const source = await sourceBlob(2 * MiB + 5);
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, { ...OPTIONS, singleCopyMaxBytes: 8 * MiB });
    // Azurite refuses a copy whose source host string differs from the destination's, while we can still read it.
    const viaLocalhost = source.url.replace('//127.0.0.1:', '//localhost:');
    assert.notEqual(viaLocalhost, source.url);

    const result = await copier.copy({ sourceUrl: viaLocalhost, destinationPath: 'run=1/streamed.json.gz' });

    assert.equal(result.method, 'stream');
    const properties = await container.getBlockBlobClient('run=1/streamed.json.gz').getProperties();
    assert.equal(properties.contentLength, source.data.length);
    assert.equal(properties.contentType, 'application/gzip');
    assert.ok((await contentOf(container, 'run=1/streamed.json.gz')).equals(source.data));
  });

  it('streams in bounded buffers when the destination refuses every server-side copy (restricted copy scope)', async () => {
    const source = await sourceBlob(3 * MiB + 77);
    const container = await destinationContainer();
    const clients = refusingServerSideCopies(container);
    const copier = new ServerSideBlobCopier(clients, { ...OPTIONS, streamBufferBytes: MiB });

    const result = await copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/scoped.json.gz' });

    assert.equal(result.method, 'stream');
    // Refused Put Block From URL calls (at most one per worker), then straight to streaming: no async copy.
    assert.ok(clients.refused.length >= 1 && clients.refused.length <= OPTIONS.concurrency);
    assert.ok(clients.refused.every((call) => call === 'stageBlockFromURL'));
    const blocks = await container.getBlockBlobClient('run=1/scoped.json.gz').getBlockList('committed');
    assert.equal(blocks.committedBlocks?.length, 4, '1 MiB buffers make four blocks');
    assert.ok((await contentOf(container, 'run=1/scoped.json.gz')).equals(source.data));
  });

  it('fails at once (SOURCE_UNAVAILABLE, terminal) when the source blob is gone', async () => {
    const source = await sourceBlob(1024);
    await source.blob.delete();
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, OPTIONS);

    const error = await copyError(copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/a.json.gz' }));

    assert.equal(error.code, 'SOURCE_UNAVAILABLE');
    assert.equal(error.retryable, false);
  });

  it('fails at once naming the role (DESTINATION_FORBIDDEN) when the destination refuses our credentials', async () => {
    const source = await sourceBlob(1024);
    const container = await destinationContainer();
    const wrongKey = Buffer.from('not-the-partnerdest-key').toString('base64');
    const denied = blobService(
      'partnerdest',
      azurite().connectionString('partnerdest').replace(azurite().accountKey('partnerdest'), wrongKey),
    ).getContainerClient(container.containerName);
    const copier = new ServerSideBlobCopier(denied, OPTIONS);

    const error = await copyError(copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/a.json.gz' }));

    assert.equal(error.code, 'DESTINATION_FORBIDDEN');
    assert.equal(error.retryable, false);
    assert.match(error.message, /Storage Blob Data Contributor/);
  });
});

/** Base64 MD5, as Content-MD5 carries it. */
function md5Of(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

describe('content hashes of copies on Azurite 3.35 (what the fan-in can compare)', () => {
  it('Copy Blob From URL: no x-ms-content-crc64 on Azurite, the Content-MD5 of a Put Blob source carried over, and the ETag the listing shows', async () => {
    const source = await sourceBlob(300 * 1024 + 17);
    const container = await destinationContainer();
    const result = await new ServerSideBlobCopier(container, OPTIONS).copy({
      sourceUrl: source.url,
      destinationPath: 'run=1/a.json.gz',
    });
    assert.equal(result.method, 'copyFromUrl');
    // Azure documents x-ms-content-crc64 on every Copy Blob From URL response; Azurite 3.35 sends none.
    assert.equal(result.contentCrc64, undefined);
    assert.equal(result.contentMd5, undefined, 'not read back: the fan-in takes it from its listing');
    const listed = await new BlobDestination(container).list('run=1/');
    assert.equal(listed[0]?.contentMd5, md5Of(source.data));
    assert.equal(`"${listed[0]?.etag}"`, result.destinationEtag, 'the listing shows the ETag the copy recorded');
  });

  it("the asynchronous copy carries the source's Content-MD5 over; a streamed copy gets the MD5 of its own bytes", async () => {
    const large = await sourceBlob(MiB + 4096);
    const container = await destinationContainer();
    const asyncCopy = await new ServerSideBlobCopier(container, OPTIONS).copy({
      sourceUrl: large.url,
      destinationPath: 'run=1/large.json.gz',
    });
    assert.equal(asyncCopy.method, 'asyncCopy');
    assert.equal(asyncCopy.contentMd5, md5Of(large.data));

    const inBlocks = await sourceBlob(200 * 1024, 'application/gzip', undefined, true);
    const streamed = await new ServerSideBlobCopier(refusingServerSideCopies(container), OPTIONS).copy({
      sourceUrl: inBlocks.url,
      destinationPath: 'run=1/streamed.json.gz',
    });
    assert.equal(streamed.method, 'stream');
    assert.equal(streamed.contentMd5, md5Of(inBlocks.data));
    const properties = await container.getBlockBlobClient('run=1/streamed.json.gz').getProperties();
    assert.equal(Buffer.from(properties.contentMD5 ?? []).toString('base64'), md5Of(inBlocks.data));
    assert.equal(properties.contentType, 'application/gzip');
    assert.equal(properties.etag, streamed.destinationEtag);
  });

  it('a source written in blocks (as the emulator writes export blobs) gives a server-side copy no hash on Azurite: only the ETag is recorded', async () => {
    const source = await sourceBlob(200 * 1024, 'application/gzip', undefined, true);
    const container = await destinationContainer();
    const result = await new ServerSideBlobCopier(container, OPTIONS).copy({
      sourceUrl: source.url,
      destinationPath: 'run=1/b.json.gz',
    });
    assert.equal(result.method, 'copyFromUrl');
    assert.deepEqual([result.contentCrc64, result.contentMd5], [undefined, undefined]);
    assert.equal(result.destinationEtag, (await container.getBlockBlobClient('run=1/b.json.gz').getProperties()).etag);
  });

  it('copies again over a blob another writer replaced with other bytes of the same length, when asked to replace it', async () => {
    const source = await sourceBlob(100 * 1024, 'application/gzip', undefined, true);
    const container = await destinationContainer();
    const copier = new ServerSideBlobCopier(container, OPTIONS);
    const first = await copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/c.json.gz' });
    const overwrite = Buffer.alloc(source.data.length, 7);
    await container.getBlockBlobClient('run=1/c.json.gz').uploadData(overwrite, {
      blobHTTPHeaders: { blobContentType: 'application/gzip' },
      blockSize: 64 * 1024,
      maxSingleShotSize: 64 * 1024,
    });
    const listed = await new BlobDestination(container).list('run=1/');
    assert.equal(listed[0]?.byteCount, source.data.length, 'the same length');
    assert.notEqual(`"${listed[0]?.etag}"`, first.destinationEtag, 'but another ETag');

    const again = await copier.copy({ sourceUrl: source.url, destinationPath: 'run=1/c.json.gz', replace: true });
    assert.equal(again.method, 'copyFromUrl');
    assert.ok((await contentOf(container, 'run=1/c.json.gz')).equals(source.data));
  });
});

describe('BlobDestination against Azurite', () => {
  it('creates the container if missing and writes JSON as application/json, create-only once', async () => {
    const container = blobService('partnerdest').getContainerClient(uniqueName('partner-billing'));
    const destination = new BlobDestination(container);
    await destination.ensureContainer();
    await destination.ensureContainer();
    assert.equal(await container.exists(), true);

    const path = 'unbilled-usage/billingMonth=2026-03/currency=USD/attributeSet=full/run=1/manifest.json';
    assert.equal(await destination.writeJson(path, { manifestVersion: 1, runId: '1' }, { ifNoneMatch: '*' }), true);
    assert.equal(await destination.writeJson(path, { manifestVersion: 1, runId: '2' }, { ifNoneMatch: '*' }), false);

    const read = await destination.readJson(path);
    assert.deepEqual(read?.value, { manifestVersion: 1, runId: '1' });
    const properties = await container.getBlockBlobClient(path).getProperties();
    assert.equal(properties.contentType, 'application/json');
    assert.equal(read?.etag, properties.etag);
    assert.equal(await destination.readJson('unbilled-usage/none.json'), undefined);
  });

  it('replaces only the version it read (ifMatch), and lists what is under a folder', async () => {
    const container = blobService('partnerdest').getContainerClient(uniqueName('partner-billing'));
    const destination = new BlobDestination(container);
    await destination.ensureContainer();
    await destination.writeJson('p/latest.json', { runId: 'a' }, { ifNoneMatch: '*' });
    const first = await destination.readJson('p/latest.json');
    assert.ok(first !== undefined);

    assert.equal(await destination.writeJson('p/latest.json', { runId: 'b' }, { ifMatch: first.etag }), true);
    assert.equal(await destination.writeJson('p/latest.json', { runId: 'c' }, { ifMatch: first.etag }), false);
    assert.deepEqual((await destination.readJson('p/latest.json'))?.value, { runId: 'b' });

    await destination.writeJson('p/run=1/manifest.json', { runId: '1' }, { ifNoneMatch: '*' });
    await destination.writeJson('q/other.json', {}, { ifNoneMatch: '*' });
    const listed = await destination.list('p/');
    assert.deepEqual(
      listed.map((item) => [item.path, item.contentType]),
      [
        ['p/latest.json', 'application/json'],
        ['p/run=1/manifest.json', 'application/json'],
      ],
    );
    assert.ok(listed.every((item) => item.byteCount > 0));
  });

  it('refuses to write JSON that carries a SAS signature', async () => {
    const container = blobService('partnerdest').getContainerClient(uniqueName('partner-billing'));
    const destination = new BlobDestination(container);
    await destination.ensureContainer();
    await assert.rejects(
      destination.writeJson('p/manifest.json', { url: 'https://a/b?sv=1&sig=SECRET' }, { ifNoneMatch: '*' }),
      (error: unknown) => isExportError(error) && !error.message.includes('SECRET'),
    );
    assert.equal(await container.getBlockBlobClient('p/manifest.json').exists(), false);
  });
});
