import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { crashPoint } from '../crashPoints';
import type * as Totals from '../curation/totals';
import { classifyError, ExportError, errorMessage } from '../errors';
import { redact } from '../redact';
import {
  CURATED_KINDS,
  type CuratedKind,
  curatedFolder,
  curatedSeries,
  partBaseName,
  STAGING_ROOT,
  stagingFolder,
} from './curationLayout';
import type {
  CuratedPart,
  CurateMessage,
  CurationFileRecord,
  CurationRecord,
  FileCurationResult,
} from './curationPorts';
import {
  advanceCuration,
  announceCurationEnd,
  type CuratingDeps,
  curates,
  failCuration,
  isCurationFinal,
  noteCurationError,
  withCuration,
} from './curationState';
import type { PipelineDeps } from './deps';
import { dropIntoFinOpsHub } from './finOpsHubStep';
import { isRunId } from './layout';
import type { RunRecord, Versioned } from './ports';
import { runLogger } from './runStateMachine';

/**
 * The curation step (SPEC section 4.1): after a run succeeded, one export-curate message per raw file converts that
 * file (download to a temporary file, the engine writes Parquet parts, the parts go to a staging folder, the
 * file's counts and totals to its ledger row), and the last file to finish publishes the version (the fan-in):
 * parts copied into the series folders, manifest.json, older versions' parts deleted, the FOCUS parts dropped into a
 * FinOps hub when one is configured (finOpsHubStep.ts), `succeeded`.
 */

/** Version of the curated output format (manifest `curationVersion`). */
export const CURATION_VERSION = '1.0';

/** Version of the curated manifest.json format. */
export const CURATED_MANIFEST_VERSION = '1.0';

/** The manifest of one version of a series (one per table: `curated/…/manifest.json`, `focus/…/manifest.json`). */
export interface CuratedManifest {
  manifestVersion: string;
  curationVersion: string;
  table: CuratedKind;
  dataset: string;
  billingMonth: string;
  currency: string | null;
  invoiceId: string | null;
  attributeSet: string;
  focusVersion: string;
  source: {
    runId: string;
    path: string;
    /** Graph's data eTag of the raw run. */
    eTag: string | null;
    completedAt: string | null;
    files: number;
  };
  publishedAt: string;
  /** Rows read, converted, rejected (by reason), and converted rows worth a look (by kind, e.g. a FOCUS fallback). */
  rows: {
    read: number;
    converted: number;
    rejected: number;
    rejectedReasons: Record<string, number>;
    warnings: Record<string, number>;
  };
  /** Parts of this version in this folder. */
  files: Array<{ name: string; rowCount: number; byteCount: number }>;
  /** Exact decimal sums per currency: of the raw rows, read back from the curated parts, and FOCUS BilledCost. */
  totals: { raw: Totals.CurrencyTotals; curated: Totals.CurrencyTotals; focus: Totals.CurrencyTotals };
}

function curationDeps(deps: PipelineDeps): CuratingDeps | undefined {
  return curates(deps) ? deps : undefined;
}

function sendLater(deps: CuratingDeps, run: RunRecord, what: string, error: unknown): void {
  runLogger(deps, run).warn(
    `${what} failed (${redact(errorMessage(error))}); the supervisor starts the curation on its next sweep.`,
  );
}

/**
 * Starts the curation of a succeeded run: its ledger row (created once), then one message per raw file. Called by
 * the run's finisher after `succeeded` is written, and by the supervisor for a succeeded run without curation (a
 * crash in between). Never throws into the raw run: a failure is logged and left to the supervisor.
 */
export async function startCuration(deps: PipelineDeps, run: RunRecord): Promise<void> {
  const c = curationDeps(deps);
  if (c === undefined || run.status !== 'succeeded') return;
  try {
    const blobs = (await c.ledger.listBlobs(run.runId))
      .filter((blob) => blob.status === 'copied')
      .map((blob) => blob.name)
      .sort();
    const now = c.clock.now().toISOString();
    const created = await c.curation.ledger.createCuration(
      {
        runId: run.runId,
        status: 'pending',
        curationVersion: CURATION_VERSION,
        fileCount: blobs.length,
        startedAt: now,
        updatedAt: now,
      },
      blobs,
    );
    if (isCurationFinal(created.value.status) || created.value.filesQueuedAt !== undefined) return;
    await sendPendingWork(c, run.runId, blobs.length);
    await c.curation.ledger.updateCuration(run.runId, { filesQueuedAt: c.clock.now().toISOString() }, created.etag);
    runLogger(c, run).info(`Curation started: ${blobs.length} file(s) queued on export-curate.`);
  } catch (error) {
    sendLater(c, run, 'Starting the curation', error);
  }
}

/** Sends a message for every file not converted yet, or the publish message when all are. Returns how many. */
async function sendPendingWork(deps: CuratingDeps, runId: string, fileCount?: number): Promise<number> {
  const files = await deps.curation.ledger.listFiles(runId);
  const pending = files.filter((file) => file.status !== 'converted');
  const messages: CurateMessage[] =
    pending.length === 0 || (fileCount ?? files.length) === 0
      ? [{ version: 1, kind: 'publish', runId }]
      : pending.map((file) => ({ version: 1, kind: 'file', runId, blobName: file.name }));
  await deps.curation.queue.sendCurate(messages);
  return messages.length;
}

/** Handles one export-curate message. */
export async function curateExportFile(message: CurateMessage, deps: PipelineDeps): Promise<void> {
  const c = curationDeps(deps);
  if (c === undefined) {
    deps.logger.warn(`A curation message for run ${message.runId} arrived while EXPORT_CURATION is off; dropped.`);
    return;
  }
  const found = await c.curation.ledger.getCuration(message.runId);
  const run = (await c.ledger.getRun(message.runId))?.value;
  if (found === undefined || run === undefined) {
    const reason = `A curation message names run ${message.runId}, which has ${run === undefined ? 'no run' : 'no curation'} in the ledger; recorded and dropped.`;
    c.logger.error(reason);
    await c.ledger.recordRejectedMessage('export-curate', reason, JSON.stringify(message).slice(0, 500));
    return;
  }
  const log = runLogger(c, run);
  if (isCurationFinal(found.value.status)) {
    log.info(`Duplicate curation message (${message.kind}): the curation already ${found.value.status}.`);
    return;
  }
  try {
    if (message.kind === 'file') {
      const file = await c.curation.ledger.getFile(run.runId, message.blobName);
      if (file === undefined) {
        throw new ExportError(
          'MESSAGE_INVALID',
          `Curation message names ${message.blobName}, which is not a file of run ${run.runId}.`,
        );
      }
      if (file.status !== 'converted') {
        if (found.value.status === 'pending') await advanceCuration(c, found, 'converting', {}, run);
        await convertOne(c, run, message.blobName);
        // A duplicate delivery converting beside the first can finish after the curation ended (and its staging
        // was emptied): what it just staged would stay there for good.
        const now = await c.curation.ledger.getCuration(run.runId);
        if (now !== undefined && isCurationFinal(now.value.status)) {
          await emptyStaging(c, run.runId);
          return;
        }
      } else {
        log.info(`${message.blobName} was already converted; redelivered message ignored.`);
      }
    }
    await publishIfComplete(c, run, message.kind === 'publish');
  } catch (error) {
    const classified = classifyError(error);
    if (!classified.retryable) {
      if (await failCuration(c, run.runId, classified.code, classified.message, run)) await withdrawUnpublished(c, run);
      return;
    }
    log.info(`Transient curation problem (${classified.code}), the queue retries: ${redact(classified.message)}`);
    await noteCurationError(c, run.runId, `${classified.code}: ${classified.message}`).catch(() => undefined);
    if (message.kind === 'file') await retryPublishing(c, run.runId).catch(() => undefined);
    throw error;
  }
}

/**
 * A file message whose publish failed transiently would, redelivered, find the curation `publishing` and leave it to
 * the supervisor's resume (EXPORT_STALL_MINUTES later): a publish message is sent instead, which the queue retries
 * (and poisons) itself. Beside a publisher that is still alive it is safe: every publishing step is idempotent.
 */
async function retryPublishing(deps: CuratingDeps, runId: string): Promise<void> {
  if ((await deps.curation.ledger.getCuration(runId))?.value.status !== 'publishing') return;
  await deps.curation.queue.sendCurate([{ version: 1, kind: 'publish', runId }]);
}

/** Converts one raw file into staged parts and records its result. Redone after a crash, it gives the same parts. */
async function convertOne(deps: CuratingDeps, run: RunRecord, blobName: string): Promise<void> {
  if (run.path === undefined || run.billingMonth === undefined) {
    throw new ExportError('MESSAGE_INVALID', `Run ${run.runId} has no run folder to curate.`);
  }
  const dir = await mkdtemp(join(deps.curation.tempDir ?? tmpdir(), 'csp-curate-'));
  try {
    const input = join(dir, 'raw.json.gz');
    await deps.curation.store.download(`${run.path}/${blobName}`, input);
    const converted = await deps.curation.engine.convert({
      inputPath: input,
      dataset: run.dataset ?? 'unbilledUsage',
      attributeSet: run.attributeSet,
      billingMonth: run.billingMonth,
      outputDir: join(dir, 'out'),
      partName: partBaseName(run.runId, blobName),
      sourceRunId: run.runId,
      sourceFileName: blobName,
    });
    const { conversionTotalsDifferences } = require('../curation/totals') as typeof Totals;
    const differences = conversionTotalsDifferences(converted.totals);
    if (differences.length > 0) throw totalsMismatch(run, blobName, differences);
    const parts: CuratedPart[] = [];
    for (const kind of CURATED_KINDS) {
      for (const part of converted[kind]) {
        const name = basename(part.path);
        const { byteCount } = await deps.curation.store.upload(part.path, `${stagingFolder(run.runId, kind)}/${name}`);
        parts.push({ kind, name, rowCount: part.rowCount, byteCount });
        crashPoint('curate.afterStagedPart');
      }
    }
    const result: FileCurationResult = {
      rowsRead: converted.rowsRead,
      rowsConverted: converted.rowsConverted,
      rejected: converted.rejected,
      ...(converted.warnings === undefined ? {} : { warnings: converted.warnings }),
      parts,
      totals: converted.totals,
      focusVersion: converted.focusVersion,
    };
    await deps.curation.ledger.markFileConverted(run.runId, blobName, result, deps.clock.now().toISOString());
    crashPoint('curate.afterFileRow');
    const rejected = converted.rejected.count > 0 ? `, ${converted.rejected.count} rejected` : '';
    runLogger(deps, run).info(
      `Converted ${blobName}: ${converted.rowsConverted} rows${rejected}, ${parts.length} part(s).`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function totalsMismatch(run: RunRecord, what: string, differences: string[]): ExportError {
  return new ExportError(
    'CURATION_TOTALS_MISMATCH',
    `The curated totals of run ${run.runId} (${what}) differ from the raw rows: ${differences.slice(0, 5).join('; ')}${
      differences.length > 5 ? '; …' : ''
    }. Nothing of this version was made current; the raw run folder is complete. Please report it with the run id.`,
  );
}

/** Exact decimal addition of two decimal strings (BigInt on a common scale). */
export function addDecimals(a: string, b: string): string {
  const parse = (value: string): { digits: bigint; scale: number } => {
    const text = value.trim();
    const negative = text.startsWith('-');
    const [whole = '0', fraction = ''] = text.replace(/^[-+]/, '').split('.');
    const digits = BigInt(`${whole || '0'}${fraction}`);
    return { digits: negative ? -digits : digits, scale: fraction.length };
  };
  const x = parse(a);
  const y = parse(b);
  const scale = Math.max(x.scale, y.scale);
  const sum = x.digits * 10n ** BigInt(scale - x.scale) + y.digits * 10n ** BigInt(scale - y.scale);
  const negative = sum < 0n;
  const text = (negative ? -sum : sum).toString().padStart(scale + 1, '0');
  const whole = text.slice(0, text.length - scale);
  const fraction = text.slice(text.length - scale).replace(/0+$/, '');
  const body = fraction === '' ? whole : `${whole}.${fraction}`;
  return negative && body !== '0' ? `-${body}` : body;
}

function addTotals(into: Totals.CurrencyTotals, add: Totals.CurrencyTotals): void {
  for (const [currency, measures] of Object.entries(add)) {
    into[currency] ??= {};
    const target = into[currency];
    for (const [measure, value] of Object.entries(measures))
      target[measure] = addDecimals(target[measure] ?? '0', value);
  }
}

/** What the files of a curation add up to. */
function aggregate(files: CurationFileRecord[]) {
  const rows = {
    read: 0,
    converted: 0,
    rejected: 0,
    rejectedReasons: {} as Record<string, number>,
    warnings: {} as Record<string, number>,
  };
  const totals = { raw: {}, curated: {}, focus: {} } as FileCurationResult['totals'];
  const parts: CuratedPart[] = [];
  let focusVersion = '';
  for (const file of files) {
    const result = file.result;
    if (result === undefined) continue;
    rows.read += result.rowsRead;
    rows.converted += result.rowsConverted;
    rows.rejected += result.rejected.count;
    for (const [reason, count] of Object.entries(result.rejected.reasons)) {
      rows.rejectedReasons[reason] = (rows.rejectedReasons[reason] ?? 0) + count;
    }
    for (const [kind, count] of Object.entries(result.warnings ?? {})) {
      rows.warnings[kind] = (rows.warnings[kind] ?? 0) + count;
    }
    addTotals(totals.raw, result.totals.raw);
    addTotals(totals.curated, result.totals.curated);
    addTotals(totals.focus, result.totals.focus);
    parts.push(...result.parts);
    focusVersion = result.focusVersion;
  }
  parts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { rows, totals, parts, focusVersion };
}

/** The run id a part name starts with (parts are `{runId}-{file}-{i}.parquet`). */
function runIdOfPart(name: string): string {
  const runId = name.slice(0, RUN_ID_LENGTH);
  return isRunId(runId) ? runId : '';
}

/** Run ids are `{yyyyMMdd}T{HHmmssSSS}Z-{8 hex}`. */
const RUN_ID_LENGTH = 28;

/**
 * The fan-in: when every file of the curation is converted, publishes the version, exactly once: the ETag-conditional
 * move to `publishing` elects the publisher. Every publishing step is idempotent, so a publish message the supervisor
 * sends for a publisher that stopped redoes it safely; the conditional move to `succeeded` sends the one event.
 */
export async function publishIfComplete(deps: CuratingDeps, run: RunRecord, resume = false): Promise<void> {
  const files = await deps.curation.ledger.listFiles(run.runId);
  if (files.some((file) => file.status !== 'converted')) return;
  // One publisher: the worker whose conditional move to `publishing` wins (the last two files often finish
  // together). A publisher that died is replaced by the supervisor's publish message (`resume`).
  const current = await withCuration(deps, run.runId, async (found) => {
    if (isCurationFinal(found.value.status)) return undefined;
    if (found.value.status === 'publishing') return resume ? { done: true, value: found } : undefined;
    const moved = await advanceCuration(deps, found, 'publishing', {}, run);
    if (moved === undefined) return { done: false };
    const again = await deps.curation.ledger.getCuration(run.runId);
    return again === undefined ? undefined : { done: true, value: again };
  });
  if (current === undefined) return;
  await publish(deps, run, current, files);
}

async function publish(
  deps: CuratingDeps,
  run: RunRecord,
  current: Versioned<CurationRecord>,
  files: CurationFileRecord[],
): Promise<void> {
  if (run.path === undefined || run.billingMonth === undefined) {
    throw new ExportError('MESSAGE_INVALID', `Run ${run.runId} has no run folder to curate.`);
  }
  const { rows, totals, parts, focusVersion } = aggregate(files);
  const { conversionTotalsDifferences } = require('../curation/totals') as typeof Totals;
  const differences = conversionTotalsDifferences(totals);
  if (differences.length > 0) throw totalsMismatch(run, 'all files', differences);
  const series = curatedSeries(deps.config, run, run.billingMonth);
  const publishedAt = deps.clock.now().toISOString();
  let isCurrent = true;
  let focusCurrent = false;
  for (const kind of CURATED_KINDS) {
    const folder = curatedFolder(kind, series);
    const mine = parts.filter((part) => part.kind === kind);
    const manifest: CuratedManifest = {
      manifestVersion: CURATED_MANIFEST_VERSION,
      curationVersion: current.value.curationVersion,
      table: kind,
      dataset: run.dataset ?? 'unbilledUsage',
      billingMonth: run.billingMonth,
      currency: run.invoiceId === undefined ? run.currency : null,
      invoiceId: run.invoiceId ?? null,
      attributeSet: run.attributeSet,
      focusVersion,
      source: {
        runId: run.runId,
        path: run.path,
        eTag: run.eTag ?? null,
        completedAt: run.completedAt ?? null,
        files: files.length,
      },
      publishedAt,
      rows,
      files: mine.map((part) => ({ name: part.name, rowCount: part.rowCount, byteCount: part.byteCount })),
      totals,
    };
    const outcome = await publishTable(deps, folder, manifest, stagingFolder(run.runId, kind));
    if (outcome === 'superseded') isCurrent = false;
    if (outcome === 'ended') {
      runLogger(deps, run).warn(
        `The curation ended while this worker published it: its parts are withdrawn from ${folder} and the folders not made current yet.`,
      );
      await withdrawUnpublished(deps, run);
      return;
    }
    if (kind === 'focus') focusCurrent = outcome === 'current';
  }
  // The hub gets the version the focus/ folder made current (a superseded one is left to the newer run), from the
  // staging copies, before they are deleted; its record on the row keeps a redone fan-in from dropping again.
  const hub = focusCurrent ? await dropIntoFinOpsHub(deps, run, current.value, run.billingMonth, parts) : undefined;
  if (hub !== undefined) await recordHubDrop(deps, run, hub);
  await emptyStaging(deps, run.runId);
  crashPoint('publish.afterOldPartsDeleted');
  const ended = await withCuration(deps, run.runId, async (found) => {
    if (isCurationFinal(found.value.status)) return undefined;
    const moved = await advanceCuration(
      deps,
      found,
      'succeeded',
      {
        rowsRead: rows.read,
        rowsConverted: rows.converted,
        rowsRejected: rows.rejected,
        curatedPath: series,
        current: isCurrent,
        ...hub,
      },
      run,
    );
    return moved === undefined ? { done: false } : { done: true, value: true };
  });
  // Again after `succeeded`: a duplicate conversion may have staged its (identical) parts after the first emptying.
  if (ended === true) await emptyStaging(deps, run.runId);
}

/** Deletes the staged parts of a run (idempotent). */
async function emptyStaging(deps: CuratingDeps, runId: string): Promise<void> {
  for (const kind of CURATED_KINDS) {
    for (const blob of await deps.curation.store.list(`${stagingFolder(runId, kind)}/`)) {
      await deps.curation.store.delete(blob.path);
    }
  }
}

/**
 * Marks the publication's progress on the curation row (an ETag-conditional write), just before a manifest.json is
 * written. False when the curation ended meanwhile: a supervisor that failed it has withdrawn (or will withdraw) this
 * version's parts, and a manifest written after that would name parts that are gone. A supervisor that read the row
 * before this write loses its own conditional write; one that reads it after sees fresh progress, not a stall.
 */
async function stillPublishing(deps: CuratingDeps, runId: string): Promise<boolean> {
  const marked = await withCuration(deps, runId, async (found) => {
    if (found.value.status !== 'publishing') return { done: true, value: false };
    const moved = await advanceCuration(deps, found, 'publishing');
    return moved === undefined ? { done: false } : { done: true, value: true };
  });
  return marked === true;
}

/** Records the hub drop on the publishing curation row (a conditional write of the state machine). */
async function recordHubDrop(deps: CuratingDeps, run: RunRecord, fields: Partial<CurationRecord>): Promise<void> {
  await withCuration(deps, run.runId, async (found) => {
    if (found.value.status !== 'publishing') return undefined;
    const moved = await advanceCuration(deps, found, 'publishing', fields, run);
    return moved === undefined ? { done: false } : { done: true, value: undefined };
  });
}

/**
 * Makes a version current in one table's series folder: its parts copied in, then manifest.json (only ever moved to
 * a newer run), then the parts of older versions deleted. 'superseded' when a newer run's version is current (this
 * version's parts are then removed from the folder again); 'ended' when the curation ended (failed) meanwhile, before
 * this manifest.json was written.
 */
async function publishTable(
  deps: CuratingDeps,
  folder: string,
  manifest: CuratedManifest,
  staging: string,
): Promise<'current' | 'superseded' | 'ended'> {
  const runId = manifest.source.runId;
  const manifestPath = `${folder}/manifest.json`;
  let outcome: 'current' | 'superseded' = 'current';
  for (let attempt = 0; ; attempt++) {
    const found = await deps.destination.readJson(manifestPath);
    const currentRunId = (found?.value as Partial<CuratedManifest> | null)?.source?.runId;
    if (typeof currentRunId === 'string' && currentRunId > runId) {
      outcome = 'superseded';
      break;
    }
    if (currentRunId === runId) break;
    for (const file of manifest.files) {
      await deps.curation.store.copy(`${staging}/${file.name}`, `${folder}/${file.name}`);
    }
    crashPoint('publish.afterPartsCopied');
    if (!(await stillPublishing(deps, runId))) return 'ended';
    const written = await deps.destination.writeJson(
      manifestPath,
      manifest,
      found === undefined ? { ifNoneMatch: '*' } : { ifMatch: found.etag },
    );
    if (written) {
      crashPoint('publish.afterManifest');
      break;
    }
    if (attempt >= 5) {
      throw new ExportError('DESTINATION_UNAVAILABLE', `Could not write ${manifestPath}: it kept changing under us.`, {
        retryable: true,
      });
    }
  }
  // Whoever made which version current, the parts of versions older than the current one go (a newer version's
  // parts being copied in right now are left alone: their manifest follows).
  const latest = await deps.destination.readJson(manifestPath);
  const currentRunId = (latest?.value as Partial<CuratedManifest> | null)?.source?.runId;
  if (typeof currentRunId === 'string') {
    for (const blob of await deps.curation.store.list(`${folder}/`)) {
      const name = blob.path.slice(folder.length + 1);
      if (name.includes('/') || !name.endsWith('.parquet')) continue;
      if (runIdOfPart(name) < currentRunId) await deps.curation.store.delete(blob.path);
    }
  }
  return outcome;
}

/**
 * After a curation failed: removes from the series folders the parts of this run that a publisher had copied in
 * before its manifest.json was written (they would be counted beside the current version's), and empties its
 * staging. Best effort: logged,
 * never thrown (a part left behind is removed by the next version's publication).
 */
export async function withdrawUnpublished(deps: CuratingDeps, run: RunRecord): Promise<void> {
  if (run.billingMonth === undefined) return;
  const series = curatedSeries(deps.config, run, run.billingMonth);
  try {
    for (const kind of CURATED_KINDS) {
      const folder = curatedFolder(kind, series);
      const found = await deps.destination.readJson(`${folder}/manifest.json`);
      if ((found?.value as Partial<CuratedManifest> | null)?.source?.runId === run.runId) continue;
      for (const blob of await deps.curation.store.list(`${folder}/`)) {
        const name = blob.path.slice(folder.length + 1);
        if (!name.includes('/') && name.endsWith('.parquet') && runIdOfPart(name) === run.runId) {
          await deps.curation.store.delete(blob.path);
        }
      }
    }
    await emptyStaging(deps, run.runId);
  } catch (error) {
    runLogger(deps, run).warn(
      `Parts of the failed curation may be left in curated/${series} or focus/${series} (the next version removes them): ${redact(errorMessage(error))}`,
    );
  }
}

/** What one sweep did to curations. */
export interface CurationSupervisionReport {
  started: number;
  resumed: number;
  failed: number;
  announced: number;
  /** Ended curations whose leftover staged parts were deleted. */
  swept: number;
}

/**
 * How long after a curation ended its leftover staged parts are deleted by the supervisor: a duplicate conversion
 * that was still running when the curation ended may stage its (identical) parts after the curation emptied its
 * staging, and a process killed in that cleanup leaves them; an hour is far beyond any conversion.
 */
const STAGING_SWEEP_AFTER_MS = 3600_000;

/** How far back the supervisor looks for succeeded runs that never got their curation started. */
const START_LOOKBACK_MS = 48 * 3600_000;

/**
 * The supervisor's part for curations (undefined when EXPORT_CURATION is off): a succeeded run without curation (its finisher died between `succeeded`
 * and the start) gets it started; a curation whose progress stopped for EXPORT_STALL_MINUTES is resumed (its
 * missing file messages or its publish message sent again), at most EXPORT_MAX_RESUMES times, then fails with
 * CURATION_STALLED; a final curation whose event a crash lost gets it sent. While other curations' files are being
 * converted, a curation whose file messages were sent does not count as stalled for up to WAIT_BEHIND_STALLS stall
 * times: its messages may be waiting in export-curate behind theirs (a day of many currencies on few instances), and
 * sending them again would only lengthen the queue. A publishing curation, or one whose messages were never sent,
 * is resumed as before.
 */
export async function superviseCurations(
  deps: PipelineDeps,
  options: { stallMinutes?: number; runIds?: readonly string[]; ownerGone?: boolean } = {},
): Promise<CurationSupervisionReport | undefined> {
  const c = curationDeps(deps);
  if (c === undefined) return undefined;
  const report: CurationSupervisionReport = { started: 0, resumed: 0, failed: 0, announced: 0, swept: 0 };
  const now = c.clock.now();
  const wanted = options.runIds === undefined ? undefined : new Set(options.runIds);
  const graceMs = options.ownerGone === true ? 0 : 2 * 60_000;
  const since = new Date(now.getTime() - START_LOOKBACK_MS).toISOString();
  for (const run of await c.ledger.listRuns({ status: 'succeeded', since }, () => undefined)) {
    if (wanted !== undefined && !wanted.has(run.runId)) continue;
    if (now.getTime() - Date.parse(run.updatedAt) < graceMs) continue;
    if ((await c.curation.ledger.getCuration(run.runId)) !== undefined) continue;
    runLogger(c, run).warn('The run succeeded but its curation never started (its process stopped): starting it now.');
    await startCuration(c, run);
    report.started += 1;
  }
  const { stallMinutes, maxResumes, maxRunHours } = c.config.supervision;
  const stallMs = (options.stallMinutes ?? stallMinutes) * 60_000;
  const inFlight = await c.curation.ledger.listCurations({ statuses: ['pending', 'converting', 'publishing'] });
  const conversionsBusy = now.getTime() - (await lastConversionAt(c, inFlight)) <= stallMs;
  for (const curation of inFlight) {
    if (wanted !== undefined && !wanted.has(curation.runId)) continue;
    try {
      const outcome = await superviseOne(
        c,
        curation.runId,
        stallMs,
        maxResumes,
        maxRunHours,
        options.ownerGone === true,
        conversionsBusy,
      );
      if (outcome === 'resumed') report.resumed += 1;
      if (outcome === 'failed') report.failed += 1;
    } catch (error) {
      c.logger
        .child({ runId: curation.runId })
        .error(`The supervisor could not look after this curation: ${redact(errorMessage(error))}`);
    }
  }
  for (const curation of await c.curation.ledger.listCurations({ unannounced: true })) {
    if (!isCurationFinal(curation.status) || curation.announced !== false) continue;
    if (now.getTime() - Date.parse(curation.updatedAt) < Math.max(15_000, graceMs)) continue;
    await announceCurationEnd(c, curation);
    report.announced += 1;
  }
  if (wanted === undefined) report.swept = await sweepStaging(c, now);
  return report;
}

/**
 * Deletes the staged parts left under `_curation-staging/{runId}/` by curations that ended more than
 * STAGING_SWEEP_AFTER_MS ago (one listing of the staging folder; nothing to do is one request). Parts of a curation in
 * flight, or of a run without a curation row, are left alone. Returns how many curations' parts were deleted.
 */
async function sweepStaging(deps: CuratingDeps, now: Date): Promise<number> {
  const byRun = new Map<string, string[]>();
  try {
    for (const blob of await deps.curation.store.list(`${STAGING_ROOT}/`)) {
      const runId = blob.path.slice(STAGING_ROOT.length + 1).split('/')[0] ?? '';
      const paths = byRun.get(runId) ?? [];
      paths.push(blob.path);
      byRun.set(runId, paths);
    }
  } catch (error) {
    deps.logger.warn(`Could not list ${STAGING_ROOT}/ for leftover staged parts: ${redact(errorMessage(error))}`);
    return 0;
  }
  let swept = 0;
  for (const [runId, paths] of byRun) {
    try {
      const found = await deps.curation.ledger.getCuration(runId);
      if (found === undefined || !isCurationFinal(found.value.status)) continue;
      if (now.getTime() - Date.parse(found.value.updatedAt) < STAGING_SWEEP_AFTER_MS) continue;
      for (const path of paths) await deps.curation.store.delete(path);
      deps.logger
        .child({ runId })
        .info(`Deleted ${paths.length} staged part(s) left after the curation ended (${found.value.status}).`);
      swept += 1;
    } catch (error) {
      // Best effort, like the rest of the cleanup: the next sweep tries again.
      deps.logger
        .child({ runId })
        .warn(`Could not delete the staged parts left by this curation: ${redact(errorMessage(error))}`);
    }
  }
  return swept;
}

/** How many stall times a curation with queued conversions may wait behind others' before it is resumed anyway. */
const WAIT_BEHIND_STALLS = 4;

/** When any file of the curations in flight was last converted (epoch ms; 0 when none was). */
async function lastConversionAt(deps: CuratingDeps, inFlight: readonly CurationRecord[]): Promise<number> {
  let latest = 0;
  for (const curation of inFlight) {
    for (const file of await deps.curation.ledger.listFiles(curation.runId)) {
      if (file.convertedAt !== undefined) latest = Math.max(latest, Date.parse(file.convertedAt));
    }
  }
  return latest;
}

async function superviseOne(
  deps: CuratingDeps,
  runId: string,
  stallMs: number,
  maxResumes: number,
  maxRunHours: number,
  ownerGone: boolean,
  /** A file of some curation in flight was converted within the stall time: the conversion workers are busy. */
  conversionsBusy: boolean,
): Promise<'resumed' | 'failed' | undefined> {
  return withCuration(deps, runId, async (current) => {
    const curation = current.value;
    if (isCurationFinal(curation.status)) return undefined;
    const now = deps.clock.now();
    const files = await deps.curation.ledger.listFiles(runId);
    // Progress is a file converted since the row last moved: a long curation is not a stalled one.
    const lastProgress = Math.max(
      Date.parse(curation.updatedAt),
      ...files.map((file) => (file.convertedAt === undefined ? 0 : Date.parse(file.convertedAt))),
    );
    const tooOld = now.getTime() - Date.parse(curation.startedAt) > maxRunHours * 3600_000;
    const quietMs = now.getTime() - lastProgress;
    // Waiting behind others' conversions: only a curation whose file messages were sent (a publishing one waits for
    // one message of its own, a pending one without filesQueuedAt has none in the queue), and only for a while.
    const waitingBehind =
      conversionsBusy &&
      (curation.status === 'converting' || (curation.status === 'pending' && curation.filesQueuedAt !== undefined)) &&
      quietMs <= WAIT_BEHIND_STALLS * stallMs;
    if ((quietMs <= stallMs || waitingBehind) && !tooOld && !ownerGone) return undefined;
    const resumes = curation.resumes ?? 0;
    if (tooOld || (!ownerGone && resumes >= maxResumes)) {
      const converted = files.filter((file) => file.status === 'converted').length;
      const why = tooOld
        ? `it has not ended ${maxRunHours} h after it started`
        : `its progress stopped again after ${resumes} resume(s) (EXPORT_MAX_RESUMES=${maxResumes})`;
      const moved = await advanceCuration(deps, current, 'failed', {
        errorCode: 'CURATION_STALLED',
        error: `The curation stalled while ${curation.status} (${converted} of ${files.length} file(s) converted): ${why}${
          curation.lastError === undefined ? '' : `; last error: ${curation.lastError}`
        }. The raw run folder is complete; the next run of the series curates again.`,
      });
      if (moved === undefined) return { done: false };
      const run = (await deps.ledger.getRun(runId))?.value;
      if (run !== undefined) await withdrawUnpublished(deps, run);
      return { done: true, value: 'failed' as const };
    }
    const marked = await advanceCuration(deps, current, curation.status, {
      ...(ownerGone ? {} : { resumes: resumes + 1 }),
    });
    if (marked === undefined) return { done: false };
    const sent = await sendPendingWork(deps, runId);
    deps.logger
      .child({ runId })
      .warn(
        `The supervisor resumed the curation (${sent} message(s) sent again): ${
          ownerGone ? 'the command that was running it stopped' : 'its progress stopped'
        }.`,
      );
    return { done: true, value: 'resumed' as const };
  });
}

/**
 * A curation message that failed maxDequeueCount times (export-curate-poison): the curation fails with the reason and
 * the last error; the raw run stays as it is.
 */
export async function handleCurationPoison(raw: unknown, deps: PipelineDeps, runId: string | undefined): Promise<void> {
  const c = curationDeps(deps);
  const excerpt = redact(JSON.stringify(raw) ?? String(raw)).slice(0, 500);
  if (runId === undefined || c === undefined) {
    const reason = `A message in export-curate-poison ${runId === undefined ? 'names no run' : `(run ${runId}) arrived while EXPORT_CURATION is off`}; recorded and dropped.`;
    deps.logger.error(`${reason} Message: ${excerpt}`);
    await deps.ledger.recordRejectedMessage('export-curate-poison', reason, excerpt);
    return;
  }
  const found = await c.curation.ledger.getCuration(runId);
  if (found === undefined) {
    const reason = `A curation message of run ${runId}, which has no curation, was poisoned.`;
    c.logger.child({ runId }).error(reason);
    await c.ledger.recordRejectedMessage('export-curate-poison', reason, excerpt);
    return;
  }
  const blobName = (raw as { blobName?: unknown } | null)?.blobName;
  const what = typeof blobName === 'string' ? `The conversion of ${blobName}` : 'Publishing the curated version';
  const reason = `${what} failed repeatedly and reached export-curate-poison${
    found.value.lastError === undefined ? '' : `; last error: ${found.value.lastError}`
  }`;
  const run = (await c.ledger.getRun(runId))?.value;
  const ended = await failCuration(c, runId, 'MESSAGE_POISONED', reason, run);
  if (ended && run !== undefined) await withdrawUnpublished(c, run);
  if (!ended)
    c.logger.child({ runId }).warn(`Poisoned curation message for a curation that already ended: ${redact(reason)}`);
}
