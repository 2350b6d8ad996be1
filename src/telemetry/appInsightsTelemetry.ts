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
import type { EventMeasurements, EventName, EventProperties } from './events';
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

/** What is started once per process. */
interface ProcessTelemetry {
  runtime: TelemetryRuntime | undefined;
  failed: boolean;
}

/**
 * Kept on the global object, as OpenTelemetry keeps its providers: the deployment package holds this module twice
 * (in main.js for the start-up hooks, in core.js for the composition root), and both copies must find the one
 * runtime, or the second would start the Azure Monitor distro again.
 */
const PROCESS_TELEMETRY = Symbol.for('csp-unbilled-export.telemetry');

function processTelemetry(): ProcessTelemetry {
  const holder = globalThis as { [PROCESS_TELEMETRY]?: ProcessTelemetry };
  holder[PROCESS_TELEMETRY] ??= { runtime: undefined, failed: false };
  return holder[PROCESS_TELEMETRY];
}

/**
 * Starts OpenTelemetry towards Application Insights, once per process, and returns it (undefined when it could
 * not start). The ONE place the OpenTelemetry stack is loaded: a dynamic `require`, so that a bundler keeps
 * it in a chunk of its own and an app without a connection string never pays for it.
 */
export function loadTelemetryRuntime(settings: RuntimeSettings): TelemetryRuntime | undefined {
  const state = processTelemetry();
  if (state.runtime !== undefined) {
    if (state.runtime.connectionString !== settings.connectionString) {
      warn(
        'Application Insights',
        new Error('a second connection string was given in this process; telemetry keeps going to the first one'),
      );
    }
    return state.runtime;
  }
  if (state.failed) return undefined;
  try {
    const module = require('./openTelemetryRuntime') as typeof import('./openTelemetryRuntime');
    state.runtime = module.startTelemetryRuntime(settings);
    return state.runtime;
  } catch (error) {
    state.failed = true;
    warn('Application Insights telemetry is off: OpenTelemetry could not start', error);
    return undefined;
  }
}

/** The runtime if it has started (never starts it). */
export function telemetryRuntime(): TelemetryRuntime | undefined {
  return processTelemetry().runtime;
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
  const event = <E extends EventName>(
    name: E,
    properties: () => NoInfer<EventProperties<E>>,
    measurements?: () => NoInfer<EventMeasurements<E>>,
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
      event(
        TelemetryEvents.runStarted,
        () => runProperties(run, 'starting'),
        () => ({}),
      );
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
      event(
        TelemetryEvents.messagePoisoned,
        () => ({
          queue: details.queue,
          runId: details.runId,
          reason: details.reason,
          runStatus: details.runStatus,
          endedRun: details.endedRun ? 'true' : 'false',
          dataset: details.dataset,
          invoiceId: details.invoiceId,
        }),
        () => ({}),
      );
    },
    runResumed(run, details) {
      event(
        TelemetryEvents.runResumed,
        () => ({ ...runProperties(run, run.status), step: details.step }),
        () => ({ resumes: details.resumes }),
      );
    },
    runMissing(details) {
      event(TelemetryEvents.runMissing, () => ({ runId: details.runId, queue: details.queue, step: details.step }));
    },
    runUnreadable(details) {
      event(TelemetryEvents.runUnreadable, () => ({
        runId: details.runId,
        field: details.field,
        problem: details.problem,
      }));
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
        await processTelemetry().runtime?.flush(flushTimeoutMs);
      } catch (error) {
        warn('Application Insights flush', error);
      }
    },
  };
}

/** The dimensions of the curation events: the run's, and where its curated data is. */
function curationProperties(
  details: CurationEvent,
  status: string,
): EventProperties<typeof TelemetryEvents.curationCompleted> {
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

function curationMeasurements(details: CurationEvent): EventMeasurements<typeof TelemetryEvents.curationCompleted> {
  return {
    fileCount: details.fileCount,
    rowsRead: details.rowsRead,
    rowsConverted: details.rowsConverted,
    rowsRejected: details.rowsRejected,
    durationMs: details.durationMs,
  };
}

/** The dimensions every run event carries. */
function runProperties(run: RunIdentity, status: RunStatus): EventProperties<typeof TelemetryEvents.runStarted> {
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
 * every handler in the host's trace context; an invocation's error is recorded as an exception of it.
 *
 * At start-up only the capability and three hooks are registered (nothing is loaded: the cold start is the same as
 * without telemetry). The first invocation's first hook starts OpenTelemetry and the Functions instrumentation,
 * then runs the instrumentation's hooks, for that invocation and every later one, before the handler makes any
 * call. Returns whether telemetry is on. Without a connection string nothing is loaded and nothing registered.
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
  // The preInvocation hooks the Functions instrumentation registers, once it is loaded.
  const deferred: PreInvocationHandler[] = [];
  let instrumented = false;
  const instrument = (): void => {
    instrumented = true;
    if (loadTelemetryRuntime(settings()) === undefined) return;
    const { AzureFunctionsInstrumentationESM } =
      require('@azure/functions-opentelemetry-instrumentation') as typeof import('@azure/functions-opentelemetry-instrumentation');
    // Not enabled as a module hook (which patches `@azure/functions` when it is next required, and cannot once
    // the app is bundled): handed this app's hooks instead, as its ESM variant allows.
    const instrumentation = new AzureFunctionsInstrumentationESM({ enabled: false });
    instrumentation.registerAzFunc(deferredApp(functions, deferred) as never);
  };
  try {
    // The host reads the capability when the app has loaded, so it is set now (the instrumentation sets it too,
    // too late); with it the host leaves the worker's logs to this worker.
    functions.app.setup({ capabilities: { WorkerOpenTelemetryEnabled: true } });
    functions.app.hook.preInvocation((context) => {
      if (!instrumented) guarded('start-up', instrument);
      for (const hook of deferred) hook(context);
    });
    // The invocation's log lines, with the dimensions the host gives its own (which OpenTelemetry mode drops):
    // the invocation id and the category, Function.<name>.User.
    functions.app.hook.log((context) => {
      const started = telemetryRuntime();
      if (started === undefined) return;
      guarded('log line', () => {
        const invocation = context.invocationContext;
        const attributes: Record<string, string> =
          invocation === undefined
            ? { Category: context.category === 'system' ? 'Worker' : 'Worker.User' }
            : {
                InvocationId: invocation.invocationId,
                Category: `Function.${invocation.functionName}${context.category === 'system' ? '' : '.User'}`,
              };
        started.log(context.level, context.message, attributes);
      });
    });
    functions.app.hook.postInvocation((context) => {
      if (context.error === undefined || context.error === null) return;
      guarded('exception', () =>
        telemetryRuntime()?.exception(
          context.error,
          context.invocationContext.traceContext as HostTraceContext | undefined,
        ),
      );
    });
    return true;
  } catch (error) {
    warn('Application Insights: the Functions instrumentation could not be registered', error);
    return false;
  }
}

type PreInvocationHandler = (context: AzureFunctions.PreInvocationContext) => void;

/**
 * `@azure/functions` as the Functions instrumentation sees it: its preInvocation hooks go to `deferred`; set-up is
 * done and its log hook is not needed (the app's own log hook exports the lines, with their dimensions).
 */
function deferredApp(functions: typeof AzureFunctions, deferred: PreInvocationHandler[]): unknown {
  return {
    ...functions,
    app: {
      ...functions.app,
      setup: () => undefined,
      hook: {
        ...functions.app.hook,
        preInvocation: (hook: PreInvocationHandler): AzureFunctions.Disposable => {
          deferred.push(hook);
          return new functions.Disposable(() => {
            const index = deferred.indexOf(hook);
            if (index >= 0) deferred.splice(index, 1);
          });
        },
        log: (): AzureFunctions.Disposable => new functions.Disposable(() => undefined),
      },
    },
  };
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
