import type { Logger, RunIdentity } from './pipeline/ports';
import { redact } from './redact';

export type LogLevel = 'info' | 'warn' | 'error';

/** Where log lines go: the Functions InvocationContext, the console, a test's array. */
export type LogSink = (level: LogLevel, line: string, fields: Partial<RunIdentity>) => void;

const FIELD_ORDER: Array<[keyof RunIdentity, string]> = [
  ['runId', 'runId'],
  ['dataset', 'dataset'],
  ['invoiceId', 'invoiceId'],
  ['currency', 'currency'],
  ['billingPeriod', 'period'],
  ['attributeSet', 'attributeSet'],
  ['operationId', 'operationId'],
];

/** The run fields of a line as a prefix, e.g. `[runId=... currency=USD period=current]`. */
export function formatFields(fields: Partial<RunIdentity>): string {
  // Unbilled usage lines stay as they were before datasets existed.
  const shown = (key: keyof RunIdentity): boolean =>
    fields[key] !== undefined && fields[key] !== '' && !(key === 'dataset' && fields[key] === 'unbilledUsage');
  const parts = FIELD_ORDER.filter(([key]) => shown(key)).map(([key, label]) => `${label}=${String(fields[key])}`);
  return parts.length === 0 ? '' : `[${parts.join(' ')}] `;
}

/** A logger that prefixes every line with its run fields and redacts secrets before the sink sees it. */
export function createLogger(sink: LogSink, fields: Partial<RunIdentity> = {}): Logger {
  const emit = (level: LogLevel, message: string) => sink(level, redact(`${formatFields(fields)}${message}`), fields);
  return {
    info: (message) => emit('info', message),
    warn: (message) => emit('warn', message),
    error: (message) => emit('error', message),
    child: (more) => {
      const merged: Partial<RunIdentity> = { ...fields };
      for (const [key, value] of Object.entries(more) as Array<[keyof RunIdentity, unknown]>) {
        if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
      }
      return createLogger(sink, merged);
    },
  };
}
