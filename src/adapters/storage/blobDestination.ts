import type { BlobRequestConditions, ContainerClient } from '@azure/storage-blob';
import { ExportError } from '../../errors';
import type { DestinationBlobInfo, DestinationStore, Versioned } from '../../pipeline/ports';
import { redact } from '../../redact';
import { destinationError, storageErrorInfo } from './clients';

async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<string> {
  if (stream === undefined) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The partner's destination container on Azure Blob storage: our manifest.json and latest.json, and
 * listings of run folders. The container is created if missing (once per process).
 */
export class BlobDestination implements DestinationStore {
  private ready: Promise<void> | undefined;

  constructor(private readonly container: ContainerClient) {}

  ensureContainer(again = false): Promise<void> {
    if (this.ready === undefined || again) {
      this.ready = this.container.createIfNotExists().then(
        () => undefined,
        (error: unknown) => {
          this.ready = undefined;
          throw destinationError(error, `Creating the destination container ${this.container.containerName}`);
        },
      );
    }
    return this.ready;
  }

  async readJson(path: string): Promise<Versioned<unknown> | undefined> {
    const blob = this.container.getBlockBlobClient(path);
    let text: string;
    let etag: string | undefined;
    try {
      // One GET gives body and etag together, so the etag is the version that was read.
      const response = await blob.download();
      etag = response.etag;
      text = await readAll(response.readableStreamBody);
    } catch (error) {
      if (storageErrorInfo(error).status === 404) return undefined;
      throw destinationError(error, `Reading ${this.where(path)}`);
    }
    try {
      return { value: JSON.parse(text), etag: etag ?? '' };
    } catch {
      throw new ExportError('DESTINATION_UNAVAILABLE', `${this.where(path)} is not valid JSON; fix or delete it.`);
    }
  }

  async writeJson(
    path: string,
    value: unknown,
    condition: { ifNoneMatch: '*' } | { ifMatch: string },
  ): Promise<boolean> {
    const text = `${JSON.stringify(value, null, 2)}\n`;
    // Defence in depth (SPEC section 7): our files never carry a SAS.
    if (/sig=/i.test(text)) {
      throw new ExportError(
        'COPY_FAILED',
        `Refused to write ${this.where(path)}: the content contains a SAS signature (sig=). This is a bug; please report it.`,
      );
    }
    const conditions: BlobRequestConditions =
      'ifNoneMatch' in condition ? { ifNoneMatch: condition.ifNoneMatch } : { ifMatch: condition.ifMatch };
    const body = Buffer.from(text, 'utf8');
    try {
      await this.container.getBlockBlobClient(path).upload(body, body.length, {
        blobHTTPHeaders: { blobContentType: 'application/json' },
        conditions,
      });
      return true;
    } catch (error) {
      const { status } = storageErrorInfo(error);
      if (status === 409 || status === 412) return false;
      throw destinationError(error, `Writing ${this.where(path)}`);
    }
  }

  async list(prefix: string): Promise<DestinationBlobInfo[]> {
    const out: DestinationBlobInfo[] = [];
    try {
      for await (const item of this.container.listBlobsFlat({ prefix })) {
        const md5 = item.properties.contentMD5;
        out.push({
          path: item.name,
          byteCount: item.properties.contentLength ?? 0,
          contentType: item.properties.contentType,
          etag: item.properties.etag,
          ...(md5 === undefined || md5.length === 0 ? {} : { contentMd5: Buffer.from(md5).toString('base64') }),
        });
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
