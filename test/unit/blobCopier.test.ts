import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { type BlobHTTPHeaders, RestError } from '@azure/storage-blob';
import {
  type BlobCopierClients,
  type BlobHeaderProperties,
  blockId,
  blockRanges,
  type CopyDestinationClient,
  type CopySourceClient,
  ServerSideBlobCopier,
  type ServerSideBlobCopierOptions,
  sasExpiry,
} from '../../src/adapters/storage/blobCopier';
import { type ExportError, isExportError } from '../../src/errors';

const NOW = new Date('2026-03-01T10:00:00.000Z');
const VALID_SAS = 'sv=2025-11-05&se=2026-03-01T11%3A00%3A00Z&sr=b&sp=r&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D';
const EXPIRED_SAS = 'sv=2025-11-05&se=2026-03-01T09%3A00%3A00Z&sr=b&sp=r&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D';
const SOURCE = `https://msbilling.blob.core.windows.net/exports/BillingMonth=202603/part-0001.json.gz?${VALID_SAS}`;
const EXPIRED_SOURCE = SOURCE.replace(VALID_SAS, EXPIRED_SAS);

function restError(statusCode: number, code: string, message = `${code} (${SOURCE})`): RestError {
  return new RestError(message, { statusCode, code });
}

/** A source blob in memory. */
class FakeSource implements CopySourceClient {
  headError: RestError | undefined;
  downloads = 0;

  constructor(
    readonly data: Buffer,
    readonly properties: BlobHeaderProperties = { contentType: 'application/gzip' },
  ) {}

  async getProperties(): Promise<BlobHeaderProperties> {
    if (this.headError !== undefined) throw this.headError;
    return { ...this.properties, contentLength: this.data.length };
  }

  async download(): Promise<{ readableStreamBody?: NodeJS.ReadableStream | undefined }> {
    this.downloads++;
    return { readableStreamBody: Readable.from([this.data]) };
  }
}

type Behaviour = 'ok' | RestError | ((call: number) => 'ok' | RestError);

/** A destination block blob in memory that records every call. */
class FakeDestination implements CopyDestinationClient {
  content: Buffer | undefined;
  contentType: string | undefined;
  /** The blob's Content-MD5 property: carried over from the source by a copy, set from the headers of a commit. */
  contentMD5: Uint8Array | undefined;
  /** Changes on every write, as Azure's does. */
  version = 0;
  /** What Copy Blob From URL reports as x-ms-content-crc64 (Azure always does; Azurite 3.35 does not). */
  reportedCrc64: Uint8Array | undefined = Buffer.from('crc64-ok');
  /** Another writer rewrites the blob right after Copy Blob From URL answered. */
  rewrittenAfterSyncCopy = false;
  calls: string[] = [];
  staged = new Map<string, { offset: number; count: number }>();
  committed: { ids: string[]; headers: BlobHTTPHeaders } | undefined;
  uploadHeaders: BlobHTTPHeaders | undefined;
  uploadBufferSize: number | undefined;
  uploadConcurrency: number | undefined;
  inFlight = 0;
  maxInFlight = 0;
  stageCalls = 0;
  /** Copy Blob From URL keeps the source's content type unless told otherwise (Azure does). */
  syncCopyDropsContentType = false;
  /** Bytes the next copy really lands (to simulate a short copy). */
  truncateTo: number | undefined;
  sync: Behaviour = 'ok';
  stage: Behaviour = 'ok';
  asyncCopy: Behaviour = 'ok';
  upload: Behaviour = 'ok';
  stageDelayMs = 2;

  constructor(private readonly source: FakeSource) {}

  private outcome(behaviour: Behaviour, call: number): 'ok' | RestError {
    return typeof behaviour === 'function' ? behaviour(call) : behaviour;
  }

  private land(bytes: Buffer, contentMD5: Uint8Array | undefined): void {
    this.content = this.truncateTo === undefined ? bytes : bytes.subarray(0, this.truncateTo);
    this.contentMD5 = contentMD5;
    this.version++;
  }

  get etag(): string {
    return `"0x${this.version}"`;
  }

  async getProperties(): Promise<BlobHeaderProperties & { copyStatus?: string | undefined }> {
    this.calls.push('getProperties');
    if (this.content === undefined) throw restError(404, 'BlobNotFound', 'The specified blob does not exist.');
    return {
      contentLength: this.content.length,
      contentType: this.contentType,
      contentMD5: this.contentMD5,
      etag: this.etag,
    };
  }

  async syncCopyFromURL(
    copySource: string,
    options?: { conditions?: { ifNoneMatch?: string } },
  ): Promise<{
    copyStatus?: string | undefined;
    xMsContentCrc64?: Uint8Array | undefined;
    etag?: string | undefined;
  }> {
    const ifAbsent = options?.conditions?.ifNoneMatch === '*';
    this.calls.push(ifAbsent ? 'syncCopyFromURL(ifAbsent)' : 'syncCopyFromURL');
    assert.equal(copySource, this.expectedSource);
    if (ifAbsent && this.content !== undefined) {
      throw restError(409, 'BlobAlreadyExists', 'The specified blob already exists.');
    }
    const outcome = this.outcome(this.sync, 0);
    if (outcome !== 'ok') throw outcome;
    this.land(this.source.data, this.source.properties.contentMD5);
    this.contentType = this.syncCopyDropsContentType ? 'application/octet-stream' : this.source.properties.contentType;
    const response = { copyStatus: 'success', xMsContentCrc64: this.reportedCrc64, etag: this.etag };
    if (this.rewrittenAfterSyncCopy) this.land(Buffer.alloc(this.source.data.length, 1), undefined);
    return response;
  }

  expectedSource = SOURCE;

  async stageBlockFromURL(
    id: string,
    sourceURL: string,
    offset: number,
    count: number,
    options: { abortSignal: AbortSignal },
  ): Promise<unknown> {
    const call = this.stageCalls++;
    this.calls.push('stageBlockFromURL');
    assert.equal(sourceURL, this.expectedSource);
    assert.ok(options.abortSignal instanceof AbortSignal);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, this.stageDelayMs));
      const outcome = this.outcome(this.stage, call);
      if (outcome !== 'ok') throw outcome;
      this.staged.set(id, { offset, count });
      // A CRC64 of this block only, as Azure reports it.
      return { xMsContentCrc64: Buffer.from(`block${offset}`) };
    } finally {
      this.inFlight--;
    }
  }

  async commitBlockList(ids: string[], options: { blobHTTPHeaders: BlobHTTPHeaders }): Promise<unknown> {
    this.calls.push('commitBlockList');
    this.committed = { ids, headers: options.blobHTTPHeaders };
    const parts = ids.map((id) => {
      const range = this.staged.get(id);
      assert.ok(range !== undefined, `block ${id} was staged`);
      return this.source.data.subarray(range.offset, range.offset + range.count);
    });
    this.land(Buffer.concat(parts), options.blobHTTPHeaders.blobContentMD5);
    this.contentType = options.blobHTTPHeaders.blobContentType;
    return {};
  }

  async beginCopyFromURL(
    copySource: string,
    options: { intervalInMs: number },
  ): Promise<{
    pollUntilDone(): Promise<{ copyStatus?: string | undefined; copyStatusDescription?: string | undefined }>;
  }> {
    this.calls.push('beginCopyFromURL');
    assert.equal(copySource, this.expectedSource);
    assert.ok(options.intervalInMs > 0);
    const outcome = this.outcome(this.asyncCopy, 0);
    if (outcome !== 'ok') throw outcome;
    return {
      pollUntilDone: async () => {
        this.calls.push('pollUntilDone');
        this.land(this.source.data, this.source.properties.contentMD5);
        this.contentType = this.source.properties.contentType;
        return { copyStatus: 'success' };
      },
    };
  }

  async uploadStream(
    stream: Readable,
    bufferSize: number,
    maxConcurrency: number,
    options: { blobHTTPHeaders: BlobHTTPHeaders },
  ): Promise<unknown> {
    this.calls.push('uploadStream');
    this.uploadBufferSize = bufferSize;
    this.uploadConcurrency = maxConcurrency;
    this.uploadHeaders = options.blobHTTPHeaders;
    const outcome = this.outcome(this.upload, 0);
    if (outcome !== 'ok') throw outcome;
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(Buffer.from(chunk));
    this.land(Buffer.concat(chunks), options.blobHTTPHeaders.blobContentMD5);
    this.contentType = options.blobHTTPHeaders.blobContentType;
    return {};
  }

  async setHTTPHeaders(headers: BlobHTTPHeaders): Promise<unknown> {
    this.calls.push('setHTTPHeaders');
    // Set Blob Properties replaces every HTTP header: one not given is cleared.
    this.contentType = headers.blobContentType;
    this.contentMD5 = headers.blobContentMD5;
    this.version++;
    return {};
  }

  /** The calls that move bytes or set headers, in order. */
  copyCalls(): string[] {
    return this.calls.filter((call) => call !== 'getProperties' && call !== 'stageBlockFromURL');
  }
}

function setup(
  size: number,
  options: Partial<ServerSideBlobCopierOptions> = {},
  properties: BlobHeaderProperties = { contentType: 'application/gzip', contentEncoding: 'identity' },
): { source: FakeSource; destination: FakeDestination; copier: ServerSideBlobCopier } {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) % 251;
  const source = new FakeSource(data, properties);
  const destination = new FakeDestination(source);
  const clients: BlobCopierClients = { source: () => source, destination: () => destination };
  const copier = new ServerSideBlobCopier(clients, {
    singleCopyMaxBytes: 1000,
    blockSizeBytes: 300,
    concurrency: 4,
    now: () => NOW,
    ...options,
  });
  return { source, destination, copier };
}

async function copyError(copier: ServerSideBlobCopier, sourceUrl = SOURCE): Promise<ExportError> {
  try {
    await copier.copy({ sourceUrl, destinationPath: 'unbilled-usage/run=1/part-0001.json.gz' });
  } catch (error) {
    assert.ok(isExportError(error), `an ExportError is thrown, got ${String(error)}`);
    assert.doesNotMatch(error.message, /sig=/i, 'the message carries no SAS signature');
    assert.doesNotMatch(error.message, /c2VjcmV0/, 'the message carries no signature value');
    return error;
  }
  assert.fail('the copy was expected to fail');
}

const copy = (copier: ServerSideBlobCopier, sourceUrl = SOURCE) =>
  copier.copy({ sourceUrl, destinationPath: 'unbilled-usage/run=1/part-0001.json.gz' });

describe('ServerSideBlobCopier with Put Block From URL (fakes)', () => {
  it('stages ranges that cover the blob exactly, the last one shorter, and commits them in order', async () => {
    const { source, destination, copier } = setup(2000 + 123, { blockSizeBytes: 300 });
    const result = await copy(copier);

    assert.equal(result.method, 'blockFromUrl');
    assert.equal(result.byteCount, 2123);
    const ranges = destination.committed?.ids.map((id) => destination.staged.get(id)) ?? [];
    assert.equal(ranges.length, 8);
    let expectedOffset = 0;
    for (const range of ranges) {
      assert.ok(range !== undefined);
      assert.equal(range.offset, expectedOffset, 'ranges are contiguous and ordered');
      expectedOffset += range.count;
    }
    assert.equal(expectedOffset, 2123, 'ranges end at the last byte');
    assert.deepEqual(
      ranges.map((range) => range?.count),
      [300, 300, 300, 300, 300, 300, 300, 23],
    );
    assert.ok(destination.content?.equals(source.data), 'the committed blob is byte-identical');
  });

  it('never has more than `concurrency` Put Block From URL calls in flight, and uses all of them', async () => {
    const { destination, copier } = setup(30 * 100, { blockSizeBytes: 100, concurrency: 3, singleCopyMaxBytes: 10 });
    await copy(copier);
    assert.equal(destination.stageCalls, 30);
    assert.equal(destination.maxInFlight, 3);
  });

  it('gives every block an id of the same length, in base64, unique per range', async () => {
    const { destination, copier } = setup(12_345, { blockSizeBytes: 1000 });
    await copy(copier);
    const ids = destination.committed?.ids ?? [];
    assert.equal(ids.length, 13);
    assert.equal(new Set(ids).size, ids.length);
    const lengths = new Set(ids.map((id) => id.length));
    assert.equal(lengths.size, 1, 'all ids have one length');
    for (const id of ids) {
      assert.match(id, /^[A-Za-z0-9+/]+={0,2}$/);
      assert.equal(Buffer.from(Buffer.from(id, 'base64').toString('utf8')).toString('base64'), id);
    }
    assert.equal(blockId(0).length, blockId(49_999).length);
  });

  it("commits with the source's content type and other HTTP headers", async () => {
    const { destination, copier } = setup(1500, {}, { contentType: 'application/x-gzip', contentEncoding: 'gzip' });
    const result = await copy(copier);
    assert.deepEqual(destination.committed?.headers, {
      blobContentType: 'application/x-gzip',
      blobContentEncoding: 'gzip',
    });
    assert.equal(result.contentType, 'application/x-gzip');
    assert.equal(destination.contentType, 'application/x-gzip');
  });

  it('splits a size into block ranges, none for an empty blob', () => {
    assert.equal(blockRanges(0, 10).length, 0);
    assert.deepEqual(blockRanges(10, 4), [
      { offset: 0, count: 4 },
      { offset: 4, count: 4 },
      { offset: 8, count: 2 },
    ]);
  });

  it('uses larger blocks than configured when the blob would need more than 50,000', async () => {
    const { destination, copier } = setup(50_001 * 2, { blockSizeBytes: 2, singleCopyMaxBytes: 0, concurrency: 64 });
    destination.stageDelayMs = 0;
    await copy(copier);
    const ids = destination.committed?.ids ?? [];
    assert.ok(ids.length <= 50_000, `${ids.length} blocks`);
    assert.equal(ids.length, 33_334, 'blocks of 3 bytes instead of 2');
  });

  it('stops staging after a failed block, commits nothing, and reports a retryable destination error', async () => {
    const { destination, copier } = setup(3000, { blockSizeBytes: 100, concurrency: 2 });
    destination.stage = (call) => (call === 3 ? restError(503, 'ServerBusy', 'busy') : 'ok');
    const error = await copyError(copier);
    assert.equal(error.code, 'DESTINATION_UNAVAILABLE');
    assert.equal(error.retryable, true);
    assert.equal(destination.committed, undefined);
    assert.ok(destination.stageCalls < 30, `only ${destination.stageCalls} of 30 blocks were attempted`);
  });
});

describe('ServerSideBlobCopier fallback order (fakes)', () => {
  it('falls back to an asynchronous copy when Put Block From URL is not implemented (Azurite)', async () => {
    const { source, destination, copier } = setup(1500);
    destination.stage = restError(501, 'APINotImplemented', 'not implemented');
    const result = await copy(copier);
    assert.equal(result.method, 'asyncCopy');
    assert.deepEqual(destination.copyCalls(), ['beginCopyFromURL', 'pollUntilDone']);
    assert.ok(destination.content?.equals(source.data));
  });

  it('streams when Put Block From URL is not implemented and the asynchronous copy is refused', async () => {
    const { source, destination, copier } = setup(1500, { streamBufferBytes: 4096, concurrency: 3 });
    destination.stage = restError(501, 'APINotImplemented', 'not implemented');
    destination.asyncCopy = restError(403, 'CannotVerifyCopySource', 'copy scope');
    const result = await copy(copier);
    assert.equal(result.method, 'stream');
    assert.deepEqual(destination.copyCalls(), ['beginCopyFromURL', 'uploadStream', 'setHTTPHeaders']);
    assert.equal(destination.uploadBufferSize, 4096);
    assert.equal(destination.uploadConcurrency, 3);
    assert.deepEqual(destination.uploadHeaders, {
      blobContentType: 'application/gzip',
      blobContentEncoding: 'identity',
    });
    assert.ok(destination.content?.equals(source.data));
  });

  it('streams a small blob in 8 MiB buffers when Copy Blob From URL is refused by the copy scope', async () => {
    const { source, destination, copier } = setup(800);
    destination.sync = restError(403, 'AuthorizationPermissionMismatch', 'copy scope');
    const result = await copy(copier);
    assert.equal(result.method, 'stream');
    assert.deepEqual(
      destination.copyCalls(),
      ['syncCopyFromURL(ifAbsent)', 'uploadStream', 'setHTTPHeaders'],
      'the refused copy is not asked for again',
    );
    assert.equal(destination.uploadBufferSize, 8 * 1024 * 1024);
    assert.equal(source.downloads, 1);
    assert.ok(destination.content?.equals(source.data));
  });

  it('copies a new blob up to singleCopyMaxBytes with one conditional Copy Blob From URL, not reading it back', async () => {
    const { source, destination, copier } = setup(1000);
    const result = await copy(copier);
    assert.equal(result.method, 'copyFromUrl');
    assert.equal(result.byteCount, 1000);
    assert.equal(result.contentType, 'application/gzip');
    assert.deepEqual(
      destination.calls,
      ['syncCopyFromURL(ifAbsent)'],
      'one destination request, no HEAD before or after',
    );
    assert.ok(destination.content?.equals(source.data));
  });

  it('restores a lost content type when it copies over a blob it was asked to replace', async () => {
    const { destination, copier } = setup(1000);
    destination.content = Buffer.alloc(1000, 1);
    destination.syncCopyDropsContentType = true;
    const result = await copier.copy({ sourceUrl: SOURCE, destinationPath: 'run=1/part-0001.json.gz', replace: true });
    assert.equal(result.method, 'copyFromUrl');
    assert.deepEqual(destination.copyCalls(), ['syncCopyFromURL', 'setHTTPHeaders']);
    assert.equal(destination.contentType, 'application/gzip');
  });

  it('finds a blob already there through the refused conditional copy, reads it, and leaves it alone', async () => {
    const { source, destination, copier } = setup(900);
    destination.content = Buffer.from(source.data);
    destination.contentType = 'application/gzip';
    const before = destination.etag;
    const result = await copy(copier);
    assert.equal(result.method, 'alreadyPresent');
    assert.deepEqual(destination.calls, ['syncCopyFromURL(ifAbsent)', 'getProperties']);
    assert.equal(result.destinationEtag, before);
  });

  it('takes a 412 to the conditional copy (ConditionNotMet) as a blob already there, and reads it', async () => {
    const { source, destination, copier } = setup(900);
    destination.content = Buffer.from(source.data);
    destination.contentType = 'application/gzip';
    const sync = destination.syncCopyFromURL.bind(destination);
    destination.syncCopyFromURL = async (copySource, options) => {
      if (options?.conditions?.ifNoneMatch === '*') {
        destination.calls.push('syncCopyFromURL(ifAbsent)');
        throw restError(412, 'ConditionNotMet', 'The condition specified using HTTP conditional header(s) is not met.');
      }
      return sync(copySource, options);
    };
    const result = await copy(copier);
    assert.equal(result.method, 'alreadyPresent');
    assert.deepEqual(destination.calls, ['syncCopyFromURL(ifAbsent)', 'getProperties']);
  });

  it('does not ask for Copy Blob From URL again when the conditional one is not implemented: the asynchronous copy runs', async () => {
    const { source, destination, copier } = setup(900);
    destination.sync = restError(501, 'NotImplemented', 'not implemented');
    const result = await copy(copier);
    assert.equal(result.method, 'asyncCopy');
    assert.deepEqual(destination.copyCalls(), ['syncCopyFromURL(ifAbsent)', 'beginCopyFromURL', 'pollUntilDone']);
    assert.ok(destination.content?.equals(source.data));
  });

  it('copies again, unconditionally, over a blob of another length found by the refused conditional copy', async () => {
    const { source, destination, copier } = setup(900);
    destination.content = Buffer.from('partial');
    const result = await copy(copier);
    assert.equal(result.method, 'copyFromUrl');
    assert.deepEqual(destination.copyCalls(), ['syncCopyFromURL(ifAbsent)', 'syncCopyFromURL']);
    assert.ok(destination.content?.equals(source.data));
  });

  it('leaves an already copied blob of the same length alone', async () => {
    const { source, destination, copier } = setup(1500);
    destination.content = Buffer.from(source.data);
    destination.contentType = 'application/gzip';
    const result = await copy(copier);
    assert.equal(result.method, 'alreadyPresent');
    assert.deepEqual(destination.copyCalls(), []);
  });

  it('copies again over a destination blob of a different length', async () => {
    const { source, destination, copier } = setup(900);
    destination.content = Buffer.from('partial');
    const result = await copy(copier);
    assert.equal(result.method, 'copyFromUrl');
    assert.ok(destination.content?.equals(source.data));
  });
});

describe('ServerSideBlobCopier content hashes (fakes)', () => {
  const md5Of = (data: Buffer): Buffer => createHash('md5').update(data).digest();

  it('records the CRC64 and ETag Copy Blob From URL answers with; the Content-MD5 is left to the listing of the fan-in', async () => {
    const { source, destination, copier } = setup(900);
    source.properties.contentMD5 = md5Of(source.data);
    const result = await copy(copier);
    assert.equal(result.method, 'copyFromUrl');
    assert.equal(result.contentCrc64, Buffer.from('crc64-ok').toString('base64'));
    assert.equal(result.contentMd5, undefined, 'not read back');
    assert.equal(result.destinationEtag, destination.etag);
  });

  it('records the Content-MD5 and ETag of the destination read back after a copy over a blob it replaces', async () => {
    const { source, destination, copier } = setup(900);
    source.properties.contentMD5 = md5Of(source.data);
    destination.content = Buffer.alloc(900, 1);
    const result = await copier.copy({ sourceUrl: SOURCE, destinationPath: 'run=1/part-0001.json.gz', replace: true });
    assert.equal(result.contentCrc64, Buffer.from('crc64-ok').toString('base64'));
    assert.equal(result.contentMd5, md5Of(source.data).toString('base64'));
    assert.equal(result.destinationEtag, destination.etag);
  });

  it('records the ETag after restoring a lost content type, keeping the Content-MD5 the copy carried over', async () => {
    const { source, destination, copier } = setup(900);
    source.properties.contentMD5 = md5Of(source.data);
    destination.content = Buffer.alloc(900, 1);
    destination.syncCopyDropsContentType = true;
    const result = await copier.copy({ sourceUrl: SOURCE, destinationPath: 'run=1/part-0001.json.gz', replace: true });
    assert.deepEqual(destination.copyCalls(), ['syncCopyFromURL', 'setHTTPHeaders']);
    assert.equal(result.destinationEtag, destination.etag, 'the ETag after Set Blob Properties');
    assert.equal(Buffer.from(destination.contentMD5 ?? []).toString('base64'), md5Of(source.data).toString('base64'));
    assert.equal(result.contentMd5, md5Of(source.data).toString('base64'));
  });

  it('records no hash where the service reports none (Copy Blob From URL on Azurite, a source without Content-MD5)', async () => {
    const { destination, copier } = setup(900);
    destination.reportedCrc64 = undefined;
    const result = await copy(copier);
    assert.equal(result.contentCrc64, undefined);
    assert.equal(result.contentMd5, undefined);
    assert.equal(result.destinationEtag, destination.etag, 'the ETag still lets the fan-in see a later rewrite');
  });

  it("records the copy's own ETag, so a write right after the copy shows to the fan-in as a changed blob", async () => {
    const { destination, copier } = setup(900);
    destination.rewrittenAfterSyncCopy = true;
    const result = await copy(copier);
    assert.equal(result.method, 'copyFromUrl');
    assert.notEqual(result.destinationEtag, destination.etag, 'the ETag of the copy, not of the later write');
  });

  it('records no CRC64 when another write came between Copy Blob From URL and reading the blob back (its ETag moved)', async () => {
    const { destination, copier } = setup(900);
    destination.content = Buffer.alloc(900, 1);
    destination.rewrittenAfterSyncCopy = true;
    const result = await copier.copy({ sourceUrl: SOURCE, destinationPath: 'run=1/part-0001.json.gz', replace: true });
    assert.equal(result.method, 'copyFromUrl');
    assert.equal(result.contentCrc64, undefined, 'the CRC64 describes a blob that is no longer there');
    assert.equal(result.destinationEtag, destination.etag);
  });

  it('records no CRC64 for Put Block From URL (it reports one per block), but the Content-MD5 the commit carried over', async () => {
    const { source, copier } = setup(1500);
    source.properties.contentMD5 = md5Of(source.data);
    const result = await copy(copier);
    assert.equal(result.method, 'blockFromUrl');
    assert.equal(result.contentCrc64, undefined);
    assert.equal(result.contentMd5, md5Of(source.data).toString('base64'));
  });

  it('hashes a streamed copy on its way through and sets that MD5 as the Content-MD5 of the destination blob', async () => {
    const { source, destination, copier } = setup(800);
    destination.sync = restError(403, 'AuthorizationPermissionMismatch', 'copy scope');
    const result = await copy(copier);
    assert.equal(result.method, 'stream');
    assert.equal(result.contentMd5, md5Of(source.data).toString('base64'));
    assert.equal(destination.contentType, 'application/gzip', 'the other headers are kept');
    assert.equal(result.destinationEtag, destination.etag);
  });

  it('fails a streamed copy (COPY_FAILED, retryable) whose bytes do not match the Content-MD5 of the source', async () => {
    const { source, destination, copier } = setup(800);
    source.properties.contentMD5 = md5Of(Buffer.from('other content'));
    destination.sync = restError(403, 'AuthorizationPermissionMismatch', 'copy scope');
    const error = await copyError(copier);
    assert.equal(error.code, 'COPY_FAILED');
    assert.equal(error.retryable, true);
    assert.match(error.message, /Content-MD5/);
  });

  it('copies again over a blob of the same length when asked to replace it (the fan-in found it changed)', async () => {
    const { source, destination, copier } = setup(900);
    destination.content = Buffer.alloc(900, 1);
    destination.contentType = 'application/gzip';
    const result = await copier.copy({ sourceUrl: SOURCE, destinationPath: 'run=1/part-0001.json.gz', replace: true });
    assert.equal(result.method, 'copyFromUrl');
    assert.ok(destination.content?.equals(source.data));
  });

  it("copies again over a blob of the same length whose Content-MD5 differs from the source's", async () => {
    const { source, destination, copier } = setup(900);
    source.properties.contentMD5 = md5Of(source.data);
    destination.content = Buffer.alloc(900, 1);
    destination.contentMD5 = md5Of(destination.content);
    destination.contentType = 'application/gzip';
    const result = await copy(copier);
    assert.equal(result.method, 'copyFromUrl');
    assert.ok(destination.content?.equals(source.data));
  });
});

describe('ServerSideBlobCopier errors (fakes)', () => {
  it('asks for a fresh SAS (SOURCE_EXPIRED, retryable) when the source refuses an expired SAS', async () => {
    const { source, copier } = setup(500);
    source.headError = restError(403, 'AuthenticationFailed', '');
    const error = await copyError(copier, EXPIRED_SOURCE);
    assert.equal(error.code, 'SOURCE_EXPIRED');
    assert.equal(error.retryable, true);
  });

  it('asks for a fresh SAS when the copy call fails because the SAS expired meanwhile, without streaming', async () => {
    const { destination, copier, source } = setup(500);
    destination.expectedSource = EXPIRED_SOURCE;
    destination.sync = restError(403, 'CannotVerifyCopySource', 'Server failed to authenticate the request.');
    const error = await copyError(copier, EXPIRED_SOURCE);
    assert.equal(error.code, 'SOURCE_EXPIRED');
    assert.equal(source.downloads, 0);
    assert.deepEqual(destination.copyCalls(), ['syncCopyFromURL(ifAbsent)']);
  });

  it('fails at once (SOURCE_UNAVAILABLE, terminal) when the source blob does not exist', async () => {
    const { source, copier } = setup(500);
    source.headError = restError(404, 'BlobNotFound', '');
    const error = await copyError(copier);
    assert.equal(error.code, 'SOURCE_UNAVAILABLE');
    assert.equal(error.retryable, false);
    assert.match(error.message, /part-0001\.json\.gz/);
  });

  it('retries (SOURCE_UNAVAILABLE, retryable) when the source answers 503', async () => {
    const { source, copier } = setup(500);
    source.headError = restError(503, 'ServerBusy', 'busy');
    const error = await copyError(copier);
    assert.equal(error.code, 'SOURCE_UNAVAILABLE');
    assert.equal(error.retryable, true);
  });

  it('fails at once naming the Storage Blob Data Contributor role when the destination refuses writes', async () => {
    const { destination, copier } = setup(500);
    destination.sync = restError(403, 'AuthorizationPermissionMismatch', 'no permission');
    destination.upload = restError(403, 'AuthorizationPermissionMismatch', 'no permission');
    const error = await copyError(copier);
    assert.equal(error.code, 'DESTINATION_FORBIDDEN');
    assert.equal(error.retryable, false);
    assert.match(error.message, /Storage Blob Data Contributor/);
  });

  it('retries (DESTINATION_UNAVAILABLE) when the destination answers 500 to the copy', async () => {
    const { destination, copier } = setup(500);
    destination.sync = restError(500, 'InternalError', `failed ${SOURCE}`);
    const error = await copyError(copier);
    assert.equal(error.code, 'DESTINATION_UNAVAILABLE');
    assert.equal(error.retryable, true);
  });

  it('fails a copy it reads back (COPY_FAILED, retryable) when the destination length differs from the source', async () => {
    const { destination, copier } = setup(1500);
    destination.truncateTo = 1499;
    const error = await copyError(copier);
    assert.equal(error.code, 'COPY_FAILED');
    assert.equal(error.retryable, true);
    assert.match(error.message, /1499 bytes instead of 1500/);
  });
});

describe('sasExpiry', () => {
  it('reads se from a SAS URL and from a bare token, with or without a leading ?', () => {
    const expected = '2026-03-01T11:00:00.000Z';
    assert.equal(sasExpiry(SOURCE)?.toISOString(), expected);
    assert.equal(sasExpiry(VALID_SAS)?.toISOString(), expected);
    assert.equal(sasExpiry(`?${VALID_SAS}`)?.toISOString(), expected);
  });

  it('returns undefined without a readable se', () => {
    assert.equal(sasExpiry('https://a.blob.core.windows.net/c/b'), undefined);
    assert.equal(sasExpiry('sv=2025-11-05&se=tomorrow&sig=x'), undefined);
  });
});
