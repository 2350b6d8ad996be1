/**
 * The one redaction point of telemetry: every custom-event dimension, every log body and attribute, and every
 * span name, attribute, event and status passes through here before it can be exported. On top of the
 * project-wide `redact()` (SAS signatures, bearer tokens, keys, JWTs), telemetry never carries a query string:
 * a URL keeps its scheme, host and path only.
 */
import { redact } from '../redact';

/** Application Insights keeps at most 8192 characters of a property value. */
export const MAX_PROPERTY_LENGTH = 8192;

/** A URL anywhere in a text, with its query string (and fragment) to drop. */
const URL_QUERY = /\b(https?:\/\/[^\s"'<>?#]+)[?#][^\s"'<>]*/gi;

/** Attributes that hold a request target or query (OpenTelemetry HTTP conventions, old and new). */
const QUERY_ATTRIBUTES = new Set(['url.query', 'http.query']);
const TARGET_ATTRIBUTES = new Set(['http.target', 'url.path']);

/** A text for telemetry: secrets redacted, then every URL's query string removed. */
export function redactTelemetryText(text: string): string {
  // Redact first, so that a secret that is not part of a URL (a bare SAS token) is caught too.
  return redact(text).replace(URL_QUERY, '$1');
}

/** A string dimension of a custom event or log: redacted first, then cut to what Application Insights keeps. */
export function redactProperty(value: string): string {
  return redactTelemetryText(value).slice(0, MAX_PROPERTY_LENGTH);
}

/** Redacted, length-limited string dimensions; undefined values are left out. */
export function redactProperties(values: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) out[key] = redactProperty(String(value));
  }
  return out;
}

/** Finite numbers only (Application Insights measurements). */
export function finiteMeasurements(values: Record<string, number | undefined> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(values ?? {})) {
    if (typeof value === 'number' && Number.isFinite(value)) out[key] = value;
  }
  return out;
}

type AttributeValue = string | number | boolean | Array<string | number | boolean | null | undefined> | undefined;

/**
 * The value an attribute may be exported with. Query attributes are dropped (undefined), a request target keeps
 * its path, and every other string (or string in an array) is redacted and loses its URLs' query strings.
 */
export function redactAttribute(key: string, value: unknown): unknown {
  if (QUERY_ATTRIBUTES.has(key)) return undefined;
  if (typeof value === 'string') {
    if (TARGET_ATTRIBUTES.has(key)) return redactTelemetryText(value.replace(/[?#].*$/s, ''));
    return redactTelemetryText(value);
  }
  if (Array.isArray(value)) return value.map((item) => (typeof item === 'string' ? redactTelemetryText(item) : item));
  return value;
}

/** Redacts an attribute map in place (spans and log records hand theirs out mutable until exported). */
export function redactAttributesInPlace(attributes: Record<string, unknown> | undefined): void {
  if (attributes === undefined || attributes === null) return;
  for (const key of Object.keys(attributes)) {
    const value = redactAttribute(key, attributes[key]);
    if (value === undefined) delete attributes[key];
    else if (value !== attributes[key]) attributes[key] = value as AttributeValue;
  }
}

/** A log body for telemetry: strings redacted, objects redacted field by field (one level, as exported). */
export function redactBody(body: unknown): unknown {
  if (typeof body === 'string') return redactTelemetryText(body);
  if (Array.isArray(body)) return body.map((item) => redactBody(item));
  if (typeof body === 'object' && body !== null) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(body)) out[key] = redactBody(value);
    return out;
  }
  return body;
}
