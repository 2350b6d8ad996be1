import { stat } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import { ExportError } from '../../errors';
import type { CuratedBlob, CurationStore } from '../../pipeline/curationPorts';
import { redact } from '../../redact';
import { destinationError, storageErrorInfo } from './clients';

/** Block size and parallel blocks of the streamed uploads: at most 4 × 8 MiB in memory per transfer. */
const BLOCK_BYTES = 8 * 1024 * 1024;
const PARALLEL = 4;

/**
 * The curation step's blob operations in the destination container, through the Storage SDK: streamed downloads
 * of raw files to a local file, streamed uploads of Parquet parts, server-side copies inside the container, deletes,
 * listings.
 */
export class BlobCurationStore implements CurationStore {
  constructor(private readonly container: ContainerClient) {}

  async download(path: string, file: string): Promise<void> {
    try {
      await this.container.getBlobClient(path).downloadToFile(file);
    } catch (error) {
      throw destinationError(error, `Reading ${this.where(path)}`);
    }
  }

  async upload(file: string, path: string): Promise<{ byteCount: number }> {
    try {
      await this.container.getBlockBlobClient(path).uploadFile(file, {
        blockSize: BLOCK_BYTES,
        concurrency: PARALLEL,
        blobHTTPHeaders: { blobContentType: 'application/vnd.apache.parquet' },
      });
      return { byteCount: (await stat(file)).size };
    } catch (error) {
      throw destinationError(error, `Writing ${this.where(path)}`);
    }
  }

  openRead(path: string): Readable {
    const out = new PassThrough();
    this.container
      .getBlobClient(path)
      .download()
      .then((response) => {
        const body = response.readableStreamBody as Readable | undefined;
        if (body === undefined) throw new Error(`${path} has no body`);
        body.on('error', (error) => out.destroy(destinationError(error, `Reading ${this.where(path)}`)));
        // A reader that gives up (a failed upload) must not leave the download's socket open.
        out.on('close', () => body.destroy());
        body.pipe(out);
      })
      .catch((error: unknown) => out.destroy(destinationError(error, `Reading ${this.where(path)}`)));
    return out;
  }

  /**
   * A server-side copy (Copy Blob) inside the container: the part's bytes never pass through this process, and the
   * destination is replaced whole (no block list that a second publisher could spoil). Source and destination are in
   * the same account, so the request's own credential authorizes the source too, with a shared key or Microsoft
   * Entra ID alike (a Copy Blob *From URL* would need a SAS or a bearer token for the source). A copy inside one
   * account ends at once; the poller waits if the service answers `pending`.
   */
  async copy(from: string, to: string): Promise<void> {
    try {
      const source = this.container.getBlobClient(from);
      const poller = await this.container.getBlobClient(to).beginCopyFromURL(source.url, { intervalInMs: 500 });
      const copied = await poller.pollUntilDone();
      if (copied.copyStatus !== undefined && copied.copyStatus !== 'success') {
        throw new ExportError('COPY_FAILED', `Copying ${this.where(from)} to ${to} ended ${copied.copyStatus}.`, {
          retryable: true,
        });
      }
    } catch (error) {
      if (error instanceof ExportError) throw error;
      const failed = destinationError(error, `Copying ${this.where(from)} to ${to}`);
      // A second publisher copying onto the same part (409: a copy pending), or a staged part another publisher
      // already removed (404): the queue's retry finds the publication done or redoes it.
      throw failed.code === 'COPY_FAILED'
        ? new ExportError('COPY_FAILED', failed.message, { retryable: true, status: failed.status, cause: error })
        : failed;
    }
  }

  async delete(path: string): Promise<void> {
    try {
      await this.container.getBlobClient(path).deleteIfExists();
    } catch (error) {
      throw destinationError(error, `Deleting ${this.where(path)}`);
    }
  }

  async list(prefix: string): Promise<CuratedBlob[]> {
    const out: CuratedBlob[] = [];
    try {
      for await (const item of this.container.listBlobsFlat({ prefix })) {
        out.push({ path: item.name, byteCount: item.properties.contentLength ?? 0 });
      }
    } catch (error) {
      if (storageErrorInfo(error).status === 404) return [];
      throw destinationError(error, `Listing ${this.where(prefix)}`);
    }
    return out;
  }

  private where(path: string): string {
    return redact(`${this.container.containerName}/${path}`);
  }
}
