import { createServer } from 'node:net';
import { destinationContainerClient, getDeps, resetDeps } from '../composition';
import {
  type AttributeSet,
  type BillingPeriod,
  type Config,
  checkIsoCurrencies,
  type DatasetId,
  loadConfig,
  parseAttributeSet,
  parseBillingPeriods,
  parseCurrencies,
  parseDatasets,
  parseInvoiceIds,
} from '../config';
import { isBilled, layoutFor, runLabel } from '../datasets';
import { parseEmulatorArgs, runEmulatorCommand } from '../emulator/main';
import { ExportError, errorMessage, isExportError } from '../errors';
import { superviseCurations } from '../pipeline/curateExport';
import type { CurationRecord } from '../pipeline/curationPorts';
import { NO_INVOICES_REASON, type SkippedDatasets } from '../pipeline/exportTargets';
import { isRunId } from '../pipeline/layout';
import { getRunDetails, listRuns, parseRunQuery, publicRun } from '../pipeline/listRuns';
import type { RunQuery, RunRecord } from '../pipeline/ports';
import { startExportFailures, startExports } from '../pipeline/startExports';
import { redact } from '../redact';
import {
  type CommandSpec,
  describeFailure,
  EXIT_CODES,
  formatHelp,
  type ParsedCommandLine,
  parseCommandLine,
  portFlag,
  stringFlag,
  switchFlag,
  usageError,
} from './commandLine';
import { generalHelp, RUN_COMMAND, RUNS_COMMAND, SERVE_COMMAND, START_COMMAND } from './commandSpecs';
import { waitForCurations } from './curationWait';
import { dataSummary } from './dataSummary';
import { commandDoctor, DOCTOR_COMMAND } from './doctorCommand';
import { defaultAzuriteLocation, type EmbeddedServices, embeddedScenario, startEmbeddedServices } from './embedded';
import { EMULATOR_COMMAND } from './emulatorCommand';
import { commandFiles, FILES_COMMAND, howToOpenFiles } from './filesCommand';
import { LocalFunctionsHost, type QueueHostSettings } from './localHost';
import { createProgressDisplay, currentFolders, followRuns, waitForRuns } from './progress';
import { commandQuery, QUERY_COMMAND } from './queryCommand';
import { resumeInterruptedRuns, resumeOnceDue } from './resumeInterrupted';
import { formatRunsTable, runsFilterText } from './runsTable';
import { hasSetting, readLocalSettings } from './settings';
import { installShutdown, type Shutdown, shuttingDown } from './shutdown';

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
    /** The error's code (docs/errors.md); null unless the run failed. */
    errorCode: string | null;
  }>;
  /** Billed datasets nothing was started for, and why (`kind`: needsInvoices or upToDate). */
  skipped: Array<{ dataset: DatasetId; kind: SkippedDatasets['kind']; reason: string }>;
}

/**
 * The summary of `run --json`. `currentFolders`: for an unchanged run, the folder of the current data it equals
 * (its `path`, since it copied nothing of its own).
 */
export function summarise(
  runs: RunRecord[],
  curations: Map<string, CurationRecord> = new Map(),
  skipped: SkippedDatasets[] = [],
  currentFolders: ReadonlyMap<string, string> = new Map(),
): RunSummary {
  return {
    runs: runs.map((run) => ({
      runId: run.runId,
      currency: run.currency,
      billingPeriod: run.billingPeriod,
      attributeSet: run.attributeSet,
      status: run.status,
      blobCount: run.blobCount ?? 0,
      byteCount: run.byteCount,
      path:
        run.status === 'unchanged'
          ? (currentFolders.get(run.runId) ?? null)
          : run.status === 'succeeded' || run.blobsCopied > 0
            ? (run.path ?? null)
            : null,
      error: run.status === 'failed' ? (run.error ?? 'failed') : null,
      errorCode: run.status === 'failed' ? (run.errorCode ?? 'UNEXPECTED') : null,
      dataset: run.dataset ?? 'unbilledUsage',
      invoiceId: run.invoiceId ?? null,
      ...curationSummary(curations.get(run.runId)),
    })),
    skipped: skipped.flatMap((skip) =>
      skip.datasets.map((dataset) => ({ dataset, kind: skip.kind, reason: skip.reason })),
    ),
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
  const hub = curation.hubIngestionId === undefined ? '' : `; FinOps hub: ingestion/${curation.hubFolder ?? ''}`;
  return `; curated ${curation.rowsConverted ?? 0} rows${rejected} (${where})${hub}`;
}

/**
 * Attempts a run started here makes to have Graph accept its export before it fails (the app makes 10, over about
 * 75 minutes): someone waits at the terminal, and an unreachable GRAPH_BASE_URL should say so in about a minute
 * and a half (EXPORT_POLL_INITIAL_SECONDS, then twice that, between the attempts).
 */
export const RUN_START_ATTEMPTS = 3;

/** The local host's HTTP port when none is asked for (the one of "func start"). */
const DEFAULT_PORT = 7071;

/** Prepares settings: local.settings.json + environment (read and checked), embedded services for what is absent. */
async function prepare(options: {
  command: string;
  settings: ReturnType<typeof readLocalSettings>;
  shutdown: Shutdown;
  withoutEmulator?: boolean;
  attach?: boolean;
  emulatorLog?: Out | undefined;
  log: Out;
}) {
  const { values, file } = options.settings;
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

/** The host with HTTP on `port`; without one, on 7071 or, when that is taken, a free port. */
async function startHttpHost(
  env: Record<string, string | undefined>,
  log: ReturnType<typeof hostLogger>,
  shutdown: Shutdown,
  port: number | undefined,
) {
  try {
    return await startHostFor(env, log, shutdown, port ?? DEFAULT_PORT);
  } catch (error) {
    if ((error as { code?: string }).code !== 'EADDRINUSE') throw error;
    // Only the default moves: a port asked for (by a person or a script) that is taken is an error.
    if (port !== undefined) throw portInUse(port);
    stderr(`Port ${DEFAULT_PORT} is in use (is "func start" running?); using a free port instead.`);
    return startHostFor(env, log, shutdown, 0);
  }
}

function whereFilesAre(
  runs: RunRecord[],
  env: Record<string, string | undefined>,
  embedded: EmbeddedServices,
  keepsRunning: boolean,
  currentFolders: ReadonlyMap<string, string>,
): string[] {
  const config = loadConfig(env);
  const lines: string[] = [];
  for (const run of runs.filter((r) => r.status === 'unchanged')) {
    const series = layoutFor(config, run, run.billingMonth ?? '?').series;
    const folder = currentFolders.get(run.runId);
    lines.push(
      `${runLabel(run)}: data unchanged since the newest complete run; the current data is in ${folder === undefined ? `the folder ${series}/latest.json names` : `${folder}/`} (use --force to copy again).`,
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

/**
 * `run` that started nothing: billed datasets that needed invoice ids are a usage problem (exit code 2); billed
 * datasets whose invoices have all landed had nothing to do (exit code 0).
 */
function nothingStarted(skipped: SkippedDatasets[]): number {
  const needed = skipped.filter((skip) => skip.kind === 'needsInvoices');
  if (needed.length === 0) {
    stderr('Nothing to do: every billed dataset asked for is up to date.');
    return EXIT_CODES.ok;
  }
  const names = needed.flatMap((skip) => skip.datasets);
  stderr(
    describeFailure(
      usageError(
        RUN_COMMAND,
        `nothing could start: ${names.join(', ')} ${names.length === 1 ? 'needs' : 'need'} invoice ids and none were given`,
        '--invoices G000000001,… or EXPORT_INVOICE_DISCOVERY=partnerCenter, or --datasets with a daily dataset',
      ),
    ).line,
  );
  return EXIT_CODES.usageOrConfiguration;
}

/** The flags of run and start, checked: every problem is reported before anything starts. */
function runFlags(spec: CommandSpec, parsed: ParsedCommandLine) {
  const problems: string[] = [];
  const text = (name: string) => stringFlag(parsed, name);
  const currenciesText = text('currencies');
  const currencies =
    currenciesText === undefined
      ? undefined
      : checkIsoCurrencies(parseCurrencies(currenciesText, '--currencies', problems), '--currencies', problems);
  const periods = text('periods');
  const billingPeriods = periods === undefined ? undefined : parseBillingPeriods(periods, '--periods', problems);
  const attributeText = text('attribute-set');
  const attributeSet =
    attributeText === undefined ? undefined : parseAttributeSet(attributeText, '--attribute-set', problems);
  const datasetsText = text('datasets');
  const datasets = datasetsText === undefined ? undefined : parseDatasets(datasetsText, '--datasets', problems);
  const invoicesText = text('invoices');
  const invoiceIds = invoicesText === undefined ? undefined : parseInvoiceIds(invoicesText, '--invoices', problems);
  const timeoutText = text('timeout-minutes');
  const timeoutMinutes = timeoutText === undefined ? 360 : Number(timeoutText);
  if (!Number.isFinite(timeoutMinutes) || timeoutMinutes <= 0 || timeoutText?.trim() === '') {
    problems.push(`--timeout-minutes: "${timeoutText}" is not accepted; a positive number of minutes, e.g. 30`);
  }
  if (problems.length > 0) throw usageError(spec, problems.join('; '));
  return {
    currencies,
    billingPeriods,
    attributeSet,
    datasets,
    invoiceIds,
    timeoutMinutes,
    force: switchFlag(parsed, 'force'),
    json: switchFlag(parsed, 'json'),
    verbose: switchFlag(parsed, 'verbose'),
    port: portFlag(spec, parsed),
  };
}

/**
 * Checks every setting before Azurite or the emulator start (a bad setting must not cost their start-up): what
 * they would fill in stands in as a placeholder.
 */
export function checkSettingsBeforeServices(
  values: Record<string, string | undefined>,
  options: { withEmulator: boolean; host: boolean },
): Config {
  const placeholders: Record<string, string> = {};
  const local = 'UseDevelopmentStorage=true';
  if (!hasSetting(values, 'AzureWebJobsStorage')) placeholders['AzureWebJobsStorage'] = local;
  if (!hasSetting(values, 'DESTINATION_STORAGE')) placeholders['DESTINATION_STORAGE'] = local;
  if (!hasSetting(values, 'GRAPH_BASE_URL')) {
    placeholders['GRAPH_BASE_URL'] = 'https://127.0.0.1:1/v1.0';
    // The emulator fills the currencies too; a command without it (runs) needs none.
    if (!hasSetting(values, 'EXPORT_CURRENCIES')) placeholders['EXPORT_CURRENCIES'] = 'USD,EUR';
    if (options.withEmulator) embeddedScenario(values);
  }
  if (!options.host && !hasSetting(values, 'EXPORT_CURRENCIES')) placeholders['EXPORT_CURRENCIES'] = 'USD';
  const config = loadConfig({ ...values, ...placeholders });
  if (options.host) localQueueSettings(values);
  return config;
}

/**
 * The settings of run and start, checked before anything starts. `--currencies` stands in for EXPORT_CURRENCIES
 * when that setting is absent (written into `values`: the timer of start uses it too).
 */
export function checkRunSettings(values: Record<string, string | undefined>, currencies: string[] | undefined): Config {
  if (currencies !== undefined && !hasSetting(values, 'EXPORT_CURRENCIES')) {
    values['EXPORT_CURRENCIES'] = currencies.join(',');
  }
  return checkSettingsBeforeServices(values, { withEmulator: true, host: true });
}

/** Refuses a port that is taken before anything starts (the host's own listen still checks again). */
async function checkPortFree(port: number): Promise<void> {
  if (port === 0) return;
  const server = createServer();
  const taken = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(true));
    server.listen(port, '127.0.0.1', () => resolve(false));
  });
  if (!taken) await new Promise<void>((resolve) => server.close(() => resolve()));
  if (taken) throw portInUse(port);
}

function portInUse(port: number): ExportError {
  return new ExportError(
    'PORT_IN_USE',
    `port ${port} on localhost is in use (is "func start" or another "serve" running?). Accepted: a free port, --port 0 for any free port, or no --port (7071, else a free port)`,
  );
}

async function commandRun(argv: string[], mode: 'run' | 'start'): Promise<number> {
  const spec = mode === 'run' ? RUN_COMMAND : START_COMMAND;
  const parsed = parseCommandLine(spec, argv);
  if (parsed.help) {
    stdout(formatHelp(spec));
    return 0;
  }
  const flags = runFlags(spec, parsed);
  const settings = readLocalSettings();
  const config = checkRunSettings(settings.values, flags.currencies);
  // Only billed datasets, no invoice ids and no discovery: nothing can start, known before anything starts.
  const asked = flags.datasets ?? config.datasets;
  if (
    mode === 'run' &&
    flags.invoiceIds === undefined &&
    config.invoiceDiscovery.mode === 'off' &&
    asked.every(isBilled)
  ) {
    const skipped: SkippedDatasets[] = [{ datasets: asked, kind: 'needsInvoices', reason: NO_INVOICES_REASON }];
    for (const skip of skipped) stderr(`Skipped ${skip.datasets.join(', ')}: ${skip.reason}.`);
    if (flags.json) stdout(JSON.stringify(summarise([], new Map(), skipped)));
    return nothingStarted(skipped);
  }
  if (flags.port !== undefined) await checkPortFree(flags.port);
  const { currencies, billingPeriods, attributeSet, datasets, invoiceIds, timeoutMinutes } = flags;
  const commandStartedAt = new Date().toISOString();

  const display = createProgressDisplay(process.stderr);
  const shutdown = installShutdown(stderr);
  shutdown.beforeStop = () => display.stop();
  try {
    const { env, embedded } = await prepare({
      command: mode,
      settings,
      shutdown,
      log: display.log,
      emulatorLog: flags.verbose ? display.log : undefined,
    });
    const log = hostLogger(display, flags.verbose || !process.stderr.isTTY);
    const host =
      mode === 'start' ? await startHttpHost(env, log, shutdown, flags.port) : await startHostFor(env, log, shutdown);
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
    const skipped: SkippedDatasets[] = [];
    const started = await shutdown.step(() =>
      startExports(
        {
          onSkipped: (skip) => skipped.push(skip),
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
    for (const skip of skipped) display.log(`Skipped ${skip.datasets.join(', ')}: ${skip.reason}.`);
    // Runs started over HTTP or by the timer meanwhile show on the console of start, which keeps serving.
    if (mode === 'start') {
      const ignore = new Set(started.map((r) => r.runId));
      followRuns(deps, { since: commandStartedAt, log: display.log, signal: shutdown.signal, ignore });
    }
    if (mode === 'run' && started.length === 0) {
      display.stop();
      if (flags.json) stdout(JSON.stringify(summarise([], new Map(), skipped)));
      return nothingStarted(skipped);
    }
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
    const folders = await currentFolders(runs, deps);
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
    for (const line of whereFilesAre(runs, env, embedded, mode === 'start', folders)) stderr(line);
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
    if (flags.json) stdout(JSON.stringify(summarise(runs, curations, skipped, folders)));
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
  const parsed = parseCommandLine(SERVE_COMMAND, argv);
  if (parsed.help) {
    stdout(formatHelp(SERVE_COMMAND));
    return 0;
  }
  const port = portFlag(SERVE_COMMAND, parsed);
  const verbose = switchFlag(parsed, 'verbose');
  const settings = readLocalSettings();
  checkSettingsBeforeServices(settings.values, { withEmulator: true, host: true });
  if (port !== undefined) await checkPortFree(port);
  const shutdown = installShutdown(stderr);
  // Ctrl-C is the normal way to stop serving.
  shutdown.exitCode = 0;
  let env: Record<string, string | undefined>;
  let embedded: EmbeddedServices;
  let host: LocalFunctionsHost;
  // The serving console shows the host's lines, as "func start" does.
  const log = hostLogger({ log: stderr }, true);
  try {
    ({ env, embedded } = await prepare({
      command: 'serve',
      settings,
      shutdown,
      log: stderr,
      emulatorLog: verbose ? stderr : undefined,
    }));
    host = await startHttpHost(env, log, shutdown, port);
  } catch (error) {
    if (!shutdown.stopping) await shutdown.stopAll();
    throw error;
  }
  stderr(
    `Local host on ${host.httpBaseUrl}: POST /api/exports, GET /api/exports/runs[/{runId}], POST /admin/functions/startExportsTimer.`,
  );
  stderr(`Timer: ${loadConfig(env).schedule} (UTC). Ctrl-C to stop.`);
  const deps = getDeps((level, line) => log(level, 'cli', line));
  followRuns(deps, { since: new Date().toISOString(), log: stderr, signal: shutdown.signal });
  await resumeAtStartUp(deps, embedded, stderr);
  return forever();
}

/** `runs` flags as the ledger query reads them; a bad value names its flag (USAGE_INVALID). */
function runsQuery(parsed: ParsedCommandLine): RunQuery {
  const flags: Record<string, string> = { invoiceId: 'invoice' };
  try {
    return parseRunQuery({
      status: stringFlag(parsed, 'status'),
      since: stringFlag(parsed, 'since'),
      until: stringFlag(parsed, 'until'),
      currency: stringFlag(parsed, 'currency'),
      dataset: stringFlag(parsed, 'dataset'),
      invoiceId: stringFlag(parsed, 'invoice'),
      limit: stringFlag(parsed, 'limit'),
    });
  } catch (error) {
    if (!isExportError(error) || error.code !== 'REQUEST_INVALID') throw error;
    // The query's problems name its parameters (`status: …; limit: …`): name the flags instead.
    const problems = error.message
      .split('; ')
      .map((problem) =>
        problem.replace(
          /^(status|since|until|currency|dataset|invoiceId|limit):/,
          (_, name: string) => `--${flags[name] ?? name}:`,
        ),
      );
    throw usageError(RUNS_COMMAND, problems.join('; '));
  }
}

async function commandRuns(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(RUNS_COMMAND, argv);
  if (parsed.help) {
    stdout(formatHelp(RUNS_COMMAND));
    return 0;
  }
  const [runId] = parsed.positionals;
  if (runId !== undefined && !isRunId(runId)) {
    throw usageError(
      RUNS_COMMAND,
      `"${runId}" is not a run id`,
      'a run id as "runs" prints it, e.g. 20261207T060000123Z-9f3a1c2b',
    );
  }
  const query = runsQuery(parsed);
  const json = switchFlag(parsed, 'json');
  const settings = readLocalSettings();
  checkSettingsBeforeServices(settings.values, { withEmulator: false, host: false });
  const shutdown = installShutdown(stderr);
  const { env } = await prepare({
    command: 'runs',
    settings,
    shutdown,
    withoutEmulator: true,
    attach: true,
    log: stderr,
  });
  try {
    const deps = getDeps((level, line) => stderr(`${level} ${line}`), {
      ...env,
      GRAPH_BASE_URL: env['GRAPH_BASE_URL'] ?? 'https://127.0.0.1:1/v1.0',
      EXPORT_CURRENCIES: env['EXPORT_CURRENCIES'] ?? 'USD',
    });
    if (runId !== undefined) {
      const details = await getRunDetails(runId, deps);
      stdout(JSON.stringify(details, null, 2));
      return 0;
    }
    const runs = (await listRuns(query, deps)).map(publicRun);
    if (json) {
      stdout(JSON.stringify({ runs }));
      return 0;
    }
    const filters = runsFilterText(parsed, RUNS_COMMAND);
    // "No runs match" only when there are runs the filters left out.
    const anyRun =
      runs.length > 0 || filters === '' ? runs.length > 0 : (await listRuns({ limit: 1 }, deps)).length > 0;
    for (const line of formatRunsTable(runs, { filters, anyRun })) stdout(line);
    return 0;
  } finally {
    if (!shutdown.stopping) {
      await shutdown.stopAll();
      shutdown.dispose();
    }
  }
}

/** The emulator's flags are checked against its description first; its own parser (src/emulator/main.ts) reads them. */
async function commandEmulator(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(EMULATOR_COMMAND, argv);
  if (parsed.help) {
    stdout(formatHelp(EMULATOR_COMMAND));
    return 0;
  }
  let port: number;
  try {
    ({ port } = parseEmulatorArgs(argv));
  } catch (error) {
    throw usageError(EMULATOR_COMMAND, errorMessage(error).replace(/\.$/, ''));
  }
  await checkPortFree(port);
  await runEmulatorCommand(argv);
  return 0;
}

const COMMANDS: Record<string, { spec: CommandSpec; run: (argv: string[]) => Promise<number> }> = {
  run: { spec: RUN_COMMAND, run: (argv) => commandRun(argv, 'run') },
  start: { spec: START_COMMAND, run: (argv) => commandRun(argv, 'start') },
  serve: { spec: SERVE_COMMAND, run: commandServe },
  runs: { spec: RUNS_COMMAND, run: commandRuns },
  files: { spec: FILES_COMMAND, run: (argv) => commandFiles(argv) },
  query: { spec: QUERY_COMMAND, run: commandQuery },
  doctor: { spec: DOCTOR_COMMAND, run: commandDoctor },
  emulator: { spec: EMULATOR_COMMAND, run: commandEmulator },
};

/** The general help: every command with one line. */
export function usage(): string {
  return generalHelp(Object.values(COMMANDS).map((command) => command.spec));
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h') {
    stdout(usage());
    return command === undefined ? EXIT_CODES.usageOrConfiguration : 0;
  }
  if (command === 'help') {
    // `help run` is `run --help`.
    const [about] = rest;
    if (about === undefined) {
      stdout(usage());
      return 0;
    }
    return main([about, '--help']);
  }
  const found = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (found === undefined) {
    throw usageError(undefined, `unknown command "${command}"`, [...Object.keys(COMMANDS), 'help'].join(', '));
  }
  return found.run(rest);
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
      const { line, exitCode } = describeFailure(error);
      stderr(line);
      process.exitCode = exitCode;
      setImmediate(() => process.exit());
    });
}

if (require.main === module) runCli();
