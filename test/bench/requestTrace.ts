/**
 * Preloaded into a process the bench spawns (`node -r dist/test/bench/requestTrace.js ...`): records every HTTP(S)
 * request the process makes through `node:http` (the Azure SDKs' transport), with start and response times, and
 * writes them as JSON to `BENCH_TRACE_FILE` when the process exits. Only method, host and path are kept: the query
 * string (where a SAS would be) is dropped, except the names of the parameters that say what an operation is.
 */
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

export interface TracedRequest {
  /** Epoch milliseconds (fractional) at the request's start. */
  start: number;
  /** Epoch milliseconds when the response headers arrived; absent when none did. */
  end?: number;
  method: string;
  host: string;
  path: string;
  /** Query parameters that name the operation (comp, restype, visibilitytimeout...), never a SAS. */
  query: Record<string, string>;
  status?: number;
  /** Headers that name the operation: x-ms-copy-source present, x-ms-blob-type. */
  copy?: boolean;
}

export interface RequestTraceFile {
  pid: number;
  startedAt: number;
  exitedAt: number;
  requests: TracedRequest[];
  /** Bytes read and written on every TCP client socket of the process (headers included). */
  socketBytes: number;
}

const KEPT_QUERY = new Set(['comp', 'restype', 'visibilitytimeout', 'numofmessages', 'popreceipt', '$filter']);

const now = (): number => performance.timeOrigin + performance.now();

export function describeRequest(request: ClientRequest): TracedRequest {
  const at = request.path.indexOf('?');
  const path = at < 0 ? request.path : request.path.slice(0, at);
  const query: Record<string, string> = {};
  if (at >= 0) {
    for (const [name, value] of new URLSearchParams(request.path.slice(at + 1))) {
      const key = name.toLowerCase();
      if (KEPT_QUERY.has(key)) query[key] = key === 'popreceipt' ? 'yes' : value;
    }
  }
  const host = request.getHeader('host');
  return {
    start: now(),
    method: request.method,
    host: typeof host === 'string' ? host : '',
    path,
    query,
    copy: request.getHeader('x-ms-copy-source') !== undefined,
  };
}

const file = process.env['BENCH_TRACE_FILE'];
if (file !== undefined && file !== '') {
  const startedAt = now();
  const requests: TracedRequest[] = [];
  const sockets = new Set<Socket>();
  let closedBytes = 0;
  subscribe('net.client.socket', (message) => {
    const socket = (message as { socket: Socket }).socket;
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      closedBytes += socket.bytesRead + socket.bytesWritten;
    });
  });
  subscribe('http.client.request.start', (message) => {
    const request = (message as { request: ClientRequest }).request;
    const traced = describeRequest(request);
    requests.push(traced);
    request.once('response', (response: IncomingMessage) => {
      traced.end = now();
      if (response.statusCode !== undefined) traced.status = response.statusCode;
    });
  });
  process.once('exit', () => {
    let socketBytes = closedBytes;
    for (const socket of sockets) socketBytes += socket.bytesRead + socket.bytesWritten;
    const trace: RequestTraceFile = { pid: process.pid, startedAt, exitedAt: now(), requests, socketBytes };
    writeFileSync(file, JSON.stringify(trace));
  });
}
