import { createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContainerClient } from '@azure/storage-blob';
import { describeError, storageErrorInfo } from '../adapters/storage/clients';
import { mapLimited } from '../concurrency';
import type { Config, DatasetId } from '../config';
import { DATASETS, prefixOf } from '../datasets';
import { ExportError } from '../errors';
import { redact } from '../redact';

/**
 * What the `files` command lists and downloads: the destination container's raw run folders (SPEC section 4)
 * and, generically, whatever lies under `curated/` and `focus/` (section 4.1), read with the Storage SDK.
 */

/** Top folders of the curated data in the destination container. */
export const CURATED_FOLDERS = ['curated', 'focus'] as const;

export type FileKind = 'raw' | (typeof CURATED_FOLDERS)[number];

/** One blob of the destination container. */
export interface DestinationFile {
  /** Blob name: the path inside the container. */
  path: string;
  size: number;
  contentType: string | null;
  lastModified: string | null;
  kind: FileKind;
  /** The dataset whose folder holds it (raw: by its layout; curated/focus: by the dataset folder below them). */
  dataset: DatasetId | null;
  /** Raw files: the series folder (`{prefix}/billingMonth=…/currency=…|invoiceId=…/attributeSet=…`). */
  series: string | null;
  /** Raw files inside a run folder: its run id (null for `latest.json`). */
  runId: string | null;
}

/** Which files: the current data (each series' latest.json's run folder), every run folder, or one run's. */
export type FileSelection =
  | { mode: 'current'; datasets?: DatasetId[] | undefined }
  | { mode: 'all'; datasets?: DatasetId[] | undefined }
  | { mode: 'run'; runId: string; datasets?: DatasetId[] | undefined };

const RAW_PATH =
  /^(billingMonth=[^/]+\/(?:currency|invoiceId)=[^/]+\/attributeSet=[^/]+)\/(?:latest\.json$|run=([^/]+)\/.+)$/;

/**
 * A failed read of the destination, for a person at the command line (not the pipeline's "will be retried"):
 * refused → DESTINATION_FORBIDDEN naming the role a reader needs; anything else → DESTINATION_UNAVAILABLE.
 */
export function readError(error: unknown, what: string): ExportError {
  const info = storageErrorInfo(error);
  if (info.status === 401 || info.status === 403) {
    return new ExportError(
      'DESTINATION_FORBIDDEN',
      redact(
        `${what} was refused (${describeError(info)}); the identity you signed in with needs the Storage Blob Data Reader role on the destination account or container (or fix DESTINATION_STORAGE).`,
      ),
      { status: info.status },
    );
  }
  return new ExportError(
    'DESTINATION_UNAVAILABLE',
    redact(
      `${what} failed (${describeError(info)}); run the same command again (files already downloaded are skipped).`,
    ),
    { status: info.status },
  );
}

interface Listed {
  name: string;
  size: number;
  contentType: string | null;
  lastModified: string | null;
}

async function listUnder(container: ContainerClient, prefix: string): Promise<Listed[]> {
  const found: Listed[] = [];
  try {
    for await (const blob of container.listBlobsFlat({ prefix })) {
      found.push({
        name: blob.name,
        size: blob.properties.contentLength ?? 0,
        contentType: blob.properties.contentType ?? null,
        lastModified: blob.properties.lastModified?.toISOString() ?? null,
      });
    }
  } catch (error) {
    // A container not created yet holds nothing: no run has started against this destination.
    if (storageErrorInfo(error).code === 'ContainerNotFound') return [];
    throw readError(error, `Listing "${prefix}" in the destination container`);
  }
  return found;
}

/** Reads a series' latest.json and returns the run folder it names (undefined when unreadable). */
async function currentRunFolder(container: ContainerClient, latestPath: string): Promise<string | undefined> {
  try {
    const body = await container.getBlockBlobClient(latestPath).downloadToBuffer();
    const path = (JSON.parse(body.toString('utf8')) as { path?: unknown }).path;
    return typeof path === 'string' && path !== '' ? path.replace(/\/+$/, '') : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lists the files of the selection, sorted by path. Raw files come from each dataset's folder; `curated/` and
 * `focus/` are listed as they are (for the current data and `--all`, not for one run). `warnings` collects
 * series whose latest.json could not be read.
 */
export async function listDestinationFiles(
  container: ContainerClient,
  config: Pick<Config, 'destination'>,
  selection: FileSelection,
  warnings: string[] = [],
): Promise<DestinationFile[]> {
  const datasets = selection.datasets ?? (Object.keys(DATASETS) as DatasetId[]);
  const files: DestinationFile[] = [];
  for (const dataset of datasets) {
    const prefix = prefixOf(config, dataset);
    const raw: DestinationFile[] = [];
    for (const blob of await listUnder(container, `${prefix}/`)) {
      const match = RAW_PATH.exec(blob.name.slice(prefix.length + 1));
      if (match === null) continue; // not this dataset's layout (e.g. a folder of a dataset nested below it)
      raw.push({
        path: blob.name,
        size: blob.size,
        contentType: blob.contentType,
        lastModified: blob.lastModified,
        kind: 'raw',
        dataset,
        series: `${prefix}/${match[1]}`,
        runId: match[2] ?? null,
      });
    }
    if (selection.mode === 'all') files.push(...raw);
    else if (selection.mode === 'run') files.push(...raw.filter((file) => file.runId === selection.runId));
    else {
      const pointers = raw.filter((file) => file.runId === null);
      // A few latest.json reads at a time: a year of ten currencies is hundreds of series.
      const folders = await mapLimited(pointers, 8, (latest) => currentRunFolder(container, latest.path));
      pointers.forEach((latest, index) => {
        const folder = folders[index];
        if (folder === undefined) {
          warnings.push(`${latest.path} could not be read; that series is left out.`);
          return;
        }
        files.push(latest, ...raw.filter((file) => file.path.startsWith(`${folder}/`)));
      });
    }
  }
  if (selection.mode !== 'run') {
    const prefixes = datasets.map((dataset) => [dataset, prefixOf(config, dataset)] as const);
    for (const kind of CURATED_FOLDERS) {
      for (const blob of await listUnder(container, `${kind}/`)) {
        const rest = blob.name.slice(kind.length + 1);
        const owner = prefixes.find(([, prefix]) => rest.startsWith(`${prefix}/`));
        if (selection.datasets !== undefined && owner === undefined) continue;
        files.push({
          path: blob.name,
          size: blob.size,
          contentType: blob.contentType,
          lastModified: blob.lastModified,
          kind,
          dataset: owner?.[0] ?? null,
          series: null,
          runId: null,
        });
      }
    }
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A blob whose name would not stay inside the download folder. */
export class UnsafePathError extends Error {
  override readonly name = 'UnsafePathError';
}

/**
 * Where a blob goes under `dir`: its container path, segment by segment. A path that is absolute, has an empty,
 * `.` or `..` segment, a backslash or a NUL, or would land outside `dir` anyway, is refused (UnsafePathError).
 */
export function localPathFor(dir: string, blobPath: string): string {
  const segments = blobPath.split('/');
  if (
    blobPath === '' ||
    isAbsolute(blobPath) ||
    /[\\\0]/.test(blobPath) ||
    segments.some((segment) => segment === '' || segment === '.' || segment === '..')
  ) {
    throw new UnsafePathError(
      `"${blobPath}" is not downloaded: its name has an empty, "." or ".." segment, a backslash or is absolute, so it would not stay inside the download folder.`,
    );
  }
  const root = resolve(dir);
  const target = resolve(root, ...segments);
  if (!target.startsWith(root + sep)) {
    throw new UnsafePathError(`"${blobPath}" is not downloaded: it would land outside ${root}.`);
  }
  return target;
}

/** What happened to one file of a download. */
export interface DownloadedFile {
  path: string;
  localPath: string;
  /** `refused`: its name would leave the download folder (see localPathFor); nothing was written for it. */
  action: 'written' | 'skipped' | 'refused';
  bytes: number;
  /** Why it was refused. */
  reason?: string;
}

export interface DownloadProgress {
  filesDone: number;
  files: number;
  bytesDone: number;
  bytes: number;
}

function sizeOf(path: string): number | undefined {
  try {
    const stat = statSync(path);
    return stat.isFile() ? stat.size : undefined;
  } catch {
    return undefined;
  }
}

async function downloadOne(
  container: ContainerClient,
  file: DestinationFile,
  localPath: string,
  counted: (bytes: number) => void,
): Promise<number> {
  mkdirSync(dirname(localPath), { recursive: true });
  // Written beside the target and renamed once complete: an interrupted download leaves no file of the
  // right name with the wrong bytes (which a later download would take for done).
  const partial = `${localPath}.partial-${process.pid}`;
  let written = 0;
  try {
    const response = await container.getBlobClient(file.path).download(0);
    const body = response.readableStreamBody;
    if (body === undefined) throw new Error('the service sent no body');
    await pipeline(
      body,
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          written += chunk.length;
          counted(chunk.length);
          callback(null, chunk);
        },
      }),
      createWriteStream(partial),
    );
    if (response.contentLength !== undefined && written !== response.contentLength) {
      throw new Error(`${written} bytes arrived of ${response.contentLength}`);
    }
    renameSync(partial, localPath);
    return written;
  } catch (error) {
    rmSync(partial, { force: true });
    throw readError(error, `Downloading "${file.path}"`);
  }
}

/**
 * Downloads the files under `dir`, keeping their container paths; a file already there with the listed size
 * is skipped, one whose name would leave `dir` is refused (and listed as such). A few files at a time.
 */
export async function downloadFiles(
  container: ContainerClient,
  files: DestinationFile[],
  dir: string,
  onProgress: (progress: DownloadProgress) => void = () => undefined,
  concurrency = 4,
): Promise<DownloadedFile[]> {
  const targets = files.map((file) => {
    try {
      return { file, localPath: localPathFor(dir, file.path) };
    } catch (error) {
      if (!(error instanceof UnsafePathError)) throw error;
      return { file, localPath: undefined, reason: error.message };
    }
  });
  const progress: DownloadProgress = {
    filesDone: 0,
    files: files.length,
    bytesDone: 0,
    bytes: files.reduce((sum, file) => sum + file.size, 0),
  };
  const results: DownloadedFile[] = new Array(targets.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    for (let index = next++; index < targets.length && !failed; index = next++) {
      const { file, localPath, reason } = targets[index]!;
      if (localPath === undefined) {
        results[index] = { path: file.path, localPath: '', action: 'refused', bytes: 0, reason: reason ?? '' };
        progress.bytes -= file.size;
      } else if (sizeOf(localPath) === file.size && !rewrittenInPlace(file.path)) {
        results[index] = { path: file.path, localPath, action: 'skipped', bytes: file.size };
        progress.bytesDone += file.size;
      } else {
        const bytes = await downloadOne(container, file, localPath, (count) => {
          progress.bytesDone += count;
          onProgress(progress);
        }).catch((error: unknown) => {
          failed = true;
          throw error;
        });
        results[index] = { path: file.path, localPath, action: 'written', bytes };
      }
      progress.filesDone += 1;
      onProgress(progress);
    }
  };
  // On a failure the other downloads finish (or fail) and remove their partial files before the error is thrown.
  const settled = await Promise.allSettled(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  const failure = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return results;
}

/** `1.2 MiB`, `340 B`: sizes for people (the JSON rows carry exact bytes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * JSON files (latest.json, a curated series' manifest.json) are rewritten in place by later runs, often with the same
 * length (run ids have a fixed length): they are always downloaded again. Data files never change under their name.
 */
function rewrittenInPlace(path: string): boolean {
  return path.endsWith('.json');
}
