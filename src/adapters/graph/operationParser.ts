import { ExportError } from '../../errors';
import type { ExportManifest, ManifestBlob } from '../../pipeline/ports';

/** The body of a Graph operation GET, reduced to what the pipeline needs (both documented dialects). */
export type ParsedOperation =
  | { kind: 'running'; status: string; unknownStatus: boolean }
  | { kind: 'succeeded'; status: string; inlineManifest: unknown | undefined; manifestLink: string | undefined }
  | { kind: 'failed'; status: string; code: string; message: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** Reads a property whatever the case of its name (Graph is camelCase; some clients see PascalCase). */
function prop(record: Record<string, unknown>, name: string): unknown {
  if (name in record) return record[name];
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(record)) if (key.toLowerCase() === lower) return value;
  return undefined;
}

/**
 * Maps an operation body into a closed union. Status values are matched case-insensitively:
 * `notStarted`/`running` run, `succeeded` or `completed` succeed, `failed` fails; any other value
 * (`unknownFutureValue`, anything new) counts as still running and is flagged so it gets logged.
 * Without a status the `@odata.type` decides.
 */
export function parseOperationBody(body: unknown): ParsedOperation {
  if (!isRecord(body)) {
    throw new ExportError('GRAPH_PROTOCOL', 'The Graph operation response is not a JSON object.', { retryable: true });
  }
  const odataType = (text(prop(body, '@odata.type')) ?? '').toLowerCase();
  const rawStatus = text(prop(body, 'status'));
  let status = (rawStatus ?? '').toLowerCase();
  if (status === '') {
    if (odataType.endsWith('exportsuccessoperation')) status = 'succeeded';
    else if (odataType.endsWith('failedoperation')) status = 'failed';
    else if (odataType.endsWith('runningoperation')) status = 'running';
  }
  switch (status) {
    case 'notstarted':
    case 'running':
      return { kind: 'running', status: rawStatus ?? status, unknownStatus: false };
    case 'succeeded':
    case 'completed': {
      const inline = prop(body, 'resourceLocation');
      const link = text(prop(body, 'resourceLocation@odata.navigationLink'));
      if (!isRecord(inline) && link === undefined) {
        throw new ExportError(
          'MANIFEST_INVALID',
          'The Graph operation succeeded but carries neither a manifest under resourceLocation nor resourceLocation@odata.navigationLink.',
        );
      }
      // An inline object with only "@odata.type" (an old beta shape) is no manifest: prefer the link then.
      const inlineManifest = isRecord(inline) && 'rootDirectory' in inline ? inline : undefined;
      if (inlineManifest === undefined && link === undefined) {
        throw new ExportError(
          'MANIFEST_INVALID',
          'The Graph operation succeeded but its resourceLocation is no manifest.',
        );
      }
      return { kind: 'succeeded', status: rawStatus ?? status, inlineManifest, manifestLink: link };
    }
    case 'failed': {
      const error = prop(body, 'error');
      const code = isRecord(error) ? (text(prop(error, 'code')) ?? 'unknown') : 'unknown';
      const message = isRecord(error) ? (text(prop(error, 'message')) ?? '') : '';
      return { kind: 'failed', status: rawStatus ?? status, code, message };
    }
    default:
      return { kind: 'running', status: rawStatus ?? '(none)', unknownStatus: true };
  }
}

/** Normalises a Graph timestamp to ISO 8601 UTC: values without an offset (as in the docs) are UTC. */
export function normaliseTimestamp(value: string): string | undefined {
  const hasZone = /(Z|[+-]\d\d:?\d\d)$/i.test(value.trim());
  const parsed = Date.parse(hasZone ? value.trim() : `${value.trim()}Z`);
  if (Number.isNaN(parsed)) return undefined;
  return new Date(parsed).toISOString();
}

/** Why a blob name from a manifest is unsafe to use as a path, or undefined when it is safe. */
export function unsafeBlobName(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name.length > 900) return 'is longer than 900 characters';
  if (name.startsWith('/')) return 'is an absolute path';
  if (name.includes('\\')) return 'contains a backslash';
  if (/[?#]/.test(name)) return 'contains "?" or "#"';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character';
  const segments = name.split('/');
  if (segments.some((s) => s === '..')) return 'contains a ".." segment';
  if (segments.some((s) => s === '.' || s === '')) return 'contains an empty or "." segment';
  if (name.toLowerCase() === 'manifest.json') return 'collides with our own manifest.json';
  return undefined;
}

/** Options of manifest validation. */
export interface ManifestRules {
  /** Emulator mode: loopback http(s) blob endpoints are accepted as sources. */
  emulator: boolean;
}

/** Is this URL an acceptable export source root (https Azure Blob, or loopback in emulator mode)? */
export function checkSourceRoot(rootDirectory: string, rules: ManifestRules): string | undefined {
  let url: URL;
  try {
    url = new URL(rootDirectory);
  } catch {
    return 'rootDirectory is not a URL';
  }
  if (url.search !== '' || url.hash !== '') return 'rootDirectory carries a query string or fragment';
  if (url.username !== '' || url.password !== '') return 'rootDirectory carries credentials';
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
  if (rules.emulator && loopback && (url.protocol === 'http:' || url.protocol === 'https:')) return undefined;
  if (url.protocol !== 'https:') return `rootDirectory must be an https Azure Blob endpoint, not ${url.protocol}//`;
  if (!/^[a-z0-9]{3,24}\.blob\.core\.windows\.net$/.test(host) || url.port !== '') {
    return `rootDirectory host ${url.host} is not an Azure Blob endpoint (*.blob.core.windows.net)`;
  }
  if (url.pathname.split('/').filter((s) => s !== '').length === 0) return 'rootDirectory names no container';
  return undefined;
}

/**
 * Parses and validates a Graph manifest. Tolerates every documented variant (schemaVersion 1 or 2,
 * compressedJSON or compressedJSONLines, any case of partitionType, timestamps with or without Z)
 * and refuses anything unsafe: a foreign or non-https root, unsafe or duplicate blob names,
 * a blobCount that does not match the blobs.
 */
export function parseManifest(body: unknown, rules: ManifestRules): ExportManifest {
  const fail = (reason: string): never => {
    throw new ExportError('MANIFEST_INVALID', `The Graph export manifest is invalid: ${reason}.`);
  };
  if (!isRecord(body)) return fail('it is not a JSON object');
  const field = (name: string, required = true): string => {
    const value = text(prop(body, name));
    if (value === undefined || value.trim() === '') {
      if (required) fail(`"${name}" is missing`);
      return '';
    }
    return value.trim();
  };
  const id = field('id');
  const eTag = field('eTag');
  const rootDirectory = field('rootDirectory').replace(/\/+$/, '');
  const sasToken = field('sasToken').replace(/^\?/, '');
  const createdRaw = field('createdDateTime', false);
  const createdDateTime =
    createdRaw === '' ? '' : (normaliseTimestamp(createdRaw) ?? fail('"createdDateTime" is no date'));
  const rootProblem = checkSourceRoot(rootDirectory, rules);
  if (rootProblem !== undefined) fail(rootProblem);

  const blobsRaw = prop(body, 'blobs');
  if (!Array.isArray(blobsRaw)) return fail('"blobs" is not a list');
  const blobs: ManifestBlob[] = [];
  const seen = new Set<string>();
  for (const [index, entry] of blobsRaw.entries()) {
    if (!isRecord(entry)) return fail(`blobs[${index}] is not an object`);
    const name = text(prop(entry, 'name'));
    if (name === undefined) return fail(`blobs[${index}] has no name`);
    const problem = unsafeBlobName(name);
    if (problem !== undefined) fail(`blob name "${name}" ${problem}`);
    if (seen.has(name)) fail(`blob name "${name}" appears twice`);
    seen.add(name);
    blobs.push({ name, partitionValue: text(prop(entry, 'partitionValue')) ?? '' });
  }
  const countRaw = prop(body, 'blobCount');
  const blobCount = typeof countRaw === 'string' ? Number(countRaw) : countRaw;
  if (typeof blobCount !== 'number' || !Number.isInteger(blobCount) || blobCount < 0) {
    return fail('"blobCount" is not a whole number');
  }
  if (blobCount !== blobs.length) fail(`"blobCount" is ${blobCount} but ${blobs.length} blobs are listed`);

  return {
    id,
    schemaVersion: field('schemaVersion', false),
    dataFormat: field('dataFormat', false),
    createdDateTime,
    eTag,
    partnerTenantId: field('partnerTenantId', false),
    rootDirectory,
    sasToken,
    partitionType: field('partitionType', false).toLowerCase(),
    blobCount,
    blobs,
  };
}

/** `BillingMonth=YYYYMM` of a manifest's rootDirectory, as `YYYY-MM`, when present. */
export function billingMonthFromRoot(rootDirectory: string): string | undefined {
  const match = /(?:^|\/)BillingMonth=(\d{4})(\d{2})(?:\/|$)/i.exec(new URL(rootDirectory).pathname);
  if (match === null) return undefined;
  const month = Number(match[2]);
  if (month < 1 || month > 12) return undefined;
  return `${match[1]}-${match[2]}`;
}
