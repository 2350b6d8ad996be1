/**
 * The local host's message lease against real Azurite: a message being handled stays invisible while its
 * handler runs (the lease is renewed), and stop() hands it back at once (visibility 0) without waiting
 * for the handler, so the next command takes it up immediately. (The test timeout only keeps a hang of the
 * old behaviour, which awaited the handler, from blocking the suite.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { QueueClient } from '@azure/storage-queue';
import { DEV_STORE_ACCOUNT } from '../../src/local/azurite';
import { type FunctionHandlers, LocalFunctionsHost } from '../../src/local/localHost';
import { QueueNames } from '../../src/names';
import { useAzurite } from '../support/azurite';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function handlers(copy: FunctionHandlers['copyExportBlob']): FunctionHandlers {
  const none = async () => undefined;
  const http = async () => ({ status: 204 });
  return {
    startExportsTimer: none,
    startExportsHttp: http,
    listExportRuns: http,
    pollExportStatus: none,
    copyExportBlob: copy,
    exportStatusPoison: none,
    exportCopyPoison: none,
    curateExportFile: none,
    exportCuratePoison: none,
    superviseRuns: none,
  };
}

describe('local host: message lease and hand-back', () => {
  const azurite = useAzurite();

  it('renews the lease of a running handler, and stop() hands the message back at once without awaiting it', {
    timeout: 60_000,
  }, async () => {
    const connectionString = azurite().connectionString(DEV_STORE_ACCOUNT.name);
    const queue = new QueueClient(connectionString, QueueNames.copy);
    await queue.createIfNotExists();
    let calls = 0;
    let finish: () => void = () => undefined;
    const host = await LocalFunctionsHost.start({
      hostStorage: { kind: 'connectionString', connectionString },
      handlers: handlers(async () => {
        calls++;
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
      }),
      queueSettings: { leaseSeconds: 1, leaseRenewalMs: 300, maxPollingIntervalMs: 100 },
      log: () => undefined,
    });
    try {
      await queue.sendMessage(Buffer.from(JSON.stringify({ hello: 1 })).toString('base64'));
      while (calls === 0) await sleep(20);
      await sleep(2500); // more than twice the lease
      assert.equal((await queue.peekMessages()).peekedMessageItems.length, 0, 'renewed: still invisible');
      assert.equal(calls, 1, 'not delivered twice while it runs');
      await host.stop();
      const back = await queue.receiveMessages({ visibilityTimeout: 30 });
      assert.equal(back.receivedMessageItems.length, 1, 'handed back: visible at once after stop()');
      assert.equal(back.receivedMessageItems[0]!.dequeueCount, 2);
    } finally {
      finish();
      await host.stop();
    }
  });

  it('receives the next messages once those in flight are down to newBatchThreshold, not when the whole batch is done', {
    timeout: 60_000,
  }, async () => {
    const connectionString = azurite().connectionString(DEV_STORE_ACCOUNT.name);
    const queue = new QueueClient(connectionString, QueueNames.copy);
    await queue.createIfNotExists();
    await queue.clearMessages();
    const started: number[] = [];
    const release = new Map<number, () => void>();
    const host = await LocalFunctionsHost.start({
      hostStorage: { kind: 'connectionString', connectionString },
      handlers: handlers(async (item) => {
        const n = (item as { n: number }).n;
        started.push(n);
        // Message 1 ends at once; message 2 (the slow one of the first batch) runs until released.
        if (n !== 1) await new Promise<void>((resolve) => release.set(n, resolve));
      }),
      queueSettings: { batchSize: 2, newBatchThreshold: 1, maxPollingIntervalMs: 100 },
      log: () => undefined,
    });
    try {
      for (const n of [1, 2]) await queue.sendMessage(Buffer.from(JSON.stringify({ n })).toString('base64'));
      while (started.length < 2) await sleep(20);
      await queue.sendMessage(Buffer.from(JSON.stringify({ n: 3 })).toString('base64'));
      const deadline = Date.now() + 10_000;
      while (!started.includes(3) && Date.now() < deadline) await sleep(20);
      assert.ok(started.includes(3), 'message 3 is handled while message 2 of the first batch still runs');
      assert.ok(release.has(2), 'message 2 still runs');
    } finally {
      for (const resolve of release.values()) resolve();
      await host.stop();
    }
  });
});
