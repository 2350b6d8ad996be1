import { Transform, type TransformCallback } from 'node:stream';
import type { BlobItem, ContainerClient } from '@azure/storage-blob';
import { ExportError, isExportError } from '../../errors';
import type { FinOpsHubDrop, HubFile, HubPublishOutcome, HubVersion } from '../../pipeline/ports';
import { redact } from '../../redact';
import { describeError, isTransient, storageErrorInfo } from './clients';

/** The container every FinOps hub ingests custom data from. */
export const HUB_INGESTION_CONTAINER = 'ingestion';

/** The hub dataset our FOCUS rows go to: the first folder, which names the `Costs_raw` table. */
export const HUB_DATASET = 'Costs';

/** The separator the hub splits file names at: `{ingestionId}__{original name}`. */
const SEPARATOR = '__';

const MANIFEST = 'manifest.json';

/** Metadata of our manifest.json naming the version it completes (listings return it, so no extra read). */
const MANIFEST_INGESTION_ID = 'ingestionid';

/** Manifest writes lost to a concurrent writer before giving up (each loss means another version is being written). */
const MAX_MANIFEST_ATTEMPTS = 5;

const UPLOAD_BUFFER_BYTES = 8 * 1024 * 1024;
const UPLOAD_BUFFERS = 2;

export interface BlobFinOpsHubDropOptions {
  /** FINOPS_HUB_SCOPE: folder(s) under `Costs/{yyyy}/{mm}/`, `{partnerTenantId}` filled in per version. */
  scope: string;
  /** Create the `ingestion` container when missing: only against a local Azurite (a real hub has it). */
  createContainer: boolean;
}

interface FolderEntry {
  /** Name inside the folder. */
  file: string;
  byteCount: number;
  etag: string | undefined;
  metadata: Record<string, string> | undefined;
}

/** Counts the bytes that pass, so the upload can be checked against the length the caller announced. */
class ByteCounter extends Transform {
  count = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    callback(null, chunk);
  }
}

/** The ingestion id of a hub file name (`{id}__{name}`), or '' for a name without one (it sorts before every id). */
function ingestionIdOf(file: string): string {
  const at = file.indexOf(SEPARATOR);
  return at < 0 ? '' : file.slice(0, at);
}

function isParquet(file: string): boolean {
  return file.toLowerCase().endsWith('.parquet');
}

function invalid(message: string): ExportError {
  return new ExportError('FINOPS_HUB_FAILED', `${message} This is a bug; please report it.`);
}

/** Checks a version before anything is written: a wrong folder or id would leave data the hub never drops. */
function checkVersion(version: HubVersion, scope: string): void {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(version.billingMonth)) {
    throw invalid(`FinOps hub drop: billing month "${version.billingMonth}" is not YYYY-MM.`);
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$/.test(version.ingestionId)) {
    throw invalid(`FinOps hub drop: ingestion id "${version.ingestionId}" is not letters, digits, "." and "-".`);
  }
  if (
    version.series.length === 0 ||
    version.series.some((s) => !/^[A-Za-z0-9][A-Za-z0-9.=-]{0,99}$/.test(s) || s.toLowerCase() === MANIFEST)
  ) {
    throw invalid(`FinOps hub drop: series folder "${version.series.join('/')}" is not a list of plain folder names.`);
  }
  if (scope.includes('{partnerTenantId}') && !/^[A-Za-z0-9-]{1,64}$/.test(version.partnerTenantId)) {
    throw invalid(`FinOps hub drop: partner tenant id "${version.partnerTenantId}" cannot fill FINOPS_HUB_SCOPE.`);
  }
  if (version.files.length === 0) {
    // The hub drops a previous ingestion's rows from Data Explorer as part of ingesting each file of the new one:
    // a manifest over no file would leave the old rows there while storage shows none.
    throw invalid(
      'FinOps hub drop: a version needs at least one file (a version without rows carries one Parquet file of zero rows).',
    );
  }
  const names = new Set<string>();
  for (const file of version.files) {
    if (!/^[A-Za-z0-9][A-Za-z0-9.=-]*(_[A-Za-z0-9.=-]+)*\.parquet$/.test(file.name) || file.name.length > 200) {
      throw invalid(`FinOps hub drop: file name "${file.name}" is not a plain .parquet name without "__".`);
    }
    if (names.has(file.name)) throw invalid(`FinOps hub drop: the file name "${file.name}" appears twice.`);
    if (!Number.isSafeInteger(file.byteCount) || file.byteCount < 0) {
      throw invalid(`FinOps hub drop: file "${file.name}" has no valid length.`);
    }
    names.add(file.name);
  }
}

/**
 * The FinOps hub drop-in on Azure Blob storage: a version of one series goes to the hub's
 * `ingestion/Costs/{yyyy}/{mm}/{scope}/{series}/` folder as `{ingestionId}__{name}.parquet`, the folder's other
 * Parquet files (older versions) are deleted, and `manifest.json` is written last.
 *
 * Why the deletes are ours: on each manifest.json the hub ingests every file of the folder (its ingestion pipeline
 * lists the folder and takes every file but the manifest); only Cost Management's own export pipeline removes a
 * previous ingestion's files. Why the manifest is never empty: the hub's storage trigger ignores empty blobs.
 *
 * Crashes and races: every step can run again with the same result (files are overwritten with the same content,
 * deletes skip what is gone, the manifest is rewritten). A version never deletes a newer one's files: it deletes
 * only files of ingestion ids that sort before its own, gives up when a newer id appears in the folder (removing
 * its own files), and writes the manifest only if the manifest has not changed since the listing it decided on,
 * so the last manifest written always follows the deletes of the newest version.
 */
export class BlobFinOpsHubDrop implements FinOpsHubDrop {
  private ready: Promise<void> | undefined;

  constructor(
    private readonly container: ContainerClient,
    private readonly options: BlobFinOpsHubDropOptions,
  ) {}

  async publish(version: HubVersion): Promise<HubPublishOutcome> {
    checkVersion(version, this.options.scope);
    const [yyyy, mm] = version.billingMonth.split('-');
    const scope = this.options.scope.replaceAll('{partnerTenantId}', version.partnerTenantId);
    const folder = `${HUB_DATASET}/${yyyy}/${mm}/${scope}/${version.series.join('/')}/`;
    const id = version.ingestionId;
    const ours = new Map(version.files.map((f) => [`${id}${SEPARATOR}${f.name}`, f]));
    await this.ensureContainer();

    let entries = await this.listFolder(folder);
    const newest = this.newestOther(entries, id);
    if (newest !== undefined) return { kind: 'superseded', folder, newerIngestionId: newest };
    if (this.isComplete(entries, id, ours)) return { kind: 'alreadyPublished', folder };

    for (const [file, source] of ours) await this.upload(folder + file, source);

    for (let attempt = 1; ; attempt++) {
      entries = await this.listFolder(folder);
      const newer = this.newestOther(entries, id);
      if (newer !== undefined) {
        // A newer version is being written: ours must not stay beside it (the hub would ingest both).
        for (const file of ours.keys()) await this.delete(folder + file);
        return { kind: 'superseded', folder, newerIngestionId: newer };
      }
      // Older versions, files of no version, and files of this id that this version no longer has.
      const stale = entries.filter((e) => isParquet(e.file) && !ours.has(e.file));
      for (const entry of stale) await this.delete(folder + entry.file);
      const manifest = entries.find((e) => e.file === MANIFEST);
      if (await this.writeManifest(folder, version, manifest?.etag)) {
        return { kind: 'published', folder, filesWritten: ours.size, filesDeleted: stale.length };
      }
      if (attempt >= MAX_MANIFEST_ATTEMPTS) {
        throw new ExportError(
          'FINOPS_HUB_UNAVAILABLE',
          `FinOps hub drop: ${this.where(folder + MANIFEST)} changed ${attempt} times while this version was written (other versions of the series are being published); it will be retried.`,
          { retryable: true },
        );
      }
    }
  }

  private ensureContainer(): Promise<void> {
    if (!this.options.createContainer) return Promise.resolve();
    if (this.ready === undefined) {
      this.ready = this.container.createIfNotExists().then(
        () => undefined,
        (error: unknown) => {
          this.ready = undefined;
          throw this.failure(error, `Creating the container ${this.container.containerName}`);
        },
      );
    }
    return this.ready;
  }

  /** The newest ingestion id in the folder if it sorts after ours. */
  private newestOther(entries: FolderEntry[], id: string): string | undefined {
    let newest: string | undefined;
    for (const entry of entries) {
      if (!isParquet(entry.file)) continue;
      const other = ingestionIdOf(entry.file);
      if (other > id && (newest === undefined || other > newest)) newest = other;
    }
    return newest;
  }

  /** Is exactly this version in the folder, with its manifest? (A repeated publish then writes nothing.) */
  private isComplete(entries: FolderEntry[], id: string, ours: Map<string, HubFile>): boolean {
    const manifest = entries.find((e) => e.file === MANIFEST);
    if (manifest?.metadata?.[MANIFEST_INGESTION_ID] !== id) return false;
    const parquet = entries.filter((e) => isParquet(e.file));
    return parquet.length === ours.size && parquet.every((e) => ours.get(e.file)?.byteCount === e.byteCount);
  }

  /** The blobs directly in the folder (not in subfolders, and not the directory entries of a hierarchical account). */
  private async listFolder(folder: string): Promise<FolderEntry[]> {
    const out: FolderEntry[] = [];
    try {
      for await (const item of this.container.listBlobsFlat({ prefix: folder, includeMetadata: true })) {
        const file = item.name.slice(folder.length);
        if (file === '' || file.includes('/') || isDirectory(item)) continue;
        out.push({
          file,
          byteCount: item.properties.contentLength ?? 0,
          etag: item.properties.etag,
          metadata: item.metadata,
        });
      }
    } catch (error) {
      throw this.failure(error, `Listing ${this.where(folder)}`);
    }
    return out;
  }

  private async upload(path: string, source: HubFile): Promise<void> {
    const counter = new ByteCounter();
    try {
      const stream = source.open();
      stream.on('error', (error) => counter.destroy(error));
      stream.pipe(counter);
      await this.container.getBlockBlobClient(path).uploadStream(counter, UPLOAD_BUFFER_BYTES, UPLOAD_BUFFERS, {
        blobHTTPHeaders: { blobContentType: 'application/vnd.apache.parquet' },
      });
    } catch (error) {
      // A failed read of the source (the destination's staging copy) keeps its own code: it is not the hub's.
      if (isExportError(error)) throw error;
      throw this.failure(error, `Writing ${this.where(path)}`);
    }
    if (counter.count !== source.byteCount) {
      // The file changed under us: a manifest now would have the hub ingest a file nobody checked.
      throw new ExportError(
        'FINOPS_HUB_FAILED',
        `FinOps hub drop: ${source.name} had ${counter.count} bytes, not the ${source.byteCount} announced; nothing was marked complete.`,
      );
    }
  }

  private async delete(path: string): Promise<void> {
    try {
      await this.container.getBlobClient(path).deleteIfExists({ deleteSnapshots: 'include' });
    } catch (error) {
      throw this.failure(error, `Deleting ${this.where(path)}`);
    }
  }

  /**
   * Writes manifest.json if it is still the one the listing saw (`etag`; absent: none yet). Returns false when
   * another writer changed it first: the caller lists again.
   */
  private async writeManifest(folder: string, version: HubVersion, etag: string | undefined): Promise<boolean> {
    // The hub does not parse it, but its trigger ignores empty blobs: a small JSON that says what completed.
    const body = Buffer.from(
      `${JSON.stringify(
        {
          generator: 'csp-unbilled-export',
          dataset: HUB_DATASET,
          billingMonth: version.billingMonth,
          ingestionId: version.ingestionId,
          files: version.files.map((f) => ({
            name: `${version.ingestionId}${SEPARATOR}${f.name}`,
            byteCount: f.byteCount,
          })),
        },
        null,
        2,
      )}\n`,
      'utf8',
    );
    try {
      await this.container.getBlockBlobClient(folder + MANIFEST).upload(body, body.length, {
        blobHTTPHeaders: { blobContentType: 'application/json' },
        metadata: { [MANIFEST_INGESTION_ID]: version.ingestionId },
        conditions: etag === undefined ? { ifNoneMatch: '*' } : { ifMatch: etag },
      });
      return true;
    } catch (error) {
      const { status } = storageErrorInfo(error);
      if (status === 409 || status === 412) return false;
      throw this.failure(error, `Writing ${this.where(folder + MANIFEST)}`);
    }
  }

  /** Maps a failed hub call: 401/403 → FINOPS_HUB_FORBIDDEN, transient → FINOPS_HUB_UNAVAILABLE, else FINOPS_HUB_FAILED. */
  private failure(error: unknown, what: string): ExportError {
    const info = storageErrorInfo(error);
    const detail = describeError(info);
    if (info.status === 401 || info.status === 403) {
      return new ExportError(
        'FINOPS_HUB_FORBIDDEN',
        redact(
          `FinOps hub drop: ${what} was refused (${detail}); grant the function app identity the Storage Blob Data Contributor role on the hub's ingestion container or storage account (or fix FINOPS_HUB_STORAGE).`,
        ),
        { status: info.status },
      );
    }
    if (isTransient(info)) {
      return new ExportError(
        'FINOPS_HUB_UNAVAILABLE',
        redact(`FinOps hub drop: ${what} failed (${detail}); it will be retried.`),
        {
          retryable: true,
          status: info.status,
        },
      );
    }
    if (info.status === 404 && info.code === 'ContainerNotFound') {
      return new ExportError(
        'FINOPS_HUB_FAILED',
        redact(
          `FinOps hub drop: ${what} failed: the account has no "${HUB_INGESTION_CONTAINER}" container (${detail}); FINOPS_HUB_STORAGE must name a FinOps hub's storage account.`,
        ),
        { status: info.status },
      );
    }
    return new ExportError('FINOPS_HUB_FAILED', redact(`FinOps hub drop: ${what} failed (${detail}).`), {
      status: info.status,
    });
  }

  private where(path: string): string {
    return redact(`${this.container.containerName}/${path}`);
  }
}

/** A directory entry of a hierarchical-namespace account, as the Blob listing shows it. */
function isDirectory(item: BlobItem): boolean {
  return item.metadata?.['hdi_isfolder'] === 'true';
}
