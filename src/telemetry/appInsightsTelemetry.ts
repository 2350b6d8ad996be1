/**
 * The Telemetry port over OpenTelemetry and the Azure Monitor distro (`@azure/monitor-opentelemetry`), as Azure
 * Functions recommends for the Node.js v4 model. Custom events become log records carrying
 * `microsoft.custom_event.name`, which the exporter sends as `customEvents`; they, the invocation's log lines,
 * its Azure SDK, HTTP and fetch calls (dependencies) and its exceptions share the invocation's operation id.
 *
 * This module is light: the OpenTelemetry stack (several hundred milliseconds to import) is loaded by
 * `loadTelemetryRuntime()` only, when a connection string is set and telemetry is first needed.
 */
import type * as AzureFunctions from '@azure/functions';
import type { TokenCredential } from '@azure/identity';
import { TelemetryEvents, TelemetryMetrics } from '../names';
import { type CurationEvent, noTelemetry, type RunIdentity, type RunStatus, type Telemetry } from '../pipeline/ports';
import type { HostTraceContext, RuntimeSettings, TelemetryRuntime } from './openTelemetryRuntime';
import { finiteMeasurements, redactProperties, redactTelemetryText } from './redaction';

/** Cloud role name (`cloud_RoleName`) of the telemetry items when none is given (outside Azure). */
export const DEFAULT_ROLE_NAME = 'csp-unbilled-export';

/** How long `flush()` waits for the ingestion endpoint by default. */
export const DEFAULT_FLUSH_TIMEOUT_MS = 10_000;

/** Options of the Application Insights telemetry adapter. */
export interface TelemetryOptions {
  /** Cloud role name of every item outside Azure; default `csp-unbilled-export`. */
  roleName?: string | undefined;
  /**
   * Microsoft Entra credential for ingestion when the resource has local authentication disabled
   * (`APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ClientId=...;Authorization=AAD`; the identity needs the
   * Monitoring Metrics Publisher role). The composition root builds it, see {@link parseAuthenticationString}.
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
  const fields = connectionFields(value);
  if (fields.get('authorization')?.toLowerCase() !== 'aad') return undefined;
  const clientId = fields.get('clientid');
  return { clientId: clientId === undefined || clientId === '' ? undefined : clientId };
}

function connectionFields(value: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of value.split(';')) {
    const index = part.indexOf('=');
    if (index <= 0) continue;
    fields.set(part.slice(0, index).trim().toLowerCase(), part.slice(index + 1).trim());
  }
  return fields;
}

/** A usable connection string (trimmed, with an instrumentation key), or undefined. */
function usableConnectionString(connectionString: string | undefined): string | undefined {
  const trimmed = connectionString?.trim();
  if (trimmed === undefined || trimmed === '') return undefined;
  if ((connectionFields(trimmed).get('instrumentationkey') ?? '') === '') {
    warn('Application Insights telemetry is off', new Error('the connection string has no InstrumentationKey'));
    return undefined;
  }
  return trimmed;
}

// ---------------------------------------------------------------------------------------------------------
// The process-wide runtime: OpenTelemetry providers are global, so there is one per process.

let runtime: TelemetryRuntime | undefined;
let runtimeFailed = false;
const runtimeListeners: Array<(started: TelemetryRuntime) => void> = [];

/**
 * Starts OpenTelemetry towards Application Insights, once per process, and returns it (undefined when it could
 * not start). The ONE place the OpenTelemetry stack is loaded: a dynamic `require`, so that a bundler keeps
 * it in a chunk of its own and an app without a connection string never pays for it.
 */
export function loadTelemetryRuntime(settings: RuntimeSettings): TelemetryRuntime | undefined {
  if (runtime !== undefined) {
    if (runtime.connectionString !== settings.connectionString) {
      warn(
        'Application Insights',
        new Error('a second connection string was given in this process; telemetry keeps going to the first one'),
      );
    }
    return runtime;
  }
  if (runtimeFailed) return undefined;
  try {
    const module = require('./openTelemetryRuntime') as typeof import('./openTelemetryRuntime');
    runtime = module.startTelemetryRuntime(settings);
  } catch (error) {
    runtimeFailed = true;
    warn('Application Insights telemetry is off: OpenTelemetry could not start', error);
    return undefined;
  }
  for (const listener of runtimeListeners) {
    try {
      listener(runtime);
    } catch (error) {
      warn('Application Insights start-up', error);
    }
  }
  return runtime;
}

/** The runtime if it has started (never starts it). */
export function telemetryRuntime(): TelemetryRuntime | undefined {
  return runtime;
}

// ---------------------------------------------------------------------------------------------------------
// The Telemetry port.

type Measurements = { durationMs: number; blobCount: number; byteCount: number; polls: number };

const METRICS: ReadonlyArray<[keyof Measurements, string]> = [
  ['durationMs', TelemetryMetrics.durationMs],
  ['byteCount', TelemetryMetrics.byteCount],
  ['blobCount', TelemetryMetrics.blobCount],
  ['polls', TelemetryMetrics.polls],
];

/**
 * Telemetry to Application Insights, or `noTelemetry` (without loading OpenTelemetry) when no usable
 * connection string is given. Every dimension is redacted; no method throws; `flush()` settles within its
 * timeout.
 */
export function createTelemetry(connectionString: string | undefined, options: TelemetryOptions = {}): Telemetry {
  const usable = usableConnectionString(connectionString);
  if (usable === undefined) return noTelemetry;
  const settings: RuntimeSettings = {
    connectionString: usable,
    roleName: options.roleName ?? DEFAULT_ROLE_NAME,
    ...(options.credential === undefined ? {} : { credential: options.credential }),
  };
  const flushTimeoutMs = options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS;

  /**
   * The one way out for a custom event: every property passes the redaction here. Adding an event or a
   * dimension is a line in the methods below.
   */
  const event = (
    name: string,
    properties: () => Record<string, string | undefined>,
    measurements?: () => Partial<Measurements> | Record<string, number>,
  ): void => {
    guarded(name, () => {
      const started = loadTelemetryRuntime(settings);
      started?.event(name, redactProperties(properties()), finiteMeasurements(measurements?.()));
    });
  };

  /** The run metrics (`customMetrics`), by currency, period, attribute set, dataset and status. */
  const runMetrics = (run: RunIdentity & { status: RunStatus }, measurements: Measurements): void => {
    guarded('run metrics', () => {
      const started = loadTelemetryRuntime(settings);
      if (started === undefined) return;
      const dimensions = redactProperties({
        currency: run.currency,
        billingPeriod: run.billingPeriod,
        attributeSet: run.attributeSet,
        dataset: run.dataset ?? 'unbilledUsage',
        status: run.status,
      });
      for (const [key, metric] of METRICS) {
        const value = measurements[key];
        if (Number.isFinite(value)) started.metric(metric, value, dimensions);
      }
    });
  };

  return {
    runStarted(run) {
      event(TelemetryEvents.runStarted, () => runProperties(run, 'starting'));
    },
    runCompleted(run, measurements) {
      event(
        TelemetryEvents.runCompleted,
        () => runProperties(run, run.status),
        () => measurements,
      );
      runMetrics(run, measurements);
    },
    runFailed(run, measurements) {
      event(
        TelemetryEvents.runFailed,
        () => ({ ...runProperties(run, run.status), errorCode: run.errorCode, error: run.error }),
        () => measurements,
      );
      runMetrics(run, measurements);
    },
    messagePoisoned(details) {
      event(TelemetryEvents.messagePoisoned, () => ({
        queue: details.queue,
        runId: details.runId,
        reason: details.reason,
        runStatus: details.runStatus,
        dataset: details.dataset,
        invoiceId: details.invoiceId,
      }));
    },
    runResumed(run, details) {
      event(
        TelemetryEvents.runResumed,
        () => ({ ...runProperties(run, run.status), step: details.step }),
        () => ({ resumes: details.resumes }),
      );
    },
    runMissing(details) {
      event(TelemetryEvents.runMissing, () => ({ ...details }));
    },
    runUnreadable(details) {
      event(TelemetryEvents.runUnreadable, () => ({ ...details }));
    },
    curationCompleted(details) {
      event(
        TelemetryEvents.curationCompleted,
        () => curationProperties(details, 'succeeded'),
        () => curationMeasurements(details),
      );
    },
    curationFailed(details) {
      event(
        TelemetryEvents.curationFailed,
        () => ({ ...curationProperties(details, 'failed'), errorCode: details.errorCode, error: details.error }),
        () => curationMeasurements(details),
      );
    },
    async flush() {
      try {
        await runtime?.flush(flushTimeoutMs);
      } catch (error) {
        warn('Application Insights flush', error);
      }
    },
  };
}

/** The dimensions of the curation events: the run's, and where its curated data is. */
function curationProperties(details: CurationEvent, status: string): Record<string, string | undefined> {
  return {
    ...runProperties(details, 'succeeded'),
    curationStatus: status,
    billingMonth: details.billingMonth,
    curationVersion: details.curationVersion,
    curatedPath: details.curatedPath,
    current: String(details.current),
    hubIngestionId: details.hubIngestionId,
  };
}

function curationMeasurements(details: CurationEvent): Record<string, number> {
  return {
    fileCount: details.fileCount,
    rowsRead: details.rowsRead,
    rowsConverted: details.rowsConverted,
    rowsRejected: details.rowsRejected,
    durationMs: details.durationMs,
  };
}

/** The dimensions every run event carries. */
function runProperties(run: RunIdentity, status: RunStatus): Record<string, string | undefined> {
  return {
    runId: run.runId,
    currency: run.currency,
    billingPeriod: run.billingPeriod,
    attributeSet: run.attributeSet,
    status,
    operationId: run.operationId,
    trigger: run.trigger,
    dataset: run.dataset ?? 'unbilledUsage',
    invoiceId: run.invoiceId,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The Azure Functions side: called once when the app starts (src/index.ts).

/**
 * Connects the Functions worker to OpenTelemetry when APPLICATIONINSIGHTS_CONNECTION_STRING is set (with
 * `"telemetryMode": "OpenTelemetry"` in host.json): `@azure/functions-opentelemetry-instrumentation` tells the
 * host that this worker exports its own logs, forwards `context.log` lines as OpenTelemetry log records and runs
 * every handler in the host's trace context; an invocation's error is recorded as an exception of it. The
 * OpenTelemetry stack itself starts with the first invocation (lazily), before the handler runs.
 * Returns whether telemetry is on. Without a connection string nothing is loaded and nothing registered.
 */
export function instrumentFunctionsApp(
  functions: typeof AzureFunctions,
  connectionString: string | undefined,
  options: () => TelemetryOptions,
): boolean {
  const usable = usableConnectionString(connectionString);
  if (usable === undefined) return false;
  const settings = (): RuntimeSettings => {
    const resolved = options();
    return {
      connectionString: usable,
      roleName: resolved.roleName ?? DEFAULT_ROLE_NAME,
      ...(resolved.credential === undefined ? {} : { credential: resolved.credential }),
    };
  };
  try {
    // First hook of the app, so it runs before the instrumentation's: the propagator must exist when the
    // host's trace context is extracted.
    functions.app.hook.preInvocation(() => {
      if (runtime === undefined) guarded('start-up', () => loadTelemetryRuntime(settings()));
    });
    const { AzureFunctionsInstrumentationESM } =
      require('@azure/functions-opentelemetry-instrumentation') as typeof import('@azure/functions-opentelemetry-instrumentation');
    // Not enabled as a module hook (which patches `@azure/functions` when it is next required, and cannot once
    // the app is bundled): registered on this very module instead, as its ESM variant allows.
    const instrumentation = new AzureFunctionsInstrumentationESM({ enabled: false });
    instrumentation.registerAzFunc(functions);
    // Its logger was taken before OpenTelemetry started: hand it the real provider once it has.
    const attach = (started: TelemetryRuntime): void => {
      instrumentation.setLoggerProvider(started.loggerProvider as never);
    };
    if (runtime !== undefined) attach(runtime);
    else runtimeListeners.push(attach);
    functions.app.hook.postInvocation((context) => {
      if (context.error === undefined || context.error === null) return;
      guarded('exception', () =>
        runtime?.exception(context.error, context.invocationContext.traceContext as HostTraceContext | undefined),
      );
    });
    return true;
  } catch (error) {
    warn('Application Insights: the Functions instrumentation could not be registered', error);
    return false;
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
    console.warn(redactTelemetryText(`${message}: ${error instanceof Error ? error.message : String(error)}`));
  } catch {
    // Not even a warning may throw.
  }
}
