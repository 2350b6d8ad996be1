import { parseArgs } from 'node:util';
import { destinationContainerClient, getDeps, resetDeps } from '../composition';
import {
  type AttributeSet,
  type BillingPeriod,
  type DatasetId,
  loadConfig,
  parseAttributeSet,
  parseBillingPeriods,
  parseCurrencies,
  parseDatasets,
  parseInvoiceIds,
} from '../config';
import { layoutFor, runLabel } from '../datasets';
import { runEmulatorCommand } from '../emulator/main';
import { classifyError, ExportError, errorMessage } from '../errors';
import { superviseCurations } from '../pipeline/curateExport';
import type { CurationRecord } from '../pipeline/curationPorts';
import { getRunDetails, listRuns, parseRunQuery, publicRun } from '../pipeline/listRuns';
import type { RunRecord } from '../pipeline/ports';
import { startExportFailures, startExports } from '../pipeline/startExports';
import { redact } from '../redact';
import { waitForCurations } from './curationWait';
import { FolderBusyError } from './dataFolderLock';
import { dataSummary } from './dataSummary';
import { defaultAzuriteLocation, type EmbeddedServices, startEmbeddedServices } from './embedded';
import { commandFiles, howToOpenFiles } from './filesCommand';
import { LocalFunctionsHost, type QueueHostSettings } from './localHost';
import { createProgressDisplay, waitForRuns } from './progress';
import { commandQuery } from './queryCommand';
import { resumeInterruptedRuns, resumeOnceDue } from './resumeInterrupted';
import { readLocalSettings } from './settings';
import { installShutdown, type Shutdown, shuttingDown } from './shutdown';

const USAGE = `csp-unbilled-export <command> [flags]

Commands:
  run      Start exports now and process them to the end (exit 0 only if every run ended
           succeeded, unchanged or noData).
             --currencies USD,EUR  --periods current,last  --attribute-set full|basic
             --datasets unbilledUsage,unbilledReconciliation,billedUsage,billedReconciliation,
                        billedAggregatedUsage
             --invoices G000000001,...  (billed datasets; without it, invoice discovery when on)
             --force  --json  --timeout-minutes N
  start    What "npm start" runs: the local host (HTTP on localhost:7071, timer, queues),
           an export at once with progress, then keeps serving until Ctrl-C.
  serve    The local host only: HTTP routes on localhost:7071, the timer, the queues.
             --port N (default 7071)
  runs     Run history from the ledger.  [runId]  --status S  --since DATE  --currency CUR
             --dataset D  --invoice ID  --limit N  --json
  files    What landed in the destination (raw, curated/, focus/): lists, or downloads with
           --download DIR.  --run ID | --all  --dataset D  --json  (files --help)
  query    DuckDB SQL over the current curated data: a view per dataset (unbilled_usage, …) and
           focus_costs.  "SQL"  --json  --destination DIR|URL  (query --help)
  emulator The partner billing emulator (HTTPS), standalone. See docs/emulator.md.

Settings come from the environment, then local.settings.json's Values. Absent storage settings
start Azurite (data in .azurite/); an absent GRAPH_BASE_URL starts the partner billing emulator.
Ctrl-C (or SIGTERM) at any moment hands unfinished queue messages back and stops Azurite and the
emulator; the same command again resumes the interrupted runs at once (also after a kill). While
one command uses .azurite/, "runs" uses its Azurite and the other commands refuse.`;

type Out = (line: string) => void;
const stdout: Out = (line) => process.stdout.write(`${line}\n`);
const stderr: Out = (line) => process.stderr.write(`${line}\n`);

/** The run --json summary line (SPEC section 9). */
export interface RunSummary {
  runs: Array<{
    runId: string;
    currency: string;
    billingPeriod: BillingPeriod;
    attributeSet: AttributeSet;
    status: string;
    blobCount: number;
    byteCount: number;
    path: string | null;
    error: string | null;
    /** Added with issue 10, after the fields above. */
    dataset: DatasetId;
    invoiceId: string | null;
    /** Rows converted by the run's curation (null: not curated, or curation did not succeed). */
    rowCount: number | null;
    /** The series folder of the curated data (`curated/…`; FOCUS under `focus/…`); null when not made current. */
    curatedPath: string | null;
    /** The curation's status (null: EXPORT_CURATION off, or the run did not succeed). */
    curationStatus: string | null;
  }>;
}

export function summarise(runs: RunRecord[], curations: Map<string, CurationRecord> = new Map()): RunSummary {
  return {
    runs: runs.map((run) => ({
      runId: run.runId,
      currency: run.currency,
      billingPeriod: run.billingPeriod,
      attributeSet: run.attributeSet,
      status: run.status,
      blobCount: run.blobCount ?? 0,
      byteCount: run.byteCount,
      path: run.status === 'succeeded' || run.blobsCopied > 0 ? (run.path ?? null) : null,
      error: run.status === 'failed' ? (run.error ?? 'failed') : null,
      dataset: run.dataset ?? 'unbilledUsage',
      invoiceId: run.invoiceId ?? null,
      ...curationSummary(curations.get(run.runId)),
    })),
  };
}

function curationSummary(curation: CurationRecord | undefined) {
  const succeeded = curation?.status === 'succeeded';
  return {
    rowCount: succeeded ? (curation.rowsConverted ?? 0) : null,
    curatedPath:
      succeeded && curation.current !== false && curation.curatedPath ? `curated/${curation.curatedPath}` : null,
    curationStatus: curation?.status ?? null,
  };
}

const OK_STATUSES = new Set(['succeeded', 'unchanged', 'noData']);
const IN_FLIGHT_CURATIONS = ['pending', 'converting', 'publishing'] as const;

/** `, curated: N rows in curated/…` (or the curation's failure) after a run's status line. */
function curationLine(curation: CurationRecord | undefined, curating: boolean): string {
  if (curation === undefined) return curating ? '; curation did not start (see the log lines above)' : '';
  if (curation.status === 'failed') return `; curation failed (${curation.errorCode ?? ''}) — ${curation.error ?? ''}`;
  if (curation.status !== 'succeeded') return `; curation ${curation.status} (not finished in time)`;
  const where =
    curation.current === false
      ? 'a newer version is current'
      : `curated/${curation.curatedPath} and focus/${curation.curatedPath}`;
  const rejected = (curation.rowsRejected ?? 0) > 0 ? `, ${curation.rowsRejected} rejected` : '';
  return `; curated ${curation.rowsConverted ?? 0} rows${rejected} (${where})`;
}

/**
 * Attempts a run started here makes to have Graph accept its export before it fails (the app makes 10, over about
 * 75 minutes): someone waits at the terminal, and an unreachable GRAPH_BASE_URL should say so in about a minute
 * and a half (EXPORT_POLL_INITIAL_SECONDS, then twice that, between the attempts).
 */
export const RUN_START_ATTEMPTS = 3;

/** Errors that mean the settings point at nothing usable: exit code 2, like an invalid setting. */
const CONFIGURATION_CODES = new Set(['CONFIG_INVALID', 'HOST_STORAGE_UNAVAILABLE']);

/** Prepares settings: local.settings.json + environment, embedded services for what is absent. */
async function prepare(options: {
  command: string;
  shutdown: Shutdown;
  withoutEmulator?: boolean;
  attach?: boolean;
  emulatorLog?: Out | undefined;
  log: Out;
}) {
  const { values, file } = readLocalSettings();
  if (file !== undefined) options.log(`Settings: environment, then ${file}.`);
  const embedded = await options.shutdown.step(
    () =>
      startEmbeddedServices(values, {
        azuriteLocation: defaultAzuriteLocation(),
        withoutEmulator: options.withoutEmulator ?? false,
        command: options.command,
        attach: options.attach ?? false,
        signal: options.shutdown.signal,
        log: options.log,
        ...(options.emulatorLog === undefined ? {} : { emulatorLog: options.emulatorLog }),
      }),
    (services) => () => services.stop(),
  );
  const storageSettings = Object.keys(embedded.filled)
    .filter((k) => k.includes('Storage') || k.includes('STORAGE'))
    .join(', ');
  if (embedded.attachedTo !== undefined && embedded.azurite !== undefined) {
    options.log(
      `Using the Azurite (pid ${embedded.azurite.pid}, blob ${embedded.azurite.blobEndpoint}) of the running "${embedded.attachedTo.command}" command (pid ${embedded.attachedTo.pid}) for ${storageSettings}.`,
    );
  } else if (embedded.azurite !== undefined) {
    options.log(
      `Azurite started (pid ${embedded.azurite.pid}, blob ${embedded.azurite.blobEndpoint}, data in .azurite/) for ${storageSettings}.`,
    );
  }
  if (embedded.emulator !== undefined) {
    options.log(`Partner billing emulator started at ${embedded.emulator.baseUrl} (GRAPH_BASE_URL was not set).`);
  }
  const env: Record<string, string | undefined> = { ...values, ...embedded.filled };
  // The handlers read process.env, as in Azure: put the merged settings there.
  for (const [key, value] of Object.entries(env)) if (value !== undefined) process.env[key] = value;
  resetDeps();
  return { env, embedded };
}

/**
 * The local host's queue settings: host.json's, polling sooner; `LOCAL_QUEUE_LEASE_SECONDS` (how soon the
 * messages of a killed command come back) and `LOCAL_QUEUE_BATCH_SIZE` change them (tests, demos).
 */
export function localQueueSettings(env: Record<string, string | undefined>): Partial<QueueHostSettings> {
  const problems: string[] = [];
  const integer = (name: string, min: number, max: number): number | undefined => {
    const text = env[name];
    if (text === undefined || text.trim() === '') return undefined;
    const value = Number(text);
    if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
      problems.push(`${name}: '${text}' is not accepted (an integer from ${min} to ${max}).`);
    }
    return value;
  };
  const lease = integer('LOCAL_QUEUE_LEASE_SECONDS', 1, 3600);
  const batchSize = integer('LOCAL_QUEUE_BATCH_SIZE', 1, 32);
  if (problems.length > 0) throw new ExportError('CONFIG_INVALID', problems.join('\n'));
  return {
    maxPollingIntervalMs: 1000,
    visibilityTimeoutSeconds: 5,
    ...(lease === undefined ? {} : { leaseSeconds: lease, leaseRenewalMs: Math.max(250, (lease * 1000) / 3) }),
    // A smaller batch keeps fewer in flight too (the Functions host's default threshold: half the batch).
    ...(batchSize === undefined ? {} : { batchSize, newBatchThreshold: Math.floor(batchSize / 2) }),
  };
}

function hostLogger(display: { log: Out }, verbose: boolean) {
  return (level: 'info' | 'warn' | 'error', functionName: string, line: string) => {
    if (level === 'info' && !verbose) return;
    const tag = level === 'info' ? '' : `${level.toUpperCase()} `;
    display.log(`${new Date().toISOString()} ${tag}[${functionName}] ${line}`);
  };
}

async function startHostFor(
  env: Record<string, string | undefined>,
  log: ReturnType<typeof hostLogger>,
  shutdown: Shutdown,
  http?: number,
) {
  const config = loadConfig(env);
  const queueSettings = localQueueSettings(env);
  return shutdown.step(
    () =>
      LocalFunctionsHost.start({
        hostStorage: config.hostStorage,
        log,
        queueSettings,
        // Without HTTP (the run command) there is no export timer, but its runs still get their supervisor.
        ...(http === undefined ? { supervise: true } : { httpPort: http, schedule: config.schedule }),
      }),
    (host) => () => host.stop(),
  );
}

async function startHttpHost(
  env: Record<string, string | undefined>,
  log: ReturnType<typeof hostLogger>,
  shutdown: Shutdown,
  port: number,
) {
  try {
    return await startHostFor(env, log, shutdown, port);
  } catch (error) {
    if ((error as { code?: string }).code === 'EADDRINUSE' && port !== 0) {
      stderr(`Port ${port} is in use (is "func start" running?); using a free port instead.`);
      return startHostFor(env, log, shutdown, 0);
    }
    throw error;
  }
}

function whereFilesAre(
  runs: RunRecord[],
  env: Record<string, string | undefined>,
  embedded: EmbeddedServices,
  keepsRunning: boolean,
): string[] {
  const config = loadConfig(env);
  const lines: string[] = [];
  for (const run of runs.filter((r) => r.status === 'unchanged')) {
    const series = layoutFor(config, run, run.billingMonth ?? '?').series;
    lines.push(
      `${runLabel(run)}: data unchanged since the newest complete run; see ${series}/latest.json (use --force to copy again).`,
    );
  }
  const done = runs.filter((r) => r.path !== undefined && r.status === 'succeeded');
  if (done.length > 0) lines.push(`Files landed in container "${config.destination.container}":`);
  for (const run of done)
    lines.push(`  ${run.path}/  (${run.blobCount ?? 0} blobs, ${run.byteCount} bytes, manifest.json)`);
  if (done.length > 0 || lines.length > 0) lines.push(...howToOpenFiles({ embedded, env, keepsRunning }));
  if (done.length > 0)
    lines.push('Run history:  npm run cli -- runs   (or GET http://localhost:7071/api/exports/runs while serving)');
  return lines;
}

async function commandRun(argv: string[], mode: 'run' | 'start'): Promise<number> {
  const { values: flags } = parseArgs({
    args: argv,
    options: {
      currencies: { type: 'string' },
      periods: { type: 'string' },
      'attribute-set': { type: 'string' },
      datasets: { type: 'string' },
      invoices: { type: 'string' },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      'timeout-minutes': { type: 'string' },
      port: { type: 'string' },
    },
    strict: true,
  });
  const problems: string[] = [];
  const currencies =
    flags.currencies === undefined ? undefined : parseCurrencies(flags.currencies, '--currencies', problems);
  const billingPeriods =
    flags.periods === undefined ? undefined : parseBillingPeriods(flags.periods, '--periods', problems);
  const attributeSet =
    flags['attribute-set'] === undefined
      ? undefined
      : parseAttributeSet(flags['attribute-set'], '--attribute-set', problems);
  const datasets = flags.datasets === undefined ? undefined : parseDatasets(flags.datasets, '--datasets', problems);
  const invoiceIds = flags.invoices === undefined ? undefined : parseInvoiceIds(flags.invoices, '--invoices', problems);
  const timeoutMinutes = flags['timeout-minutes'] === undefined ? 360 : Number(flags['timeout-minutes']);
  if (!Number.isFinite(timeoutMinutes) || timeoutMinutes <= 0) problems.push('--timeout-minutes: a positive number');
  if (problems.length > 0) throw new ExportError('CONFIG_INVALID', problems.join('\n'));

  const display = createProgressDisplay(process.stderr);
  const shutdown = installShutdown(stderr);
  shutdown.beforeStop = () => display.stop();
  try {
    const { env, embedded } = await prepare({
      command: mode,
      shutdown,
      log: display.log,
      emulatorLog: flags.verbose ? display.log : undefined,
    });
    const log = hostLogger(display, flags.verbose || !process.stderr.isTTY);
    const host =
      mode === 'start'
        ? await startHttpHost(env, log, shutdown, flags.port === undefined ? 7071 : Number(flags.port))
        : await startHostFor(env, log, shutdown);
    if (host.httpBaseUrl !== undefined)
      display.log(`Local host listening on ${host.httpBaseUrl} (POST /api/exports, GET /api/exports/runs).`);
    const deps = getDeps((level, line) => log(level, 'cli', line));
    // `start` keeps serving: it resumes every run an earlier command left in flight, before it starts its own.
    if (mode === 'start') await resumeAtStartUp(deps, embedded, display.log);
    // `run` on its own host storage also resumes the curations an earlier command left in flight (no other process
    // works on them) and waits for them too; their outcome is reported, not counted in the exit code.
    const leftover: RunRecord[] = [];
    if (mode === 'run' && embedded.ownsHostStorage && deps.config.curation.enabled && deps.curation !== undefined) {
      try {
        await superviseCurations(deps, { stallMinutes: 0, ownerGone: true });
        for (const curation of await deps.curation.ledger.listCurations({ statuses: IN_FLIGHT_CURATIONS })) {
          const run = (await deps.ledger.getRun(curation.runId))?.value;
          if (run !== undefined) leftover.push(run);
        }
        if (leftover.length > 0)
          display.log(`Finishing ${leftover.length} curation(s) an earlier command left in flight.`);
      } catch (error) {
        display.log(`Could not resume the curations left in flight: ${redact(errorMessage(error))}`);
      }
    }
    // A signal waits for the starts to be recorded (a start cut between Graph's 202 and the ledger
    // write would leave an export nobody follows); a second signal does not wait.
    const started = await shutdown.step(() =>
      startExports(
        {
          trigger: 'manual',
          currencies,
          billingPeriods,
          attributeSet,
          force: flags.force,
          datasets,
          invoiceIds,
          maxStartAttempts: RUN_START_ATTEMPTS,
        },
        deps,
      ),
    );
    const notStarted = startExportFailures(started);
    for (const line of notStarted) stderr(`Not started: ${line}`);
    const fresh = started.filter((r) => !r.alreadyInFlight && r.error === undefined);
    const resumed = started.filter((r) => r.alreadyInFlight && r.error === undefined);
    if (fresh.length > 0) {
      display.log(`Started ${fresh.length} run(s): ${fresh.map((r) => `${runLabel(r)} ${r.runId}`).join(', ')}`);
    }
    if (resumed.length > 0) {
      // One export per series: a run of the same series already in flight (e.g. interrupted earlier) is
      // finished, not started again.
      display.log(
        `Already in flight, finishing: ${resumed.map((r) => `${runLabel(r)} ${r.runId} (${r.status})`).join(', ')}`,
      );
      if (mode === 'run') {
        await resumeAtStartUp(
          deps,
          embedded,
          display.log,
          resumed.map((r) => r.runId),
        );
      }
    }
    const runs = await waitForRuns(
      started.filter((r) => r.runId !== '').map((r) => r.runId),
      deps,
      display,
      timeoutMinutes * 60_000,
    );
    // Curation follows each succeeded run: the command ends when it has ended too.
    if (deps.config.curation.enabled && runs.some((run) => run.status === 'succeeded')) {
      display.log('Curating (typed Parquet and FOCUS)…');
    }
    const curations = await waitForCurations([...runs, ...leftover], deps, timeoutMinutes * 60_000);
    for (const run of leftover) {
      stderr(`Earlier run ${runLabel(run)} ${run.runId}: ${run.status}${curationLine(curations.get(run.runId), true)}`);
    }
    display.stop();
    await deps.telemetry.flush();
    for (const run of runs) {
      const detail = run.status === 'failed' || run.status === 'noData' ? ` — ${run.error ?? ''}` : '';
      const curating = deps.config.curation.enabled && run.status === 'succeeded';
      stderr(`${runLabel(run)}: ${run.status}${detail}${curationLine(curations.get(run.runId), curating)}`);
    }
    for (const line of whereFilesAre(runs, env, embedded, mode === 'start')) stderr(line);
    if (mode === 'start' && curations.size > 0) {
      // A first look at what landed; never a reason for the command to fail.
      try {
        const summary = await dataSummary(destinationContainerClient(deps.config), runs, curations);
        if (summary.length > 0) stderr(['', ...summary].join('\n'));
      } catch (error) {
        stderr(`(No summary of the curated data: ${redact(errorMessage(error))})`);
      }
    }
    const curationOk = runs.every(
      (run) =>
        run.status !== 'succeeded' || !deps.config.curation.enabled || curations.get(run.runId)?.status === 'succeeded',
    );
    const ok = runs.length === started.length && runs.every((r) => OK_STATUSES.has(r.status)) && curationOk;
    if (flags.json) stdout(JSON.stringify(summarise(runs, curations)));
    if (mode === 'start') {
      stderr(
        `\nStill serving on ${host.httpBaseUrl ?? '(no HTTP)'} with the timer (${loadConfig(env).schedule}, UTC). Ctrl-C to stop.`,
      );
      // From now on a signal is the normal way to stop: exit with the result of the run.
      shutdown.exitCode = ok ? 0 : 1;
      await forever();
    }
    return ok ? 0 : 1;
  } finally {
    display.stop();
    if (!shutdown.stopping) {
      await shutdown.stopAll();
      shutdown.dispose();
    }
  }
}

/**
 * Resumes the runs an earlier command left in flight (see resumeInterrupted.ts): at once when this command owns the
 * host storage. A failure is reported, not fatal: the runs' own messages may still finish them.
 */
async function resumeAtStartUp(
  deps: ReturnType<typeof getDeps>,
  embedded: EmbeddedServices,
  log: Out,
  runIds?: string[],
): Promise<void> {
  const failed = (error: unknown) => log(`Could not resume the runs left in flight: ${redact(errorMessage(error))}`);
  try {
    await resumeInterruptedRuns(deps, {
      ownsHostStorage: embedded.ownsHostStorage,
      ...(runIds === undefined ? {} : { runIds }),
      processStartedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    });
  } catch (error) {
    failed(error);
  }
  // On shared host storage, `run` also resumes its runs that were not due yet, once they are (it waits for them).
  if (!embedded.ownsHostStorage && runIds !== undefined) void resumeOnceDue(deps, runIds).catch(failed);
}

/** Waits until a signal's handler exits the process. */
function forever(): Promise<never> {
  return new Promise(() => {
    setInterval(() => undefined, 2 ** 30);
  });
}

async function commandServe(argv: string[]): Promise<number> {
  const { values: flags } = parseArgs({
    args: argv,
    options: { port: { type: 'string', default: '7071' }, verbose: { type: 'boolean', default: true } },
  });
  const shutdown = installShutdown(stderr);
  // Ctrl-C is the normal way to stop serving.
  shutdown.exitCode = 0;
  let env: Record<string, string | undefined>;
  let embedded: EmbeddedServices;
  let host: LocalFunctionsHost;
  const log = hostLogger({ log: stderr }, flags.verbose ?? true);
  try {
    ({ env, embedded } = await prepare({
      command: 'serve',
      shutdown,
      log: stderr,
      emulatorLog: flags.verbose ? stderr : undefined,
    }));
    host = await startHttpHost(env, log, shutdown, Number(flags.port));
  } catch (error) {
    if (!shutdown.stopping) await shutdown.stopAll();
    throw error;
  }
  stderr(
    `Local host on ${host.httpBaseUrl}: POST /api/exports, GET /api/exports/runs[/{runId}], POST /admin/functions/startExportsTimer.`,
  );
  stderr(`Timer: ${loadConfig(env).schedule} (UTC). Ctrl-C to stop.`);
  await resumeAtStartUp(
    getDeps((level, line) => log(level, 'cli', line)),
    embedded,
    stderr,
  );
  return forever();
}

async function commandRuns(argv: string[]): Promise<number> {
  const { values: flags, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      status: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      currency: { type: 'string' },
      dataset: { type: 'string' },
      invoice: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const shutdown = installShutdown(stderr);
  const { env } = await prepare({ command: 'runs', shutdown, withoutEmulator: true, attach: true, log: stderr });
  try {
    const deps = getDeps((level, line) => stderr(`${level} ${line}`), {
      ...env,
      GRAPH_BASE_URL: env['GRAPH_BASE_URL'] ?? 'https://127.0.0.1:1/v1.0',
      EXPORT_CURRENCIES: env['EXPORT_CURRENCIES'] ?? 'USD',
    });
    if (positionals[0] !== undefined) {
      const details = await getRunDetails(positionals[0], deps);
      stdout(JSON.stringify(details, null, 2));
      return 0;
    }
    const query = parseRunQuery({
      status: flags.status,
      since: flags.since,
      until: flags.until,
      currency: flags.currency,
      dataset: flags.dataset,
      invoiceId: flags.invoice,
      limit: flags.limit,
    });
    const runs = (await listRuns(query, deps)).map(publicRun);
    if (flags.json) {
      stdout(JSON.stringify({ runs }));
    } else if (runs.length === 0) {
      stdout('No runs recorded yet.');
    } else {
      for (const run of runs) {
        stdout(
          `${run.runId}  ${run.trigger.padEnd(8)} ${run.dataset === 'unbilledUsage' ? '' : `${run.dataset} ${run.invoiceId ?? ''} `}${run.currency} ${run.billingPeriod.padEnd(7)} ${run.attributeSet.padEnd(5)} ${run.status.padEnd(9)} ${run.blobsCopied}/${run.blobCount ?? '?'} blobs ${run.byteCount} bytes${run.error ? `  ${run.error}` : ''}`,
        );
      }
    }
    return 0;
  } finally {
    if (!shutdown.stopping) {
      await shutdown.stopAll();
      shutdown.dispose();
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return commandRun(rest, 'run');
    case 'start':
      return commandRun(rest, 'start');
    case 'serve':
      return commandServe(rest);
    case 'runs':
      return commandRuns(rest);
    case 'files':
      return commandFiles(rest);
    case 'query':
      return commandQuery(rest);
    case 'emulator': {
      await runEmulatorCommand(rest);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      stdout(USAGE);
      return command === undefined ? 1 : 0;
    default:
      stderr(`Unknown command "${command}".\n\n${USAGE}`);
      return 2;
  }
}

/** Runs the command line with process.argv and sets the exit code. */
export function runCli(): void {
  main(process.argv.slice(2))
    .then((code) => {
      if (shuttingDown()) return; // the signal's handler stops everything and exits
      // Exit explicitly: SDK keep-alive sockets and telemetry timers must not keep a finished command alive.
      process.exitCode = code;
      setImmediate(() => process.exit(code));
    })
    .catch((error: unknown) => {
      if (shuttingDown()) return;
      if (error instanceof FolderBusyError) {
        stderr(error.message);
        process.exitCode = 3;
        setImmediate(() => process.exit());
        return;
      }
      // Classified, so that an endpoint that cannot be reached is named with its setting, not a bare ECONNREFUSED.
      const classified = classifyError(error);
      const message = redact(errorMessage(classified));
      stderr(classified.code === 'UNEXPECTED' ? `Error: ${message}` : `${classified.code}: ${message}`);
      process.exitCode = CONFIGURATION_CODES.has(classified.code) ? 2 : 1;
      setImmediate(() => process.exit());
    });
}

if (require.main === module) runCli();
