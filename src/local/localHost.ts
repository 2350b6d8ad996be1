import { randomUUID } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  type LogLevel as FunctionsLogLevel,
  HttpRequest,
  type HttpResponseInit,
  InvocationContext,
  type Timer,
} from '@azure/functions';
import type { QueueClient } from '@azure/storage-queue';
import { CronExpressionParser } from 'cron-parser';
import { createQueueServiceClient } from '../adapters/storage/clients';
import type { StorageConnection } from '../config';
import { errorMessage } from '../errors';
import { FunctionNames, QueueNames, SUPERVISE_SCHEDULE } from '../names';
import { redact } from '../redact';

/** The queue settings of host.json that the local host honours, as the Functions host does. */
export interface QueueHostSettings {
  batchSize: number;
  /** A new batch is received once the messages being handled are down to this many (host.json; batchSize / 2). */
  newBatchThreshold: number;
  maxDequeueCount: number;
  /** Delay before a failed message is retried. */
  visibilityTimeoutSeconds: number;
  maxPollingIntervalMs: number;
  /**
   * Visibility timeout of a received message while it is handled (local host only), renewed every
   * `leaseRenewalMs`: the messages of a killed host come back after at most this long.
   */
  leaseSeconds: number;
  leaseRenewalMs: number;
}

/** Defaults of the local host's message lease. */
export const DEFAULT_LEASE_SECONDS = 30;
export const DEFAULT_LEASE_RENEWAL_MS = 10_000;

/** Reads `extensions.queues` of host.json (TimeSpan strings such as "00:00:30"). */
export function readQueueHostSettings(
  hostJsonPath: string = join(__dirname, '..', '..', '..', 'host.json'),
): QueueHostSettings {
  const json = JSON.parse(readFileSync(hostJsonPath, 'utf8')) as {
    extensions?: { queues?: Record<string, unknown> };
  };
  const queues = json.extensions?.queues ?? {};
  const span = (value: unknown, fallbackSeconds: number): number => {
    if (typeof value !== 'string') return fallbackSeconds;
    const match = /^(\d+):(\d\d):(\d\d(?:\.\d+)?)$/.exec(value);
    if (match === null) return fallbackSeconds;
    return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
  };
  const batchSize = typeof queues['batchSize'] === 'number' ? queues['batchSize'] : 16;
  return {
    batchSize,
    newBatchThreshold:
      typeof queues['newBatchThreshold'] === 'number' ? queues['newBatchThreshold'] : Math.floor(batchSize / 2),
    maxDequeueCount: typeof queues['maxDequeueCount'] === 'number' ? queues['maxDequeueCount'] : 5,
    visibilityTimeoutSeconds: span(queues['visibilityTimeout'], 0),
    maxPollingIntervalMs: span(queues['maxPollingInterval'], 60) * 1000,
    leaseSeconds: DEFAULT_LEASE_SECONDS,
    leaseRenewalMs: DEFAULT_LEASE_RENEWAL_MS,
  };
}

type QueueHandler = (item: unknown, context: InvocationContext) => Promise<void>;
type HttpHandler = (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;
type TimerHandler = (timer: Timer, context: InvocationContext) => Promise<void>;

/** The function handlers the local host drives: the very ones registered with the Functions host. */
export interface FunctionHandlers {
  startExportsTimer: TimerHandler;
  startExportsHttp: HttpHandler;
  listExportRuns: HttpHandler;
  pollExportStatus: QueueHandler;
  copyExportBlob: QueueHandler;
  exportStatusPoison: QueueHandler;
  exportCopyPoison: QueueHandler;
  curateExportFile: QueueHandler;
  exportCuratePoison: QueueHandler;
  superviseRuns: TimerHandler;
}

/**
 * Loads the function modules. Outside the Functions host, @azure/functions runs in "test mode" and prints
 * a warning per registration; those warnings say nothing useful here and are kept off the console.
 */
export function loadFunctionHandlers(): FunctionHandlers {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('test mode')) return;
    if (typeof args[0] === 'string' && args[0].includes('Skipping call to register function')) return;
    warn(...args);
  };
  try {
    return {
      startExportsTimer: require('../functions/startExportsTimer').startExportsTimer,
      startExportsHttp: require('../functions/startExportsHttp').startExportsHttp,
      listExportRuns: require('../functions/listExportRuns').listExportRuns,
      pollExportStatus: require('../functions/pollExportStatus').pollExportStatus,
      copyExportBlob: require('../functions/copyExportBlob').copyExportBlob,
      exportStatusPoison: require('../functions/exportStatusPoison').exportStatusPoison,
      exportCopyPoison: require('../functions/exportCopyPoison').exportCopyPoison,
      curateExportFile: require('../functions/curateExportFile').curateExportFile,
      exportCuratePoison: require('../functions/exportCuratePoison').exportCuratePoison,
      superviseRuns: require('../functions/superviseRuns').superviseRuns,
    };
  } finally {
    console.warn = warn;
  }
}

/** A log line of a function invocation. */
export type HostLog = (level: 'info' | 'warn' | 'error', functionName: string, line: string) => void;

export interface LocalHostOptions {
  hostStorage: StorageConnection;
  handlers?: FunctionHandlers;
  queueSettings?: Partial<QueueHostSettings>;
  log: HostLog;
  /** Six-field NCRONTAB (UTC) of startExportsTimer; no timer when absent. */
  schedule?: string | undefined;
  /** Runs the superviseRuns timer (every 10 minutes) even without a `schedule` (the `run` command). */
  supervise?: boolean | undefined;
  /** Port of the HTTP routes (7071 like `func start`; 0 for any); no HTTP server when absent. */
  httpPort?: number | undefined;
}

function invocationContext(functionName: string, log: HostLog, triggerMetadata?: Record<string, unknown>) {
  return new InvocationContext({
    functionName,
    invocationId: randomUUID(),
    logHandler: (level: FunctionsLogLevel, ...args: unknown[]) => {
      const line = redact(args.map((a) => (typeof a === 'string' ? a : errorMessage(a))).join(' '));
      const mapped = level === 'error' || level === 'critical' ? 'error' : level === 'warning' ? 'warn' : 'info';
      log(mapped, functionName, line);
    },
    ...(triggerMetadata === undefined ? {} : { triggerMetadata }),
  });
}

/** Turns a queue text into what the Functions host hands a handler: JSON parsed when it parses. */
function triggerPayload(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** How long `stop()` waits for a receive in flight before it returns. */
const STOP_WAIT_MS = 5000;

type ReceivedMessage = Awaited<ReturnType<QueueClient['receiveMessages']>>['receivedMessageItems'][number];

/** A received message this host holds: its current pop receipt changes with every visibility update. */
interface Lease {
  messageId: string;
  popReceipt: string;
  /** Renewals, hand-back, delete and retry run one after another (each needs the latest pop receipt). */
  chain: Promise<void>;
  renewal: NodeJS.Timeout | undefined;
  /** Finished (deleted, retried, poisoned) or handed back: no further operation on it. */
  settled: boolean;
}

/**
 * One queue listener with the Functions host's semantics: base64 messages, `batchSize` at a time,
 * a failed message becomes visible again after `visibilityTimeout`, and after `maxDequeueCount`
 * attempts (or when it is not base64) it moves to `<queue>-poison`.
 *
 * Like the Functions host, it receives with a short visibility timeout (`leaseSeconds`) and renews it while
 * the handler runs, so the messages of a host that was killed come back within `leaseSeconds`. `stop()`
 * hands every message still being handled back at once (visibility 0) and abandons its handler: the work
 * is idempotent, the next host resumes from the ledger.
 */
class QueueListener {
  private running = true;
  private inFlight = 0;
  private readonly leases = new Set<Lease>();
  private readonly done: Promise<void>;
  private readonly wakers = new Set<() => void>();
  private stopping: Promise<void> | undefined;
  /** Set when this process sent a message to the queue while the listener was not sleeping. */
  private woken = false;
  private endSleep: (() => void) | undefined;
  /** Waiters for a handler to finish (the loop, while more than `newBatchThreshold` messages are handled). */
  private readonly slotWaiters = new Set<() => void>();

  constructor(
    private readonly queue: QueueClient,
    private readonly poison: QueueClient | undefined,
    private readonly functionName: string,
    private readonly handler: QueueHandler,
    private readonly settings: QueueHostSettings,
    private readonly log: HostLog,
    private readonly onActivity: () => void,
  ) {
    this.done = this.loop();
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  /** Stops receiving, hands back what is in flight and returns without waiting for running handlers. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.running = false;
      this.endSleep?.();
      for (const wake of [...this.wakers]) wake();
      const handedBack = [...this.leases].map((lease) => this.handBack(lease));
      // A receive in flight returns quickly; what it brings is handed back by the loop.
      await Promise.race([this.done, sleep(STOP_WAIT_MS)]);
      await Promise.all([...handedBack, ...[...this.leases].map((lease) => this.handBack(lease))]);
    })();
    return this.stopping;
  }

  /** Resolves when `work` ends or the listener stops, whichever comes first. */
  private untilStopped(work: Promise<unknown>): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.wakers.delete(wake);
        resolve();
      };
      this.wakers.add(wake);
      void work.then(wake, wake);
    });
  }

  /**
   * Work is pending: this process just sent a message to the queue (or a delayed one became visible). The idle
   * back-off ends at once; the next receive happens now instead of up to `maxPollingInterval` later.
   */
  wake(): void {
    this.woken = true;
    this.endSleep?.();
  }

  private idleSleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.endSleep?.(), ms);
      timer.unref();
      this.endSleep = () => {
        clearTimeout(timer);
        this.endSleep = undefined;
        resolve();
      };
    });
  }

  /** Resolves when a message being handled finishes. */
  private slotFreed(): Promise<void> {
    return new Promise<void>((resolve) => this.slotWaiters.add(resolve));
  }

  private async loop(): Promise<void> {
    let idleMs = 100;
    while (this.running) {
      // As the Functions host: the next batch is received once the messages being handled are down to
      // newBatchThreshold, not when the whole batch is done (its slowest message would hold the others' slots).
      if (this.inFlight > this.settings.newBatchThreshold) {
        await this.untilStopped(this.slotFreed());
        continue;
      }
      let received: ReceivedMessage[] = [];
      try {
        const response = await this.queue.receiveMessages({
          numberOfMessages: this.settings.batchSize,
          visibilityTimeout: this.settings.leaseSeconds,
        });
        received = response.receivedMessageItems;
      } catch (error) {
        if (!this.running) break;
        this.log('warn', this.functionName, `Could not read queue ${this.queue.name}: ${redact(errorMessage(error))}`);
      }
      const leases = received.map((message) => this.lease(message));
      if (!this.running) {
        await Promise.all(leases.map((lease) => this.handBack(lease)));
        break;
      }
      if (received.length === 0) {
        if (!this.running) break;
        if (this.woken) {
          this.woken = false;
          idleMs = 100;
        } else {
          await this.untilStopped(this.idleSleep(idleMs));
          idleMs = this.woken ? 100 : Math.min(idleMs * 2, this.settings.maxPollingIntervalMs);
          this.woken = false;
        }
        continue;
      }
      idleMs = 100;
      this.inFlight += received.length;
      this.onActivity();
      // On stop, running handlers are abandoned (their messages handed back), not awaited.
      for (const [index, message] of received.entries()) {
        void this.process(message, leases[index]!).finally(() => {
          if (!this.running) return;
          this.inFlight -= 1;
          this.onActivity();
          for (const resolve of [...this.slotWaiters]) resolve();
          this.slotWaiters.clear();
        });
      }
    }
  }

  /** Takes a received message: renews its visibility every `leaseRenewalMs` while it is handled. */
  private lease(message: ReceivedMessage): Lease {
    const lease: Lease = {
      messageId: message.messageId,
      popReceipt: message.popReceipt,
      chain: Promise.resolve(),
      renewal: undefined,
      settled: false,
    };
    this.leases.add(lease);
    lease.renewal = setInterval(() => {
      this.enqueue(lease, async () => {
        if (lease.settled) return;
        try {
          const renewed = await this.queue.updateMessage(
            lease.messageId,
            lease.popReceipt,
            undefined,
            this.settings.leaseSeconds,
          );
          if (renewed.popReceipt !== undefined) lease.popReceipt = renewed.popReceipt;
        } catch (error) {
          this.log(
            'warn',
            this.functionName,
            `Could not renew the visibility of message ${lease.messageId}: ${redact(errorMessage(error))}`,
          );
        }
      });
    }, this.settings.leaseRenewalMs);
    lease.renewal.unref();
    return lease;
  }

  private enqueue(lease: Lease, step: () => Promise<void>): Promise<void> {
    lease.chain = lease.chain.then(step, step);
    return lease.chain;
  }

  /** Ends a lease with one last operation (delete, retry delay, hand-back), unless it has ended already. */
  private settle(lease: Lease, last: (popReceipt: string) => Promise<unknown>): Promise<void> {
    if (lease.settled) return lease.chain;
    lease.settled = true;
    clearInterval(lease.renewal);
    this.leases.delete(lease);
    return this.enqueue(lease, async () => {
      await last(lease.popReceipt).catch((error: unknown) => {
        this.log(
          'warn',
          this.functionName,
          `Message ${lease.messageId}: could not update it (${redact(errorMessage(error))}); it becomes visible again after its lease.`,
        );
      });
    });
  }

  /** Makes a message visible again at once (it was received but not finished). */
  private handBack(lease: Lease): Promise<void> {
    return this.settle(lease, (popReceipt) => this.queue.updateMessage(lease.messageId, popReceipt, undefined, 0));
  }

  private async process(message: ReceivedMessage, lease: Lease): Promise<void> {
    try {
      await this.handle(message, lease);
    } catch (error) {
      if (!lease.settled) {
        this.log('error', this.functionName, `Message ${message.messageId}: ${redact(errorMessage(error))}`);
      }
    }
  }

  private async handle(message: ReceivedMessage, lease: Lease): Promise<void> {
    const decoded = Buffer.from(message.messageText, 'base64').toString('utf8');
    const isBase64 = Buffer.from(decoded, 'utf8').toString('base64') === message.messageText.replace(/\s/g, '');
    if (!isBase64) {
      this.log('error', this.functionName, `Message ${message.messageId} is not base64; moved to the poison queue.`);
      await this.moveToPoison(message, lease);
      return;
    }
    const context = invocationContext(this.functionName, this.log, {
      dequeueCount: message.dequeueCount,
      id: message.messageId,
      insertionTime: message.insertedOn.toISOString(),
      expirationTime: message.expiresOn.toISOString(),
      popReceipt: message.popReceipt,
      queueTrigger: decoded,
    });
    try {
      await this.handler(triggerPayload(decoded), context);
    } catch (error) {
      if (lease.settled) return; // handed back while it ran: abandoned
      const text = redact(errorMessage(error));
      if (message.dequeueCount >= this.settings.maxDequeueCount) {
        this.log(
          'error',
          this.functionName,
          `Message ${message.messageId} failed ${message.dequeueCount} times (${text}); moved to ${this.poison?.name ?? 'nowhere'}.`,
        );
        await this.moveToPoison(message, lease);
      } else {
        this.log('info', this.functionName, `Attempt ${message.dequeueCount} failed (${text}); retried later.`);
        await this.settle(lease, (popReceipt) =>
          this.queue.updateMessage(message.messageId, popReceipt, undefined, this.settings.visibilityTimeoutSeconds),
        );
      }
      return;
    }
    await this.settle(lease, (popReceipt) => this.queue.deleteMessage(message.messageId, popReceipt));
  }

  private async moveToPoison(message: ReceivedMessage, lease: Lease): Promise<void> {
    if (lease.settled) return;
    if (this.poison !== undefined) await this.poison.sendMessage(message.messageText, { messageTimeToLive: -1 });
    await this.settle(lease, (popReceipt) => this.queue.deleteMessage(message.messageId, popReceipt));
  }
}

/**
 * A local Functions host for the csp-unbilled-export functions: the same handlers, driven through the same
 * queues with host.json semantics, the timer from EXPORT_SCHEDULE, and the HTTP routes as in Azure.
 */
export class LocalFunctionsHost {
  private readonly listeners: QueueListener[] = [];
  /** Listeners by `host/path` of their queue's messages URL, for the wake-up on sends from this process. */
  private readonly byMessagesUrl = new Map<string, QueueListener>();
  private readonly wakeTimers = new Set<NodeJS.Timeout>();
  private readonly onRequestStart = (message: unknown): void => this.wakeOnSend(message);
  private server: Server | undefined;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private lastActivity = Date.now();
  private stopping: Promise<void> | undefined;
  readonly handlers: FunctionHandlers;
  /** Base URL of the HTTP routes, e.g. http://localhost:7071, once started with an HTTP port. */
  httpBaseUrl: string | undefined;

  private constructor(private readonly options: LocalHostOptions) {
    this.handlers = options.handlers ?? loadFunctionHandlers();
  }

  static async start(options: LocalHostOptions): Promise<LocalFunctionsHost> {
    const host = new LocalFunctionsHost(options);
    try {
      await host.startListeners();
      if (options.schedule !== undefined) {
        host.scheduleTimer(FunctionNames.startExportsTimer, options.schedule, () => host.runTimerNow());
      }
      if (options.schedule !== undefined || options.supervise === true) {
        host.scheduleTimer(FunctionNames.superviseRuns, SUPERVISE_SCHEDULE, () => host.superviseNow());
      }
      if (options.httpPort !== undefined) await host.startHttp(options.httpPort);
    } catch (error) {
      await host.stop(); // e.g. the HTTP port is taken: no listener keeps running
      throw error;
    }
    return host;
  }

  /** True while any queue message is being handled. */
  get busy(): boolean {
    return this.listeners.some((l) => l.busy);
  }

  /** Milliseconds since a listener last started or finished a batch. */
  get idleMs(): number {
    return Date.now() - this.lastActivity;
  }

  /** Runs startExportsTimer now, as the portal's Test/Run does. */
  async runTimerNow(): Promise<void> {
    const now = new Date().toISOString();
    await this.handlers.startExportsTimer(
      {
        isPastDue: false,
        schedule: { adjustForDST: false },
        scheduleStatus: { last: now, next: now, lastUpdated: now },
      },
      invocationContext(FunctionNames.startExportsTimer, this.options.log),
    );
  }

  /** Runs superviseRuns now (its timer fires every 10 minutes). */
  async superviseNow(): Promise<void> {
    const now = new Date().toISOString();
    await this.handlers.superviseRuns(
      {
        isPastDue: false,
        schedule: { adjustForDST: false },
        scheduleStatus: { last: now, next: now, lastUpdated: now },
      },
      invocationContext(FunctionNames.superviseRuns, this.options.log),
    );
  }

  /**
   * Stops the timers, the HTTP routes and the listeners; messages being handled are handed back at once
   * (their handlers are abandoned, not awaited). Safe to call twice.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const timer of this.timers.values()) clearTimeout(timer);
      unsubscribe('http.client.request.start', this.onRequestStart);
      for (const timer of this.wakeTimers) clearTimeout(timer);
      this.wakeTimers.clear();
      const server = this.server;
      await Promise.all([
        ...this.listeners.map((l) => l.stop()),
        server === undefined
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
      ]);
    })();
    return this.stopping;
  }

  private async startListeners(): Promise<void> {
    const settings = { ...readQueueHostSettings(), ...this.options.queueSettings };
    const service = createQueueServiceClient(this.options.hostStorage);
    const queue = async (name: string) => {
      const client = service.getQueueClient(name);
      await client.createIfNotExists();
      return client;
    };
    const h = this.handlers;
    // As in the Functions host, every queue trigger has a `<queue>-poison` queue, those on poison queues
    // too: a message their handler cannot take (not base64, or failing every time) is kept, never deleted.
    const pairs: Array<[string, string, QueueHandler, string]> = [
      [QueueNames.status, FunctionNames.pollExportStatus, h.pollExportStatus, QueueNames.statusPoison],
      [QueueNames.copy, FunctionNames.copyExportBlob, h.copyExportBlob, QueueNames.copyPoison],
      [
        QueueNames.statusPoison,
        FunctionNames.exportStatusPoison,
        h.exportStatusPoison,
        `${QueueNames.statusPoison}-poison`,
      ],
      [QueueNames.copyPoison, FunctionNames.exportCopyPoison, h.exportCopyPoison, `${QueueNames.copyPoison}-poison`],
      [QueueNames.curate, FunctionNames.curateExportFile, h.curateExportFile, QueueNames.curatePoison],
      [
        QueueNames.curatePoison,
        FunctionNames.exportCuratePoison,
        h.exportCuratePoison,
        `${QueueNames.curatePoison}-poison`,
      ],
    ];
    for (const [name, functionName, handler, poisonName] of pairs) {
      const client = await queue(name);
      const poison = await queue(poisonName);
      const listener = new QueueListener(client, poison, functionName, handler, settings, this.options.log, () => {
        this.lastActivity = Date.now();
      });
      this.listeners.push(listener);
      const url = new URL(client.url);
      this.byMessagesUrl.set(`${url.host}${url.pathname.replace(/\/+$/, '')}/messages`, listener);
    }
    subscribe('http.client.request.start', this.onRequestStart);
  }

  /**
   * The idle back-off of a listener (up to host.json `maxPollingInterval`) is for queues nobody writes to. When
   * this process puts a message on a listened queue (Put Message: POST .../messages), the listener polls at once,
   * or when the message's initial invisibility ends. This only shortens idle waits of the local host; which
   * messages are received, and when they become visible, stay as in Azure.
   */
  private wakeOnSend(message: unknown): void {
    const request = (message as { request?: ClientRequest }).request;
    if (request === undefined || request.method !== 'POST') return;
    const host = request.getHeader('host');
    const at = request.path.indexOf('?');
    const path = at < 0 ? request.path : request.path.slice(0, at);
    const listener = this.byMessagesUrl.get(`${typeof host === 'string' ? host : ''}${path}`);
    if (listener === undefined) return;
    const delaySeconds = Number(new URLSearchParams(at < 0 ? '' : request.path.slice(at + 1)).get('visibilitytimeout'));
    // Wake once the service has stored the message (the response came), and again when a delay ends.
    request.once('response', () => listener.wake());
    if (Number.isFinite(delaySeconds) && delaySeconds > 0) {
      const timer = setTimeout(
        () => {
          this.wakeTimers.delete(timer);
          listener.wake();
        },
        delaySeconds * 1000 + 50,
      );
      timer.unref();
      this.wakeTimers.add(timer);
    }
  }

  private scheduleTimer(name: string, schedule: string, run: () => Promise<void>): void {
    const next = CronExpressionParser.parse(schedule, { tz: 'UTC' }).next().toDate();
    const delay = Math.max(0, Math.min(next.getTime() - Date.now(), 2 ** 31 - 1));
    const timer = setTimeout(() => {
      run()
        .catch((error) => this.options.log('error', name, redact(errorMessage(error))))
        .finally(() => {
          if (this.stopping === undefined) this.scheduleTimer(name, schedule, run);
        });
    }, delay);
    timer.unref();
    this.timers.set(name, timer);
  }

  private async startHttp(port: number): Promise<void> {
    const server = createServer((req, res) => {
      this.route(req, res).catch((error) => {
        res.statusCode = 500;
        res.end(redact(errorMessage(error)));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.httpBaseUrl = `http://localhost:${(server.address() as AddressInfo).port}`;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', this.httpBaseUrl);
    const method = (req.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    for (const [key, value] of Object.entries(req.headers)) if (typeof value === 'string') headers[key] = value;
    const request = (params: Record<string, string>) =>
      new HttpRequest({
        method,
        url: url.href,
        headers,
        query: Object.fromEntries(url.searchParams.entries()),
        params,
        ...(body === '' ? {} : { body: { string: body } }),
      });
    const send = async (response: HttpResponseInit) => {
      res.statusCode = response.status ?? 200;
      for (const [key, value] of Object.entries((response.headers ?? {}) as Record<string, string>)) {
        res.setHeader(key, value);
      }
      if (response.jsonBody !== undefined) {
        if (!res.hasHeader('content-type')) res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(response.jsonBody, null, 2));
      } else {
        res.end(typeof response.body === 'string' ? response.body : '');
      }
    };
    const log = this.options.log;
    const runs = /^\/api\/exports\/runs(?:\/([^/]+))?\/?$/.exec(url.pathname);
    if (url.pathname.replace(/\/$/, '') === '/api/exports' && method === 'POST') {
      await send(
        await this.handlers.startExportsHttp(request({}), invocationContext(FunctionNames.startExportsHttp, log)),
      );
    } else if (runs !== null && method === 'GET') {
      const params: Record<string, string> = runs[1] === undefined ? {} : { runId: decodeURIComponent(runs[1]) };
      await send(
        await this.handlers.listExportRuns(request(params), invocationContext(FunctionNames.listExportRuns, log)),
      );
    } else if (url.pathname === `/admin/functions/${FunctionNames.startExportsTimer}` && method === 'POST') {
      void this.runTimerNow().catch((error) =>
        log('error', FunctionNames.startExportsTimer, redact(errorMessage(error))),
      );
      await send({ status: 202 });
    } else {
      await send({
        status: 404,
        jsonBody: {
          title: 'Not found',
          detail: 'Routes: POST /api/exports, GET /api/exports/runs[/{runId}], POST /admin/functions/startExportsTimer',
        },
      });
    }
  }
}
