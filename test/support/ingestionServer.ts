/**
 * A local Application Insights ingestion endpoint for tests: receives what the SDK sends
 * (`POST <IngestionEndpoint>/v2.1/track`, gzip, one JSON envelope per line, or a JSON array),
 * records it, and answers as the real endpoint does.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';

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
  /** Envelope tags (`ai.cloud.role`, ...). */
  tags: Record<string, string>;
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

export interface IngestionServer {
  /** `InstrumentationKey=00000000-...;IngestionEndpoint=http://127.0.0.1:<port>/` */
  connectionString: string;
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

/** Starts the endpoint on 127.0.0.1 and a free port. */
export async function startIngestionServer(): Promise<IngestionServer> {
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

  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => handle(request, Buffer.concat(chunks), response));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let stopped: Promise<void> | undefined;
  return {
    connectionString: `InstrumentationKey=${TEST_INSTRUMENTATION_KEY};IngestionEndpoint=http://127.0.0.1:${port}/`,
    items,
    rawBodies,
    requests,
    stop: () => {
      stopped ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // The SDK's agent keeps connections alive; close them so that close() completes.
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
