import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  EMULATOR_DEV_TOKEN,
  EMULATOR_PARTNER_CENTER_DEV_TOKEN,
  EMULATOR_TOKEN_ISSUER,
  PARTNER_BILLING_ROLE,
} from '../adapters/graph/devToken';
import { readAccessTokenClaims } from '../adapters/graph/tokenClaims';
import type { DatasetId } from '../config';
import { redact } from '../redact';
import { createEmulatorCertificate } from './certificate';
import { createExportDataStore, type DatasetSpec, type GeneratedDataset } from './exportDataStore';
import { parseBilledExportRequest, parseExportRequest, parseInvoiceOnlyExportRequest } from './exportRequest';
import { defaultInvoices, type EmulatedInvoice, invoiceCollection } from './invoices';
import { lifecycleStep } from './operationLifecycle';
import { billingMonthOf, usageDaysAt } from './usageData';

export type { EmulatedInvoice } from './invoices';

/** How the emulated service behaves. Everything can be changed at runtime with `configure()`. */
export interface EmulatorScenario {
  /** `inline`: manifest embedded under `resourceLocation` (live service); `navigationLink`: `resourceLocation@odata.navigationLink` + GET /manifests/{id} (documented). */
  dialect: 'inline' | 'navigationLink';
  /** Status of a succeeded operation: `succeeded` (CSDL, examples) or `completed` (resource pages). */
  successStatus: 'succeeded' | 'completed';
  /** Include `@odata.type` on operations and the manifest. */
  odataType: boolean;
  /** GETs of the operation answering notStarted, then running, before the outcome (0 = at once). */
  pollsBeforeSuccess: number;
  /** When above 0, the outcome is due this long after the POST instead (a slow operation). */
  durationMs: number;
  /** `Retry-After` seconds on not-yet-finished operations (0 = no header). */
  retryAfterSeconds: number;
  /** `noData` = failedOperation 5000 "No data available"; `failed` = failedOperation with `failureCode`. */
  outcome: 'succeeded' | 'noData' | 'failed';
  failureCode: string;
  failureMessage: string;
  /** Size of the generated data. */
  blobCount: number;
  rowsPerBlob: number;
  /** Same seed, same data, same bytes, same eTag. */
  seed: number;
  /** Lifetime of the SAS minted for every manifest served. */
  sasLifetimeSeconds: number;
  /** The first N manifests served carry an already-expired SAS. */
  expiredSasOnFirstManifests: number;
  /** Extra GETs answering status `unknownFutureValue` (after notStarted, before running). */
  unknownStatusPolls: number;
  /** Manifest `dataFormat`: `compressedJSON` (examples, live) or `compressedJSONLines` (property description). */
  dataFormat: 'compressedJSON' | 'compressedJSONLines';
}

/**
 * A fault answered instead of the normal response, `count` times. Faults are consumed strictly in the
 * order injected: only the oldest pending one applies, to the next request of its kind (`any`: every kind).
 */
export interface Fault {
  kind: 'throttle' | 'unavailable';
  /** `invoices`: the Partner Center invoices list. */
  on: 'export' | 'operation' | 'manifest' | 'invoices' | 'any';
  count: number;
  /** `Retry-After` seconds (a throttle always sends one: 1 s when not given). */
  retryAfterSeconds?: number;
}

export interface EmulatorOptions {
  /** The Azurite account that plays Microsoft's export storage, e.g. `http://127.0.0.1:PORT/msbilling`. */
  storage: { blobEndpoint: string; accountName: string; accountKey: string };
  /** HTTPS port on 127.0.0.1 (0, the default, picks a free one). */
  port?: number;
  scenario?: Partial<EmulatorScenario>;
  scenariosByCurrency?: Record<string, Partial<EmulatorScenario>>;
  /** Bearer token to require (default: EMULATOR_DEV_TOKEN). */
  token?: string;
  /** Bearer token the Partner Center invoices list requires (default: EMULATOR_PARTNER_CENTER_DEV_TOKEN). */
  partnerCenterToken?: string;
  /** The partner's invoices: billed exports exist for these only (default: three recent invoices, see invoices.ts). */
  invoices?: EmulatedInvoice[];
  /** API version of `baseUrl` (both are served). */
  apiVersion?: 'v1.0' | 'beta';
  /** Partner tenant id in manifests and rows. */
  partnerTenantId?: string;
  /** Receives one line per request and per generated data set (never tokens or SAS). */
  log?: (line: string) => void;
  /**
   * Keeps operations across restarts of an emulator on the same port and storage (the command line's
   * embedded emulator), so that an interrupted local run resumes with the operation Graph accepted.
   */
  operationStore?: OperationStore;
}

/** An operation as kept by an `OperationStore` (JSON). */
export interface SavedOperation {
  id: string;
  datasetId: DatasetId;
  /** JSON has no undefined: null for the daily datasets. */
  invoiceId: string | null;
  apiVersion: string;
  currency: string;
  billingPeriod: 'current' | 'last';
  attributeSet: 'full' | 'basic';
  createdAt: string;
  lastActionAt: string;
  scenario: EmulatorScenario;
  polls: number;
  status: string;
  spec: DatasetSpec;
  manifestId?: string;
  dataset?: Omit<GeneratedDataset, 'createdDateTime'> & { createdDateTime: string };
}

/** Where an emulator keeps its operations across restarts. */
export interface OperationStore {
  save(operation: SavedOperation): Promise<void>;
  load(id: string): Promise<SavedOperation | undefined>;
}

export interface EmulatedOperation {
  id: string;
  dataset: DatasetId;
  /** The invoice of a billed export. */
  invoiceId?: string;
  currency: string;
  billingPeriod: string;
  attributeSet: string;
  /** The last status answered (`notStarted` before the first GET). */
  status: string;
  manifestId?: string;
  eTag?: string;
}

export interface EmulatorRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  authorized: boolean;
  /** HTTP status answered. */
  status: number;
}

export interface PartnerBillingEmulator {
  /** e.g. `https://127.0.0.1:PORT/v1.0`: what GRAPH_BASE_URL gets. */
  baseUrl: string;
  caCertPem: string;
  caCertPath: string;
  /** The bearer token the emulator accepts. */
  token: string;
  /** e.g. `https://127.0.0.1:PORT/v1`: what PARTNER_CENTER_BASE_URL gets (GET {root}/invoices). */
  partnerCenterBaseUrl: string;
  /** The bearer token the Partner Center invoices list accepts. */
  partnerCenterToken: string;
  /** The invoices the emulator knows. */
  invoices: EmulatedInvoice[];
  configure(scenario: Partial<EmulatorScenario>, currency?: string): void;
  injectFaults(...faults: Fault[]): void;
  requests: EmulatorRequest[];
  operations(): EmulatedOperation[];
  /** Waits until the data of every export started so far is written (or failed). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_SCENARIO: Readonly<EmulatorScenario> = {
  dialect: 'inline',
  successStatus: 'succeeded',
  odataType: true,
  pollsBeforeSuccess: 2,
  durationMs: 0,
  retryAfterSeconds: 1,
  outcome: 'succeeded',
  failureCode: '9001',
  failureMessage: 'Internal processing error',
  blobCount: 2,
  rowsPerBlob: 1000,
  seed: 1,
  sasLifetimeSeconds: 3600,
  expiredSasOnFirstManifests: 0,
  unknownStatusPolls: 0,
  dataFormat: 'compressedJSON',
};

export const DEFAULT_PARTNER_TENANT_ID = '4d1c3f7a-2b8e-4c61-9f0d-7a5e3b2c1d90';

const NAMESPACE = '#microsoft.graph.partners.billing';
const JSON_CONTENT_TYPE =
  'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';
const BODY_LIMIT_BYTES = 64 * 1024;
/** How long an operation GET waits for data still being written before it answers `running`. */
const DATA_WAIT_MS = 5000;
const REQUEST_LOG_LIMIT = 10_000;
const BILLING_PREFIX = '/reports/partners/billing';
/** Partner Center's invoices list, served on the same server: `GET /v1/invoices` (api.partnercenter.microsoft.com). */
const PARTNER_CENTER_ROOT = '/v1';
const PARTNER_CENTER_INVOICES = `${PARTNER_CENTER_ROOT}/invoices`;

const NON_NEGATIVE_INTEGERS = [
  'pollsBeforeSuccess',
  'durationMs',
  'retryAfterSeconds',
  'blobCount',
  'rowsPerBlob',
  'seed',
  'expiredSasOnFirstManifests',
  'unknownStatusPolls',
] as const;

/** Checks a partial scenario; throws a TypeError naming the field and what is accepted. */
export function validateScenario(scenario: Partial<EmulatorScenario>): void {
  const problems: string[] = [];
  const oneOf = (field: keyof EmulatorScenario, allowed: readonly unknown[]): void => {
    const value = scenario[field];
    if (value !== undefined && !allowed.includes(value)) {
      problems.push(`${field}: ${JSON.stringify(value)} (accepted: ${allowed.join(', ')})`);
    }
  };
  oneOf('dialect', ['inline', 'navigationLink']);
  oneOf('successStatus', ['succeeded', 'completed']);
  oneOf('odataType', [true, false]);
  oneOf('outcome', ['succeeded', 'noData', 'failed']);
  oneOf('dataFormat', ['compressedJSON', 'compressedJSONLines']);
  for (const field of NON_NEGATIVE_INTEGERS) {
    const value = scenario[field];
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
      problems.push(`${field}: ${JSON.stringify(value)} (accepted: an integer >= 0)`);
    }
  }
  const lifetime = scenario.sasLifetimeSeconds;
  if (lifetime !== undefined && !(Number.isFinite(lifetime) && lifetime > 0)) {
    problems.push(`sasLifetimeSeconds: ${JSON.stringify(lifetime)} (accepted: a number > 0)`);
  }
  for (const field of ['failureCode', 'failureMessage'] as const) {
    const value = scenario[field];
    if (value !== undefined && (typeof value !== 'string' || value === '')) {
      problems.push(`${field}: ${JSON.stringify(value)} (accepted: a non-empty string)`);
    }
  }
  if (problems.length > 0) throw new TypeError(`Invalid emulator scenario: ${problems.join('; ')}`);
}

function saved(operation: OperationRecord): SavedOperation {
  const { data: _data, dataset, dataError: _error, createdAt, lastActionAt, invoiceId, ...rest } = operation;
  return {
    ...rest,
    invoiceId: invoiceId ?? null,
    createdAt: createdAt.toISOString(),
    lastActionAt: lastActionAt.toISOString(),
    ...(dataset === undefined
      ? {}
      : { dataset: { ...dataset, createdDateTime: dataset.createdDateTime.toISOString() } }),
  };
}

function restored(operation: SavedOperation): OperationRecord {
  const { dataset, createdAt, lastActionAt, invoiceId, ...rest } = operation;
  return {
    ...rest,
    // Operations saved before datasets existed are unbilled usage.
    datasetId: rest.datasetId ?? 'unbilledUsage',
    invoiceId: invoiceId ?? undefined,
    createdAt: new Date(createdAt),
    lastActionAt: new Date(lastActionAt),
    ...(dataset === undefined ? {} : { dataset: { ...dataset, createdDateTime: new Date(dataset.createdDateTime) } }),
  };
}

interface OperationRecord {
  id: string;
  datasetId: DatasetId;
  invoiceId: string | undefined;
  apiVersion: string;
  currency: string;
  billingPeriod: 'current' | 'last';
  attributeSet: 'full' | 'basic';
  createdAt: Date;
  lastActionAt: Date;
  /** The scenario at the time of the POST: an export is a snapshot. */
  scenario: EmulatorScenario;
  polls: number;
  status: string;
  spec: DatasetSpec;
  data?: Promise<GeneratedDataset>;
  dataset?: GeneratedDataset;
  dataError?: string;
  manifestId?: string;
}

type Route =
  | { kind: 'export'; version: string; dataset: DatasetId }
  | { kind: 'invoices' }
  | { kind: 'operation'; version: string; id: string }
  | { kind: 'manifest'; version: string; id: string }
  | { kind: 'unknown' };

const EXPORT_ACTIONS = new Set(['export', 'microsoft.graph.partners.billing.export']);
/** The datasets exported per invoice (body `invoiceId`). */
const INVOICE_DATASETS: ReadonlySet<DatasetId> = new Set([
  'billedUsage',
  'billedReconciliation',
  'billedAggregatedUsage',
]);

function route(path: string): Route {
  if (path === PARTNER_CENTER_INVOICES) return { kind: 'invoices' };
  const match = /^\/(v1\.0|beta)(\/.*)$/.exec(path);
  if (match === null) return { kind: 'unknown' };
  const version = match[1]!;
  const rest = match[2]!;
  if (!rest.startsWith(`${BILLING_PREFIX}/`)) return { kind: 'unknown' };
  const segments = rest.slice(BILLING_PREFIX.length + 1).split('/');
  const [first, second, third] = segments;
  if (segments.length === 2 && first === 'operations' && second) return { kind: 'operation', version, id: second };
  if (segments.length === 2 && first === 'manifests' && second) return { kind: 'manifest', version, id: second };
  if (segments.length === 3 && third !== undefined && EXPORT_ACTIONS.has(third)) {
    if (first === 'usage' && second === 'unbilled') return { kind: 'export', version, dataset: 'unbilledUsage' };
    if (first === 'usage' && second === 'billed') return { kind: 'export', version, dataset: 'billedUsage' };
    if (first === 'reconciliation' && second === 'unbilled') {
      return { kind: 'export', version, dataset: 'unbilledReconciliation' };
    }
    if (first === 'reconciliation' && second === 'billed') {
      return { kind: 'export', version, dataset: 'billedReconciliation' };
    }
    if (first === 'aggregatedUsage' && second === 'billed') {
      return { kind: 'export', version, dataset: 'billedAggregatedUsage' };
    }
  }
  return { kind: 'unknown' };
}

/** An invoice-only request as a billed one of attribute set `full` (its one column set). */
function withFullSet(
  parsed: ReturnType<typeof parseInvoiceOnlyExportRequest>,
): { ok: true; value: { invoiceId: string; attributeSet: 'full' } } | { ok: false; message: string } {
  return parsed.ok ? { ok: true, value: { ...parsed.value, attributeSet: 'full' } } : parsed;
}

/** `2023-03-09T08:12:53` (documented operation createdDateTime: no fraction, no zone). */
function documentedDate(date: Date): string {
  return date.toISOString().slice(0, 19);
}

/** `2023-03-09T08:37:48.5046691Z` (seven fractional digits, as Graph writes them). */
function graphDate(date: Date): string {
  return `${date.toISOString().slice(0, 23)}0000Z`;
}

function readBody(request: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    request.once('end', () => resolve(tooLarge ? undefined : Buffer.concat(chunks).toString('utf8')));
    request.once('error', reject);
  });
}

function waitAtMost<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

/**
 * Starts the partner billing emulator: a real HTTPS server on 127.0.0.1 with a certificate made now,
 * faithful to reference/partner-billing-api.md, writing its export data into an Azurite account.
 */
export async function startPartnerBillingEmulator(options: EmulatorOptions): Promise<PartnerBillingEmulator> {
  validateScenario(options.scenario ?? {});
  for (const scenario of Object.values(options.scenariosByCurrency ?? {})) validateScenario(scenario);
  const token = options.token ?? EMULATOR_DEV_TOKEN;
  const partnerCenterToken = options.partnerCenterToken ?? EMULATOR_PARTNER_CENTER_DEV_TOKEN;
  const invoices = (options.invoices ?? defaultInvoices(new Date())).map((invoice) => ({ ...invoice }));
  const apiVersion = options.apiVersion ?? 'v1.0';
  const partnerTenantId = options.partnerTenantId ?? DEFAULT_PARTNER_TENANT_ID;
  const sink = options.log;
  // Lines carry paths and counts only; redaction is a second line of defence for error texts.
  const log = (line: string): void => sink?.(redact(line));
  const storage = createExportDataStore(options.storage);
  const storageRoot = options.storage.blobEndpoint.replace(/\/+$/, '');

  let baseScenario: EmulatorScenario = { ...DEFAULT_SCENARIO, ...options.scenario };
  const currencyScenarios = new Map<string, Partial<EmulatorScenario>>();
  for (const [currency, scenario] of Object.entries(options.scenariosByCurrency ?? {})) {
    currencyScenarios.set(currency.toUpperCase(), { ...scenario });
  }
  // Expired-SAS budgets: '*' for the base scenario, or a currency with its own setting.
  const expiredSasLeft = new Map<string, number>([['*', baseScenario.expiredSasOnFirstManifests]]);
  for (const [currency, scenario] of currencyScenarios) {
    if (scenario.expiredSasOnFirstManifests !== undefined) {
      expiredSasLeft.set(currency, scenario.expiredSasOnFirstManifests);
    }
  }
  const scenarioFor = (currency: string): EmulatorScenario => ({
    ...baseScenario,
    ...currencyScenarios.get(currency),
  });

  const faults: Array<Fault & { left: number }> = [];
  const operations = new Map<string, OperationRecord>();
  const manifests = new Map<string, OperationRecord>();
  const requests: EmulatorRequest[] = [];
  const pendingData = new Set<Promise<unknown>>();
  let port = 0;

  const certificate = await createEmulatorCertificate();
  const store = options.operationStore;
  const save = (operation: OperationRecord): Promise<void> => store?.save(saved(operation)) ?? Promise.resolve();
  const saveLater = (operation: OperationRecord): void => {
    save(operation).catch((error: unknown) =>
      log(
        `emulator: could not save operation ${operation.id}: ${error instanceof Error ? error.message : String(error)}`,
      ),
    );
  };
  /** An operation of this emulator, or of an earlier one on the same store. */
  const findOperation = async (id: string): Promise<OperationRecord | undefined> => {
    const known = operations.get(id);
    if (known !== undefined || store === undefined || !/^[0-9a-f-]{36}$/.test(id)) return known;
    const found = await store.load(id);
    if (found === undefined || operations.has(id)) return operations.get(id);
    const operation = restored(found);
    operations.set(id, operation);
    if (operation.manifestId !== undefined) manifests.set(operation.manifestId, operation);
    if (operation.dataset === undefined && operation.scenario.outcome === 'succeeded') startData(operation);
    log(`emulator: operation ${id} restored from an earlier run of the emulator.`);
    return operation;
  };

  const origin = (request: IncomingMessage): string => {
    const host = request.headers.host ?? '';
    const loopback = /^(localhost|127\.0\.0\.1|\[::1\]):(\d+)$/.exec(host);
    return loopback !== null && Number(loopback[2]) === port ? `https://${host}` : `https://127.0.0.1:${port}`;
  };

  const send = (
    response: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void => {
    const text = body === undefined ? '' : JSON.stringify(body);
    response.writeHead(status, {
      ...headers,
      ...(body === undefined ? {} : { 'Content-Type': JSON_CONTENT_TYPE }),
      'Content-Length': String(Buffer.byteLength(text)),
    });
    response.end(text);
  };

  const sendError = (
    response: ServerResponse,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
  ): void => {
    const requestId = String(response.getHeader('request-id') ?? '');
    const clientRequestId = String(response.getHeader('client-request-id') ?? '');
    send(
      response,
      status,
      {
        error: {
          code,
          message,
          innerError: {
            date: new Date().toISOString().slice(0, 19),
            'request-id': requestId,
            'client-request-id': clientRequestId,
          },
        },
      },
      headers,
    );
  };

  /** Strictly in order: only the oldest pending fault applies, to the next request it targets. */
  const takeFault = (kind: 'export' | 'operation' | 'manifest' | 'invoices'): Fault | undefined => {
    const fault = faults[0];
    if (fault === undefined || (fault.on !== 'any' && fault.on !== kind)) return undefined;
    fault.left--;
    if (fault.left <= 0) faults.shift();
    return fault;
  };

  const sendFault = (response: ServerResponse, fault: Fault): void => {
    if (fault.kind === 'throttle') {
      const seconds = fault.retryAfterSeconds ?? 1;
      sendError(
        response,
        429,
        'TooManyRequests',
        'Too many requests. Retry after the time given in the Retry-After header.',
        {
          'Retry-After': String(seconds),
        },
      );
      return;
    }
    const headers: Record<string, string> =
      fault.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(fault.retryAfterSeconds) };
    sendError(
      response,
      503,
      'ServiceUnavailable',
      'The service is temporarily unavailable. Please retry later.',
      headers,
    );
  };

  /** Starts writing the data of a succeeded-to-be export now, so it is ready when the polls end. */
  const startData = (operation: OperationRecord): void => {
    const cached = storage.has(operation.spec);
    const data = storage.ensure(operation.spec, new Date());
    operation.data = data;
    const tracked = data.then(
      (dataset) => {
        operation.dataset = dataset;
        saveLater(operation);
        const rate = (dataset.byteCount / (1024 * 1024) / Math.max(dataset.durationMs, 1)) * 1000;
        const what =
          operation.invoiceId === undefined
            ? `${operation.currency}/${operation.billingPeriod}/${operation.attributeSet}`
            : `invoice ${operation.invoiceId}/${operation.attributeSet}`;
        log(
          `emulator: ${operation.datasetId} data for ${what} ready: ` +
            `${dataset.blobs.length} blobs, ${mib(dataset.byteCount)} MiB gzip` +
            (cached ? ' (cached)' : ` written in ${dataset.durationMs} ms (${rate.toFixed(1)} MiB/s)`),
        );
      },
      (error: unknown) => {
        operation.dataError = error instanceof Error ? error.message : String(error);
        log(`emulator: writing export data failed: ${operation.dataError}`);
      },
    );
    pendingData.add(tracked);
    void tracked.finally(() => pendingData.delete(tracked));
  };

  const manifestBody = (operation: OperationRecord, dataset: GeneratedDataset): Record<string, unknown> => {
    const scenario = operation.scenario;
    const live = scenario.dialect === 'inline';
    // SAS settings are read now (not from the POST snapshot), so a test can expire the next manifests.
    const current = scenarioFor(operation.currency);
    const budgetKey =
      currencyScenarios.get(operation.currency)?.expiredSasOnFirstManifests === undefined ? '*' : operation.currency;
    const expiredLeft = expiredSasLeft.get(budgetKey) ?? 0;
    let expiresOn: Date;
    if (expiredLeft > 0) {
      expiredSasLeft.set(budgetKey, expiredLeft - 1);
      expiresOn = new Date(Date.now() - 60 * 60 * 1000);
    } else {
      expiresOn = new Date(Date.now() + current.sasLifetimeSeconds * 1000);
    }
    return {
      ...(scenario.odataType ? { '@odata.type': `${NAMESPACE}.manifest` } : {}),
      id: operation.manifestId,
      schemaVersion: live ? '2' : '1',
      dataFormat: scenario.dataFormat,
      createdDateTime: dataset.createdDateTime.toISOString(),
      eTag: dataset.eTag,
      partnerTenantId,
      rootDirectory: `${storageRoot}/${storage.containerName}/${dataset.directory}`,
      sasToken: storage.sasToken(expiresOn),
      partitionType: live ? 'default' : 'Default',
      blobCount: dataset.blobs.length,
      blobs: dataset.blobs.map((blob) => ({ name: blob.name, partitionValue: 'default' })),
    };
  };

  const operationBody = (
    operation: OperationRecord,
    type: 'runningOperation' | 'exportSuccessOperation' | 'failedOperation' | 'operation',
    extra: Record<string, unknown>,
  ): Record<string, unknown> => {
    const documented = operation.scenario.dialect === 'navigationLink';
    return {
      ...(operation.scenario.odataType ? { '@odata.type': `${NAMESPACE}.${type}` } : {}),
      id: operation.id,
      status: operation.status,
      createdDateTime: documented ? documentedDate(operation.createdAt) : operation.createdAt.toISOString(),
      lastActionDateTime: graphDate(operation.lastActionAt),
      ...extra,
    };
  };

  const setStatus = (operation: OperationRecord, status: string): void => {
    if (operation.status !== status) {
      operation.status = status;
      operation.lastActionAt = new Date();
    }
  };

  const handleExport = async (
    request: IncomingMessage,
    response: ServerResponse,
    version: string,
    dataset: DatasetId,
  ): Promise<void> => {
    const body = await readBody(request);
    if (body === undefined) {
      sendError(response, 413, 'RequestEntityTooLarge', 'The request body is too large.');
      return;
    }
    const now = new Date();
    let target: {
      currency: string;
      billingPeriod: 'current' | 'last';
      attributeSet: 'full' | 'basic';
      billingMonth: string;
      usageDays: number;
      invoiceId: string | undefined;
    };
    if (INVOICE_DATASETS.has(dataset)) {
      // Billed aggregated usage takes the invoice only; it has one column set, recorded as `full`.
      const parsed:
        | { ok: true; value: { invoiceId: string; attributeSet: 'full' | 'basic' } }
        | { ok: false; message: string } =
        dataset === 'billedAggregatedUsage'
          ? withFullSet(parseInvoiceOnlyExportRequest(request.headers['content-type'], body))
          : parseBilledExportRequest(request.headers['content-type'], body);
      if (!parsed.ok) {
        sendError(response, 400, 'BadRequest', parsed.message);
        return;
      }
      const invoice = invoices.find((i) => i.id.toUpperCase() === parsed.value.invoiceId.toUpperCase());
      if (invoice === undefined) {
        // Graph documents no error for an unknown invoice; this is the predecessor API's documented
        // "404 Resource not available with input parameters", in Graph's error envelope.
        sendError(
          response,
          404,
          'ResourceNotFound',
          `Resource not available with input parameters: invoice '${parsed.value.invoiceId}' was not found for this partner.`,
        );
        return;
      }
      target = {
        currency: invoice.currency,
        billingPeriod: 'last',
        attributeSet: parsed.value.attributeSet,
        billingMonth: invoice.billingMonth,
        usageDays: usageDaysAt(invoice.billingMonth, new Date(Date.UTC(2999, 0, 1))),
        invoiceId: invoice.id,
      };
    } else {
      const parsed = parseExportRequest(request.headers['content-type'], body);
      if (!parsed.ok) {
        sendError(response, 400, 'BadRequest', parsed.message);
        return;
      }
      const { currencyCode, billingPeriod, attributeSet } = parsed.value;
      const billingMonth = billingMonthOf(billingPeriod, now);
      target = {
        currency: currencyCode,
        billingPeriod,
        attributeSet,
        billingMonth,
        usageDays: usageDaysAt(billingMonth, now),
        invoiceId: undefined,
      };
    }
    const scenario = scenarioFor(target.currency);
    const operation: OperationRecord = {
      id: randomUUID(),
      datasetId: dataset,
      invoiceId: target.invoiceId,
      apiVersion: version,
      currency: target.currency,
      billingPeriod: target.billingPeriod,
      attributeSet: target.attributeSet,
      createdAt: now,
      lastActionAt: now,
      scenario,
      polls: 0,
      status: 'notStarted',
      spec: {
        seed: scenario.seed,
        currency: target.currency,
        attributeSet: target.attributeSet,
        billingPeriod: target.billingPeriod,
        billingMonth: target.billingMonth,
        usageDays: target.usageDays,
        partnerTenantId,
        rowsPerBlob: scenario.rowsPerBlob,
        blobCount: scenario.blobCount,
        ...(dataset === 'unbilledUsage' ? {} : { dataset }),
        ...(target.invoiceId === undefined ? {} : { invoiceId: target.invoiceId }),
      },
    };
    operations.set(operation.id, operation);
    await save(operation);
    if (scenario.outcome === 'succeeded') startData(operation);
    send(response, 202, undefined, {
      Location: `${origin(request)}/${version}${BILLING_PREFIX}/operations/${operation.id}`,
      'Content-Type': 'application/json',
    });
  };

  /** Partner Center `GET /v1/invoices[?size=&offset=]`: the documented collection shape, paged. */
  const handleInvoices = (request: IncomingMessage, response: ServerResponse): void => {
    const query = new URL(request.url ?? '/', 'https://127.0.0.1').searchParams;
    const size = Number(query.get('size') ?? '200');
    const offset = Number(query.get('offset') ?? '0');
    if (!Number.isSafeInteger(size) || size < 1 || size > 1000 || !Number.isSafeInteger(offset) || offset < 0) {
      send(response, 400, {
        code: 400,
        description: 'The size (1-1000) and offset (>= 0) query parameters must be whole numbers.',
        errorName: 'BadRequest',
      });
      return;
    }
    send(response, 200, invoiceCollection(invoices, size, offset), { 'MS-RequestId': randomUUID() });
  };

  const handleOperation = async (request: IncomingMessage, response: ServerResponse, id: string): Promise<void> => {
    const operation = await findOperation(id);
    if (operation === undefined) {
      sendError(response, 404, 'ResourceNotFound', `The operation '${id}' was not found.`);
      return;
    }
    const scenario = operation.scenario;
    operation.polls++;
    const step = lifecycleStep(scenario, operation.polls, Date.now() - operation.createdAt.getTime());
    const retryHeaders: Record<string, string> =
      scenario.retryAfterSeconds > 0 ? { 'Retry-After': String(scenario.retryAfterSeconds) } : {};
    const running = (status: string): void => {
      setStatus(operation, status);
      const type = status === 'unknownFutureValue' ? 'operation' : 'runningOperation';
      send(response, 200, operationBody(operation, type, {}), retryHeaders);
    };
    if (step !== 'done') {
      running(step);
      return;
    }
    if (scenario.outcome === 'noData' || scenario.outcome === 'failed') {
      setStatus(operation, 'failed');
      const error =
        scenario.outcome === 'noData'
          ? { message: 'No data available', code: '5000' }
          : { message: scenario.failureMessage, code: scenario.failureCode };
      send(response, 200, operationBody(operation, 'failedOperation', { error }));
      return;
    }
    if (operation.dataset === undefined && operation.dataError === undefined && operation.data !== undefined) {
      await waitAtMost(
        operation.data.catch(() => undefined),
        DATA_WAIT_MS,
      );
    }
    if (operation.dataError !== undefined) {
      setStatus(operation, 'failed');
      send(
        response,
        200,
        operationBody(operation, 'failedOperation', { error: { message: 'Internal processing error', code: '9001' } }),
      );
      return;
    }
    const dataset = operation.dataset;
    if (dataset === undefined) {
      // Still writing a large data set: keep the client polling.
      running('running');
      return;
    }
    setStatus(operation, scenario.successStatus);
    if (operation.manifestId === undefined) {
      operation.manifestId = randomUUID();
      manifests.set(operation.manifestId, operation);
      saveLater(operation);
    }
    const resourceLocation =
      scenario.dialect === 'inline'
        ? { resourceLocation: manifestBody(operation, dataset) }
        : {
            'resourceLocation@odata.navigationLink': `${origin(request)}/${operation.apiVersion}${BILLING_PREFIX}/manifests/${operation.manifestId}`,
          };
    const context =
      scenario.dialect === 'inline'
        ? {
            '@odata.context': `${origin(request)}/${operation.apiVersion}/$metadata#reports/partners/billing/operations/$entity`,
          }
        : {};
    send(response, 200, { ...context, ...operationBody(operation, 'exportSuccessOperation', resourceLocation) });
  };

  const handleManifest = (response: ServerResponse, id: string): void => {
    const operation = manifests.get(id);
    const dataset = operation?.dataset;
    if (operation === undefined || dataset === undefined) {
      sendError(response, 404, 'ResourceNotFound', `The manifest '${id}' was not found.`);
      return;
    }
    send(response, 200, manifestBody(operation, dataset));
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const clientRequestHeader = request.headers['client-request-id'];
    const clientRequestId =
      typeof clientRequestHeader === 'string' && /^[A-Za-z0-9-]{1,64}$/.test(clientRequestHeader)
        ? clientRequestHeader
        : requestId;
    response.setHeader('request-id', requestId);
    response.setHeader('client-request-id', clientRequestId);
    response.setHeader('Cache-Control', 'no-store, no-cache');
    response.setHeader('Strict-Transport-Security', 'max-age=31536000');

    const method = request.method ?? 'GET';
    const path = new URL(request.url ?? '/', 'https://127.0.0.1').pathname;
    const authorization = request.headers.authorization;
    const bearer = authorization === undefined ? undefined : /^Bearer\s+(.+)$/i.exec(authorization.trim())?.[1];
    const target = route(path);
    // Each API has its own token: a Graph token is refused by Partner Center and the other way round. Graph also
    // takes any development token the emulator issues (emulatorDevToken), whatever roles it carries.
    const claims = bearer === undefined ? undefined : readAccessTokenClaims(bearer);
    const issuedHere = claims?.issuer === EMULATOR_TOKEN_ISSUER && claims.audience === 'https://graph.microsoft.com';
    const authorized =
      bearer !== undefined &&
      (target.kind === 'invoices' ? bearer === partnerCenterToken : bearer === token || issuedHere);
    const record: EmulatorRequest = { method, path, authorized, status: 0 };
    requests.push(record);
    if (requests.length > REQUEST_LOG_LIMIT) requests.splice(0, requests.length - REQUEST_LOG_LIMIT);
    response.once('finish', () => {
      record.status = response.statusCode;
      log(`emulator: ${method} ${path} -> ${response.statusCode}`);
    });

    if (!authorized && target.kind === 'invoices') {
      request.resume();
      send(response, 401, {
        code: 401,
        description: 'Unauthorized: the Partner Center token is missing or invalid.',
        errorName: 'Unauthorized',
      });
      return;
    }
    if (!authorized) {
      request.resume();
      sendError(
        response,
        401,
        'InvalidAuthenticationToken',
        bearer === undefined ? 'Access token is empty.' : 'Access token validation failure. Invalid audience.',
        {
          'WWW-Authenticate':
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"',
        },
      );
      return;
    }
    // Authenticated but not granted the application permission: Graph's 403 (an opaque token given as `token` is
    // taken to carry it).
    const billing = target.kind !== 'unknown' && target.kind !== 'invoices';
    if (billing && claims !== undefined && !claims.roles.includes(PARTNER_BILLING_ROLE)) {
      request.resume();
      sendError(
        response,
        403,
        'Forbidden',
        `The caller isn't authorized to make the request: the token has no ${PARTNER_BILLING_ROLE} role.`,
      );
      return;
    }
    const expected = target.kind === 'export' ? 'POST' : 'GET';
    if (target.kind === 'unknown') {
      request.resume();
      sendError(response, 404, 'ResourceNotFound', `Resource not found for the segment '${path}'.`);
      return;
    }
    if (method !== expected) {
      request.resume();
      sendError(response, 405, 'MethodNotAllowed', `${method} is not supported on '${path}'; use ${expected}.`, {
        Allow: expected,
      });
      return;
    }
    const fault = takeFault(target.kind);
    if (fault !== undefined) {
      request.resume();
      sendFault(response, fault);
      return;
    }
    if (target.kind === 'export') await handleExport(request, response, target.version, target.dataset);
    else if (target.kind === 'invoices') handleInvoices(request, response);
    else if (target.kind === 'operation') await handleOperation(request, response, target.id);
    else handleManifest(response, target.id);
  };

  const server: Server = createServer(
    { key: certificate.serverKeyPem, cert: certificate.serverCertPem },
    (request, response) => {
      handle(request, response).catch((error: unknown) => {
        log(`emulator: internal error: ${error instanceof Error ? error.message : String(error)}`);
        if (!response.headersSent) sendError(response, 500, 'InternalServerError', 'The emulator failed to answer.');
        else response.destroy();
      });
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await certificate.dispose();
    throw error;
  }
  port = (server.address() as AddressInfo).port;

  let stopping: Promise<void> | undefined;
  return {
    baseUrl: `https://127.0.0.1:${port}/${apiVersion}`,
    partnerCenterBaseUrl: `https://127.0.0.1:${port}${PARTNER_CENTER_ROOT}`,
    partnerCenterToken,
    invoices,
    caCertPem: certificate.caCertPem,
    caCertPath: certificate.caCertPath,
    token,
    requests,
    configure(scenario: Partial<EmulatorScenario>, currency?: string): void {
      validateScenario(scenario);
      if (currency === undefined) {
        baseScenario = { ...baseScenario, ...scenario };
        if (scenario.expiredSasOnFirstManifests !== undefined) {
          expiredSasLeft.set('*', scenario.expiredSasOnFirstManifests);
        }
        return;
      }
      const key = currency.toUpperCase();
      currencyScenarios.set(key, { ...currencyScenarios.get(key), ...scenario });
      if (scenario.expiredSasOnFirstManifests !== undefined) {
        expiredSasLeft.set(key, scenario.expiredSasOnFirstManifests);
      }
    },
    injectFaults(...injected: Fault[]): void {
      for (const fault of injected) {
        if (!Number.isSafeInteger(fault.count) || fault.count < 1) {
          throw new TypeError(`Invalid fault count ${fault.count}: an integer >= 1 is accepted.`);
        }
        faults.push({ ...fault, left: fault.count });
      }
    },
    operations(): EmulatedOperation[] {
      return [...operations.values()].map((operation) => ({
        id: operation.id,
        dataset: operation.datasetId,
        ...(operation.invoiceId === undefined ? {} : { invoiceId: operation.invoiceId }),
        currency: operation.currency,
        billingPeriod: operation.billingPeriod,
        attributeSet: operation.attributeSet,
        status: operation.status,
        ...(operation.manifestId === undefined ? {} : { manifestId: operation.manifestId }),
        ...(operation.dataset === undefined ? {} : { eTag: operation.dataset.eTag }),
      }));
    },
    async idle(): Promise<void> {
      while (pendingData.size > 0) await Promise.allSettled([...pendingData]);
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        storage.abort();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await Promise.allSettled([...pendingData]);
        await certificate.dispose();
      })();
      return stopping;
    },
  };
}
