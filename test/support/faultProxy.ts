/**
 * A fault-injecting reverse proxy for tests: HTTPS in front of the partner billing emulator (its own
 * throw-away certificate, like graphProxy.ts), or plain HTTP in front of an Azurite service. Each request
 * is offered to `decide`, which may answer a status of its own, reset the connection, hold the answer
 * (slow or never), cut a body short, rewrite the body, or let it through. Absolute URLs of the target
 * are rewritten to the proxy's origin (Location headers, manifests), so clients keep talking to the proxy.
 */
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createEmulatorCertificate } from '../../src/emulator/certificate';

/** What the proxy knows of a request when it decides. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, as received. */
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** The currency of a Graph export POST (its body) or of an operation the proxy saw created. */
  currency: string | undefined;
}

export type FaultAction =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Destroys the connection without an answer (before the request reaches the target). */
  | { kind: 'reset' }
  /** Forwards, then destroys the connection instead of answering (the target did the work). */
  | { kind: 'resetAfterForward' }
  /** Holds the answer this long (or until the client gives up, when `ms` is Infinity), then forwards. */
  | { kind: 'delay'; ms: number }
  /** Forwards, and answers only the first `bytes` bytes of the body under the full Content-Length. */
  | { kind: 'truncate'; bytes: number }
  /** Forwards, and replaces the body (status and headers kept). */
  | { kind: 'body'; body: string };

export interface FaultProxyOptions {
  /** e.g. https://127.0.0.1:PORT/v1.0 or http://127.0.0.1:PORT */
  target: string;
  /** PEM of the CA the target's certificate is signed by (https targets). */
  targetCaPem?: string;
  decide?: (request: ProxiedRequest) => FaultAction | undefined;
  /** How a request names its currency (default: a Graph export body, or an operation seen created). */
  currencyOf?: (request: { method: string; url: string; body: Buffer }) => string | undefined;
  /** Rewrites a JSON body the target answered (after URL rewriting). */
  rewriteJson?: (json: unknown, request: ProxiedRequest) => unknown;
}

export interface FaultLogEntry {
  method: string;
  url: string;
  currency: string | undefined;
  action: string;
  status: number | undefined;
  /** The client went away before the proxy answered. */
  clientAborted: boolean;
}

export interface FaultProxy {
  /** The proxy's origin plus the target's path, e.g. https://127.0.0.1:PORT/v1.0 */
  baseUrl: string;
  origin: string;
  /** PEM file of the proxy's CA (https). */
  caCertPath: string | undefined;
  log: FaultLogEntry[];
  stop(): Promise<void>;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.target);
  const secure = target.protocol === 'https:';
  const certificate = secure ? await createEmulatorCertificate() : undefined;
  const log: FaultLogEntry[] = [];
  const operationCurrency = new Map<string, string>();
  let origin = '';

  const currencyOf = (method: string, url: string, body: Buffer): string | undefined => {
    if (method === 'POST') {
      try {
        const code = (JSON.parse(body.toString('utf8')) as { currencyCode?: unknown }).currencyCode;
        if (typeof code === 'string') return code.toUpperCase();
      } catch {
        // not a JSON body
      }
    }
    const id = /\/operations\/([^/?]+)/.exec(url)?.[1];
    return id === undefined ? undefined : operationCurrency.get(id);
  };

  const handler = (req: IncomingMessage, res: import('node:http').ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const method = req.method ?? 'GET';
      const url = req.url ?? '/';
      const request: ProxiedRequest = {
        method,
        url,
        headers: req.headers,
        body,
        currency: options.currencyOf?.({ method, url, body }) ?? currencyOf(method, url, body),
      };
      const action = options.decide?.(request);
      const entry: FaultLogEntry = {
        method,
        url,
        currency: request.currency,
        action: action?.kind ?? 'forward',
        status: undefined,
        clientAborted: false,
      };
      log.push(entry);
      let answered = false;
      res.on('close', () => {
        if (!answered) entry.clientAborted = true;
      });
      if (action?.kind === 'status') {
        answered = true;
        entry.status = action.status;
        res.writeHead(action.status, { 'content-type': 'application/json', ...action.headers });
        res.end(action.body ?? '');
        return;
      }
      if (action?.kind === 'reset') {
        answered = true;
        req.socket.destroy();
        return;
      }
      const forward = () => {
        const send = secure ? httpsRequest : httpRequest;
        const upstream = send(
          {
            host: target.hostname,
            port: target.port,
            method,
            path: url,
            headers: { ...req.headers, host: target.host },
            ...(secure ? { ca: options.targetCaPem } : {}),
          },
          (answer) => {
            const parts: Buffer[] = [];
            answer.on('data', (chunk: Buffer) => parts.push(chunk));
            answer.on('end', () => {
              if (res.destroyed) return;
              answered = true;
              const status = answer.statusCode ?? 502;
              entry.status = status;
              if (action?.kind === 'resetAfterForward') {
                req.socket.destroy();
                return;
              }
              let raw = Buffer.concat(parts);
              const type = String(answer.headers['content-type'] ?? '');
              if (secure && type.includes('json')) {
                let text = raw.toString('utf8').split(target.origin).join(origin);
                if (options.rewriteJson !== undefined && text !== '') {
                  try {
                    text = JSON.stringify(options.rewriteJson(JSON.parse(text), request));
                  } catch {
                    // not JSON after all
                  }
                }
                raw = Buffer.from(text, 'utf8');
              }
              const headers: Record<string, string> = {};
              for (const [key, value] of Object.entries(answer.headers)) {
                if (typeof value === 'string' && key !== 'content-length' && key !== 'transfer-encoding') {
                  headers[key] = secure ? value.split(target.origin).join(origin) : value;
                }
              }
              const location = headers['location'];
              const id = location === undefined ? undefined : /\/operations\/([^/?]+)/.exec(location)?.[1];
              if (id !== undefined && request.currency !== undefined) operationCurrency.set(id, request.currency);
              if (action?.kind === 'body') raw = Buffer.from(action.body, 'utf8');
              // A HEAD answer has no body but announces the blob's length: keep the service's Content-Length.
              const announced = answer.headers['content-length'];
              headers['content-length'] =
                method === 'HEAD' && typeof announced === 'string' ? announced : String(raw.length);
              res.writeHead(status, headers);
              if (action?.kind === 'truncate') {
                res.write(raw.subarray(0, Math.min(action.bytes, raw.length)));
                setTimeout(() => req.socket.destroy(), 20);
                return;
              }
              res.end(raw);
            });
          },
        );
        upstream.on('error', (error) => {
          answered = true;
          if (res.destroyed) return;
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`proxy: ${error.message}`);
        });
        upstream.end(body);
      };
      if (action?.kind === 'delay') {
        if (Number.isFinite(action.ms)) {
          const timer = setTimeout(forward, action.ms);
          res.on('close', () => clearTimeout(timer));
        }
        // Infinity: never answer; the client's timeout is the only way out.
        return;
      }
      forward();
    });
  };

  const server: Server =
    certificate === undefined
      ? createHttpServer(handler)
      : createHttpsServer({ key: certificate.serverKeyPem, cert: certificate.serverCertPem }, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `${secure ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stopping: Promise<void> | undefined;
  return {
    baseUrl: `${origin}${target.pathname.replace(/\/+$/, '')}`,
    origin,
    caCertPath: certificate?.caCertPath,
    log,
    stop() {
      stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await certificate?.dispose();
      })();
      return stopping;
    },
  };
}
