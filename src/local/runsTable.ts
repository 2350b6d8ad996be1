import type { RunRecord } from '../pipeline/ports';
import { type CommandSpec, type ParsedCommandLine, stringFlag } from './commandLine';
import { formatBytes } from './destinationFiles';

/**
 * The `runs` table: a header and fixed columns, so rows of every dataset line up (a billed run has an invoice and
 * no currency or period, an unbilled one the reverse: both show "-" where they have nothing). A long error is cut
 * to one line with a pointer to `runs RUN_ID`, which prints the run in full.
 */

/** Characters of an error shown in the table before it is cut. */
export const ERROR_WIDTH = 60;

interface Column {
  title: string;
  width: number;
  value: (run: RunRecord) => string;
  right?: boolean;
}

const COLUMNS: Column[] = [
  { title: 'RUN ID', width: 28, value: (run) => run.runId },
  { title: 'TRIGGER', width: 8, value: (run) => run.trigger },
  { title: 'DATASET', width: 22, value: (run) => run.dataset ?? 'unbilledUsage' },
  { title: 'CUR', width: 4, value: (run) => run.currency || '-' },
  { title: 'PERIOD', width: 7, value: (run) => (run.invoiceId === undefined ? run.billingPeriod : '-') },
  { title: 'ATTRS', width: 5, value: (run) => run.attributeSet },
  { title: 'INVOICE', width: 12, value: (run) => run.invoiceId ?? '-' },
  { title: 'STATUS', width: 9, value: (run) => run.status },
  { title: 'BLOBS', width: 9, value: (run) => `${run.blobsCopied}/${run.blobCount ?? '?'}`, right: true },
  { title: 'SIZE', width: 10, value: (run) => formatBytes(run.byteCount), right: true },
];

function cell(column: Column, text: string): string {
  const fitted = text.length > column.width ? `${text.slice(0, column.width - 1)}…` : text;
  return column.right === true ? fitted.padStart(column.width) : fitted.padEnd(column.width);
}

/** One line of an error, at most ERROR_WIDTH characters; a longer one points at `runs RUN_ID`. */
export function shortError(run: RunRecord): string {
  if (!run.error) return '';
  const code = run.errorCode === undefined ? '' : `${run.errorCode}: `;
  const text = `${code}${run.error.replace(/\s+/g, ' ').trim()}`;
  if (text.length <= ERROR_WIDTH) return text;
  return `${text.slice(0, ERROR_WIDTH - 1)}… (runs ${run.runId})`;
}

/** The filters given to `runs`, as typed (`--status failed --since 2026-11-01`); empty when none. */
export function runsFilterText(parsed: ParsedCommandLine, spec: CommandSpec): string {
  return spec.flags
    .filter((flag) => flag.value !== undefined && flag.name !== 'limit')
    .map((flag) => [flag.name, stringFlag(parsed, flag.name)] as const)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `--${name} ${value}`)
    .join(' ');
}

/**
 * The lines `runs` prints. With no row: "No runs yet." when the ledger has none, else which filters matched
 * nothing (`anyRun`: the ledger holds at least one run).
 */
export function formatRunsTable(runs: RunRecord[], options: { filters: string; anyRun: boolean }): string[] {
  if (runs.length === 0) {
    if (!options.anyRun) return ['No runs yet: "npm start" or "npm run cli -- run" starts one.'];
    return [`No runs match ${options.filters || 'the filters'}; "npm run cli -- runs" lists every run.`];
  }
  const line = (cells: string[], error: string) => `${cells.join('  ')}  ${error}`.trimEnd();
  return [
    line(
      COLUMNS.map((column) => cell(column, column.title)),
      'ERROR',
    ),
    ...runs.map((run) =>
      line(
        COLUMNS.map((column) => cell(column, column.value(run))),
        shortError(run),
      ),
    ),
  ];
}
