/**
 * A local Application Insights ingestion endpoint for tests: receives what the exporter sends
 * (`POST <IngestionEndpoint>/v2.1/track`, gzip, one JSON envelope per line, or a JSON array),
 * records it, and answers as the real endpoint does. HTTPS only, as the Azure Monitor exporter turns every
 * ingestion endpoint into an https:// one: the server's throw-away CA is trusted by the process that starts it
 * (for this endpoint's port only), and is written to a file for child processes (NODE_EXTRA_CA_CERTS).
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { gunzipSync, inflateSync } from 'node:zlib';
import { createEmulatorCertificate } from '../../src/emulator/certificate';

/** One received telemetry item. A MetricData envelope gives one item per data point. */
export interface IngestedItem {
  /** Event name (EventData), metric name (MetricData, one item per data point), else baseData.name or message. */
  name: string;
  /** `data.baseType` of the envelope: EventData, MetricData, MessageData, ... */
  baseType: string;
  /** `baseData.properties` (customDimensions), string values only. */
  properties: Record<string, string>;
  /** Event measurements; for a metric `{ value }`. */
  measurements: Record<string, number>;
  /** Envelope tags (`ai.cloud.role`, `ai.operation.id`, ...). */
  tags: Record<string, string>;
  /** `data.baseData` as received (e.g. a dependency's `data` URL, `target`, `type`; an exception's details). */
  baseData: Record<string, unknown>;
  /** The envelope as received (one NDJSON line). */
  raw: string;
}

/** One HTTP request the endpoint received, body decompressed. */
export interface IngestionRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** How the endpoint answers: as Application Insights does, as a resource with local auth disabled, or never. */
export type IngestionMode = 'accept' | 'refuse401' | 'silent';

export interface IngestionServer {
  /** `InstrumentationKey=00000000-...;IngestionEndpoint=https://127.0.0.1:<port>/` */
  connectionString: string;
  /** The CA that signed the endpoint's certificate, and a file holding it (for NODE_EXTRA_CA_CERTS). */
  caCertPem: string;
  caCertPath: string;
  /** Changes how the following requests are answered (default `accept`). */
  setMode(mode: IngestionMode): void;
  items: IngestedItem[];
  /** Every request body, decompressed. */
  rawBodies: string[];
  requests: IngestionRequest[];
  stop(): Promise<void>;
}

export const TEST_INSTRUMENTATION_KEY = '00000000-0000-0000-0000-000000000000';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function strings(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) return out;
  for (const [key, item] of Object.entries(value)) if (typeof item === 'string') out[key] = item;
  return out;
}

function finiteNumbers(value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!isRecord(value)) return out;
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'number' && Number.isFinite(item)) out[key] = item;
  }
  return out;
}

/** Items of one envelope, or an error text when it is not an envelope. */
function itemsOf(envelope: unknown, raw: string): IngestedItem[] | string {
  if (!isRecord(envelope)) return 'envelope is not an object';
  const data = envelope['data'];
  if (!isRecord(data) || typeof data['baseType'] !== 'string' || !isRecord(data['baseData'])) {
    return 'envelope has no data.baseType/baseData';
  }
  const baseType = data['baseType'];
  const baseData = data['baseData'];
  const properties = strings(baseData['properties']);
  const tags = strings(envelope['tags']);
  if (baseType === 'MetricData') {
    const metrics = baseData['metrics'];
    if (!Array.isArray(metrics)) return 'MetricData has no metrics';
    const items: IngestedItem[] = [];
    for (const point of metrics) {
      if (!isRecord(point) || typeof point['name'] !== 'string' || typeof point['value'] !== 'number') {
        return 'metric data point without name or value';
      }
      items.push({
        name: point['name'],
        baseType,
        properties: { ...properties },
        measurements: { value: point['value'] },
        tags,
        baseData,
        raw,
      });
    }
    return items;
  }
  const name = baseData['name'] ?? baseData['message'] ?? envelope['name'];
  return [
    {
      name: typeof name === 'string' ? name : '',
      baseType,
      properties,
      measurements: finiteNumbers(baseData['measurements']),
      tags,
      baseData,
      raw,
    },
  ];
}

/** Envelopes of a body: a JSON array (v2/track) or one JSON object a line (the Node SDK's x-json-stream). */
function envelopesOf(body: string): Array<{ envelope: unknown; raw: string }> {
  const text = body.trim();
  if (text.startsWith('[')) {
    const parsed: unknown = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error('not a JSON array');
    return parsed.map((envelope: unknown) => ({ envelope, raw: JSON.stringify(envelope) }));
  }
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => ({ envelope: JSON.parse(line) as unknown, raw: line }));
}

function decode(body: Buffer, encoding: string | undefined): string {
  const name = (encoding ?? '').trim().toLowerCase();
  if (name === 'gzip') return gunzipSync(body).toString('utf8');
  if (name === 'deflate') return inflateSync(body).toString('utf8');
  return body.toString('utf8');
}

function answer(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** CAs trusted for one loopback port each, in this process. */
const trustedPorts = new Map<number, string>();
let trustInstalled = false;

/**
 * Makes this process trust `caCertPem` for TLS connections to 127.0.0.1:`port` (and nothing else): the exporter
 * builds its own HTTPS agents, and Node 20 reads NODE_EXTRA_CA_CERTS only at start-up.
 */
export function trustIngestionCertificate(port: number, caCertPem: string): void {
  trustedPorts.set(port, caCertPem);
  if (trustInstalled) return;
  trustInstalled = true;
  const agent = https.Agent.prototype as unknown as {
    createConnection: (options: Record<string, unknown>, ...rest: unknown[]) => unknown;
  };
  const createConnection = agent.createConnection;
  agent.createConnection = function (this: unknown, options: Record<string, unknown>, ...rest: unknown[]) {
    const host = String(options['host'] ?? options['hostname'] ?? '');
    const ca = trustedPorts.get(Number(options['port']));
    const patched =
      ca !== undefined && (host === '127.0.0.1' || host === 'localhost')
        ? { ...options, ca: [...tls.rootCertificates, ca] }
        : options;
    return createConnection.call(this, patched, ...rest);
  };
}

/** Starts the endpoint on 127.0.0.1 and a free port, over HTTPS. */
export async function startIngestionServer(): Promise<IngestionServer> {
  const certificate = await createEmulatorCertificate();
  let mode: IngestionMode = 'accept';
  const items: IngestedItem[] = [];
  const rawBodies: string[] = [];
  const requests: IngestionRequest[] = [];

  const handle = (request: IncomingMessage, body: Buffer, response: ServerResponse): void => {
    const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    let text: string;
    try {
      text = decode(body, request.headers['content-encoding']);
    } catch (error) {
      const message = `body could not be decompressed: ${error instanceof Error ? error.message : String(error)}`;
      answer(response, 400, { itemsReceived: 0, itemsAccepted: 0, errors: [{ index: 0, statusCode: 400, message }] });
      return;
    }
    requests.push({ method: request.method ?? '', path, headers: request.headers, body: text });
    rawBodies.push(text);
    if (mode === 'silent') return;
    if (mode === 'refuse401') {
      answer(response, 401, {
        itemsReceived: 1,
        itemsAccepted: 0,
        errors: [{ index: 0, statusCode: 401, message: 'Unauthorized, local authentication is disabled' }],
      });
      return;
    }
    if (request.method !== 'POST' || !/\/v2(\.1)?\/track$/.test(path)) {
      answer(response, 404, { error: `no such endpoint: ${request.method} ${path}` });
      return;
    }
    let envelopes: Array<{ envelope: unknown; raw: string }>;
    try {
      envelopes = envelopesOf(text);
    } catch (error) {
      const message = `invalid JSON: ${error instanceof Error ? error.message : String(error)}`;
      answer(response, 400, { itemsReceived: 0, itemsAccepted: 0, errors: [{ index: 0, statusCode: 400, message }] });
      return;
    }
    const errors: Array<{ index: number; statusCode: number; message: string }> = [];
    envelopes.forEach(({ envelope, raw }, index) => {
      const result = itemsOf(envelope, raw);
      if (typeof result === 'string') errors.push({ index, statusCode: 400, message: result });
      else items.push(...result);
    });
    const received = envelopes.length;
    answer(response, errors.length === 0 ? 200 : 206, {
      itemsReceived: received,
      itemsAccepted: received - errors.length,
      errors,
    });
  };

  const server = https.createServer(
    { key: certificate.serverKeyPem, cert: certificate.serverCertPem },
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => handle(request, Buffer.concat(chunks), response));
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  trustIngestionCertificate(port, certificate.caCertPem);

  let stopped: Promise<void> | undefined;
  return {
    connectionString: `InstrumentationKey=${TEST_INSTRUMENTATION_KEY};IngestionEndpoint=https://127.0.0.1:${port}/`,
    caCertPem: certificate.caCertPem,
    caCertPath: certificate.caCertPath,
    setMode(next) {
      mode = next;
    },
    items,
    rawBodies,
    requests,
    stop: () => {
      stopped ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // The exporter's agent keeps connections alive; close them so that close() completes.
        server.closeAllConnections();
      }).finally(() => certificate.dispose());
      return stopped;
    },
  };
}
