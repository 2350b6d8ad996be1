import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { layoutFor, runLabel } from '../datasets';
import { errorMessage } from '../errors';
import { TableNames } from '../names';
import type { PipelineDeps } from '../pipeline/deps';
import type { RunRecord } from '../pipeline/ports';
import { TERMINAL_STATUSES } from '../pipeline/ports';
import { redact } from '../redact';

const REQUEST_START = 'http.client.request.start';

/**
 * Waits `ms`, or less: until this process has written a run row (the local host's handlers run in this process, so
 * a run's end is seen when its row is written, not up to a poll interval later). Reads stay one per interval while
 * nothing changes.
 */
function untilRunWritten(ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      unsubscribe(REQUEST_START, onRequest);
      resolve();
    };
    const onRequest = (message: unknown): void => {
      const request = (message as { request?: ClientRequest }).request;
      if (request === undefined || request.method === 'GET' || request.method === 'HEAD') return;
      if (!request.path.includes(`/${TableNames.runs}(`)) return;
      request.once('response', done);
    };
    const timer = setTimeout(done, ms);
    subscribe(REQUEST_START, onRequest);
  });
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function label(run: RunRecord): string {
  if (run.dataset !== undefined && run.dataset !== 'unbilledUsage') return runLabel(run);
  return `${run.currency} ${run.billingPeriod.padEnd(7)} ${run.attributeSet.padEnd(5)}`;
}

/** `copied/total blobs`: the total is `?` until the manifest says (never a made-up 1). */
export function blobText(run: RunRecord): string {
  const copied = run.status === 'unchanged' && run.blobCount !== undefined ? run.blobCount : run.blobsCopied;
  return `${copied}/${run.blobCount ?? '?'}`;
}

/** What follows a run's progress: for `unchanged`, the folder of the current data it equals. */
function noteFor(run: RunRecord, currentFolders: ReadonlyMap<string, string>): string {
  if (run.status !== 'unchanged') return '';
  const folder = currentFolders.get(run.runId);
  return folder === undefined ? ' (same data as the current folder)' : ` (current data: ${folder}/)`;
}

/** One plain line of a run's progress (logs, CI, the serving console). */
export function progressLine(run: RunRecord, currentFolders: ReadonlyMap<string, string> = new Map()): string {
  return `${label(run)} ${run.status} ${blobText(run)} blobs ${mib(run.byteCount)}${noteFor(run, currentFolders)}`;
}

/**
 * The current data of an `unchanged` run's series: the run folder its latest.json names (undefined when it cannot
 * be read). An unchanged run copies nothing; this is where its data is.
 */
export async function currentFolderOf(run: RunRecord, deps: PipelineDeps): Promise<string | undefined> {
  try {
    const latest = await deps.destination.readJson(layoutFor(deps.config, run, run.billingMonth ?? '?').latestPath);
    const path = (latest?.value as { path?: unknown } | null | undefined)?.path;
    return typeof path === 'string' && path !== '' ? path.replace(/\/+$/, '') : undefined;
  } catch {
    return undefined;
  }
}

/** The current folders of the unchanged runs among `runs` (see currentFolderOf), by run id. */
export async function currentFolders(
  runs: RunRecord[],
  deps: PipelineDeps,
  known: Map<string, string> = new Map(),
): Promise<Map<string, string>> {
  for (const run of runs) {
    if (run.status !== 'unchanged' || known.has(run.runId)) continue;
    const folder = await currentFolderOf(run, deps);
    if (folder !== undefined) known.set(run.runId, folder);
  }
  return known;
}

/** Progress display of runs: bars on a terminal, a plain line per change otherwise (logs, CI). */
export interface ProgressDisplay {
  /** A log line; on a terminal it is printed above the bars. */
  log(line: string): void;
  /** `currentFolders`: where the data of each unchanged run is (see currentFolders). */
  update(runs: RunRecord[], currentFolders?: ReadonlyMap<string, string>): void;
  stop(): void;
}

export function createProgressDisplay(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  if (stream.isTTY) {
    const multibar = new MultiBar(
      {
        stream,
        format: ' {label} | {bar} | {status} | {blobs} blobs | {bytes}{note}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
      },
      Presets.shades_classic,
    );
    const bars = new Map<string, SingleBar>();
    let stopped = false;
    return {
      // Once the bars stopped (start keeps serving), lines go straight to the terminal: no render would show them.
      log: (line) => (stopped ? stream.write(`${line}\n`) : multibar.log(`${line}\n`)),
      update: (runs, folders = new Map()) => {
        for (const run of runs) {
          const payload = {
            label: label(run),
            status: run.status.padEnd(9),
            blobs: blobText(run),
            bytes: mib(run.byteCount),
            note: noteFor(run, folders),
          };
          const total = Math.max(run.blobCount ?? 0, 1);
          let bar = bars.get(run.runId);
          if (bar === undefined) {
            bar = multibar.create(total, run.blobsCopied, payload);
            bars.set(run.runId, bar);
          }
          bar.setTotal(total);
          // Unchanged is done too: its data is already in the destination (the current folder).
          const done = run.status === 'succeeded' || run.status === 'unchanged';
          bar.update(done ? total : run.blobsCopied, payload);
        }
      },
      stop: () => {
        stopped = true;
        multibar.stop();
      },
    };
  }
  const last = new Map<string, string>();
  return {
    log: (line) => stream.write(`${line}\n`),
    update: (runs, folders = new Map()) => {
      for (const run of runs) {
        const line = progressLine(run, folders);
        if (last.get(run.runId) !== line) {
          last.set(run.runId, line);
          stream.write(`[progress] run ${run.runId} ${line}\n`);
        }
      }
    },
    stop: () => undefined,
  };
}

/** Polls the ledger until every run has ended (or the timeout passes); returns the final records. */
export async function waitForRuns(
  runIds: string[],
  deps: PipelineDeps,
  display: ProgressDisplay,
  timeoutMs: number,
  intervalMs = 500,
): Promise<RunRecord[]> {
  const deadline = Date.now() + timeoutMs;
  const folders = new Map<string, string>();
  for (;;) {
    const runs: RunRecord[] = [];
    for (const runId of runIds) {
      const found = await deps.ledger.getRun(runId);
      if (found !== undefined) runs.push(found.value);
    }
    display.update(runs, await currentFolders(runs, deps, folders));
    const done = runs.length === runIds.length && runs.every((r) => TERMINAL_STATUSES.includes(r.status));
    if (done || Date.now() > deadline) return runs;
    await untilRunWritten(intervalMs);
  }
}

/**
 * Prints, on a serving console, a line for each change of the runs started after `since` that this command does
 * not follow itself (`ignore`): runs started with POST /api/exports or by the timer. Stops with `signal`.
 */
export function followRuns(
  deps: PipelineDeps,
  options: {
    since: string;
    log: (line: string) => void;
    signal: AbortSignal;
    ignore?: ReadonlySet<string>;
    intervalMs?: number;
  },
): void {
  const last = new Map<string, string>();
  const folders = new Map<string, string>();
  let warned = false;
  let busy = false;
  const poll = async (): Promise<void> => {
    if (busy) return; // a slow ledger read: the next tick tries again
    busy = true;
    try {
      const runs = (await deps.ledger.listRuns({ since: options.since, limit: 500 })).filter(
        (run) => !options.ignore?.has(run.runId),
      );
      await currentFolders(runs, deps, folders);
      for (const run of runs.reverse()) {
        const line = progressLine(run, folders);
        if (last.get(run.runId) === line) continue;
        last.set(run.runId, line);
        const by = run.trigger === 'schedule' ? 'timer' : 'HTTP';
        const landed = run.status === 'succeeded' && run.path !== undefined ? ` in ${run.path}/` : '';
        const error = run.error ? ` — ${run.error}` : '';
        options.log(`${new Date().toISOString()} [run ${run.runId}, ${by}] ${line}${landed}${error}`);
      }
      warned = false;
    } catch (error) {
      if (!warned) options.log(`(Could not read the runs for this console: ${redact(errorMessage(error))})`);
      warned = true;
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void poll(), options.intervalMs ?? 2000);
  timer.unref();
  options.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}
