/**
 * `npm run bench` (`-- --quick` for the small preset): issue 9's figures in ONE table, each against a baseline
 * measured in the same run. Stdout gets the table, the detail tables, and last one JSON line; progress goes to stderr.
 * Nothing here asserts a wall-clock limit: missed targets are reported, and the exit code stays 0.
 *
 * Rows:
 *  1. command line: spawn to the first Graph request (embedded Azurite) against starting Azurite alone;
 *     `runs` against a running Azurite, against a bare `node` start.
 *  2. cold start: importing the Functions entry (package.json `main`) against `@azure/functions` alone.
 *  3. copy phase: `run` of N blobs through the built command line: Graph's success to manifest.json, against the
 *     same server-side copies (and the manifest write) issued directly with the SDK.
 *  4. request economy: storage transactions and Graph requests per export and per blob, against the least the
 *     design needs; the cost of a daily export at list prices.
 *  5. large blobs: parallel Put Block From URL against a fake service with latency and bandwidth.
 *  6. orchestration of 200 small blobs; the streaming fallback's peak RSS for a 512 MiB blob.
 *  7. curation: one raw file converted to typed Parquet and FOCUS, against DuckDB's own COPY of the same two files
 *     from the JSON (the target's baseline) and of the typed columns alone (a lower bound); time and peak RSS, each
 *     in a fresh process; with BENCH_CURATION_LARGE_GB, a large export's peak RSS; the curation cost per day
 *     (curationBench.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { basename, join } from 'node:path';
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import { loadConfig } from '../../src/config';
import { createExportDataStore } from '../../src/emulator/exportDataStore';
import { type PartnerBillingEmulator, startPartnerBillingEmulator } from '../../src/emulator/partnerBillingEmulator';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  exportSourceStorage,
  PARTNER_DEST_ACCOUNT,
  startAzurite,
} from '../../src/local/azurite';
import {
  cliEntry,
  countByClass,
  type Endpoints,
  fixed,
  functionsEntryFiles,
  hostOf,
  median,
  type ResultRow,
  ROOT,
  renderTable,
  round,
} from './benchSupport';
import { measureBlockCopy, modelBoundSeconds, type ServiceModel } from './blockCopyModel';
import { gzipBytesPerRow, runWorker } from './copyBench';
import { measureCuration } from './curationBench';
import type { RequestTraceFile, TracedRequest } from './requestTrace';

const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Options

interface Options {
  quick: boolean;
  /** Spawns of each command-line and import measurement. */
  spawnRuns: number;
  copyBlobs: number;
  copyMiB: number;
  /** Timed `run`s of the copy phase (after one warm-up that also generates the data). */
  copyRuns: number;
  orchestrationBlobs: number;
  orchestrationRuns: number;
  streamMiB: number;
  blockBlobsMiB: number[];
  blockSizesMiB: number[];
  concurrencies: number[];
  model: ServiceModel;
  /** Usage rows of the curation file (item 7) and rounds of the two conversions. */
  curationRows: number;
  curationRounds: number;
  /** Raw JSON bytes of item 7's large export (env BENCH_CURATION_LARGE_GB), or undefined: not measured. */
  curationLargeBytes: number | undefined;
  only: Set<string> | undefined;
}

function parseOptions(argv: readonly string[]): Options {
  const flags = new Map<string, string>();
  for (const arg of argv) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (match === null) throw new Error(`Unknown argument '${arg}'. Accepted: --quick, --only=1,3,...`);
    flags.set(match[1]!, match[2] ?? 'true');
  }
  const quick = flags.has('quick') || process.env['BENCH_QUICK'] === '1';
  const only = flags.get('only');
  for (const name of flags.keys()) {
    if (name !== 'quick' && name !== 'only')
      throw new Error(`Unknown option '--${name}'. Accepted: --quick, --only=1,3,...`);
  }
  return {
    quick,
    spawnRuns: quick ? 2 : 5,
    copyBlobs: quick ? 4 : 16,
    copyMiB: quick ? 8 : 32,
    copyRuns: quick ? 1 : 3,
    orchestrationBlobs: quick ? 100 : 200,
    orchestrationRuns: quick ? 1 : 3,
    streamMiB: quick ? 128 : 512,
    // Virtual time: the whole sweep takes about a second, so quick runs it all too.
    blockBlobsMiB: [300, 1024, 4096],
    blockSizesMiB: [4, 8, 16, 32, 64, 100],
    concurrencies: [1, 2, 4, 8, 16, 32, 64],
    // Assumptions, not measurements: see docs/performance.md (item 5).
    model: { latencyMs: 30, requestMiBps: 60, serviceMiBps: 1900 },
    curationRows: quick ? 100_000 : 300_000,
    // More rounds (env BENCH_CURATION_ROUNDS) steady the medians on a loaded machine.
    curationRounds: Math.max(1, Number(process.env['BENCH_CURATION_ROUNDS'] ?? 3) || 3),
    curationLargeBytes:
      process.env['BENCH_CURATION_LARGE_GB'] === undefined
        ? undefined
        : Number(process.env['BENCH_CURATION_LARGE_GB']) * 1024 ** 3,
    only: only === undefined ? undefined : new Set(only.split(',')),
  };
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

const nowMs = (): number => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------------------------
// Spawning the built command line

interface Spawned {
  code: number | null;
  spawnedAt: number;
  exitedAt: number;
  /** When the command printed its first line to stdout (`run --json` prints its result there, once). */
  firstStdoutAt: number;
  stdout: string;
  stderr: string;
  trace: RequestTraceFile | undefined;
}

const TRACE_MODULE = join(__dirname, 'requestTrace.js');
const MODULE_PROBE = join(__dirname, 'moduleProbe.js');

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // Only what a shell would give: no settings of this process leak into the command.
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR', 'SystemRoot']) {
    if (process.env[name] !== undefined) env[name] = process.env[name];
  }
  return { ...env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', ...extra };
}

/**
 * Runs `node [-r requestTrace] <args>` in its own process group. `stopWhen` may end it early (SIGKILL to the group,
 * which also ends an Azurite it started: Azurite leads its own group, so it is stopped through `pidsToKill`).
 */
async function spawnNode(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  options: { trace?: boolean; timeoutMs?: number; probeModules?: string } = {},
): Promise<Spawned> {
  const traceFile = options.trace ? join(cwd, `trace-${Date.now()}-${Math.random().toString(36).slice(2)}.json`) : '';
  const spawnedAt = nowMs();
  const preload = [
    ...(options.trace ? ['-r', TRACE_MODULE] : []),
    ...(options.probeModules === undefined ? [] : ['-r', MODULE_PROBE]),
  ];
  const child: ChildProcess = spawn(process.execPath, [...preload, ...args], {
    cwd,
    env: {
      ...env,
      ...(options.trace ? { BENCH_TRACE_FILE: traceFile } : {}),
      ...(options.probeModules === undefined ? {} : { BENCH_MODULES_FILE: options.probeModules }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let firstStdoutAt = Number.NaN;
  child.stdout?.on('data', (chunk: Buffer) => {
    if (stdout === '') firstStdoutAt = nowMs();
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  const exitedAt = nowMs();
  clearTimeout(timeout);
  let trace: RequestTraceFile | undefined;
  if (options.trace) {
    try {
      trace = JSON.parse(readFileSync(traceFile, 'utf8')) as RequestTraceFile;
      // For a closer look at where the time goes: every traced request of every spawned command, kept.
      const keep = process.env.BENCH_TRACE_DIR;
      if (keep !== undefined && keep !== '') copyFileSync(traceFile, join(keep, basename(traceFile)));
    } catch {
      trace = undefined;
    }
  }
  return { code, spawnedAt, exitedAt, firstStdoutAt, stdout, stderr, trace };
}

// ---------------------------------------------------------------------------------------------------------------
// The bench's own services

interface EmulatorLine {
  at: number;
  method: string;
  path: string;
  status: number;
}

interface Services {
  azurite: AzuriteInstance;
  emulator: PartnerBillingEmulator;
  lines: EmulatorLine[];
  endpoints: Endpoints;
  ledger: TableRunLedger;
  workDir: string;
  /** Settings of the command line against these services. */
  env(container: string, extra?: Record<string, string>): NodeJS.ProcessEnv;
}

async function startServices(): Promise<Services> {
  const azurite = await startAzurite();
  const lines: EmulatorLine[] = [];
  const emulator = await startPartnerBillingEmulator({
    storage: exportSourceStorage(azurite),
    scenario: { pollsBeforeSuccess: 0, retryAfterSeconds: 1, blobCount: 1, rowsPerBlob: 100 },
    log: (line) => {
      const match = /^emulator: (\w+) (\S+) -> (\d+)$/.exec(line);
      if (match !== null) lines.push({ at: nowMs(), method: match[1]!, path: match[2]!, status: Number(match[3]) });
    },
  });
  const workDir = mkdtempSync(join(tmpdir(), 'csp-bench-'));
  const hostConnection = azurite.connectionString(DEV_STORE_ACCOUNT.name);
  return {
    azurite,
    emulator,
    lines,
    workDir,
    endpoints: {
      blob: hostOf(azurite.blobEndpoint),
      queue: hostOf(azurite.queueEndpoint),
      table: hostOf(azurite.tableEndpoint),
    },
    ledger: new TableRunLedger({ kind: 'connectionString', connectionString: hostConnection }),
    env: (container, extra = {}) =>
      baseEnv({
        AzureWebJobsStorage: hostConnection,
        DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
        DESTINATION_CONTAINER: container,
        GRAPH_BASE_URL: emulator.baseUrl,
        GRAPH_CA_CERT_FILE: emulator.caCertPath,
        EXPORT_CURRENCIES: 'USD',
        EXPORT_BILLING_PERIODS: 'current',
        EXPORT_SCHEDULE: '0 0 6 * * *',
        EXPORT_POLL_INITIAL_SECONDS: '1',
        EXPORT_POLL_MAX_SECONDS: '5',
        ...extra,
      }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Items 1 and 2: command line and cold start

async function measureCommandLine(services: Services, options: Options, rows: ResultRow[]): Promise<void> {
  const cli = cliEntry();
  // Baseline: starting Azurite alone, with its data in a folder as the command line keeps it (.azurite/).
  const azuriteStarts: number[] = [];
  const firstGraph: number[] = [];
  // DuckDB (about 70 MB of native code) belongs to the conversion: `run` must not load it on its way to the first
  // Graph request, nor anywhere but in a conversion (the run below converts the emulator's JPY rows at its end).
  const duckDbInRun: string[] = [];
  for (let run = 0; run < options.spawnRuns; run++) {
    const location = mkdtempSync(join(services.workDir, 'azurite-'));
    const started = nowMs();
    const instance = await startAzurite({ location });
    azuriteStarts.push(nowMs() - started);
    await instance.stop();

    // The command line with embedded Azurite (no storage settings) and the bench's emulator as Graph. JPY answers
    // noData at the first status check, so the command ends by itself (and stops its Azurite) soon after.
    const cwd = mkdtempSync(join(services.workDir, 'cli-'));
    const env = services.env('benchcli', { EXPORT_CURRENCIES: 'JPY' });
    delete env['AzureWebJobsStorage'];
    delete env['DESTINATION_STORAGE'];
    const before = services.lines.length;
    const probe = join(cwd, 'modules.json');
    const spawned = await spawnNode([cli, 'run', '--currencies', 'JPY', '--periods', 'current'], env, cwd, {
      timeoutMs: 120_000,
      probeModules: probe,
    });
    const first = readProbe(probe);
    const post = services.lines.slice(before).find((line) => line.method === 'POST');
    if (post === undefined) {
      log(`command line run gave no Graph request (exit ${spawned.code}): ${spawned.stderr.slice(-2000)}`);
    } else {
      firstGraph.push(post.at - spawned.spawnedAt);
    }
    if (first !== undefined && (post === undefined || first.at < post.at || !first.stack.includes('convertFile'))) {
      duckDbInRun.push(first.stack);
    }
  }
  const ours = median(firstGraph);
  const base = median(azuriteStarts);
  rows.push({
    item: '1',
    figure: 'command line: spawn to first Graph request (embedded Azurite), s',
    ours: fixed(ours / 1000),
    baseline: `${fixed(base / 1000)} (Azurite start)`,
    ratio: `+${fixed((ours - base) / 1000)} s`,
    target: '<= Azurite start + 1.5 s',
    met: ours - base <= 1500,
    values: { firstGraphMs: round(ours, 0), azuriteStartMs: round(base, 0) },
  });

  // `runs` against the running Azurite, against a bare node start.
  const listing: number[] = [];
  const bare: number[] = [];
  const cwd = mkdtempSync(join(services.workDir, 'runs-'));
  for (let run = 0; run < options.spawnRuns; run++) {
    const spawned = await spawnNode([cli, 'runs', '--limit', '20'], services.env('benchcli'), cwd, {
      timeoutMs: 60_000,
    });
    if (spawned.code !== 0) log(`runs exited ${spawned.code}: ${spawned.stderr.slice(-1000)}`);
    listing.push(spawned.exitedAt - spawned.spawnedAt);
    const node = await spawnNode(['-e', '0'], baseEnv({}), cwd);
    bare.push(node.exitedAt - node.spawnedAt);
  }
  rows.push({
    item: '1',
    figure: '`runs` listing against a running Azurite, s',
    ours: fixed(median(listing) / 1000),
    baseline: `${fixed(median(bare) / 1000)} (node -e 0)`,
    ratio: `${fixed(median(listing) / median(bare), 1)}x`,
    target: '< 1.5 s',
    met: median(listing) < 1500,
    values: { runsMs: round(median(listing), 0), nodeMs: round(median(bare), 0) },
  });

  // Importing the Functions entry (what the host loads) against @azure/functions alone, each in a fresh process,
  // without and with APPLICATIONINSIGHTS_CONNECTION_STRING (always set in Azure; a loopback endpoint, never called).
  const files = functionsEntryFiles();
  const functionsModule = require.resolve('@azure/functions', { paths: [ROOT] });
  // The figure is the last line: @azure/functions in test mode prints its set-up (the telemetry capability) to stdout.
  const timeRequire = (paths: string[]) =>
    `const t=performance.now();for(const f of ${JSON.stringify(paths)})require(f);const ms=performance.now()-t;process.stdout.write('\\n'+JSON.stringify({ms,duckdb:Object.keys(require.cache).filter((k)=>/[\\/]@?duckdb|duckdb\\.node$/.test(k))}));`;
  // The figure is the last line (JSON): @azure/functions in test mode may print its set-up before it.
  const figure = (stdout: string): { ms: number; duckdb: string[] } =>
    JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { ms: number; duckdb: string[] };
  const telemetryOn = {
    APPLICATIONINSIGHTS_CONNECTION_STRING:
      'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/',
  };
  const entry: number[] = [];
  const entryWithTelemetry: number[] = [];
  const alone: number[] = [];
  const duckDbInEntry = new Set<string>();
  for (let run = 0; run < options.spawnRuns; run++) {
    const a = figure((await spawnNode(['-e', timeRequire(files)], baseEnv({}), ROOT)).stdout);
    entry.push(a.ms);
    for (const name of a.duckdb) duckDbInEntry.add(name);
    const t = figure((await spawnNode(['-e', timeRequire(files)], baseEnv(telemetryOn), ROOT)).stdout);
    entryWithTelemetry.push(t.ms);
    for (const name of t.duckdb) duckDbInEntry.add(name);
    const b = figure((await spawnNode(['-e', timeRequire([functionsModule])], baseEnv({}), ROOT)).stdout);
    alone.push(b.ms);
  }
  for (const [label, samples] of [
    ['', entry],
    [', with APPLICATIONINSIGHTS_CONNECTION_STRING', entryWithTelemetry],
  ] as const) {
    rows.push({
      item: '2',
      figure: `cold start: import of the Functions entry (${files.length} file(s) of package.json main)${label}, ms`,
      ours: fixed(median(samples), 0),
      baseline: `${fixed(median(alone), 0)} (@azure/functions)`,
      ratio: `${fixed(median(samples) / median(alone), 1)}x`,
      target: '<= 150 ms',
      met: median(samples) <= 150,
      values: { entryImportMs: round(median(samples), 1), functionsImportMs: round(median(alone), 1) },
    });
  }
  rows.push({
    item: '2',
    figure: 'DuckDB loaded by the Functions entry, or by `run` before its first Graph request or outside a conversion',
    ours: `${duckDbInEntry.size + duckDbInRun.length}`,
    baseline: `${duckDbInEntry.size} entry modules, ${duckDbInRun.length} of ${options.spawnRuns} runs`,
    ratio: '-',
    target: '0',
    met: duckDbInEntry.size + duckDbInRun.length === 0,
    values: { duckDbModulesInEntry: duckDbInEntry.size, duckDbEarlyRuns: duckDbInRun.length },
  });
  if (duckDbInEntry.size > 0) log(`DuckDB loaded by the Functions entry: ${[...duckDbInEntry].join(', ')}`);
  for (const stack of duckDbInRun)
    log(`DuckDB loaded by run before its first Graph request or outside a conversion:\n${stack}`);
}

/** When and from where a probed process first loaded DuckDB (moduleProbe.ts); undefined when it never did. */
function readProbe(file: string): { at: number; stack: string } | undefined {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { firstLoad?: { at: number; stack: string } }).firstLoad;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Items 3, 4 and 6: exports through the built command line, against the same operations issued directly

interface ExportTiming {
  runId: string;
  blobCount: number;
  byteCount: number;
  /** Graph's success (the last operation GET answered) to the first copy request. */
  pickupMs: number;
  /** Graph's success to the first copy message sent (run bookkeeping of the fan-out). */
  fanOutMs: number;
  /** First to last copy message sent. */
  sendMs: number;
  /** First copy message sent to the local host's next receive on the copy queue. */
  receiveAfterFirstSendMs: number;
  /** First copy request to the last copy response. */
  copyWindowMs: number;
  /** Time inside the copy window when no copy request was in flight. */
  noCopyInFlightMs: number;
  /** Last copy response to manifest.json written. */
  completionMs: number;
  /** Graph's success to manifest.json written (the figure of items 3 and 6 before it measured what the user sees). */
  totalMs: number;
  /** Graph's success to the command's result (its `--json` line): what the user of the command waits for. */
  resultMs: number;
  /** manifest.json written to the process's exit. */
  exitMs: number;
  graphRequests: number;
  /** Messages put on the status queue (one per status check). */
  statusSends: number;
  counts: Record<string, number>;
  socketBytes: number;
  requests: TracedRequest[];
}

async function runExport(
  services: Services,
  currency: string,
  container: string,
  label: string,
): Promise<ExportTiming | undefined> {
  const cwd = mkdtempSync(join(services.workDir, 'run-'));
  const before = services.lines.length;
  const spawned = await spawnNode(
    [cliEntry(), 'run', '--currencies', currency, '--periods', 'current', '--force', '--json'],
    // Curation follows the copy phase and the command waits for it: off, so the command's result ends the copy phase.
    services.env(container, { EXPORT_CURRENCIES: currency, EXPORT_CURATION: 'off' }),
    cwd,
    { trace: true, timeoutMs: 900_000 },
  );
  const lines = services.lines.slice(before);
  const summary = spawned.stdout.trim().split('\n').pop() ?? '';
  let runId = '';
  try {
    runId = (JSON.parse(summary) as { runs: Array<{ runId: string; status: string }> }).runs[0]?.runId ?? '';
  } catch {
    // reported below
  }
  if (spawned.code !== 0 || runId === '' || spawned.trace === undefined) {
    log(`${label}: run failed (exit ${spawned.code}): ${spawned.stderr.slice(-3000)}`);
    return undefined;
  }
  const run = (await services.ledger.getRun(runId))?.value;
  const requests = spawned.trace.requests;
  const operationGets = lines.filter((line) => line.method === 'GET' && line.path.includes('/operations/'));
  const success = operationGets.at(-1)?.at ?? Number.NaN;
  const copies = requests.filter((request) => request.copy === true);
  const firstCopy = Math.min(...copies.map((request) => request.start));
  const lastCopy = Math.max(...copies.map((request) => request.end ?? request.start));
  const copySends = requests.filter(
    (request) => request.method === 'POST' && request.path.endsWith('/export-copy/messages'),
  );
  const firstSend = Math.min(...copySends.map((request) => request.start));
  const lastSendEnd = Math.max(...copySends.map((request) => request.end ?? request.start));
  const firstReceive = requests.find(
    (request) =>
      request.method === 'GET' && request.path.endsWith('/export-copy/messages') && request.start >= firstSend,
  );
  // Time inside the copy window with no copy in flight: the pipeline's bubbles between copies.
  const events = copies
    .flatMap((request) => [
      { at: request.start, delta: 1 },
      { at: request.end ?? request.start, delta: -1 },
    ])
    .sort((x, y) => x.at - y.at || y.delta - x.delta);
  let inFlight = 0;
  let idleSince = Number.NaN;
  let noCopyMs = 0;
  for (const event of events) {
    if (inFlight === 0 && event.delta > 0 && Number.isFinite(idleSince)) noCopyMs += event.at - idleSince;
    inFlight += event.delta;
    if (inFlight === 0) idleSince = event.at;
  }
  const manifest = requests.find((request) => request.method === 'PUT' && request.path.endsWith('/manifest.json'));
  const manifestAt = manifest?.end ?? Number.NaN;
  return {
    runId,
    blobCount: run?.blobCount ?? 0,
    byteCount: run?.byteCount ?? 0,
    pickupMs: firstCopy - success,
    fanOutMs: firstSend - success,
    sendMs: lastSendEnd - firstSend,
    receiveAfterFirstSendMs: (firstReceive?.start ?? Number.NaN) - firstSend,
    copyWindowMs: lastCopy - firstCopy,
    noCopyInFlightMs: noCopyMs,
    completionMs: manifestAt - lastCopy,
    totalMs: manifestAt - success,
    resultMs: spawned.firstStdoutAt - success,
    exitMs: spawned.exitedAt - manifestAt,
    graphRequests: lines.length,
    statusSends: requests.filter(
      (request) => request.method === 'POST' && request.path.endsWith('/export-status/messages'),
    ).length,
    counts: countByClass(requests, services.endpoints),
    socketBytes: spawned.trace.socketBytes,
    requests,
  };
}

async function latestRunId(services: Services, currency: string): Promise<string> {
  const runs = await services.ledger.listRuns({ currency, status: 'succeeded', limit: 1 });
  return runs[0]?.runId ?? '';
}

/** Deletes every blob of a destination container under a prefix (the copies of one measurement pair). */
async function deleteFolder(services: Services, container: string, prefix: string): Promise<void> {
  const client = new ContainerClient(
    `${services.azurite.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}/${container}`,
    new StorageSharedKeyCredential(PARTNER_DEST_ACCOUNT.name, PARTNER_DEST_ACCOUNT.key),
  );
  for await (const item of client.listBlobsFlat({ prefix })) {
    if (!item.name.endsWith('/latest.json')) await client.getBlockBlobClient(item.name).deleteIfExists();
  }
}

/** The floor: the same server-side copies (host.json batchSize at a time) and the manifest write, issued directly. */
async function floorCopy(services: Services, runId: string, container: string, concurrency: number) {
  const run = (await services.ledger.getRun(runId))?.value;
  const names = (await services.ledger.listBlobs(runId)).map((blob) => blob.name);
  if (run?.rootDirectory === undefined) throw new Error(`Run ${runId} has no rootDirectory.`);
  const store = createExportDataStore(exportSourceStorage(services.azurite));
  const sas = store.sasToken(new Date(Date.now() + 3600_000));
  const destination = new ContainerClient(
    `${services.azurite.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}/${container}`,
    new StorageSharedKeyCredential(PARTNER_DEST_ACCOUNT.name, PARTNER_DEST_ACCOUNT.key),
  );
  const folder = `floor/${Date.now().toString(36)}`;
  const started = nowMs();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const name = names[next++]!;
      const path = name.split('/').map(encodeURIComponent).join('/');
      await destination.getBlockBlobClient(`${folder}/${name}`).syncCopyFromURL(`${run.rootDirectory}/${path}?${sas}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));
  const copiesMs = nowMs() - started;
  const body = Buffer.from(JSON.stringify({ runId, blobs: names }));
  await destination.getBlockBlobClient(`${folder}/manifest.json`).upload(body, body.length);
  return { copiesMs, totalMs: nowMs() - started };
}

interface ExportSeries {
  runs: ExportTiming[];
  floors: Array<{ copiesMs: number; totalMs: number }>;
}

async function measureExports(
  services: Services,
  currency: string,
  blobs: number,
  blobMiB: number,
  runs: number,
  label: string,
): Promise<ExportSeries> {
  const perRow = await gzipBytesPerRow({
    currency,
    attributeSet: 'full',
    billingMonth: '202410',
    usageDays: 31,
    partnerTenantId: '3b4c6a1e-5d2f-4e8a-9b7c-0d1e2f3a4b5c',
    seed: 1,
    rowsPerBlob: 0,
  });
  const rowsPerBlob = Math.max(20, Math.round((blobMiB * MiB) / perRow));
  services.emulator.configure({ blobCount: blobs, rowsPerBlob, pollsBeforeSuccess: 0, retryAfterSeconds: 1 }, currency);
  const container = `bench${currency.toLowerCase()}${Date.now().toString(36)}`;
  const concurrency = loadConfig(services.env(container) as Record<string, string>).copy.concurrency;
  if (blobMiB >= 1) {
    // Large data takes the emulator a while to generate: a first, untimed run writes it (later runs reuse it).
    log(`${label}: warm-up run (generates ${blobs} x ${rowsPerBlob} rows), copy concurrency setting ${concurrency}`);
    await runExport(services, currency, container, `${label} warm-up`);
  }
  const series: ExportSeries = { runs: [], floors: [] };
  const batchSize = 8; // host.json extensions.queues.batchSize: copies one local host runs at once.
  // Pairs in alternating order (Azurite slows down as it holds more data, and the machine's load drifts); the
  // copies of a pair are deleted after it, so every pair starts from the same Azurite.
  let previousRunId = await latestRunId(services, currency);
  for (let run = 0; run < runs; run++) {
    log(`${label}: timed run ${run + 1}/${runs}`);
    const floorFirst = run % 2 === 1 && previousRunId !== '';
    const early = floorFirst ? await floorCopy(services, previousRunId, container, batchSize) : undefined;
    const timing = await runExport(services, currency, container, label);
    if (timing === undefined) continue;
    previousRunId = timing.runId;
    series.runs.push(timing);
    series.floors.push(early ?? (await floorCopy(services, timing.runId, container, batchSize)));
    await deleteFolder(services, container, '');
    log(
      `${label}: ours ${fixed(timing.totalMs, 0)} ms (pickup ${fixed(timing.pickupMs, 0)}, copies ${fixed(timing.copyWindowMs, 0)}, completion ${fixed(timing.completionMs, 0)}; exit +${fixed(timing.exitMs, 0)}), floor ${fixed(series.floors.at(-1)?.totalMs ?? Number.NaN, 0)} ms`,
    );
  }
  return series;
}

/** The least the design needs, per export of B blobs with P status checks (docs/performance.md, item 4). */
function minimumRequests(blobs: number, statusChecks: number) {
  return {
    graph: 1 + statusChecks,
    queueSend: statusChecks + blobs,
    queueDelete: statusChecks + blobs,
    table: 8 + statusChecks + Math.ceil(blobs / 100) + 3 * blobs,
    blob: 4 + 2 * blobs,
  };
}

/**
 * The least with batched copy messages (src/pipeline/copyBatches.ts: one per blob up to 16 blobs, then at least 16
 * messages of at most 32 blobs): M messages instead of B, so queue sends and deletes P + M, and the run read and the
 * fan-in query once per message (2M) besides one write per blob.
 */
function minimumBatchedRequests(blobs: number, statusChecks: number) {
  const messages = blobs <= 16 ? blobs : Math.max(16, Math.ceil(blobs / 32));
  return {
    graph: 1 + statusChecks,
    queueSend: statusChecks + messages,
    queueDelete: statusChecks + messages,
    table: 8 + statusChecks + Math.ceil(blobs / 100) + blobs + 2 * messages,
    blob: 4 + 2 * blobs,
  };
}

function measuredRequests(timing: ExportTiming) {
  const c = (key: string) => timing.counts[key] ?? 0;
  return {
    graph: timing.graphRequests,
    queueSend: c('queue.send'),
    queueDelete: c('queue.delete'),
    queueReceive: c('queue.receive'),
    queueSetup: c('queue.other'),
    table: c('table.read') + c('table.query') + c('table.write') + c('table.batch'),
    tableSetup: c('table.other'),
    blob: c('blob.copy') + c('blob.head') + c('blob.get') + c('blob.put'),
    blobSetup: c('blob.other'),
    tableDetail: { read: c('table.read'), query: c('table.query'), write: c('table.write'), batch: c('table.batch') },
    blobDetail: { copy: c('blob.copy'), head: c('blob.head'), get: c('blob.get'), put: c('blob.put') },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Item 4: cost of a daily export at list prices

/**
 * USD list prices, pay-as-you-go, East US, LRS, as published on azure.microsoft.com/pricing (Blob: Hot tier of a
 * general-purpose v2 account; Functions: Flex Consumption on demand). Recorded 2026-12-01 from the team's notes,
 * not fetched from this offline machine: re-check before quoting.
 */
export const PRICES = {
  blobWritePer10k: 0.065,
  blobReadPer10k: 0.005,
  queuePer10k: 0.004,
  tablePer10k: 0.00036,
  flexGbSecond: 0.000026,
  flexPerMillionExecutions: 0.4,
  flexInstanceGb: 2,
};

function dailyCost(perExport: ReturnType<typeof measuredRequests>, perBlob: ReturnType<typeof measuredRequests>) {
  const runs = 10 * 2;
  const blobs = runs * 20;
  const total = (key: 'graph' | 'queueSend' | 'queueDelete' | 'queueReceive' | 'table' | 'blob') =>
    runs * perExport[key] + blobs * perBlob[key];
  const blobWrites =
    runs * (perExport.blobDetail.copy + perExport.blobDetail.put) +
    blobs * (perBlob.blobDetail.copy + perBlob.blobDetail.put);
  const blobReads = total('blob') - blobWrites;
  const queue = total('queueSend') + total('queueDelete') + total('queueReceive');
  const table = total('table');
  // Execution time: each invocation is a chain of storage calls (~15 ms each in a region) plus, per blob, the
  // service-side copy (assumed 32 MiB at 200 MiB/s). Executions: one per queue message and one timer.
  const executions = 1 + total('queueDelete');
  const seconds = (total('table') + total('blob') + total('queueSend') + total('graph')) * 0.015 + blobs * (32 / 200);
  const cost = {
    blob: (blobWrites / 10_000) * PRICES.blobWritePer10k + (blobReads / 10_000) * PRICES.blobReadPer10k,
    queue: (queue / 10_000) * PRICES.queuePer10k,
    table: (table / 10_000) * PRICES.tablePer10k,
    execution: seconds * PRICES.flexInstanceGb * PRICES.flexGbSecond,
    executions: (executions / 1_000_000) * PRICES.flexPerMillionExecutions,
  };
  return {
    transactions: { blobWrites, blobReads, queue, table, graph: total('graph') },
    executions,
    executionSeconds: seconds,
    costUsd: cost,
    totalUsd: Object.values(cost).reduce((sum, value) => sum + value, 0),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const want = (item: string) => options.only === undefined || options.only.has(item);
  const began = nowMs();
  log(`options ${JSON.stringify({ ...options, only: options.only === undefined ? 'all' : [...options.only] })}`);
  const rows: ResultRow[] = [];
  const details: string[] = [];
  const json: Record<string, unknown> = {};
  const services = await startServices();
  try {
    if (want('1') || want('2')) {
      log('items 1-2: command line and cold start');
      await measureCommandLine(services, options, rows);
    }

    let copySeries: ExportSeries | undefined;
    let orchestration: ExportSeries | undefined;
    if (want('3') || want('4')) {
      copySeries = await measureExports(
        services,
        'USD',
        options.copyBlobs,
        options.copyMiB,
        options.copyRuns,
        `copy phase ${options.copyBlobs} x ${options.copyMiB} MiB`,
      );
      const ours = copySeries.runs.map((run) => run.resultMs);
      const toManifest = copySeries.runs.map((run) => run.totalMs);
      const floor = copySeries.floors.map((f) => f.totalMs);
      const ratio = median(ours.map((value, index) => value / (floor[index] ?? Number.NaN)));
      const manifestRatio = median(toManifest.map((value, index) => value / (floor[index] ?? Number.NaN)));
      const bytes = median(copySeries.runs.map((run) => run.socketBytes / Math.max(1, run.byteCount)));
      rows.push({
        item: '3',
        figure: `copy + completion, ${options.copyBlobs} x ${options.copyMiB} MiB (Graph success to the command's result), s`,
        ours: fixed(median(ours) / 1000),
        baseline: `${fixed(median(floor) / 1000)} (same copies + manifest, SDK)`,
        ratio: `${fixed(ratio)}x`,
        target: '<= 1.15x',
        met: ratio <= 1.15,
        values: { copyPhaseMs: round(median(ours), 0), floorMs: round(median(floor), 0), ratio: round(ratio, 3) },
      });
      rows.push({
        item: '3',
        figure: '  the same, Graph success to the manifest.json write only, s',
        ours: fixed(median(toManifest) / 1000),
        baseline: `${fixed(median(floor) / 1000)} (same copies + manifest, SDK)`,
        ratio: `${fixed(manifestRatio)}x`,
        target: '-',
        met: undefined,
        values: { toManifestMs: round(median(toManifest), 0), ratio: round(manifestRatio, 3) },
      });
      const outside = median(
        copySeries.runs.map(
          (run, index) => (run.pickupMs + run.completionMs) / (copySeries?.floors[index]?.totalMs ?? Number.NaN),
        ),
      );
      rows.push({
        item: '3',
        figure: '  of which pipeline time outside the copies (pickup + completion) / floor',
        ours: fixed(outside, 3),
        baseline: '0',
        ratio: '-',
        target: '<= 0.15',
        met: outside <= 0.15,
        values: { outsideCopiesShare: round(outside, 4) },
      });
      rows.push({
        item: '3',
        figure: 'bytes through the process (whole `run`) / bytes exported',
        ours: bytes.toExponential(1),
        baseline: '0 (server-side)',
        ratio: '-',
        target: 'keep ~3e-4',
        met: bytes < 1e-3,
        values: { processBytesPerExportByte: bytes },
      });
      details.push(
        "\nCopy phase, per timed run (ms): pickup = Graph success -> first copy request; copies = first copy -> last copy response; completion = last copy -> manifest.json; result = manifest.json -> the command's result; exit = manifest.json -> process exit.",
        ...copySeries.runs.map(
          (run, index) =>
            `  run ${index + 1}: result ${fixed(run.resultMs, 0)} = pickup ${fixed(run.pickupMs, 0)} (fan-out ${fixed(run.fanOutMs, 0)}, sends ${fixed(run.sendMs, 0)}, receive ${fixed(run.receiveAfterFirstSendMs, 0)} after the first send) + copies ${fixed(run.copyWindowMs, 0)} (none in flight for ${fixed(run.noCopyInFlightMs, 0)}) + completion ${fixed(run.completionMs, 0)} + result ${fixed(run.resultMs - run.totalMs, 0)}; exit +${fixed(run.exitMs, 0)}; floor ${fixed(copySeries?.floors[index]?.totalMs ?? Number.NaN, 0)} (copies ${fixed(copySeries?.floors[index]?.copiesMs ?? Number.NaN, 0)}); ${fixed(run.byteCount / MiB, 1)} MiB`,
        ),
      );
      json['copyPhase'] = copySeries.runs.map((run, index) => ({
        resultMs: round(run.resultMs, 0),
        totalMs: round(run.totalMs, 0),
        pickupMs: round(run.pickupMs, 0),
        fanOutMs: round(run.fanOutMs, 0),
        receiveAfterFirstSendMs: round(run.receiveAfterFirstSendMs, 0),
        copyWindowMs: round(run.copyWindowMs, 0),
        noCopyInFlightMs: round(run.noCopyInFlightMs, 0),
        completionMs: round(run.completionMs, 0),
        exitMs: round(run.exitMs, 0),
        floorMs: round(copySeries?.floors[index]?.totalMs ?? Number.NaN, 0),
      }));
    }

    if (want('4') || want('6')) {
      orchestration = await measureExports(
        services,
        'EUR',
        options.orchestrationBlobs,
        0.002,
        options.orchestrationRuns,
        `orchestration ${options.orchestrationBlobs} small blobs`,
      );
      const ours = orchestration.runs.map((run) => run.resultMs);
      const toManifest = orchestration.runs.map((run) => run.totalMs);
      const floor = orchestration.floors.map((f) => f.totalMs);
      const ratio = median(ours.map((value, index) => value / (floor[index] ?? Number.NaN)));
      const manifestRatio = median(toManifest.map((value, index) => value / (floor[index] ?? Number.NaN)));
      const copyMessages = median(
        orchestration.runs.map(
          (run) =>
            run.requests.filter(
              (request) => request.method === 'POST' && request.path.endsWith('/export-copy/messages'),
            ).length,
        ),
      );
      rows.push({
        item: '6',
        figure: `orchestration: ${options.orchestrationBlobs} small blobs, Graph success to the command's result, s`,
        ours: fixed(median(ours) / 1000),
        baseline: `${fixed(median(floor) / 1000)} (same copies + manifest, SDK)`,
        ratio: `${fixed(ratio)}x`,
        target: '<= 3x',
        met: ratio <= 3,
        values: { orchestrationMs: round(median(ours), 0), floorMs: round(median(floor), 0), ratio: round(ratio, 3) },
      });
      rows.push({
        item: '6',
        figure: `  the same, Graph success to the manifest.json write only, s (copy messages: ${copyMessages})`,
        ours: fixed(median(toManifest) / 1000),
        baseline: `${fixed(median(floor) / 1000)} (same copies + manifest, SDK)`,
        ratio: `${fixed(manifestRatio)}x`,
        target: '-',
        met: undefined,
        values: { toManifestMs: round(median(toManifest), 0), copyMessages },
      });
      details.push(
        `\nOrchestration of ${options.orchestrationBlobs} blobs, per timed run (ms):`,
        ...orchestration.runs.map(
          (run, index) =>
            `  run ${index + 1}: result ${fixed(run.resultMs, 0)} = pickup ${fixed(run.pickupMs, 0)} (fan-out ${fixed(run.fanOutMs, 0)}, sends ${fixed(run.sendMs, 0)}) + copies ${fixed(run.copyWindowMs, 0)} (none in flight for ${fixed(run.noCopyInFlightMs, 0)}) + completion ${fixed(run.completionMs, 0)} + result ${fixed(run.resultMs - run.totalMs, 0)}; exit +${fixed(run.exitMs, 0)}; floor ${fixed(orchestration?.floors[index]?.totalMs ?? Number.NaN, 0)}`,
        ),
      );
    }

    if (want('4') && copySeries?.runs[0] !== undefined && orchestration?.runs[0] !== undefined) {
      // Two exports of different sizes give the per-export and per-blob parts of every count (a line through both).
      // The last run of each series: its data was cached, so Graph answered at the first status check.
      const small = copySeries.runs.at(-1) as ExportTiming;
      const large = orchestration.runs.at(-1) as ExportTiming;
      const a = measuredRequests(small);
      const b = measuredRequests(large);
      const blobsA = small.blobCount;
      const blobsB = large.blobCount;
      const perBlob = (x: number, y: number) => (y - x) / (blobsB - blobsA);
      const perExport = (x: number, y: number) => x - perBlob(x, y) * blobsA;
      const split = <T extends Record<string, unknown>>(fn: (x: number, y: number) => number, ka: T, kb: T): T => {
        const out: Record<string, unknown> = {};
        for (const key of Object.keys(ka)) {
          const va = ka[key];
          const vb = kb[key];
          out[key] =
            typeof va === 'number' && typeof vb === 'number'
              ? fn(va, vb)
              : split(fn, va as Record<string, unknown>, vb as Record<string, unknown>);
        }
        return out as T;
      };
      const blobPart = split(perBlob, a, b);
      const exportPart = split(perExport, a, b);
      // Status checks Graph needed (one status message each); a second chain would show as more GETs than messages.
      const checks = large.statusSends;
      const minimum = minimumRequests(blobsB, checks);
      const economy = (key: 'graph' | 'queueSend' | 'queueDelete' | 'table' | 'blob') => b[key] / minimum[key];
      const appTotal = b.graph + b.queueSend + b.queueDelete + b.table + b.blob;
      const minTotal = minimum.graph + minimum.queueSend + minimum.queueDelete + minimum.table + minimum.blob;
      const graphPolls = large.graphRequests;
      const batched = minimumBatchedRequests(blobsB, checks);
      const batchedTotal = batched.graph + batched.queueSend + batched.queueDelete + batched.table + batched.blob;
      rows.push({
        item: '4',
        figure: `request economy: app requests per export of ${blobsB} blobs (Graph, queue send+delete, table, blob)`,
        ours: String(appTotal),
        baseline: `${minTotal} (design minimum)`,
        ratio: `${fixed(appTotal / minTotal)}x`,
        target: '<= 1.2x',
        met: appTotal / minTotal <= 1.2,
        values: { appRequests: appTotal, minimumRequests: minTotal },
      });
      rows.push({
        item: '4',
        figure: '  the same against the least with batched copy messages',
        ours: String(appTotal),
        baseline: `${batchedTotal} (batched minimum)`,
        ratio: `${fixed(appTotal / batchedTotal)}x`,
        target: '-',
        met: undefined,
        values: { batchedMinimumRequests: batchedTotal },
      });
      for (const [key, label] of [
        ['table', 'table transactions'],
        ['blob', 'blob transactions (destination)'],
        ['queueSend', 'queue sends'],
        ['graph', 'Graph requests'],
      ] as const) {
        rows.push({
          item: '4',
          figure: `  ${label} per export of ${blobsB} blobs (per blob: ${fixed(blobPart[key], 2)})`,
          ours: String(b[key]),
          baseline: `${minimum[key]} (minimum)`,
          ratio: `${fixed(economy(key))}x`,
          target: '<= 1.2x',
          met: economy(key) <= 1.2,
          values: { [key]: b[key], [`${key}Minimum`]: minimum[key] },
        });
      }
      rows.push({
        item: '4',
        figure: 'duplicate polling chains (operation GETs beyond one per status message)',
        ours: String(Math.max(0, graphPolls - 1 - checks)),
        baseline: `0 (${checks} status message(s), ${graphPolls - 1} operation GET(s))`,
        ratio: '-',
        target: '0',
        met: graphPolls - 1 - checks <= 0,
        values: { graphRequests: graphPolls },
      });
      const cost = dailyCost(exportPart, blobPart);
      rows.push({
        item: '4',
        figure: 'cost of one daily export, 10 currencies x 2 periods x 20 blobs, USD',
        ours: `$${cost.totalUsd.toFixed(4)}`,
        baseline: '-',
        ratio: '-',
        target: 'report',
        met: undefined,
        values: { dailyUsd: round(cost.totalUsd, 5) },
      });
      details.push(
        `\nRequest counts of one export (last timed run of each series; status checks: ${small.statusSends} | ${large.statusSends})`,
        `Request counts of one export (${blobsA} blobs | ${blobsB} blobs), by kind, from the traced command line:`,
        `  ${JSON.stringify(small.counts)}`,
        `  ${JSON.stringify(large.counts)}`,
        `  per export: ${JSON.stringify(exportPart, (_k, v) => (typeof v === 'number' ? round(v, 2) : v))}`,
        `  per blob:   ${JSON.stringify(blobPart, (_k, v) => (typeof v === 'number' ? round(v, 2) : v))}`,
        `  minimum (${blobsB} blobs, ${checks} status check): ${JSON.stringify(minimum)}`,
        `  minimum with batched copy messages: ${JSON.stringify(batched)}`,
        `  daily export: ${JSON.stringify(cost, (_k, v) => (typeof v === 'number' ? round(v, 5) : v))}`,
      );
      json['requests'] = {
        small: small.counts,
        large: large.counts,
        perExport: exportPart,
        perBlob: blobPart,
        minimum,
        cost,
      };
    }

    if (want('5')) {
      log('item 5: parallel Put Block From URL against the fake service (virtual time)');
      const config = loadConfig({
        EXPORT_CURRENCIES: 'USD',
        EXPORT_SCHEDULE: '0 0 6 * * *',
        AzureWebJobsStorage: 'UseDevelopmentStorage=true',
        DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
      }).copy;
      const defaultBlock = config.blockSizeBytes / MiB;
      const defaultConc = config.concurrency;
      const models: ServiceModel[] = [
        options.model,
        { ...options.model, requestMiBps: options.model.requestMiBps / 2 },
        { ...options.model, requestMiBps: options.model.requestMiBps * 2 },
      ];
      const results: Array<{ model: number; blob: number; block: number; conc: number; seconds: number }> = [];
      for (const [index, model] of models.entries()) {
        for (const blob of options.blockBlobsMiB) {
          for (const block of options.blockSizesMiB) {
            for (const conc of options.concurrencies) {
              const result = await measureBlockCopy(model, blob, block, conc);
              results.push({ model: index, blob, block, conc, seconds: result.seconds });
            }
          }
        }
      }
      for (const blob of options.blockBlobsMiB) {
        const ours = (await measureBlockCopy(options.model, blob, defaultBlock, defaultConc)).seconds;
        const serial = (await measureBlockCopy(options.model, blob, defaultBlock, 1)).seconds;
        const previous = (await measureBlockCopy(options.model, blob, 64, 8)).seconds;
        const bound = modelBoundSeconds(options.model, blob);
        rows.push({
          item: '5',
          figure: `Put Block From URL, ${blob} MiB, defaults ${defaultBlock} MiB x ${defaultConc} (model s; was 64 x 8: ${fixed(previous)})`,
          ours: fixed(ours),
          baseline: `${fixed(serial)} (concurrency 1)`,
          ratio: `${fixed(serial / ours, 1)}x faster`,
          target: `<= 1.2x service bound ${fixed(bound)} s`,
          met: ours <= 1.2 * bound,
          values: {
            [`block${blob}Seconds`]: round(ours, 3),
            [`block${blob}SerialSeconds`]: round(serial, 3),
            [`block${blob}PreviousSeconds`]: round(previous, 3),
            [`block${blob}BoundSeconds`]: round(bound, 3),
          },
        });
      }
      for (const [index, model] of models.entries()) {
        const header = ['blob MiB', 'block MiB', ...options.concurrencies.map((c) => `c=${c}`)];
        details.push(
          `\nPut Block From URL model ${index + 1}: latency ${model.latencyMs} ms, ${model.requestMiBps} MiB/s per request, ${model.serviceMiBps} MiB/s service; seconds (virtual time):`,
          `| ${header.join(' | ')} |`,
          `|${header.map(() => '---:').join('|')}|`,
        );
        for (const blob of options.blockBlobsMiB) {
          for (const block of options.blockSizesMiB) {
            const cells = options.concurrencies.map((conc) =>
              fixed(
                results.find((r) => r.model === index && r.blob === blob && r.block === block && r.conc === conc)
                  ?.seconds ?? Number.NaN,
              ),
            );
            details.push(`| ${blob} | ${block} | ${cells.join(' | ')} |`);
          }
        }
      }
      json['blockCopy'] = { models, results };
    }

    if (want('6')) {
      log(`item 6: streaming fallback of a ${options.streamMiB} MiB blob (generating it first)`);
      const store = createExportDataStore(exportSourceStorage(services.azurite));
      const spec = {
        currency: 'USD',
        attributeSet: 'full' as const,
        billingMonth: '202410',
        usageDays: 31,
        partnerTenantId: '3b4c6a1e-5d2f-4e8a-9b7c-0d1e2f3a4b5c',
        billingPeriod: 'last' as const,
        seed: 7,
      };
      const perRow = await gzipBytesPerRow({ ...spec, rowsPerBlob: 0 });
      const dataset = await store.ensure(
        { ...spec, blobCount: 1, rowsPerBlob: Math.round((options.streamMiB * MiB) / perRow) },
        new Date(),
      );
      const blob = dataset.blobs[0]!;
      const sourceUrl = `${store.containerUrl}/${dataset.directory}/${blob.name}?${store.sasToken(new Date(Date.now() + 3600_000))}`;
      const container = `benchstream${Date.now().toString(36)}`;
      const destination = new ContainerClient(
        `${services.azurite.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}/${container}`,
        new StorageSharedKeyCredential(PARTNER_DEST_ACCOUNT.name, PARTNER_DEST_ACCOUNT.key),
      );
      await destination.create();
      const copierOptions = loadConfig(services.env(container) as Record<string, string>).copy;
      const job = (variant: 'copier' | 'direct') => ({
        variant,
        sourceUrl,
        destinationConnectionString: services.azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
        container,
        destinationPath: `stream/${variant}.json.gz`,
        copier: copierOptions,
        bufferBytes: 8 * MiB,
        sampleMs: 20,
      });
      const copier = await runWorker(job('copier'));
      const direct = await runWorker(job('direct'));
      const peak = Math.max(copier.memory.rssDelta, copier.memory.maxRssDelta);
      const peakDirect = Math.max(direct.memory.rssDelta, direct.memory.maxRssDelta);
      rows.push({
        item: '6',
        figure: `streaming fallback: peak RSS growth copying a ${fixed(blob.byteCount / MiB, 0)} MiB blob, MiB`,
        ours: fixed(peak / MiB, 1),
        baseline: `${fixed(peakDirect / MiB, 1)} (SDK download + uploadStream)`,
        ratio: `${fixed(peak / peakDirect)}x`,
        target: '<= 160 MiB',
        met: peak <= 160 * MiB,
        values: { streamPeakRssMiB: round(peak / MiB, 1), directPeakRssMiB: round(peakDirect / MiB, 1) },
      });
      details.push(
        `\nStreaming ${fixed(blob.byteCount / MiB, 1)} MiB: copier ${fixed(copier.ms, 0)} ms (${copier.refusals} refused server-side attempts first), direct ${fixed(direct.ms, 0)} ms; late/early peak ${fixed(copier.memory.lateOverEarlyRss)}; bytes through the process ${fixed((copier.net.bytesRead + copier.net.bytesWritten) / blob.byteCount, 3)} x blob.`,
      );
    }

    if (want('7')) {
      const curation = await measureCuration({
        workDir: services.workDir,
        rows: options.curationRows,
        rounds: options.curationRounds,
        largeBytes: options.curationLargeBytes,
        prices: PRICES,
        log,
      });
      rows.push(...curation.rows);
      details.push(...curation.details);
      Object.assign(json, curation.json);
    }
  } finally {
    await services.emulator.stop();
    await services.azurite.stop();
    rmSync(services.workDir, { recursive: true, force: true });
  }

  const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${fixed(totalmem() / 1024 ** 3, 0)} GiB, Node ${process.version}, load ${loadavg()
    .map((value) => value.toFixed(1))
    .join(' ')}`;
  console.log(
    `\ncsp-unbilled-export bench (${options.quick ? 'quick' : 'full'}), ${new Date().toISOString()}, ${fixed((nowMs() - began) / 1000, 0)} s; ${machine}\n`,
  );
  console.log(renderTable(rows));
  if (details.length > 0) console.log(`\nDetails behind the table:${details.join('\n')}`);
  console.log(
    JSON.stringify({
      bench: 'issue-9',
      quick: options.quick,
      date: new Date().toISOString(),
      machine,
      rows: rows.map((row) => ({ item: row.item, figure: row.figure.trim(), met: row.met ?? null, ...row.values })),
      ...json,
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
