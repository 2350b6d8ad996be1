/**
 * The Telemetry port over the classic `applicationinsights` 2.x SDK: a dedicated TelemetryClient that
 * sends only this app's custom events and metrics. The Functions host already sends requests, traces
 * and exceptions, so nothing is auto-collected here (no `setup().start()`).
 */
import type { TokenCredential } from '@azure/identity';
import type * as AppInsights from 'applicationinsights';
import { isLoopbackUrl } from '../config';
import { TelemetryEvents, TelemetryMetrics } from '../names';
import { noTelemetry, type RunIdentity, type RunStatus, type Telemetry } from '../pipeline/ports';
import { redact } from '../redact';

/** Cloud role name (`cloud_RoleName`) of the telemetry items when none is given. */
export const DEFAULT_ROLE_NAME = 'csp-unbilled-export';

/** How long `flush()` waits for the ingestion endpoint by default. */
export const DEFAULT_FLUSH_TIMEOUT_MS = 10_000;

/** Application Insights keeps at most 8192 characters of a property value. */
const MAX_PROPERTY_LENGTH = 8192;

/** Options of the Application Insights telemetry adapter. */
export interface TelemetryOptions {
  /** Cloud role name of every item; default `csp-unbilled-export`. */
  roleName?: string | undefined;
  /**
   * Microsoft Entra credential for ingestion when the resource has local authentication disabled
   * (`APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ClientId=...;Authorization=AAD`; the identity needs the
   * Monitoring Metrics Publisher role). The 2.x SDK does not read that setting itself: the composition root
   * builds the credential, see {@link parseAuthenticationString}.
   */
  credential?: TokenCredential | undefined;
  /** Upper bound of `flush()`; default 10 seconds. */
  flushTimeoutMs?: number | undefined;
}

/** What `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` asks for: Entra authentication, with an optional client id. */
export interface AuthenticationSettings {
  /** Client id of a user-assigned managed identity; undefined for the system-assigned one. */
  clientId: string | undefined;
}

/**
 * Parses `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` (`Authorization=AAD;ClientId=<id>`). Returns undefined
 * when the setting is absent or does not ask for Microsoft Entra (AAD) authentication.
 */
export function parseAuthenticationString(value: string | undefined): AuthenticationSettings | undefined {
  if (value === undefined) return undefined;
  const fields = new Map<string, string>();
  for (const part of value.split(';')) {
    const index = part.indexOf('=');
    if (index <= 0) continue;
    fields.set(part.slice(0, index).trim().toLowerCase(), part.slice(index + 1).trim());
  }
  if (fields.get('authorization')?.toLowerCase() !== 'aad') return undefined;
  const clientId = fields.get('clientid');
  return { clientId: clientId === undefined || clientId === '' ? undefined : clientId };
}

/**
 * Telemetry to Application Insights, or `noTelemetry` (without loading the SDK) when no connection string is
 * given. Every string dimension is redacted; no method throws; `flush()` always settles within its timeout.
 */
export function createTelemetry(connectionString: string | undefined, options: TelemetryOptions = {}): Telemetry {
  const trimmed = connectionString?.trim();
  if (trimmed === undefined || trimmed === '') return noTelemetry;
  let client: AppInsights.TelemetryClient;
  try {
    client = createClient(trimmed, options);
  } catch (error) {
    warn('Application Insights telemetry is off: the telemetry client could not be created', error);
    return noTelemetry;
  }
  return telemetryOver(client, options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS);
}

function loadSdk(): typeof AppInsights {
  // Read once by the SDK when it is first loaded. Without them, loading it monkey-patches console, bunyan,
  // winston and the Azure SDK tracing (diagnostic-channel), and starts "statsbeat" (SDK usage metrics sent
  // to Microsoft, and an Azure VM metadata probe); this adapter needs neither.
  process.env['APPLICATION_INSIGHTS_NO_DIAGNOSTIC_CHANNEL'] ??= 'true';
  process.env['APPLICATION_INSIGHTS_NO_STATSBEAT'] ??= 'true';
  // Loaded on first use only, so that an app without a connection string never pays for the SDK.
  return require('applicationinsights') as typeof AppInsights;
}

function createClient(connectionString: string, options: TelemetryOptions): AppInsights.TelemetryClient {
  const sdk = loadSdk();
  const client = new sdk.TelemetryClient(connectionString);
  const config = client.config;
  // A dedicated client collects nothing by itself; these only matter to setup().start(), set for clarity.
  config.enableAutoCollectRequests = false;
  config.enableAutoCollectDependencies = false;
  config.enableAutoCollectConsole = false;
  config.enableAutoCollectExceptions = false;
  config.enableAutoCollectPerformance = false;
  config.enableAutoCollectExtendedMetrics = false;
  config.enableAutoCollectPreAggregatedMetrics = false;
  config.enableAutoCollectHeartbeat = false;
  config.enableAutoCollectExternalLoggers = false;
  config.enableAutoCollectIncomingRequestAzureFunctions = false;
  config.enableAutoDependencyCorrelation = false;
  config.enableSendLiveMetrics = false;
  config.enableWebInstrumentation = false;
  config.enableUseDiskRetryCaching = false;
  config.disableStatsbeat = true;
  // A run's few events must all arrive: the alert rules count them.
  config.samplingPercentage = 100;
  // No telemetry files in the temp folder of a Functions instance.
  client.channel.setUseDiskRetryCaching(false);
  // In case the SDK was loaded (by someone else) before the variables above could be set.
  client.getStatsbeat()?.enable(false);
  client.context.tags[client.context.keys.cloudRole] = options.roleName ?? DEFAULT_ROLE_NAME;
  if (options.credential !== undefined) config.aadTokenCredential = options.credential;
  if (isLoopbackUrl(config.endpointUrl)) {
    // The SDK honours http_proxy/https_proxy but not NO_PROXY; a loopback endpoint is never proxied.
    config.proxyHttpUrl = '';
    config.proxyHttpsUrl = '';
  }
  return client;
}

type Measurements = { durationMs: number; blobCount: number; byteCount: number; polls: number };

const METRICS: ReadonlyArray<[keyof Measurements, string]> = [
  ['durationMs', TelemetryMetrics.durationMs],
  ['byteCount', TelemetryMetrics.byteCount],
  ['blobCount', TelemetryMetrics.blobCount],
  ['polls', TelemetryMetrics.polls],
];

function telemetryOver(client: AppInsights.TelemetryClient, flushTimeoutMs: number): Telemetry {
  const trackRun = (
    name: string,
    run: RunIdentity & { status: RunStatus },
    extra: Record<string, string | undefined>,
    measurements: Measurements,
  ): void => {
    client.trackEvent({
      name,
      properties: { ...runProperties(run, run.status), ...properties(extra) },
      measurements: numbers(measurements),
    });
    const dimensions = properties({
      currency: run.currency,
      billingPeriod: run.billingPeriod,
      attributeSet: run.attributeSet,
      status: run.status,
    });
    for (const [key, metric] of METRICS) {
      const value = measurements[key];
      if (Number.isFinite(value)) client.trackMetric({ name: metric, value, properties: { ...dimensions } });
    }
  };

  return {
    runStarted(run) {
      guarded(TelemetryEvents.runStarted, () => {
        client.trackEvent({ name: TelemetryEvents.runStarted, properties: runProperties(run, 'starting') });
      });
    },
    runCompleted(run, measurements) {
      guarded(TelemetryEvents.runCompleted, () => trackRun(TelemetryEvents.runCompleted, run, {}, measurements));
    },
    runFailed(run, measurements) {
      guarded(TelemetryEvents.runFailed, () =>
        trackRun(TelemetryEvents.runFailed, run, { errorCode: run.errorCode, error: run.error }, measurements),
      );
    },
    messagePoisoned(details) {
      guarded(TelemetryEvents.messagePoisoned, () => {
        client.trackEvent({
          name: TelemetryEvents.messagePoisoned,
          properties: properties({
            queue: details.queue,
            runId: details.runId,
            reason: details.reason,
            runStatus: details.runStatus,
          }),
        });
      });
    },
    runResumed(run, details) {
      guarded(TelemetryEvents.runResumed, () => {
        client.trackEvent({
          name: TelemetryEvents.runResumed,
          properties: { ...runProperties(run, run.status), ...properties({ step: details.step }) },
          measurements: { resumes: details.resumes },
        });
      });
    },
    flush() {
      return flushClient(client, flushTimeoutMs);
    },
  };
}

function runProperties(run: RunIdentity, status: RunStatus): Record<string, string> {
  return properties({
    runId: run.runId,
    currency: run.currency,
    billingPeriod: run.billingPeriod,
    attributeSet: run.attributeSet,
    status,
    operationId: run.operationId,
    trigger: run.trigger,
    dataset: run.dataset ?? 'unbilledUsage',
    invoiceId: run.invoiceId,
  });
}

/** Redacted, length-limited string dimensions; undefined values are left out. */
function properties(values: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    // Redact before cutting, so that a cut can never leave a secret's tail unrecognised.
    if (value !== undefined) out[key] = redact(String(value)).slice(0, MAX_PROPERTY_LENGTH);
  }
  return out;
}

function numbers(values: Measurements): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(values)) {
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  }
  return out;
}

function flushClient(client: AppInsights.TelemetryClient, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let settled = false;
    // Declared before flush(): the SDK calls back synchronously when nothing is buffered.
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      warn('Application Insights flush', new Error(`no answer from the ingestion endpoint within ${timeoutMs} ms`));
      resolve();
    }, timeoutMs);
    const done = (response: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reportRejection(response);
      resolve();
    };
    try {
      client.flush({ callback: done });
    } catch (error) {
      warn('Application Insights flush', error);
      done('');
    }
  });
}

/**
 * The SDK logs transport and token errors itself, but hands an ingestion refusal (e.g. 401/403 when local
 * authentication is disabled and no credential was given) silently to the flush callback. Say so, once per flush.
 */
function reportRejection(response: string): void {
  try {
    let parsed: unknown;
    try {
      parsed = JSON.parse(response);
    } catch {
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const received = Reflect.get(parsed, 'itemsReceived');
    const accepted = Reflect.get(parsed, 'itemsAccepted');
    if (typeof received === 'number' && typeof accepted === 'number' && accepted < received) {
      const errors: unknown = Reflect.get(parsed, 'errors');
      const first: unknown = Array.isArray(errors) ? errors[0] : undefined;
      const detail = typeof first === 'object' && first !== null ? `: ${JSON.stringify(first).slice(0, 500)}` : '';
      warn('Application Insights refused telemetry', new Error(`accepted ${accepted} of ${received} items${detail}`));
    }
  } catch {
    // Telemetry must never fail the caller.
  }
}

function guarded(what: string, action: () => void): void {
  try {
    action();
  } catch (error) {
    warn(`Application Insights ${what} was not recorded`, error);
  }
}

function warn(message: string, error: unknown): void {
  try {
    console.warn(redact(`${message}: ${error instanceof Error ? error.message : String(error)}`));
  } catch {
    // Not even a warning may throw.
  }
}
