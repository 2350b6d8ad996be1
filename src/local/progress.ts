import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { runLabel } from '../datasets';
import { TableNames } from '../names';
import type { PipelineDeps } from '../pipeline/deps';
import type { RunRecord } from '../pipeline/ports';
import { TERMINAL_STATUSES } from '../pipeline/ports';

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

/** Progress display of runs: bars on a terminal, a plain line per change otherwise (logs, CI). */
export interface ProgressDisplay {
  /** A log line; on a terminal it is printed above the bars. */
  log(line: string): void;
  update(runs: RunRecord[]): void;
  stop(): void;
}

export function createProgressDisplay(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  if (stream.isTTY) {
    const multibar = new MultiBar(
      {
        stream,
        format: ' {label} | {bar} | {status} | {value}/{total} blobs | {bytes}',
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
      },
      Presets.shades_classic,
    );
    const bars = new Map<string, SingleBar>();
    return {
      log: (line) => multibar.log(`${line}\n`),
      update: (runs) => {
        for (const run of runs) {
          const payload = { label: label(run), status: run.status.padEnd(9), bytes: mib(run.byteCount) };
          const total = Math.max(run.blobCount ?? 0, 1);
          let bar = bars.get(run.runId);
          if (bar === undefined) {
            bar = multibar.create(total, run.blobsCopied, payload);
            bars.set(run.runId, bar);
          }
          bar.setTotal(total);
          bar.update(run.status === 'succeeded' ? total : run.blobsCopied, payload);
        }
      },
      stop: () => multibar.stop(),
    };
  }
  const last = new Map<string, string>();
  return {
    log: (line) => stream.write(`${line}\n`),
    update: (runs) => {
      for (const run of runs) {
        const line = `${label(run)} ${run.status} ${run.blobsCopied}/${run.blobCount ?? '?'} blobs ${mib(run.byteCount)}`;
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
  for (;;) {
    const runs: RunRecord[] = [];
    for (const runId of runIds) {
      const found = await deps.ledger.getRun(runId);
      if (found !== undefined) runs.push(found.value);
    }
    display.update(runs);
    const done = runs.length === runIds.length && runs.every((r) => TERMINAL_STATUSES.includes(r.status));
    if (done || Date.now() > deadline) return runs;
    await untilRunWritten(intervalMs);
  }
}
