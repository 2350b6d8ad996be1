import { z } from 'zod';
import { ExportError } from '../errors';
import { COPY_BATCH_MAX_BLOBS } from './copyBatches';
import type { CurateMessage } from './curationPorts';
import { isRunId } from './layout';
import type { CopyMessage, StatusMessage } from './ports';

const runId = z.string().refine(isRunId, 'is not a run id');

const statusSchema = z.discriminatedUnion('kind', [
  z
    .object({
      version: z.literal(1),
      kind: z.literal('start'),
      runId,
      attempt: z.number().int().min(0).max(1000).optional(),
    })
    .strict(),
  z
    .object({
      version: z.literal(1),
      kind: z.literal('poll'),
      runId,
      attempt: z.number().int().min(0).max(100000),
      operationUrl: z.string().url().max(2048).startsWith('https://').optional(),
    })
    .strict(),
]);

const blobName = z.string().min(1).max(1024);
const copySchema = z.union([
  z.object({ version: z.literal(1), runId, blobName }).strict(),
  z
    .object({
      version: z.literal(1),
      runId,
      blobNames: z
        .array(blobName)
        .min(1)
        .max(COPY_BATCH_MAX_BLOBS)
        .refine((names) => new Set(names).size === names.length, 'name a blob twice'),
    })
    .strict(),
]);

const curateSchema = z.discriminatedUnion('kind', [
  z.object({ version: z.literal(1), kind: z.literal('file'), runId, blobName: z.string().min(1).max(1024) }).strict(),
  z.object({ version: z.literal(1), kind: z.literal('publish'), runId }).strict(),
]);

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(message)'} ${issue.message}`).join('; ');
}

/** Decodes what the queue trigger delivers: an object (the host parsed JSON), a JSON string, or base64 of JSON. */
export function decodeMessageBody(raw: unknown): unknown {
  if (typeof raw === 'object' && raw !== null && !Buffer.isBuffer(raw)) return raw;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' ? raw : undefined;
  if (text === undefined) return raw;
  const trimmed = text.trim();
  try {
    return JSON.parse(trimmed) as unknown;
  } catch {
    try {
      return JSON.parse(Buffer.from(trimmed, 'base64').toString('utf8')) as unknown;
    } catch {
      return text;
    }
  }
}

/** Parses an export-status message; throws MESSAGE_INVALID naming what is wrong. */
export function parseStatusMessage(raw: unknown): StatusMessage {
  const result = statusSchema.safeParse(decodeMessageBody(raw));
  if (!result.success) {
    throw new ExportError(
      'MESSAGE_INVALID',
      `Invalid export-status message: ${describe(result.error)}. Accepted: {"version":1,"kind":"start"|"poll","runId":"<run id>","attempt":<n>,"operationUrl":"https://…" (poll only, optional)}.`,
    );
  }
  return result.data;
}

/** Parses an export-copy message; throws MESSAGE_INVALID naming what is wrong. */
export function parseCopyMessage(raw: unknown): CopyMessage {
  const result = copySchema.safeParse(decodeMessageBody(raw));
  if (!result.success) {
    throw new ExportError(
      'MESSAGE_INVALID',
      `Invalid export-copy message: ${describe(result.error)}. Accepted: {"version":1,"runId":"<run id>","blobName":"<name>"} or {"version":1,"runId":"<run id>","blobNames":["<name>", …]} (at most ${COPY_BATCH_MAX_BLOBS}).`,
    );
  }
  return result.data;
}

/** Parses an export-curate message; throws MESSAGE_INVALID naming what is wrong. */
export function parseCurateMessage(raw: unknown): CurateMessage {
  const result = curateSchema.safeParse(decodeMessageBody(raw));
  if (!result.success) {
    throw new ExportError(
      'MESSAGE_INVALID',
      `Invalid export-curate message: ${describe(result.error)}. Accepted: {"version":1,"kind":"file","runId":"<run id>","blobName":"<name>"} or {"version":1,"kind":"publish","runId":"<run id>"}.`,
    );
  }
  return result.data;
}

/** The run id of any message, if one can be read (for poison handling of otherwise invalid messages). */
export function runIdOf(raw: unknown): string | undefined {
  const body = decodeMessageBody(raw);
  if (typeof body === 'object' && body !== null && 'runId' in body) {
    const value = (body as { runId: unknown }).runId;
    if (typeof value === 'string' && isRunId(value)) return value;
  }
  return undefined;
}
