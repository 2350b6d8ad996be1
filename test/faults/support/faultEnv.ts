/**
 * The fault suite's world: real Azurite (in memory), the real HTTPS partner billing emulator and a local
 * Application Insights ingestion endpoint in the test process; local Functions hosts as separate node
 * processes (hostProcess.ts) that a test kills (SIGKILL), crashes at a crash point, and restarts.
 * Everything the hosts log is kept (`logs`), for the invariant checks and the secret scan.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BlobClient, ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { TableRunLedger } from '../../../src/adapters/storage/tableRunLedger';
import {
  type EmulatorScenario,
  type PartnerBillingEmulator,
  startPartnerBillingEmulator,
} from '../../../src/emulator/partnerBillingEmulator';
import {
  type AzuriteInstance,
  DEV_STORE_ACCOUNT,
  exportSourceStorage,
  MS_BILLING_ACCOUNT,
  PARTNER_DEST_ACCOUNT,
  startAzurite,
} from '../../../src/local/azurite';
import { QueueNames } from '../../../src/names';
import { type RunRecord, TERMINAL_STATUSES } from '../../../src/pipeline/ports';
import { uniqueName } from '../../support/azurite';
import { type IngestionServer, startIngestionServer } from '../../support/ingestionServer';

export const PREFIX = 'unbilled-usage';

/** One line a host process wrote (stdout JSON or raw stderr). */
export interface HostLogLine {
  host: string;
  pid: number;
  level: 'info' | 'warn' | 'error' | 'stderr';
  fn: string;
  line: string;
}

/** How a host process ended. */
export interface HostExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The crash point it reported reaching (`fault: crash point X#n reached; SIGKILL`), if any. */
  crashPoint: string | undefined;
}

export interface HostProcess {
  name: string;
  pid: number;
  /** http://127.0.0.1:PORT */
  http: string;
  exited: Promise<HostExit>;
  /** Ended already? */
  readonly exit: HostExit | undefined;
  kill(signal?: NodeJS.Signals): Promise<HostExit>;
  /** SIGTERM: stops listening, flushes telemetry, exits 0. */
  stop(): Promise<HostExit>;
}

export interface SpawnOptions {
  name?: string;
  /** `<crash point>[#n]`: the process SIGKILLs itself there. */
  crashPoint?: string;
  env?: Record<string, string | undefined>;
}

export interface FaultEnv {
  azurite: AzuriteInstance;
  emulator: PartnerBillingEmulator;
  ingestion: IngestionServer;
  ledger: TableRunLedger;
  queues: QueueServiceClient;
  logs: HostLogLine[];
  /** Every destination container used (for the scans). */
  containers: string[];
  /** The settings every host gets (a test may change them; `spawnHost` takes overrides). */
  settings: Record<string, string | undefined>;
  spawnHost(options?: SpawnOptions): Promise<HostProcess>;
  /** Runs superviseRuns once in its own process. Fails the test clearly when the supervisor does not exist. */
  supervise(options?: SpawnOptions): Promise<{ exit: HostExit; result: unknown }>;
  /** POST /api/exports to a host. */
  post(host: HostProcess, body: unknown): Promise<{ status: number; json: unknown }>;
  /** Runs of a series' currency (each test or case uses currencies of its own), oldest first. */
  runsOf(currency: string): Promise<RunRecord[]>;
  waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs?: number): Promise<T>;
  waitForTerminal(runIds: string[], timeoutMs?: number): Promise<RunRecord[]>;
  /** Waits until every run is terminal or the time is up; returns the runs as they are (never throws). */
  settle(runIds: string[], timeoutMs?: number): Promise<RunRecord[]>;
  destination(container?: string): ContainerClient;
  listDestination(prefix?: string, container?: string): Promise<Array<{ path: string; byteCount: number }>>;
  downloadDestination(path: string, container?: string): Promise<Buffer>;
  downloadSource(rootDirectory: string, name: string): Promise<Buffer>;
  sendMessage(queue: string, body: unknown): Promise<void>;
  /** Waits until both queues (and their poison queues) stay empty. */
  drain(timeoutMs?: number): Promise<void>;
  recentLogs(count?: number): string;
  /** Kills every host still running. */
  killAll(): Promise<void>;
  stop(): Promise<void>;
}

export interface FaultEnvOptions {
  scenario?: Partial<EmulatorScenario>;
  settings?: Record<string, string | undefined>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const HOST_ENTRY = join(__dirname, 'hostProcess.js');
const PROXY_VARIABLES = ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy'];
/** Settings a host must not inherit from the test process (they would override ours). */
const APP_SETTING = /^(EXPORT_|GRAPH_|DESTINATION_|AzureWebJobs|APPLICATIONINSIGHTS_|FAULTS_|AZURE_)/;

async function readAll(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  if (stream === undefined) return Buffer.alloc(0);
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

export async function startFaultEnv(options: FaultEnvOptions = {}): Promise<FaultEnv> {
  const azurite = await startAzurite();
  let emulator: PartnerBillingEmulator | undefined;
  let ingestion: IngestionServer | undefined;
  try {
    emulator = await startPartnerBillingEmulator({
      storage: exportSourceStorage(azurite),
      scenario: { pollsBeforeSuccess: 1, retryAfterSeconds: 1, blobCount: 2, rowsPerBlob: 100, ...options.scenario },
    });
    ingestion = await startIngestionServer();
  } catch (error) {
    await emulator?.stop();
    await azurite.stop();
    throw error;
  }
  const emu = emulator;
  const ing = ingestion;
  const hostConnection = azurite.connectionString(DEV_STORE_ACCOUNT.name);
  const logs: HostLogLine[] = [];
  const containers: string[] = [];
  const children = new Set<ChildProcess>();
  const container = uniqueName('faults');
  containers.push(container);
  const settings: Record<string, string | undefined> = {
    EXPORT_CURRENCIES: 'USD',
    EXPORT_BILLING_PERIODS: 'current',
    EXPORT_ATTRIBUTE_SET: 'full',
    EXPORT_SCHEDULE: '0 0 6 * * *',
    GRAPH_BASE_URL: emu.baseUrl,
    GRAPH_CA_CERT_FILE: emu.caCertPath,
    AzureWebJobsStorage: hostConnection,
    DESTINATION_STORAGE: azurite.connectionString(PARTNER_DEST_ACCOUNT.name),
    DESTINATION_CONTAINER: container,
    DESTINATION_PREFIX: PREFIX,
    EXPORT_POLL_INITIAL_SECONDS: '1',
    EXPORT_POLL_MAX_SECONDS: '2',
    APPLICATIONINSIGHTS_CONNECTION_STRING: ing.connectionString,
    // The supervisor's limits, short (issue 7 deliverable 3; the lead's settings).
    EXPORT_STALL_MINUTES: process.env['FAULTS_STALL_MINUTES'] ?? '0.05',
    EXPORT_MAX_RESUMES: '3',
    // Short, so that messages a killed host had received come back soon. Without renewal (the local host
    // does not renew yet), a handler slower than this is delivered again: tests without crashes use more.
    FAULTS_RECEIVE_VISIBILITY_SECONDS: '8',
    FAULTS_QUEUE_RETRY_SECONDS: '1',
    FAULTS_MAX_DEQUEUE_COUNT: '5',
    // The fault cases are the raw run's; curation (DuckDB) only where a case asks for it.
    EXPORT_CURATION: 'off',
    ...options.settings,
  };
  let hostCounter = 0;

  const childEnv = (extra: Record<string, string | undefined>): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!APP_SETTING.test(key) && !PROXY_VARIABLES.includes(key)) env[key] = value;
    }
    env['NO_PROXY'] = '127.0.0.1,localhost';
    env['no_proxy'] = '127.0.0.1,localhost';
    // The hosts start telemetry (and a credential could probe): test/support/loopbackOnly keeps them on this machine.
    env['NODE_OPTIONS'] =
      `${env['NODE_OPTIONS'] ?? ''} --require ${join(__dirname, '..', '..', 'support', 'loopbackOnly.js')}`.trim();
    // An https ingestion endpoint (newer test support) has a throw-away CA: the hosts must trust it.
    const ingestionCa = (ing as { caCertPath?: string }).caCertPath;
    if (ingestionCa !== undefined) env['NODE_EXTRA_CA_CERTS'] = ingestionCa;
    for (const [key, value] of Object.entries({ ...settings, ...extra })) {
      if (value === undefined) delete env[key];
      else env[key] = value;
    }
    return env;
  };

  /** Spawns hostProcess.js; resolves with the process and a promise of its first JSON record of `until` kinds. */
  const launch = (mode: 'serve' | 'supervise', opts: SpawnOptions) => {
    hostCounter++;
    const name = opts.name ?? `${mode}${hostCounter}`;
    const env = childEnv({
      ...opts.env,
      EXPORT_FAULT_CRASH_POINT: opts.crashPoint,
    });
    const child = spawn(process.execPath, [HOST_ENTRY, mode], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const pid = child.pid ?? -1;
    const records: Array<Record<string, unknown>> = [];
    const waiters: Array<() => void> = [];
    let crashPoint: string | undefined;
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(text) as Record<string, unknown>;
      } catch {
        logs.push({ host: name, pid, level: 'info', fn: 'stdout', line: text });
        return;
      }
      if (record['t'] === 'log') {
        logs.push({
          host: name,
          pid,
          level: record['level'] as HostLogLine['level'],
          fn: String(record['fn']),
          line: String(record['line']),
        });
      } else {
        records.push(record);
        for (const w of waiters.splice(0)) w();
      }
    });
    createInterface({ input: child.stderr! }).on('line', (text) => {
      const m = /^fault: crash point (\S+) reached; SIGKILL$/.exec(text);
      if (m !== null) crashPoint = m[1];
      logs.push({ host: name, pid, level: 'stderr', fn: 'stderr', line: text });
    });
    let exit: HostExit | undefined;
    const exited = new Promise<HostExit>((resolve) => {
      child.once('exit', (code, signal) => {
        children.delete(child);
        // Let the last stderr lines arrive.
        setTimeout(() => {
          exit = { code, signal, crashPoint };
          for (const w of waiters.splice(0)) w();
          resolve(exit);
        }, 50);
      });
    });
    const nextRecord = async (kinds: string[]): Promise<Record<string, unknown> | undefined> => {
      for (;;) {
        const found = records.find((r) => kinds.includes(String(r['t'])));
        if (found !== undefined) return found;
        if (exit !== undefined) return undefined;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    return { name, child, pid, exited, nextRecord, exitNow: () => exit };
  };

  const spawnHost = async (opts: SpawnOptions = {}): Promise<HostProcess> => {
    const launched = launch('serve', opts);
    const ready = await launched.nextRecord(['ready', 'fatal']);
    if (ready === undefined || ready['t'] !== 'ready') {
      const exit = await launched.exited;
      throw new Error(
        `Host ${launched.name} did not start (exit ${JSON.stringify(exit)}, ${JSON.stringify(ready)}).\n${recentLogs(20)}`,
      );
    }
    const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
      if (launched.exitNow() === undefined) launched.child.kill(signal);
      return launched.exited;
    };
    return {
      name: launched.name,
      pid: launched.pid,
      http: String(ready['http']),
      exited: launched.exited,
      get exit() {
        return launched.exitNow();
      },
      kill,
      async stop() {
        if (launched.exitNow() !== undefined) return launched.exited;
        launched.child.kill('SIGTERM');
        const timer = setTimeout(() => launched.child.kill('SIGKILL'), 15_000);
        const exit = await launched.exited;
        clearTimeout(timer);
        return exit;
      },
    };
  };

  const supervise = async (opts: SpawnOptions = {}) => {
    const launched = launch('supervise', opts);
    const timer = setTimeout(() => launched.child.kill('SIGKILL'), 120_000);
    const exit = await launched.exited;
    clearTimeout(timer);
    const record = await launched.nextRecord(['supervised', 'supervisor-missing', 'fatal']);
    if (record?.['t'] === 'supervisor-missing') {
      assert.fail(`The supervisor is missing, so runs left behind by a crash are never finished: ${record['detail']}`);
    }
    if (exit.crashPoint === undefined && record?.['t'] !== 'supervised') {
      assert.fail(`superviseRuns failed: ${JSON.stringify(record)} ${JSON.stringify(exit)}\n${recentLogs(20)}`);
    }
    return { exit, result: record?.['result'] };
  };

  const post = async (host: HostProcess, body: unknown) => {
    const response = await fetch(`${host.http}/api/exports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: response.status, json };
  };

  const ledger = new TableRunLedger({ kind: 'connectionString', connectionString: hostConnection });
  const queues = QueueServiceClient.fromConnectionString(hostConnection);
  const destinationCredential = new StorageSharedKeyCredential(
    PARTNER_DEST_ACCOUNT.name,
    azurite.accountKey(PARTNER_DEST_ACCOUNT.name),
  );
  const sourceCredential = new StorageSharedKeyCredential(
    MS_BILLING_ACCOUNT.name,
    azurite.accountKey(MS_BILLING_ACCOUNT.name),
  );
  const destination = (name?: string) =>
    new ContainerClient(
      `${azurite.blobEndpoint}/${PARTNER_DEST_ACCOUNT.name}/${name ?? settings['DESTINATION_CONTAINER']}`,
      destinationCredential,
    );

  function recentLogs(count = 40): string {
    return logs
      .slice(-count)
      .map((l) => `  [${l.host}] ${l.level} ${l.fn}: ${l.line}`)
      .join('\n');
  }

  const waitUntil = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline)
        throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}.\n${recentLogs()}`);
      await sleep(200);
    }
  };

  const env: FaultEnv = {
    azurite,
    emulator: emu,
    ingestion: ing,
    ledger,
    queues,
    logs,
    containers,
    settings,
    spawnHost,
    supervise,
    post,
    async runsOf(currency) {
      const all = await ledger.listRuns({ limit: 1000, currency });
      return all.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
    },
    waitUntil,
    async waitForTerminal(runIds, timeoutMs = 60_000) {
      const out: RunRecord[] = [];
      for (const runId of runIds) {
        out.push(
          await waitUntil(
            `run ${runId} to end`,
            async () => {
              const run = (await ledger.getRun(runId))?.value;
              return run !== undefined && TERMINAL_STATUSES.includes(run.status) ? run : undefined;
            },
            timeoutMs,
          ),
        );
      }
      return out;
    },
    async settle(runIds, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const runs = await Promise.all(runIds.map(async (id) => (await ledger.getRun(id))?.value));
        const known = runs.filter((r): r is RunRecord => r !== undefined);
        if (known.length === runIds.length && known.every((r) => TERMINAL_STATUSES.includes(r.status))) return known;
        if (Date.now() > deadline) return known;
        await sleep(300);
      }
    },
    destination,
    async listDestination(prefix = '', containerName?: string) {
      const out: Array<{ path: string; byteCount: number }> = [];
      try {
        for await (const item of destination(containerName).listBlobsFlat({ prefix })) {
          out.push({ path: item.name, byteCount: item.properties.contentLength ?? 0 });
        }
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return [];
        throw error;
      }
      return out;
    },
    async downloadDestination(path, containerName) {
      const response = await destination(containerName).getBlobClient(path).download();
      return readAll(response.readableStreamBody);
    },
    async downloadSource(rootDirectory, name) {
      const response = await new BlobClient(`${rootDirectory}/${name}`, sourceCredential).download();
      return readAll(response.readableStreamBody);
    },
    async sendMessage(queue, body) {
      const client = queues.getQueueClient(queue);
      await client.createIfNotExists();
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      await client.sendMessage(Buffer.from(text, 'utf8').toString('base64'));
    },
    async drain(timeoutMs = 60_000) {
      const names = [QueueNames.status, QueueNames.copy, QueueNames.statusPoison, QueueNames.copyPoison];
      let quiet = 0;
      await waitUntil(
        'the queues to drain',
        async () => {
          const counts = await Promise.all(
            names.map(async (n) => {
              try {
                return (await queues.getQueueClient(n).getProperties()).approximateMessagesCount ?? 0;
              } catch {
                return 0;
              }
            }),
          );
          quiet = counts.every((c) => c === 0) ? quiet + 1 : 0;
          return quiet >= 4 ? true : undefined;
        },
        timeoutMs,
      );
    },
    recentLogs,
    async killAll() {
      const all = [...children];
      for (const child of all) child.kill('SIGKILL');
      await Promise.all(
        all.map((child) =>
          child.exitCode !== null || child.signalCode !== null
            ? undefined
            : new Promise<void>((resolve) => child.once('exit', () => resolve())),
        ),
      );
    },
    async stop() {
      await env.killAll();
      await emu.stop();
      await ing.stop();
      await azurite.stop();
    },
  };
  return env;
}

/** A fresh three-letter currency per series, so tests and cases sharing a ledger never share a series. */
export function currencyFactory(first: string): () => string {
  let n = 0;
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return () => {
    const code = `${first}${letters[Math.floor(n / 26) % 26]}${letters[n % 26]}`;
    n++;
    return code;
  };
}
