import type { CopyMessage } from './ports';

/**
 * Copy messages a run is spread over at least (while it has that many blobs): one blob per message up to this many
 * blobs, so a small export keeps every copy in its own invocation (one host runs 12 at once: host.json `batchSize`
 * 8 + `newBatchThreshold` 4, and more instances take the rest).
 */
export const COPY_MESSAGES_SPREAD = 16;

/** Blobs one copy message names at most. */
export const COPY_BATCH_MAX_BLOBS = 32;

/**
 * Characters of blob names one copy message holds at most: a queue message is at most 64 KiB, and base64 makes 48
 * KiB of JSON of it.
 */
export const COPY_BATCH_MAX_NAME_CHARS = 32_000;

/** Copies one invocation of a batch runs at once (each may itself run `EXPORT_COPY_CONCURRENCY` block copies). */
export const COPY_BATCH_CONCURRENCY = 4;

/**
 * The copy messages of a run's blobs. Graph's manifest gives no blob sizes, so batches go by count: up to
 * COPY_MESSAGES_SPREAD blobs, one message per blob (the old format, which every version reads); more blobs share
 * messages, evenly, at least COPY_MESSAGES_SPREAD of them and at most COPY_BATCH_MAX_BLOBS blobs each. A queue hop
 * per blob costs a receive, a delete and the run's reads for every blob; a batch pays them once.
 */
export function copyMessagesFor(runId: string, names: readonly string[]): CopyMessage[] {
  if (names.length <= COPY_MESSAGES_SPREAD) return names.map((blobName) => ({ version: 1, runId, blobName }));
  const count = Math.max(COPY_MESSAGES_SPREAD, Math.ceil(names.length / COPY_BATCH_MAX_BLOBS));
  const messages: CopyMessage[] = [];
  let from = 0;
  for (let index = 0; index < count; index++) {
    // Even shares: the first (names.length % count) messages take one blob more.
    const to = Math.round(((index + 1) * names.length) / count);
    messages.push(...bounded(runId, names.slice(from, to)));
    from = to;
  }
  return messages;
}

/** One batch, split further where its names would not fit one queue message. */
function bounded(runId: string, names: string[]): CopyMessage[] {
  const messages: CopyMessage[] = [];
  let batch: string[] = [];
  let chars = 0;
  const flush = () => {
    if (batch.length === 1) messages.push({ version: 1, runId, blobName: batch[0]! });
    else if (batch.length > 1) messages.push({ version: 1, runId, blobNames: batch });
    batch = [];
    chars = 0;
  };
  for (const name of names) {
    if (batch.length > 0 && chars + name.length > COPY_BATCH_MAX_NAME_CHARS) flush();
    batch.push(name);
    chars += name.length;
  }
  flush();
  return messages;
}

/** The blobs a copy message names: one (`blobName`) or a batch (`blobNames`). */
export function blobNamesOf(message: CopyMessage): string[] {
  return 'blobNames' in message ? message.blobNames : [message.blobName];
}
