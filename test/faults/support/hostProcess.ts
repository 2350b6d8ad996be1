/**
 * A local Functions host as its own process, for the fault suite: the real handlers through the real
 * queues (LocalFunctionsHost), HTTP routes on a free loopback port, settings from the environment.
 * The parent kills it with SIGKILL (or it kills itself at EXPORT_FAULT_CRASH_POINT) and starts another.
 *
 *   node hostProcess.js serve       serve until SIGTERM (then flush telemetry and exit 0)
 *   node hostProcess.js supervise   call superviseRuns(deps) once, print its result, exit
 *
 * Every line goes to stdout as one JSON object: {"t":"log",...}, {"t":"ready","http":...}, {"t":"supervised",...}.
 * Fault-suite settings (besides the app's own):
 *   FAULTS_RECEIVE_VISIBILITY_SECONDS  how long a received message stays invisible (the local host asks 600 s)
 *   FAULTS_QUEUE_RETRY_SECONDS         visibility of a failed message (host.json visibilityTimeout), default 1
 *   FAULTS_MAX_DEQUEUE_COUNT           host.json maxDequeueCount, default 3
 *   FAULTS_BATCH_SIZE                  host.json batchSize, default 16
 *   FAULTS_HANDLER_CRASH=1             harness self-test: crashPoint('copy.beforeCopy') at the copy handler's entry
 *   FAULTS_RUN_ROW_DELAY_MS            writing a new run row takes this much longer: widens the window between a
 *                                      start taking its series' lock and recording its run (another start must wait)
 * The pipeline's clock is shifted by EXPORT_FAULT_CLOCK_OFFSET_MS (src/crashPoints.ts processClock).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { QueueClient } from '@azure/storage-queue';
import { TableRunLedger } from '../../../src/adapters/storage/tableRunLedger';
import { getDeps } from '../../../src/composition';
import { loadConfig } from '../../../src/config';
import { crashPoint } from '../../../src/crashPoints';
import { errorMessage } from '../../../src/errors';
import {
  LocalFunctionsHost,
  loadFunctionHandlers,
  type QueueHostSettings,
  readQueueHostSettings,
} from '../../../src/local/localHost';
import { redact } from '../../../src/redact';

type Level = 'info' | 'warn' | 'error';

function emit(record: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

function log(level: Level, functionName: string, line: string): void {
  emit({ t: 'log', level, fn: functionName, line, pid: process.pid });
}

function intSetting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name}: "${raw}" is not a non-negative number`);
  return value;
}

/**
 * The local host receives queue messages with a fixed 600 s visibility timeout (issue 7, problem 8):
 * after a SIGKILL those messages would stay invisible for ten minutes. Until the local host takes that
 * from its configuration, the fault host caps the visibility the SDK call asks for.
 */
function capReceiveVisibility(seconds: number): void {
  const proto = QueueClient.prototype as unknown as {
    receiveMessages: (options?: { visibilityTimeout?: number }) => Promise<unknown>;
  };
  const original = proto.receiveMessages;
  proto.receiveMessages = function receiveMessages(this: QueueClient, options = {}) {
    const asked = options.visibilityTimeout;
    const visibilityTimeout = asked === undefined ? seconds : Math.min(asked, seconds);
    return original.call(this, { ...options, visibilityTimeout });
  };
}

/** Delays every new run row by `ms` (the ledger's createRun), in this process. */
function delayRunRows(ms: number): void {
  const proto = TableRunLedger.prototype;
  const original = proto.createRun;
  proto.createRun = async function createRun(this: TableRunLedger, run) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return original.call(this, run);
  };
}

async function serve(): Promise<void> {
  const runRowDelayMs = intSetting('FAULTS_RUN_ROW_DELAY_MS', 0);
  if (runRowDelayMs > 0) delayRunRows(runRowDelayMs);
  const receiveVisibility = intSetting('FAULTS_RECEIVE_VISIBILITY_SECONDS', 0);
  // A local host with a renewed message lease (leaseSeconds) takes the visibility from its settings;
  // an older one receives with 600 s, which the SDK call is then capped to.
  const hasLease = 'leaseSeconds' in readQueueHostSettings();
  if (receiveVisibility > 0 && !hasLease) capReceiveVisibility(receiveVisibility);
  const lease: Record<string, number> =
    receiveVisibility > 0 && hasLease
      ? { leaseSeconds: receiveVisibility, leaseRenewalMs: Math.max(500, Math.floor((receiveVisibility * 1000) / 3)) }
      : {};
  const config = loadConfig(process.env);
  const handlers = loadFunctionHandlers();
  if (process.env['FAULTS_HANDLER_CRASH'] === '1') {
    // Harness self-test: the crash point at the entry of the copy handler, whatever the pipeline calls.
    const copy = handlers.copyExportBlob;
    handlers.copyExportBlob = (item, context) => {
      crashPoint('copy.beforeCopy');
      return copy(item, context);
    };
  }
  const host = await LocalFunctionsHost.start({
    handlers,
    hostStorage: config.hostStorage,
    log,
    queueSettings: {
      maxPollingIntervalMs: 200,
      visibilityTimeoutSeconds: intSetting('FAULTS_QUEUE_RETRY_SECONDS', 1),
      maxDequeueCount: intSetting('FAULTS_MAX_DEQUEUE_COUNT', 3),
      batchSize: intSetting('FAULTS_BATCH_SIZE', 16),
      ...(lease as Partial<QueueHostSettings>),
    },
    httpPort: 0,
  });
  // Telemetry is batched by the SDK: flush often, so that a SIGKILL loses as little as possible.
  const flushTimer = setInterval(() => {
    void getDeps(() => undefined)
      .telemetry.flush()
      .catch(() => undefined);
  }, 300);
  flushTimer.unref();
  emit({ t: 'ready', http: host.httpBaseUrl?.replace('//localhost:', '//127.0.0.1:'), pid: process.pid });
  const stop = async () => {
    clearInterval(flushTimer);
    await host.stop();
    await getDeps(() => undefined).telemetry.flush();
    emit({ t: 'stopped', pid: process.pid });
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

/** Where the lead's supervisor lives (issue 7 deliverable 3). */
const SUPERVISOR_MODULE = join(__dirname, '..', '..', '..', 'src', 'pipeline', 'superviseRuns.js');

async function supervise(): Promise<void> {
  if (!existsSync(SUPERVISOR_MODULE)) {
    emit({
      t: 'supervisor-missing',
      detail: `${SUPERVISOR_MODULE} does not exist: the supervisor superviseRuns (issue 7 deliverable 3) is not built yet.`,
    });
    process.exit(3);
  }
  const loaded = require(SUPERVISOR_MODULE) as { superviseRuns?: unknown };
  if (typeof loaded.superviseRuns !== 'function') {
    emit({ t: 'supervisor-missing', detail: `${SUPERVISOR_MODULE} exports no function superviseRuns.` });
    process.exit(3);
  }
  const deps = getDeps((level, line) => log(level, 'superviseRuns', line));
  const result: unknown = await (loaded.superviseRuns as (d: typeof deps) => Promise<unknown>)(deps);
  await deps.telemetry.flush();
  emit({ t: 'supervised', result: result ?? null });
  process.exit(0);
}

const mode = process.argv[2] ?? 'serve';
(mode === 'supervise' ? supervise() : serve()).catch((error: unknown) => {
  emit({ t: 'fatal', error: redact(errorMessage(error)) });
  process.exit(2);
});
