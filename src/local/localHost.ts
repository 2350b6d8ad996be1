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
import { FunctionNames, QueueNames } from '../names';
import { redact } from '../redact';

/** The queue settings of host.json that the local host honours, as the Functions host does. */
export interface QueueHostSettings {
  batchSize: number;
  maxDequeueCount: number;
  /** Delay before a failed message is retried. */
  visibilityTimeoutSeconds: number;
  maxPollingIntervalMs: number;
}

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
  return {
    batchSize: typeof queues['batchSize'] === 'number' ? queues['batchSize'] : 16,
    maxDequeueCount: typeof queues['maxDequeueCount'] === 'number' ? queues['maxDequeueCount'] : 5,
    visibilityTimeoutSeconds: span(queues['visibilityTimeout'], 0),
    maxPollingIntervalMs: span(queues['maxPollingInterval'], 60) * 1000,
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

/**
 * One queue listener with the Functions host's semantics: base64 messages, `batchSize` at a time,
 * a failed message becomes visible again after `visibilityTimeout`, and after `maxDequeueCount`
 * attempts (or when it is not base64) it moves to `<queue>-poison`.
 */
class QueueListener {
  private running = true;
  private inFlight = 0;
  private readonly done: Promise<void>;
  /** Set when this process sent a message to the queue while the listener was not sleeping. */
  private woken = false;
  private endSleep: (() => void) | undefined;

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

  async stop(): Promise<void> {
    this.running = false;
    this.endSleep?.();
    await this.done;
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
      this.endSleep = () => {
        clearTimeout(timer);
        this.endSleep = undefined;
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    let idleMs = 100;
    while (this.running) {
      let received: Awaited<ReturnType<QueueClient['receiveMessages']>>['receivedMessageItems'] = [];
      try {
        const response = await this.queue.receiveMessages({
          numberOfMessages: this.settings.batchSize,
          visibilityTimeout: 600,
        });
        received = response.receivedMessageItems;
      } catch (error) {
        if (!this.running) break;
        this.log('warn', this.functionName, `Could not read queue ${this.queue.name}: ${redact(errorMessage(error))}`);
      }
      if (received.length === 0) {
        if (!this.running) break;
        if (this.woken) {
          this.woken = false;
          idleMs = 100;
        } else {
          await this.idleSleep(idleMs);
          idleMs = this.woken ? 100 : Math.min(idleMs * 2, this.settings.maxPollingIntervalMs);
          this.woken = false;
        }
        continue;
      }
      idleMs = 100;
      this.inFlight += received.length;
      this.onActivity();
      await Promise.all(received.map((message) => this.process(message)));
      this.inFlight -= received.length;
      this.onActivity();
    }
  }

  private async process(message: {
    messageId: string;
    popReceipt: string;
    messageText: string;
    dequeueCount: number;
    insertedOn: Date;
    expiresOn: Date;
  }): Promise<void> {
    const decoded = Buffer.from(message.messageText, 'base64').toString('utf8');
    const isBase64 = Buffer.from(decoded, 'utf8').toString('base64') === message.messageText.replace(/\s/g, '');
    if (!isBase64) {
      this.log('error', this.functionName, `Message ${message.messageId} is not base64; moved to the poison queue.`);
      await this.moveToPoison(message);
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
      await this.queue.deleteMessage(message.messageId, message.popReceipt);
    } catch (error) {
      const text = redact(errorMessage(error));
      if (message.dequeueCount >= this.settings.maxDequeueCount) {
        this.log(
          'error',
          this.functionName,
          `Message ${message.messageId} failed ${message.dequeueCount} times (${text}); moved to ${this.poison?.name ?? 'nowhere'}.`,
        );
        await this.moveToPoison(message);
      } else {
        this.log('info', this.functionName, `Attempt ${message.dequeueCount} failed (${text}); retried later.`);
        await this.queue
          .updateMessage(message.messageId, message.popReceipt, undefined, this.settings.visibilityTimeoutSeconds)
          .catch(() => undefined);
      }
    }
  }

  private async moveToPoison(message: { messageId: string; popReceipt: string; messageText: string }) {
    if (this.poison !== undefined) await this.poison.sendMessage(message.messageText, { messageTimeToLive: -1 });
    await this.queue.deleteMessage(message.messageId, message.popReceipt).catch(() => undefined);
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
  private timer: NodeJS.Timeout | undefined;
  private lastActivity = Date.now();
  readonly handlers: FunctionHandlers;
  /** Base URL of the HTTP routes, e.g. http://localhost:7071, once started with an HTTP port. */
  httpBaseUrl: string | undefined;

  private constructor(private readonly options: LocalHostOptions) {
    this.handlers = options.handlers ?? loadFunctionHandlers();
  }

  static async start(options: LocalHostOptions): Promise<LocalFunctionsHost> {
    const host = new LocalFunctionsHost(options);
    await host.startListeners();
    if (options.schedule !== undefined) host.scheduleTimer(options.schedule);
    if (options.httpPort !== undefined) await host.startHttp(options.httpPort);
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

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer);
    unsubscribe('http.client.request.start', this.onRequestStart);
    for (const timer of this.wakeTimers) clearTimeout(timer);
    this.wakeTimers.clear();
    await Promise.all(this.listeners.map((l) => l.stop()));
    const server = this.server;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
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

  private scheduleTimer(schedule: string): void {
    const next = CronExpressionParser.parse(schedule, { tz: 'UTC' }).next().toDate();
    const delay = Math.max(0, Math.min(next.getTime() - Date.now(), 2 ** 31 - 1));
    this.timer = setTimeout(() => {
      this.runTimerNow()
        .catch((error) => this.options.log('error', FunctionNames.startExportsTimer, redact(errorMessage(error))))
        .finally(() => this.scheduleTimer(schedule));
    }, delay);
    this.timer.unref();
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
