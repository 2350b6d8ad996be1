import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { AnonymousCredential, BlobClient, type BlobHTTPHeaders, type ContainerClient } from '@azure/storage-blob';
import { ExportError } from '../../errors';
import type { BlobCopier, CopiedContent, CopyMethod } from '../../pipeline/ports';
import { redact, safeUrl } from '../../redact';
import {
  describeError,
  describeStatus,
  destinationError,
  isTransient,
  type StorageErrorInfo,
  storageErrorInfo,
} from './clients';

const MiB = 1024 * 1024;
/** Azure limits of a block blob: 50,000 committed blocks, 4000 MiB per Put Block From URL. */
const MAX_BLOCKS = 50_000;
const MAX_BLOCK_BYTES = 4000 * MiB;
/**
 * Buffers of the streaming fallback at most, whatever `concurrency` allows Put Block From URL: the fallback holds
 * `streamBufferBytes` per buffer in memory (8 x 8 MiB peaks near 125 MiB of RSS; docs/performance.md).
 */
export const STREAM_MAX_BUFFERS = 8;
/** A SAS this close to its expiry is treated as expired (clock skew between us and the storage service). */
const EXPIRY_SKEW_MS = 5 * 60 * 1000;

/** HTTP headers of a blob as the service reports them. */
export interface BlobHeaderProperties {
  contentLength?: number | undefined;
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  contentLanguage?: string | undefined;
  contentDisposition?: string | undefined;
  cacheControl?: string | undefined;
  contentMD5?: Uint8Array | undefined;
  etag?: string | undefined;
}

/** What the copier needs of the source blob, reached anonymously through its SAS URL. */
export interface CopySourceClient {
  getProperties(): Promise<BlobHeaderProperties>;
  download(
    offset: number,
    count: undefined,
    options: { maxRetryRequests: number; abortSignal?: AbortSignal },
  ): Promise<{ readableStreamBody?: NodeJS.ReadableStream | undefined }>;
}

/** What the copier needs of the destination block blob (a `BlockBlobClient`, or a fake in unit tests). */
export interface CopyDestinationClient {
  getProperties(): Promise<BlobHeaderProperties & { copyStatus?: string | undefined }>;
  /**
   * Copy Blob From URL (synchronous, up to 256 MiB); Azure answers with the CRC64 of the copied content. With
   * `ifNoneMatch: '*'` it writes only where no blob is (409 BlobAlreadyExists, or 412, otherwise).
   */
  syncCopyFromURL(
    copySource: string,
    options?: { conditions?: { ifNoneMatch?: string } },
  ): Promise<{
    copyStatus?: string | undefined;
    xMsContentCrc64?: Uint8Array | undefined;
    etag?: string | undefined;
  }>;
  /** Put Block From URL. */
  stageBlockFromURL(
    blockId: string,
    sourceURL: string,
    offset: number,
    count: number,
    options: { abortSignal: AbortSignal },
  ): Promise<unknown>;
  commitBlockList(blocks: string[], options: { blobHTTPHeaders: BlobHTTPHeaders }): Promise<unknown>;
  /** Asynchronous Copy Blob. */
  beginCopyFromURL(
    copySource: string,
    options: { intervalInMs: number },
  ): Promise<{
    pollUntilDone(): Promise<{ copyStatus?: string | undefined; copyStatusDescription?: string | undefined }>;
  }>;
  uploadStream(
    stream: Readable,
    bufferSize: number,
    maxConcurrency: number,
    options: { blobHTTPHeaders: BlobHTTPHeaders },
  ): Promise<unknown>;
  setHTTPHeaders(blobHTTPHeaders: BlobHTTPHeaders): Promise<unknown>;
}

/** Builds the clients of one copy (injectable, so unit tests pass fakes). */
export interface BlobCopierClients {
  source(sourceUrl: string): CopySourceClient;
  destination(destinationPath: string): CopyDestinationClient;
}

/** Tuning of the copier (`Config.copy`, plus test knobs). */
export interface ServerSideBlobCopierOptions {
  /** Blobs up to this size use one Copy Blob From URL (Azure allows at most 256 MiB). */
  singleCopyMaxBytes: number;
  /** Range size of the parallel Put Block From URL copy (raised when a blob would need more than 50,000 blocks). */
  blockSizeBytes: number;
  /** Put Block From URL calls in flight, and buffers of the streaming fallback (at most STREAM_MAX_BUFFERS). */
  concurrency: number;
  /** Buffer size of the streaming fallback; default 8 MiB. Memory is bounded by this times min(`concurrency`, 8). */
  streamBufferBytes?: number | undefined;
  /** Poll interval of an asynchronous copy; default 2000 ms. */
  asyncCopyPollIntervalMs?: number | undefined;
  /** Time, for SAS expiry checks; default the system clock. */
  now?: (() => Date) | undefined;
}

/** The clients of the real copier: anonymous source through its SAS URL, block blobs of the destination container. */
export function containerCopyClients(container: ContainerClient): BlobCopierClients {
  return {
    source: (sourceUrl) => new BlobClient(sourceUrl, new AnonymousCredential()),
    destination: (destinationPath) => container.getBlockBlobClient(destinationPath),
  };
}

/** The `se` (signed expiry) of a SAS URL or token; undefined when absent or unreadable. */
export function sasExpiry(sasUrlOrToken: string): Date | undefined {
  const at = sasUrlOrToken.indexOf('?');
  const query = at >= 0 ? sasUrlOrToken.slice(at + 1) : sasUrlOrToken;
  const se = new URLSearchParams(query).get('se');
  if (se === null || se === '') return undefined;
  const expiry = new Date(se);
  return Number.isNaN(expiry.getTime()) ? undefined : expiry;
}

/** Fixed-length base64 block ids (Azure requires every id of a blob to have the same length). */
export function blockId(index: number): string {
  return Buffer.from(`csp-export-block-${String(index).padStart(6, '0')}`, 'utf8').toString('base64');
}

/** The byte ranges of a block copy: `blockSize` each, the last one shorter. */
export function blockRanges(size: number, blockSize: number): Array<{ offset: number; count: number }> {
  const ranges: Array<{ offset: number; count: number }> = [];
  for (let offset = 0; offset < size; offset += blockSize) {
    ranges.push({ offset, count: Math.min(blockSize, size - offset) });
  }
  return ranges;
}

function headersOf(properties: BlobHeaderProperties): BlobHTTPHeaders {
  const headers: BlobHTTPHeaders = {};
  if (properties.contentType !== undefined) headers.blobContentType = properties.contentType;
  if (properties.contentEncoding !== undefined) headers.blobContentEncoding = properties.contentEncoding;
  if (properties.contentLanguage !== undefined) headers.blobContentLanguage = properties.contentLanguage;
  if (properties.contentDisposition !== undefined) headers.blobContentDisposition = properties.contentDisposition;
  if (properties.cacheControl !== undefined) headers.blobCacheControl = properties.cacheControl;
  if (properties.contentMD5 !== undefined) headers.blobContentMD5 = properties.contentMD5;
  return headers;
}

function base64(bytes: Uint8Array | undefined): string | undefined {
  return bytes === undefined || bytes.length === 0 ? undefined : Buffer.from(bytes).toString('base64');
}

/** An ETag as a header (quoted) or a listing (bare) reports it. */
function bareEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** Both blobs report a Content-MD5, and they differ: not the same content. */
function md5Differs(destination: BlobHeaderProperties, source: BlobHeaderProperties): boolean {
  const a = base64(destination.contentMD5);
  const b = base64(source.contentMD5);
  return a !== undefined && b !== undefined && a !== b;
}

/** The destination's Content-MD5 and ETag, as recorded on the blob's ledger row. */
function contentOf(properties: BlobHeaderProperties | undefined): CopiedContent {
  const out: CopiedContent = {};
  const contentMd5 = base64(properties?.contentMD5);
  if (contentMd5 !== undefined) out.contentMd5 = contentMd5;
  if (properties?.etag !== undefined) out.destinationEtag = properties.etag;
  return out;
}

/**
 * A conditional copy (`ifNoneMatch: '*'`) refused because of the blob there: Azure answers 409 BlobAlreadyExists (or
 * another 409, such as a copy still pending into it), other services 412. The checked path reads the blob and decides.
 */
function isAlreadyThere(info: StorageErrorInfo): boolean {
  return info.status === 409 || info.status === 412 || info.code === 'ConditionNotMet';
}

/** Why Copy Blob From URL did not run: the destination does not implement it, or refuses it (a copy scope). */
type SyncCopyRefusal = 'notImplemented' | 'copyScope';

/** A server-side copy the destination does not support (Azurite: Put Block From URL). */
function isNotImplemented(info: StorageErrorInfo): boolean {
  return info.status === 501 || info.code === 'NotImplemented' || info.code === 'APINotImplemented';
}

/**
 * Copies one export blob into the destination, server-side first (SPEC section 6):
 * Copy Blob From URL up to `singleCopyMaxBytes`; above, parallel Put Block From URL over `blockSizeBytes`
 * ranges, or an asynchronous copy where that is not implemented; bounded-memory streaming where the
 * destination refuses server-side copies. Idempotent: a destination blob of the same length is left alone.
 */
export class ServerSideBlobCopier implements BlobCopier {
  private readonly clients: BlobCopierClients;
  private readonly options: ServerSideBlobCopierOptions;
  private readonly now: () => Date;

  /**
   * @param destination - the destination container, or the clients to use (fakes in unit tests).
   */
  constructor(destination: ContainerClient | BlobCopierClients, options: ServerSideBlobCopierOptions) {
    this.clients = 'getBlockBlobClient' in destination ? containerCopyClients(destination) : destination;
    if (!(options.singleCopyMaxBytes >= 0) || !(options.blockSizeBytes > 0) || !(options.concurrency >= 1)) {
      throw new ExportError(
        'CONFIG_INVALID',
        'Copy options: singleCopyMaxBytes >= 0, blockSizeBytes > 0 and concurrency >= 1 are required.',
      );
    }
    this.options = options;
    this.now = options.now ?? (() => new Date());
  }

  async copy(input: {
    sourceUrl: string;
    destinationPath: string;
    replace?: boolean | undefined;
  }): Promise<{ byteCount: number; contentType: string | undefined; method: CopyMethod } & CopiedContent> {
    const { sourceUrl, destinationPath } = input;
    const source = this.clients.source(sourceUrl);
    const destination = this.clients.destination(destinationPath);

    const properties = await this.sourceCall(() => source.getProperties(), sourceUrl, 'Reading the properties of');
    const size = properties.contentLength;
    if (size === undefined) {
      throw new ExportError('COPY_FAILED', `The source ${safeUrl(sourceUrl)} did not report its length.`, {
        retryable: true,
      });
    }
    const headers = headersOf(properties);
    const contentType = properties.contentType;

    let refused: SyncCopyRefusal | undefined;
    if (input.replace !== true && size <= this.options.singleCopyMaxBytes) {
      const first = await this.copyWhereAbsent(destination, sourceUrl, destinationPath);
      if ('copied' in first) return { byteCount: size, contentType, method: 'copyFromUrl', ...first.copied };
      if (first.refused !== 'present') refused = first.refused;
    }

    const existing = await this.destinationProperties(destination, destinationPath);
    if (
      input.replace !== true &&
      existing !== undefined &&
      existing.contentLength === size &&
      (existing.copyStatus === undefined || existing.copyStatus === 'success') &&
      !md5Differs(existing, properties)
    ) {
      const settled = await this.ensureHeaders(destination, destinationPath, existing, headers);
      return { byteCount: size, contentType, method: 'alreadyPresent', ...contentOf(settled) };
    }
    if (existing?.copyStatus === 'pending') {
      throw new ExportError(
        'COPY_FAILED',
        `A copy into ${redact(destinationPath)} is still pending (an earlier attempt); it will be retried.`,
        { retryable: true },
      );
    }

    const { method, contentCrc64, etag } = await this.copyBytes(
      source,
      destination,
      sourceUrl,
      destinationPath,
      size,
      headers,
      refused,
    );

    const copied = await this.destinationProperties(destination, destinationPath);
    if (copied?.contentLength !== size || md5Differs(copied, properties)) {
      const what =
        copied?.contentLength !== size
          ? `${copied?.contentLength ?? 'no'} bytes instead of ${size}`
          : 'content whose Content-MD5 differs from the source';
      throw new ExportError(
        'COPY_FAILED',
        `Copy of ${safeUrl(sourceUrl)} to ${redact(destinationPath)} (${method}) left ${what}; it will be retried.`,
        { retryable: true },
      );
    }
    // The CRC64 describes the blob the copy wrote: if another write came between the copy and this read (another
    // ETag), it no longer describes what is there, and is not recorded.
    const sameBlob = etag === undefined || copied.etag === undefined || bareEtag(etag) === bareEtag(copied.etag);
    const settled = await this.ensureHeaders(destination, destinationPath, copied, headers);
    return {
      byteCount: size,
      contentType,
      method,
      ...contentOf(settled),
      ...(contentCrc64 === undefined || !sameBlob ? {} : { contentCrc64 }),
    };
  }

  /**
   * The common case in two requests (the source's properties, then this one): Copy Blob From URL on the condition that
   * no blob is at the destination yet. A successful synchronous copy is the whole source with its properties (Azure
   * carries the content type and Content-MD5 over), so the destination is not read back: its ETag comes with the
   * answer, and the fan-in checks every blob's length, content type and ETag against one listing of the run folder
   * before the run completes. Undefined when the checked path must decide: a blob is there already (an earlier
   * attempt, or another copy of a redelivered message), or the destination will not run this copy (not implemented,
   * a restricted copy scope).
   */
  private async copyWhereAbsent(
    destination: CopyDestinationClient,
    sourceUrl: string,
    destinationPath: string,
  ): Promise<{ copied: CopiedContent } | { refused: 'present' | SyncCopyRefusal }> {
    let response: Awaited<ReturnType<CopyDestinationClient['syncCopyFromURL']>>;
    try {
      response = await destination.syncCopyFromURL(sourceUrl, { conditions: { ifNoneMatch: '*' } });
    } catch (error) {
      if (error instanceof ExportError) throw error;
      const info = storageErrorInfo(error);
      if (isAlreadyThere(info)) return { refused: 'present' };
      if (isNotImplemented(info)) return { refused: 'notImplemented' };
      this.throwIfSourceExpired(info, sourceUrl);
      if (this.refusesServerSideCopy(info)) return { refused: 'copyScope' };
      throw this.copyCallError(info, error, sourceUrl, destinationPath);
    }
    // A synchronous copy ends in success or an error; anything else is left to the checked path to find out.
    if (response.copyStatus !== undefined && response.copyStatus !== 'success') return { refused: 'present' };
    const copied: CopiedContent = {};
    const contentCrc64 = base64(response.xMsContentCrc64);
    if (contentCrc64 !== undefined) copied.contentCrc64 = contentCrc64;
    if (response.etag !== undefined) copied.destinationEtag = response.etag;
    return { copied };
  }

  /** Server-side by size, with the fallbacks of SPEC section 6. */
  private async copyBytes(
    source: CopySourceClient,
    destination: CopyDestinationClient,
    sourceUrl: string,
    destinationPath: string,
    size: number,
    headers: BlobHTTPHeaders,
    /** How Copy Blob From URL of this blob was just refused, if it was: not tried again. */
    refused?: SyncCopyRefusal,
  ): Promise<{ method: CopyMethod; contentCrc64?: string | undefined; etag?: string | undefined }> {
    if (refused === 'copyScope') {
      await this.stream(source, destination, sourceUrl, destinationPath, headers);
      return { method: 'stream' };
    }
    // Only Copy Blob From URL reports a hash of the whole copied content (x-ms-content-crc64); Put Block From URL
    // reports one per block, which is no hash of the blob.
    const copyFromUrl = async () => {
      const response = await destination.syncCopyFromURL(sourceUrl);
      return { contentCrc64: base64(response.xMsContentCrc64), etag: response.etag };
    };
    const attempts: Array<
      [CopyMethod, () => Promise<{ contentCrc64?: string | undefined; etag?: string | undefined }>]
    > =
      size <= this.options.singleCopyMaxBytes
        ? refused === 'notImplemented'
          ? []
          : [['copyFromUrl', copyFromUrl]]
        : [['blockFromUrl', async () => this.copyBlocks(destination, sourceUrl, size, headers).then(() => ({}))]];
    attempts.push(['asyncCopy', async () => this.asyncCopy(destination, sourceUrl).then(() => ({}))]);
    for (const [method, attempt] of attempts) {
      try {
        return { method, ...(await attempt()) };
      } catch (error) {
        if (error instanceof ExportError) throw error;
        const info = storageErrorInfo(error);
        if (isNotImplemented(info)) continue; // next server-side method (Azurite has no Put Block From URL)
        this.throwIfSourceExpired(info, sourceUrl);
        if (this.refusesServerSideCopy(info)) break; // e.g. a restricted copy scope: stream instead
        throw this.copyCallError(info, error, sourceUrl, destinationPath);
      }
    }
    await this.stream(source, destination, sourceUrl, destinationPath, headers);
    return { method: 'stream' };
  }

  /** Parallel Put Block From URL over fixed ranges, at most `concurrency` in flight, then one commit. */
  private async copyBlocks(
    destination: CopyDestinationClient,
    sourceUrl: string,
    size: number,
    headers: BlobHTTPHeaders,
  ): Promise<void> {
    const blockSize = Math.min(MAX_BLOCK_BYTES, Math.max(this.options.blockSizeBytes, Math.ceil(size / MAX_BLOCKS)));
    const ranges = blockRanges(size, blockSize);
    const ids = ranges.map((_, index) => blockId(index));
    const abort = new AbortController();
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < ranges.length) {
        const index = next++;
        const range = ranges[index];
        const id = ids[index];
        if (range === undefined || id === undefined) return;
        try {
          await destination.stageBlockFromURL(id, sourceUrl, range.offset, range.count, { abortSignal: abort.signal });
        } catch (error) {
          if (failure === undefined) failure = { error };
          abort.abort();
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, ranges.length) }, worker));
    if (failure !== undefined) throw failure.error;
    await destination.commitBlockList(ids, { blobHTTPHeaders: headers });
  }

  private async asyncCopy(destination: CopyDestinationClient, sourceUrl: string): Promise<void> {
    const poller = await destination.beginCopyFromURL(sourceUrl, {
      intervalInMs: this.options.asyncCopyPollIntervalMs ?? 2000,
    });
    let result: { copyStatus?: string | undefined; copyStatusDescription?: string | undefined };
    try {
      result = await poller.pollUntilDone();
    } catch (error) {
      // The poller reports a failed copy as an Error carrying the service's description.
      const info = storageErrorInfo(error);
      if (info.status !== undefined) throw error;
      result = { copyStatus: 'failed', copyStatusDescription: info.message };
    }
    if (result.copyStatus !== 'success') {
      const description = redact(result.copyStatusDescription ?? 'no description');
      this.throwIfSourceExpired(
        { status: /\b40[13]\b/.test(description) ? 403 : undefined, code: undefined, message: description },
        sourceUrl,
      );
      throw new ExportError(
        'COPY_FAILED',
        `Asynchronous copy of ${safeUrl(sourceUrl)} ended ${result.copyStatus ?? 'without a status'}: ${description}; it will be retried.`,
        { retryable: true },
      );
    }
  }

  /** Bounded-memory streaming through this process: download the source, upload in `bufferSize` blocks. */
  private async stream(
    source: CopySourceClient,
    destination: CopyDestinationClient,
    sourceUrl: string,
    destinationPath: string,
    headers: BlobHTTPHeaders,
  ): Promise<void> {
    const response = await this.sourceCall(
      () => source.download(0, undefined, { maxRetryRequests: 5 }),
      sourceUrl,
      'Downloading',
    );
    const body = response.readableStreamBody;
    if (body === undefined) {
      throw new ExportError('COPY_FAILED', `Downloading ${safeUrl(sourceUrl)} returned no body; it will be retried.`, {
        retryable: true,
      });
    }
    let sourceFailure: unknown;
    const readable = body instanceof Readable ? body : Readable.from(body);
    // The bytes pass through us anyway: their MD5 costs nothing more and becomes the blob's Content-MD5, which the
    // service then reports like any other (a streamed upload in blocks gets none from the service).
    const md5 = createHash('md5');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        done(null, chunk);
      },
    });
    readable.once('error', (error: unknown) => {
      sourceFailure = error;
      hashing.destroy(error instanceof Error ? error : new Error(String(error)));
    });
    readable.pipe(hashing);
    const { blobContentMD5: sourceMd5, ...uploadHeaders } = headers;
    const bufferSize = this.options.streamBufferBytes ?? 8 * MiB;
    try {
      const buffers = Math.min(this.options.concurrency, STREAM_MAX_BUFFERS);
      await destination.uploadStream(hashing, bufferSize, buffers, { blobHTTPHeaders: uploadHeaders });
    } catch (error) {
      readable.destroy();
      if (sourceFailure !== undefined) {
        throw this.sourceError(storageErrorInfo(sourceFailure), sourceUrl, 'Reading');
      }
      throw destinationError(error, `Writing ${redact(destinationPath)} (streamed copy)`);
    }
    // The MD5 of the bytes that landed, not the source's claim: a retry must not take a bad copy as already there.
    const digest = md5.digest();
    try {
      await destination.setHTTPHeaders({ ...uploadHeaders, blobContentMD5: digest });
    } catch (error) {
      throw destinationError(error, `Setting the Content-MD5 of ${redact(destinationPath)}`);
    }
    if (sourceMd5 !== undefined && !digest.equals(Buffer.from(sourceMd5))) {
      throw new ExportError(
        'COPY_FAILED',
        `Streaming ${safeUrl(sourceUrl)} to ${redact(destinationPath)} gave bytes whose MD5 differs from the source's Content-MD5; it will be retried.`,
        { retryable: true },
      );
    }
  }

  private async sourceCall<T>(call: () => Promise<T>, sourceUrl: string, what: string): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.sourceError(storageErrorInfo(error), sourceUrl, what);
    }
  }

  private async destinationProperties(
    destination: CopyDestinationClient,
    destinationPath: string,
  ): Promise<(BlobHeaderProperties & { copyStatus?: string | undefined }) | undefined> {
    try {
      return await destination.getProperties();
    } catch (error) {
      const info = storageErrorInfo(error);
      if (info.status === 404 && info.code !== 'ContainerNotFound') return undefined;
      throw destinationError(error, `Reading the destination blob ${redact(destinationPath)}`);
    }
  }

  /**
   * Sets the source's HTTP headers on the destination when a copy did not carry its content type over. Returns the
   * destination's properties as they are afterwards (a new ETag when it wrote them).
   */
  private async ensureHeaders(
    destination: CopyDestinationClient,
    destinationPath: string,
    actual: BlobHeaderProperties,
    headers: BlobHTTPHeaders,
  ): Promise<BlobHeaderProperties | undefined> {
    if (headers.blobContentType === undefined || actual.contentType === headers.blobContentType) return actual;
    try {
      // Set Blob Properties replaces every HTTP header: keep the Content-MD5 the blob has.
      const md5 = actual.contentMD5 ?? headers.blobContentMD5;
      await destination.setHTTPHeaders(md5 === undefined ? headers : { ...headers, blobContentMD5: md5 });
    } catch (error) {
      throw destinationError(error, `Setting the content type of ${redact(destinationPath)}`);
    }
    return this.destinationProperties(destination, destinationPath);
  }

  private sourceExpired(sourceUrl: string): boolean {
    const expiry = sasExpiry(sourceUrl);
    return expiry !== undefined && expiry.getTime() <= this.now().getTime() + EXPIRY_SKEW_MS;
  }

  private throwIfSourceExpired(info: StorageErrorInfo, sourceUrl: string): void {
    const authFailure = info.status === 401 || info.status === 403 || info.code === 'CannotVerifyCopySource';
    if (authFailure && (this.sourceExpired(sourceUrl) || /expir/i.test(info.message))) {
      throw this.expired(info, sourceUrl);
    }
  }

  private expired(info: StorageErrorInfo, sourceUrl: string): ExportError {
    const expiry = sasExpiry(sourceUrl);
    return new ExportError(
      'SOURCE_EXPIRED',
      redact(
        `The SAS of ${safeUrl(sourceUrl)} is expired or no longer accepted (${describeStatus(info)}${
          expiry === undefined ? '' : `, expiry ${expiry.toISOString()}`
        }); fetch the Graph operation again for a fresh one.`,
      ),
      { retryable: true, status: info.status },
    );
  }

  /** A failed read of the source blob itself (properties or download). */
  private sourceError(info: StorageErrorInfo, sourceUrl: string, what: string): ExportError {
    const where = safeUrl(sourceUrl);
    if (info.status === 401 || info.status === 403) {
      if (this.sourceExpired(sourceUrl) || /expir/i.test(info.message) || info.code === 'AuthenticationFailed') {
        return this.expired(info, sourceUrl);
      }
      return new ExportError(
        'SOURCE_UNAVAILABLE',
        redact(`${what} ${where} was refused (${describeError(info)}); the export SAS does not grant read.`),
        { status: info.status },
      );
    }
    if (info.status === 404) {
      return new ExportError(
        'SOURCE_UNAVAILABLE',
        redact(`${what} ${where} failed: the export blob does not exist (${describeStatus(info)}).`),
        { status: 404 },
      );
    }
    return new ExportError('SOURCE_UNAVAILABLE', redact(`${what} ${where} failed (${describeError(info)}).`), {
      retryable: isTransient(info),
      status: info.status,
    });
  }

  /**
   * The destination will not run a server-side copy from this source (a restricted copy scope, a firewall,
   * or the service cannot reach the source), although the SAS is valid: streaming through us still works.
   */
  private refusesServerSideCopy(info: StorageErrorInfo): boolean {
    if (info.code === 'CannotVerifyCopySource') return info.status === undefined || info.status < 500;
    return info.status === 401 || info.status === 403;
  }

  private copyCallError(
    info: StorageErrorInfo,
    error: unknown,
    sourceUrl: string,
    destinationPath: string,
  ): ExportError {
    if (info.code === 'CannotVerifyCopySource') {
      return new ExportError(
        'SOURCE_UNAVAILABLE',
        redact(`The destination could not read ${safeUrl(sourceUrl)} (${describeError(info)}).`),
        { retryable: true, status: info.status },
      );
    }
    return destinationError(error, `Copying ${safeUrl(sourceUrl)} to ${redact(destinationPath)}`);
  }
}
