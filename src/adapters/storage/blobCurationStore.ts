import { stat } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import { ExportError } from '../../errors';
import type { CuratedBlob, CurationStore } from '../../pipeline/curationPorts';
import { redact } from '../../redact';
import { destinationError, storageErrorInfo } from './clients';

/** Block size and parallel blocks of the streamed uploads and copies: at most 4 × 8 MiB in memory per transfer. */
const BLOCK_BYTES = 8 * 1024 * 1024;
const PARALLEL = 4;

/**
 * The curation step's blob operations in the destination container, through the Storage SDK: streamed downloads
 * of raw files to a local file, streamed uploads of Parquet parts, copies inside the container, deletes, listings.
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
   * Streams the blob through this process (bounded memory), rather than a server-side copy whose source
   * authorization differs between shared key and Microsoft Entra ID: parts are compressed Parquet, small next to the
   * raw files.
   */
  async copy(from: string, to: string): Promise<void> {
    try {
      const source = await this.container.getBlobClient(from).download();
      if (source.readableStreamBody === undefined) throw new Error(`${from} has no body`);
      await this.container
        .getBlockBlobClient(to)
        .uploadStream(
          source.readableStreamBody as NodeJS.ReadableStream as import('node:stream').Readable,
          BLOCK_BYTES,
          PARALLEL,
          {
            blobHTTPHeaders: { blobContentType: source.contentType ?? 'application/vnd.apache.parquet' },
          },
        );
    } catch (error) {
      const failed = destinationError(error, `Copying ${this.where(from)} to ${to}`);
      // Two writers of one part (a resumed publisher beside a slow one) can spoil each other's block list (400):
      // the copy is redone by the queue's retry.
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
