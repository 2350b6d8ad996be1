import type { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { ExportError } from '../../errors';
import { QueueNames } from '../../names';
import type { CopyMessage, MessageQueue, StatusMessage } from '../../pipeline/ports';

/** Longest initial invisibility Azure Queue storage accepts: 7 days. */
export const MAX_VISIBILITY_DELAY_SECONDS = 7 * 24 * 60 * 60;

/** Options of the queue adapter. */
export interface StorageMessageQueueOptions {
  /** Queue names; default `QueueNames` (tests pass unique ones). */
  queueNames?: { status: string; copy: string } | undefined;
  /** Copy messages sent in parallel; default 16. */
  sendConcurrency?: number | undefined;
}

/** The text of a queue message as the Functions host expects it by default (host.json `messageEncoding: base64`). */
export function encodeQueueMessage(message: unknown): string {
  return Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
}

/**
 * What the Functions host hands a queue trigger for a stored message text: the base64 is decoded and,
 * when the text is JSON, parsed. Values that are not strings pass through. A text that is not base64 is
 * refused (MESSAGE_INVALID), as the host sends such messages straight to the poison queue.
 */
export function decodeQueueMessage(raw: unknown): unknown {
  if (typeof raw !== 'string') return raw;
  const compact = raw.trim();
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw new ExportError('MESSAGE_INVALID', 'The queue message is not base64 (host.json messageEncoding is base64).');
  }
  const text = Buffer.from(compact, 'base64').toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Clamps a delay to what a queue accepts: whole seconds from 0 to 7 days. */
export function clampDelaySeconds(delaySeconds: number): number {
  if (!Number.isFinite(delaySeconds) || delaySeconds <= 0) return 0;
  return Math.min(MAX_VISIBILITY_DELAY_SECONDS, Math.ceil(delaySeconds));
}

/**
 * Delayed, base64-encoded JSON messages on Azure Queue storage. A delay is the message's initial
 * invisibility (`visibilityTimeout`); messages never expire (`messageTimeToLive: -1`) so a long wait
 * is not lost. Queues are created if missing, once per process.
 */
export class StorageMessageQueue implements MessageQueue {
  private readonly status: QueueClient;
  private readonly copy: QueueClient;
  private readonly sendConcurrency: number;
  private readonly ready = new Map<string, Promise<void>>();

  constructor(service: QueueServiceClient, options: StorageMessageQueueOptions = {}) {
    const names = options.queueNames ?? { status: QueueNames.status, copy: QueueNames.copy };
    this.status = service.getQueueClient(names.status);
    this.copy = service.getQueueClient(names.copy);
    this.sendConcurrency = Math.max(1, options.sendConcurrency ?? 16);
  }

  async sendStatus(message: StatusMessage, delaySeconds: number): Promise<void> {
    const queue = await this.queue(this.status);
    await queue.sendMessage(encodeQueueMessage(message), {
      visibilityTimeout: clampDelaySeconds(delaySeconds),
      messageTimeToLive: -1,
    });
  }

  async sendCopies(messages: CopyMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const queue = await this.queue(this.copy);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < messages.length) {
        const message = messages[next++];
        if (message === undefined) return;
        await queue.sendMessage(encodeQueueMessage(message), { messageTimeToLive: -1 });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.sendConcurrency, messages.length) }, worker));
  }

  /** Creates the queue once per process (a failed attempt is tried again on the next call). */
  private async queue(client: QueueClient): Promise<QueueClient> {
    let ready = this.ready.get(client.name);
    if (ready === undefined) {
      ready = client.createIfNotExists().then(
        () => undefined,
        (error: unknown) => {
          this.ready.delete(client.name);
          throw error;
        },
      );
      this.ready.set(client.name, ready);
    }
    await ready;
    return client;
  }
}
