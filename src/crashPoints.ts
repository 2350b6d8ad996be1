import type { Clock } from './pipeline/ports';

/**
 * Seeded crash points for the fault suite (`npm run test:faults`). In production nothing is set and every
 * call is a no-op costing one property read. With `EXPORT_FAULT_CRASH_POINT=<name>` (optionally `<name>#<n>`
 * for the n-th time this process reaches it, 1-based), the process kills itself with SIGKILL right there, the
 * way an out-of-memory kill or a lost instance ends a worker: no finally blocks, no flushing.
 */

/** Every crash point the pipeline declares, in the order a run reaches them. */
export const CRASH_POINTS = [
  'start.afterLock',
  'start.afterRunRow',
  'start.afterGraphAccepted',
  'start.afterWaitingWrite',
  'poll.afterGraphAnswer',
  'poll.afterPollWrite',
  'poll.afterPollMessage',
  'fanout.afterBlobRows',
  'fanout.afterRunUpdate',
  'fanout.afterCopyMessages',
  'copy.beforeCopy',
  'copy.afterCopy',
  'copy.afterMarkCopied',
  'finalize.beforeManifest',
  'finalize.afterManifest',
  'finalize.afterLatest',
  'finalize.afterSucceeded',
  'end.afterStatusWrite',
  'supervise.afterResume',
  'ledger.beforeWrite',
  'ledger.afterWrite',
] as const;

/**
 * The curation step's crash points (EXPORT_CURATION on), in the order a curation reaches them: a part uploaded to
 * staging, the file's ledger row written, a table's parts copied into its series folder (before its manifest.json),
 * its manifest.json written (before older versions' parts are deleted), every table published (before `succeeded`).
 */
export const CURATION_CRASH_POINTS = [
  'curate.afterStagedPart',
  'curate.afterFileRow',
  'publish.afterPartsCopied',
  'publish.afterManifest',
  'publish.afterOldPartsDeleted',
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number] | (typeof CURATION_CRASH_POINTS)[number];

const hits = new Map<string, number>();

function parse(spec: string | undefined): { name: string; nth: number } | undefined {
  if (spec === undefined || spec === '') return undefined;
  const [name = '', nth] = spec.split('#');
  const n = nth === undefined ? 1 : Number(nth);
  return { name, nth: Number.isInteger(n) && n > 0 ? n : 1 };
}

/** Dies here (SIGKILL) when EXPORT_FAULT_CRASH_POINT names this point; otherwise does nothing. */
export function crashPoint(name: CrashPoint): void {
  const target = parse(process.env['EXPORT_FAULT_CRASH_POINT']);
  if (target === undefined || target.name !== name) return;
  const count = (hits.get(name) ?? 0) + 1;
  hits.set(name, count);
  if (count === target.nth) {
    process.stderr.write(`fault: crash point ${name}#${count} reached; SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

/**
 * The process's clock: the system clock. The fault suite plays hosts whose clocks disagree by setting
 * `EXPORT_FAULT_CLOCK_OFFSET_MS` (milliseconds, may be negative), read once here; in production it is unset.
 */
export function processClock(): Clock {
  const offsetMs = Number(process.env['EXPORT_FAULT_CLOCK_OFFSET_MS'] ?? '0');
  if (!Number.isFinite(offsetMs) || offsetMs === 0) return { now: () => new Date() };
  return { now: () => new Date(Date.now() + offsetMs) };
}
