import { DATASET_IDS } from '../config';
import { RUN_STATUSES } from '../pipeline/ports';
import { type CommandSpec, EXIT_CODES_TEXT, type FlagSpec } from './commandLine';

/** The commands' descriptions: their --help texts and the flags each accepts (parsed by commandLine.ts). */

const RUN_FLAGS: FlagSpec[] = [
  {
    name: 'currencies',
    value: 'LIST',
    description:
      'ISO 4217 codes, e.g. USD,EUR (default EXPORT_CURRENCIES; stands in for that\nsetting when it is absent)',
  },
  { name: 'periods', value: 'LIST', description: 'current, last or current,last (default EXPORT_BILLING_PERIODS)' },
  { name: 'attribute-set', value: 'SET', description: 'full or basic (default EXPORT_ATTRIBUTE_SET)' },
  {
    name: 'datasets',
    value: 'LIST',
    description: `any of ${DATASET_IDS.join(', ')}\n(default EXPORT_DATASETS)`,
  },
  {
    name: 'invoices',
    value: 'LIST',
    description:
      'invoice ids for the billed datasets, e.g. G000000001; without it, invoice discovery\n(EXPORT_INVOICE_DISCOVERY=partnerCenter) finds them',
  },
  { name: 'force', description: 'copy even when the data equals the newest complete run (no "unchanged")' },
  {
    name: 'json',
    description:
      'print one JSON object as the last line of standard output:\n{"runs":[{runId, dataset, status, errorCode, error, path, ...}], "skipped":[{dataset, reason}]}',
  },
  { name: 'verbose', description: "also print the host's info lines and the emulator's requests" },
  { name: 'timeout-minutes', value: 'N', description: 'stop waiting for the runs after N minutes (default 360)' },
];

const SETTINGS_NOTE = `Settings come from the environment, then local.settings.json's Values. Without storage settings the
command starts Azurite (data in .azurite/); without GRAPH_BASE_URL, the partner billing emulator.`;

export const RUN_COMMAND: CommandSpec = {
  name: 'run',
  summary: 'start exports now and follow them to the end, then exit',
  arguments: '[flags]',
  description: `Starts the exports now (each dataset x currency x period, or x invoice for the billed datasets),
processes them on a local host to the end, says where the files landed, and exits: 0 only if every
run ended succeeded, unchanged or noData (and its curation succeeded). A billed dataset with nothing to
start is reported as skipped; when nothing at all could start, the exit code is 2.

${SETTINGS_NOTE}`,
  flags: RUN_FLAGS,
  examples: [
    'npm run cli -- run',
    'npm run cli -- run --currencies USD --periods current --json',
    'npm run cli -- run --datasets billedUsage --invoices G000000001',
  ],
};

const PORT_FLAG = (fallback: boolean): FlagSpec => ({
  name: 'port',
  value: 'N',
  description: fallback
    ? 'HTTP port on localhost (default 7071, or a free port when 7071 is taken;\nan explicit port that is taken is an error; 0 = any free port)'
    : 'HTTP port on localhost (default 7071)',
});

export const START_COMMAND: CommandSpec = {
  name: 'start',
  summary: 'what "npm start" runs: the local host, an export at once with progress, then serving',
  arguments: '[flags]',
  description: `What "npm start" runs: the local host (HTTP routes, the timer, the queues), first resuming runs an
earlier command left in flight, then an export at once with progress; then it keeps serving (runs
started with POST /api/exports show on this console) until Ctrl-C, which exits with the result of
its own export.

${SETTINGS_NOTE}`,
  flags: [...RUN_FLAGS, PORT_FLAG(true)],
  examples: ['npm start', 'npm run cli -- start --currencies USD --port 7072'],
};

export const SERVE_COMMAND: CommandSpec = {
  name: 'serve',
  summary: 'the local host only: HTTP routes, the timer, the queues',
  arguments: '[flags]',
  description: `The local host only, as "func start" would run it: the HTTP routes (POST /api/exports, GET
/api/exports/runs), the timer and the queues, until Ctrl-C (exit code 0). Runs in flight from an
earlier command are resumed; runs started over HTTP or by the timer show on this console.

${SETTINGS_NOTE}`,
  flags: [
    PORT_FLAG(true),
    { name: 'verbose', description: "also print the emulator's requests (the host's lines are always printed)" },
  ],
  examples: ['npm run cli -- serve', 'npm run cli -- serve --port 7072 --verbose'],
};

export const RUNS_COMMAND: CommandSpec = {
  name: 'runs',
  summary: 'run history from the ledger (a table, one run in full, or --json)',
  arguments: '[RUN_ID] [flags]',
  description: `Lists the runs of the ledger, newest first, as a table (one row per run; a long error is shortened:
"runs RUN_ID" prints that run in full, with its blobs). While another command uses .azurite/, its
Azurite is read.`,
  flags: [
    { name: 'status', value: 'S', description: `only runs with this status: ${RUN_STATUSES.join(', ')}` },
    { name: 'since', value: 'DATE', description: 'only runs started at or after DATE (ISO 8601, e.g. 2026-11-01)' },
    { name: 'until', value: 'DATE', description: 'only runs started before DATE' },
    { name: 'currency', value: 'CUR', description: 'only runs of this currency (ISO 4217)' },
    { name: 'dataset', value: 'D', description: `only runs of this dataset: ${DATASET_IDS.join(', ')}` },
    { name: 'invoice', value: 'ID', description: 'only runs of this invoice (billed datasets)' },
    { name: 'limit', value: 'N', description: 'at most N runs, 1 to 500 (default 50)' },
    { name: 'json', description: 'one JSON object: {"runs":[...]} (with RUN_ID: the run and its blobs)' },
  ],
  maxPositionals: 1,
  examples: [
    'npm run cli -- runs',
    'npm run cli -- runs --status failed --since 2026-11-01',
    'npm run cli -- runs 20261207T060000123Z-9f3a1c2b',
  ],
};

/** The commands in the order the general help lists them (summaries of the others are added by cli.ts). */
export function generalHelp(commands: Array<{ name: string; summary: string }>): string {
  const width = Math.max(...commands.map((command) => command.name.length)) + 2;
  return [
    'Usage: csp-unbilled-export <command> [flags]     (from the project folder: npm run cli -- <command> [flags])',
    '',
    'Commands:',
    ...commands.map((command) => `  ${command.name.padEnd(width)}${command.summary}`),
    '',
    'Each command answers --help (or -h) with its flags and examples, e.g. "csp-unbilled-export run --help".',
    '',
    `${SETTINGS_NOTE}
Ctrl-C (or SIGTERM) at any moment hands unfinished queue messages back and stops Azurite and the
emulator; the same command again resumes the interrupted runs at once (also after a kill). While one
command uses .azurite/, "runs" and "files" use its Azurite and the other commands refuse.`,
    '',
    EXIT_CODES_TEXT,
  ].join('\n');
}
