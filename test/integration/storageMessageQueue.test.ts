import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { QueueServiceClient } from '@azure/storage-queue';
import {
  clampDelaySeconds,
  decodeQueueMessage,
  encodeQueueMessage,
  StorageMessageQueue,
} from '../../src/adapters/queue/storageMessageQueue';
import { createQueueServiceClient } from '../../src/adapters/storage/clients';
import { isExportError } from '../../src/errors';
import type { CopyMessage, StatusMessage } from '../../src/pipeline/ports';
import { uniqueName, useAzurite } from '../support/azurite';

const azurite = useAzurite();

function service(): QueueServiceClient {
  return createQueueServiceClient({
    kind: 'connectionString',
    connectionString: azurite().connectionString('devstoreaccount1'),
  });
}

function newQueue(): { queue: StorageMessageQueue; status: string; copy: string } {
  const status = uniqueName('status');
  const copy = uniqueName('copy');
  return { queue: new StorageMessageQueue(service(), { queueNames: { status, copy } }), status, copy };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function receiveAll(name: string): Promise<Array<{ messageText: string; expiresOn: Date }>> {
  const out: Array<{ messageText: string; expiresOn: Date }> = [];
  const client = service().getQueueClient(name);
  for (;;) {
    const { receivedMessageItems } = await client.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
    if (receivedMessageItems.length === 0) return out;
    out.push(...receivedMessageItems);
  }
}

describe('StorageMessageQueue', () => {
  it('keeps a delayed status check invisible until its delay has passed, then delivers it once', async () => {
    const { queue, status } = newQueue();
    const message: StatusMessage = { version: 1, kind: 'poll', runId: '20260301T060000000Z-0a1b2c3d', attempt: 3 };
    await queue.sendStatus(message, 2);

    assert.equal((await receiveAll(status)).length, 0, 'invisible right after sending');
    await sleep(2600);
    const received = await receiveAll(status);
    assert.equal(received.length, 1, 'visible after the delay');
    assert.deepEqual(decodeQueueMessage(received[0]?.messageText), message);
  });

  it('sends base64 JSON, as the Functions host decodes it, that never expires', async () => {
    const { queue, status } = newQueue();
    const message: StatusMessage = { version: 1, kind: 'start', runId: '20260301T060000000Z-0a1b2c3d' };
    await queue.sendStatus(message, 0);

    const [received] = await receiveAll(status);
    assert.ok(received !== undefined);
    assert.match(received.messageText, /^[A-Za-z0-9+/]+={0,2}$/);
    assert.deepEqual(JSON.parse(Buffer.from(received.messageText, 'base64').toString('utf8')), message);
    assert.ok(received.expiresOn.getUTCFullYear() >= 9999, `expires ${received.expiresOn.toISOString()}`);
  });

  it('creates its queues when missing and sends every copy message of a run', async () => {
    const { queue, copy } = newQueue();
    const messages: Array<Extract<CopyMessage, { blobName: string }>> = Array.from({ length: 45 }, (_, i) => ({
      version: 1 as const,
      runId: '20260301T060000000Z-0a1b2c3d',
      blobName: `part-${i}.json.gz`,
    }));
    await queue.sendCopies(messages);
    await queue.sendCopies([]);

    const received = (await receiveAll(copy)).map((item) => decodeQueueMessage(item.messageText));
    const names = received.map((item) =>
      typeof item === 'object' && item !== null && 'blobName' in item ? item.blobName : undefined,
    );
    assert.deepEqual(names.sort(), messages.map((message) => message.blobName).sort());
  });

  it('accepts delays beyond the 7-day maximum by clamping them, and negative delays as none', async () => {
    const { queue, status } = newQueue();
    await queue.sendStatus({ version: 1, kind: 'start', runId: '20260301T060000000Z-00000001' }, 8 * 24 * 3600);
    await queue.sendStatus({ version: 1, kind: 'start', runId: '20260301T060000000Z-00000002' }, -5);
    const received = await receiveAll(status);
    assert.equal(received.length, 1);
    assert.deepEqual(decodeQueueMessage(received[0]?.messageText), {
      version: 1,
      kind: 'start',
      runId: '20260301T060000000Z-00000002',
    });
    assert.equal(clampDelaySeconds(8 * 24 * 3600), 7 * 24 * 3600);
    assert.equal(clampDelaySeconds(1.2), 2);
    assert.equal(clampDelaySeconds(Number.NaN), 0);
  });
});

describe('decodeQueueMessage', () => {
  it('decodes base64 JSON, passes other values through, and returns non-JSON text as text', () => {
    assert.deepEqual(decodeQueueMessage(encodeQueueMessage({ a: [1, 'é'] })), { a: [1, 'é'] });
    assert.deepEqual(decodeQueueMessage({ already: 'parsed' }), { already: 'parsed' });
    assert.equal(decodeQueueMessage(Buffer.from('plain text').toString('base64')), 'plain text');
  });

  it('refuses text that is not base64 (the host would poison it)', () => {
    assert.throws(
      () => decodeQueueMessage('{"version":1}'),
      (error: unknown) => isExportError(error) && error.code === 'MESSAGE_INVALID',
    );
  });
});
