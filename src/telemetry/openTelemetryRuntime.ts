/**
 * The OpenTelemetry side of telemetry: the Azure Monitor distro (`@azure/monitor-opentelemetry`) with the
 * Azure SDK, HTTP and undici (fetch, so Microsoft Graph) instrumentations, the Azure Functions integration,
 * and the redaction processors. Loading this module costs several hundred milliseconds, so it is only ever
 * loaded by `loadTelemetryRuntime()` in ./appInsightsTelemetry.ts (one dynamic `require`), when a connection
 * string is set and telemetry is first needed. Nothing here runs at import time.
 */
import * as coreTracing from '@azure/core-tracing';
import type { TokenCredential } from '@azure/identity';
import { useAzureMonitor } from '@azure/monitor-opentelemetry';
import { AzureSdkInstrumentation } from '@azure/opentelemetry-instrumentation-azure-sdk';
import { type Context, context, metrics, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { type AnyValueMap, logs, SeverityNumber } from '@opentelemetry/api-logs';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { azureVmDetector } from '@opentelemetry/resource-detector-azure';
import { redactAttribute, redactAttributesInPlace, redactBody, redactTelemetryText } from './redaction';

/** What the runtime needs; built by the composition root from the app settings. */
export interface RuntimeSettings {
  connectionString: string;
  roleName: string;
  credential?: TokenCredential | undefined;
}

/** The W3C trace context the Functions host hands an invocation. */
export interface HostTraceContext {
  traceParent?: string | null | undefined;
  traceState?: string | null | undefined;
}

/** The started telemetry pipeline: everything goes through the process-wide OpenTelemetry providers. */
export interface TelemetryRuntime {
  readonly connectionString: string;
  /** A custom event (`customEvents`), correlated with the active invocation. Values must be redacted already. */
  event(name: string, properties: Record<string, string>, measurements: Record<string, number>): void;
  /**
   * A log line of an invocation (`traces`), correlated with the active context. `level` is the Functions log level
   * (`information`, `warning`, ...); `attributes` become its custom dimensions.
   */
  log(level: string, message: string, attributes: Record<string, string>): void;
  /** A data point of a custom metric (`customMetrics`). */
  metric(name: string, value: number, dimensions: Record<string, string>): void;
  /** An exception (`exceptions`) of the invocation whose host trace context is given. */
  exception(error: unknown, parent?: HostTraceContext | undefined): void;
  /** The OpenTelemetry context of a host trace context (parent of what the invocation emits). */
  contextOf(parent: HostTraceContext | undefined): Context;
  /** Sends what is buffered; settles within the timeout, never rejects. */
  flush(timeoutMs: number): Promise<void>;
}

const INSTRUMENTATION_SCOPE = 'csp-unbilled-export';
/** The exporter turns a log record with this attribute into an EventData envelope (customEvents). */
const CUSTOM_EVENT_ATTRIBUTE = 'microsoft.custom_event.name';

type Mutable = Record<string, unknown>;

/** OpenTelemetry severities of the Functions log levels. */
const SEVERITIES: Readonly<Record<string, SeverityNumber>> = {
  trace: SeverityNumber.TRACE,
  debug: SeverityNumber.DEBUG,
  information: SeverityNumber.INFO,
  warning: SeverityNumber.WARN,
  error: SeverityNumber.ERROR,
  critical: SeverityNumber.FATAL,
};

/** A span as the SDK hands it to processors: only what the redaction touches. */
interface ProcessedSpan {
  name?: string;
  attributes?: Mutable;
  events?: Array<{ name?: string; attributes?: Mutable }>;
  status?: { message?: string | undefined };
  setAttribute?: (key: string, value: unknown) => unknown;
  setAttributes?: (attributes: Mutable) => unknown;
  addEvent?: (name: string, attributesOrTime?: unknown, time?: unknown) => unknown;
  updateName?: (name: string) => unknown;
  setStatus?: (status: { code: number; message?: string }) => unknown;
}

/**
 * Redacts spans (dependencies, requests, span events that become exceptions): names, attributes, events and
 * status messages; URL attributes keep no query string. Attributes are redacted as they are set (so that the
 * distro's own processor, which runs first, never sees a secret either) and once more when the span ends.
 */
class RedactingSpanProcessor {
  onStart(span: unknown): void {
    const s = span as ProcessedSpan;
    redactSpan(s);
    const setAttribute = s.setAttribute;
    if (typeof setAttribute === 'function') {
      s.setAttribute = function (this: unknown, key: string, value: unknown) {
        const redacted = redactAttribute(key, value);
        return redacted === undefined ? this : setAttribute.call(this, key, redacted);
      };
    }
    const setAttributes = s.setAttributes;
    if (typeof setAttributes === 'function') {
      s.setAttributes = function (this: unknown, attributes: Mutable) {
        const copy = { ...attributes };
        redactAttributesInPlace(copy);
        return setAttributes.call(this, copy);
      };
    }
    const addEvent = s.addEvent;
    if (typeof addEvent === 'function') {
      s.addEvent = function (this: unknown, name: string, attributesOrTime?: unknown, time?: unknown) {
        let attributes = attributesOrTime;
        if (typeof attributes === 'object' && attributes !== null && !Array.isArray(attributes)) {
          attributes = { ...(attributes as Mutable) };
          redactAttributesInPlace(attributes as Mutable);
        }
        return addEvent.call(this, redactTelemetryText(name), attributes, time);
      };
    }
    const updateName = s.updateName;
    if (typeof updateName === 'function') {
      s.updateName = function (this: unknown, name: string) {
        return updateName.call(this, redactTelemetryText(name));
      };
    }
    const setStatus = s.setStatus;
    if (typeof setStatus === 'function') {
      s.setStatus = function (this: unknown, status: { code: number; message?: string }) {
        const message = status.message === undefined ? {} : { message: redactTelemetryText(status.message) };
        return setStatus.call(this, { ...status, ...message });
      };
    }
  }

  onEnd(span: unknown): void {
    redactSpan(span as ProcessedSpan);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function redactSpan(span: ProcessedSpan): void {
  try {
    if (typeof span.name === 'string') {
      const name = redactTelemetryText(span.name);
      if (name !== span.name) span.name = name;
    }
    redactAttributesInPlace(span.attributes);
    for (const event of span.events ?? []) {
      redactAttributesInPlace(event.attributes);
      if (typeof event.name === 'string') event.name = redactTelemetryText(event.name);
    }
    if (span.status !== undefined && typeof span.status.message === 'string') {
      span.status.message = redactTelemetryText(span.status.message);
    }
  } catch {
    // Redaction must never break the traced call.
  }
}

/** A log record as the SDK hands it to processors. */
interface ProcessedLogRecord {
  body?: unknown;
  attributes?: Mutable;
}

/** Redacts every log record (log lines, custom events, exceptions) before it is exported. */
class RedactingLogRecordProcessor {
  onEmit(record: unknown): void {
    try {
      const r = record as ProcessedLogRecord;
      if (r.body !== undefined) r.body = redactBody(r.body);
      redactAttributesInPlace(r.attributes);
    } catch {
      // Never break the caller.
    }
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Starts the process-wide OpenTelemetry pipeline towards Application Insights. Call once per process
 * (./appInsightsTelemetry.ts keeps the singleton).
 */
export function startTelemetryRuntime(settings: RuntimeSettings): TelemetryRuntime {
  // SDK usage statistics ("statsbeat", sent to Microsoft) and per-resource SDK stats (sent to the app's own
  // resource, billed): neither is wanted. Read by the exporter when it starts. APPLICATIONINSIGHTS_STATSBEAT_DISABLED
  // stops the optional statistics only; APPLICATION_INSIGHTS_NO_STATSBEAT stops the rest, and with it the exporter's
  // probe of the VM instance metadata service (169.254.169.254) outside Azure Functions and App Service.
  process.env['APPLICATIONINSIGHTS_STATSBEAT_DISABLED'] ??= 'true';
  process.env['APPLICATION_INSIGHTS_NO_STATSBEAT'] ??= 'true';
  process.env['APPLICATIONINSIGHTS_SDKSTATS_DISABLED'] ??= 'true';
  // The distro sets the log level of every Azure SDK client in the process (and its own diagnostics) from this
  // setting, "warning" by default, which prints SDK deprecation notices on every client; errors only unless set.
  process.env['APPLICATIONINSIGHTS_INSTRUMENTATION_LOGGING_LEVEL'] ??= 'ERROR';
  // Cloud role name (cloud_RoleName) outside Azure; in Azure the Functions resource detector names the app.
  process.env['OTEL_SERVICE_NAME'] ??= settings.roleName;

  // The distro's configuration runs the Azure VM resource detector whatever OTEL_NODE_RESOURCE_DETECTORS says: an
  // HTTP request to the instance metadata service (169.254.169.254) at start. A Functions app is no VM (App Service
  // does not offer that service to apps; the Functions detector names the app and its region), and outside Azure the
  // request leaves the machine: the detector (one instance, shared with the distro and its SDK) detects nothing.
  azureVmDetector.detect = () => ({ attributes: {} });
  useAzureMonitor({
    azureMonitorExporterOptions: {
      connectionString: settings.connectionString,
      ...(settings.credential === undefined ? {} : { credential: settings.credential }),
      // No telemetry files in the temp folder of a Functions instance.
      disableOfflineStorage: true,
    },
    // Every span is kept: a run is a handful of invocations, and the transaction view needs all of them.
    samplingRatio: 1,
    tracesPerSecond: 0,
    // Live Metrics sees spans before they end (before the last redaction pass) and is not needed for a daily
    // batch; performance counters are billed custom metrics the Functions platform already shows.
    enableLiveMetrics: false,
    enablePerformanceCounters: false,
    enableStandardMetrics: true,
    instrumentationOptions: {
      azureSdk: { enabled: true },
      // Outgoing calls only: the Functions host records the invocation (the request) itself, and this worker serves
      // no HTTP of its own in Azure. An Azure SDK call the SDK traces itself (core-rest-pipeline's span) is not
      // traced twice; any other, an SDK call included when its own tracing is off, is a node:http(s) dependency.
      http: {
        enabled: true,
        ignoreIncomingRequestHook: () => true,
        ignoreOutgoingRequestHook: (options: { headers?: unknown }) => isTracedAzureSdkRequest(options.headers),
      } as never,
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
      bunyan: { enabled: false },
      winston: { enabled: false },
    },
    spanProcessors: [new RedactingSpanProcessor() as never],
    logRecordProcessors: [new RedactingLogRecordProcessor() as never],
  });

  // fetch() (Microsoft Graph) runs on undici, which the distro does not instrument; this one listens on
  // diagnostics channels, so it works whenever it is started.
  new UndiciInstrumentation({
    // The undici spans are exported as dependencies; no request or response headers as attributes.
    headersToSpanAttributes: { requestHeaders: [], responseHeaders: [] },
  });
  // The distro's Azure SDK instrumentation sets the OpenTelemetry instrumenter of @azure/core-tracing when that
  // module is next loaded through require(). In the deployment package every SDK is bundled with its own copy of
  // @azure/core-tracing, loaded long before and never required by name: set the instrumenter on that very copy
  // (the one this module imports is the one the SDK clients use, in the bundle as with node_modules).
  instrumentAzureSdk();
  // The http instrumentation patches node:http(s) when next required; they were loaded before telemetry started.
  for (const name of ['node:http', 'node:https']) require(name);

  const logger = logs.getLogger(INSTRUMENTATION_SCOPE);
  const meter = metrics.getMeter(INSTRUMENTATION_SCOPE);
  const histograms = new Map<string, ReturnType<typeof meter.createHistogram>>();

  const contextOf = (parent: HostTraceContext | undefined): Context => {
    const active = context.active();
    if (trace.getSpanContext(active) !== undefined || parent?.traceParent == null) return active;
    return propagation.extract(ROOT_CONTEXT, {
      traceparent: parent.traceParent,
      ...(parent.traceState == null ? {} : { tracestate: parent.traceState }),
    });
  };

  return {
    connectionString: settings.connectionString,
    event(name, properties, measurements) {
      logger.emit({
        severityNumber: SeverityNumber.INFO,
        severityText: 'Information',
        body: { measurements },
        attributes: { ...properties, [CUSTOM_EVENT_ATTRIBUTE]: name },
        context: context.active(),
      });
    },
    log(level, message, attributes) {
      logger.emit({
        severityNumber: SEVERITIES[level] ?? SeverityNumber.UNSPECIFIED,
        severityText: level,
        body: message,
        attributes,
        context: context.active(),
      });
    },
    metric(name, value, dimensions) {
      let histogram = histograms.get(name);
      if (histogram === undefined) {
        histogram = meter.createHistogram(name);
        histograms.set(name, histogram);
      }
      histogram.record(value, dimensions);
    },
    exception(error, parent) {
      const failure = error instanceof Error ? error : new Error(String(error));
      const attributes: AnyValueMap = {
        'exception.type': failure.name || 'Error',
        'exception.message': failure.message,
        'exception.stacktrace': failure.stack ?? `${failure.name}: ${failure.message}`,
      };
      logger.emit({
        severityNumber: SeverityNumber.ERROR,
        severityText: 'Error',
        body: failure.message,
        attributes,
        context: contextOf(parent),
      });
    },
    contextOf,
    flush(timeoutMs) {
      return flushProviders(timeoutMs);
    },
  };
}

/**
 * Points @azure/core-tracing (every Azure SDK client: Storage, Tables, Queues, identity) at OpenTelemetry, with the
 * instrumenter of Microsoft's Azure SDK instrumentation, applied to the copy of the module this code is built with.
 */
function instrumentAzureSdk(): void {
  const instrumentation = new AzureSdkInstrumentation({ enabled: false });
  for (const definition of instrumentation.getModuleDefinitions()) {
    definition.patch?.(coreTracing as never, undefined);
  }
}

/**
 * An Azure SDK request (its client request id or user agent) that its own HTTP span already covers: the SDK's
 * tracing policy adds a W3C `traceparent` header only when it records a span for the request.
 */
function isTracedAzureSdkRequest(headers: unknown): boolean {
  if (typeof headers !== 'object' || headers === null) return false;
  let azureSdk = false;
  let traced = false;
  for (const [name, value] of Object.entries(headers)) {
    const key = name.toLowerCase();
    if (key === 'x-ms-client-request-id') azureSdk = true;
    else if (key === 'user-agent' && String(value).startsWith('azsdk-js')) azureSdk = true;
    else if (key === 'traceparent') traced = true;
  }
  return azureSdk && traced;
}

interface Flushable {
  forceFlush?: () => Promise<unknown>;
  getDelegate?: () => unknown;
  _getDelegate?: () => unknown;
}

/** The SDK provider behind a global API provider (the API may hand out a proxy). */
function sdkProvider(provider: unknown): Flushable | undefined {
  let current = provider as Flushable | undefined;
  for (let depth = 0; depth < 3 && current !== undefined; depth++) {
    if (typeof current.forceFlush === 'function') return current;
    const next = current.getDelegate?.() ?? current._getDelegate?.();
    current = next as Flushable | undefined;
  }
  return undefined;
}

async function flushProviders(timeoutMs: number): Promise<void> {
  // Spans first: their end produces standard metrics, and exceptions recorded on spans.
  const order = [trace.getTracerProvider(), logs.getLoggerProvider(), metrics.getMeterProvider()];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref?.();
  });
  const all = (async () => {
    for (const provider of order) {
      try {
        await sdkProvider(provider)?.forceFlush?.();
      } catch (error) {
        warn('Application Insights flush', error);
      }
    }
    return 'done' as const;
  })();
  try {
    const outcome = await Promise.race([all, timeout]);
    if (outcome === 'timeout') {
      warn('Application Insights flush', new Error(`no answer from the ingestion endpoint within ${timeoutMs} ms`));
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

function warn(message: string, error: unknown): void {
  try {
    console.warn(redactTelemetryText(`${message}: ${error instanceof Error ? error.message : String(error)}`));
  } catch {
    // Not even a warning may throw.
  }
}
