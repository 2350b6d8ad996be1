import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { AZURITE_ACCOUNTS, startAzurite } from '../../src/local/azurite';
import { uniqueName, useAzurite } from '../support/azurite';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('local Azurite', () => {
  const azurite = useAzurite();

  it('listens on free loopback ports for Blob, Queue and Table', () => {
    for (const endpoint of [azurite().blobEndpoint, azurite().queueEndpoint, azurite().tableEndpoint]) {
      assert.match(endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    }
    assert.deepEqual(
      azurite().accounts.map((account) => account.name),
      ['devstoreaccount1', 'partnerdest', 'msbilling', 'finopshub'],
    );
  });

  it('serves blobs, queues and tables of every account through its IP-style connection string', async () => {
    for (const account of AZURITE_ACCOUNTS) {
      const connectionString = azurite().connectionString(account.name);
      assert.match(connectionString, new RegExp(`BlobEndpoint=http://127\\.0\\.0\\.1:\\d+/${account.name};`));
      assert.match(connectionString, new RegExp(`QueueEndpoint=http://127\\.0\\.0\\.1:\\d+/${account.name};`));
      assert.match(connectionString, new RegExp(`TableEndpoint=http://127\\.0\\.0\\.1:\\d+/${account.name};`));

      const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient(uniqueName('c'));
      await container.create();
      await container.getBlockBlobClient('hello.txt').upload('hello', 5);
      assert.equal((await container.getBlobClient('hello.txt').downloadToBuffer()).toString(), 'hello');

      const queue = QueueServiceClient.fromConnectionString(connectionString).getQueueClient(uniqueName('q'));
      await queue.create();
      await queue.sendMessage(Buffer.from('{"version":1}').toString('base64'));
      const received = await queue.receiveMessages();
      assert.equal(received.receivedMessageItems.length, 1);

      const table = TableClient.fromConnectionString(connectionString, uniqueName('t'), {
        allowInsecureConnection: true,
      });
      await table.createTable();
      await table.createEntity({ partitionKey: 'p', rowKey: 'r', value: 42 });
      assert.equal((await table.getEntity<{ value: number }>('p', 'r')).value, 42);
    }
  });

  it('refuses an account it was not started with', () => {
    assert.throws(() => azurite().connectionString('someoneelse'), /no account 'someoneelse'/);
  });

  it('makes unique names valid for containers, queues and tables', () => {
    const names = new Set<string>();
    for (const prefix of ['Export-Copy', '9lives', 'x', 'a'.repeat(80), 'run_ledger']) {
      const name = uniqueName(prefix);
      assert.match(name, /^[a-z][a-z0-9]{2,62}$/, name);
      names.add(name);
    }
    names.add(uniqueName('Export-Copy'));
    assert.equal(names.size, 6);
  });

  it('stops by pid and the process is gone afterwards', async () => {
    const own = await startAzurite();
    assert.ok(alive(own.pid));
    await own.stop();
    await own.stop();
    assert.equal(alive(own.pid), false);
    await assert.rejects(fetch(`${own.blobEndpoint}/devstoreaccount1?comp=list`));
  });

  it('fails with Azurite output when it cannot start, instead of skipping', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'azurite-test-'));
    try {
      const notADirectory = join(folder, 'file');
      await writeFile(notADirectory, 'x');
      await assert.rejects(startAzurite({ location: notADirectory }), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, /Could not start Azurite/);
        assert.match(error.message, /Azurite stderr:\n(?!\(empty\))/);
        return true;
      });
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('persists data in a folder when given a location', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'azurite-data-'));
    try {
      const first = await startAzurite({ location: folder });
      const name = uniqueName('persist');
      try {
        const service = BlobServiceClient.fromConnectionString(first.connectionString('partnerdest'));
        await service.getContainerClient(name).create();
      } finally {
        await first.stop();
      }
      const second = await startAzurite({ location: folder });
      try {
        const service = BlobServiceClient.fromConnectionString(second.connectionString('partnerdest'));
        assert.equal(await service.getContainerClient(name).exists(), true);
      } finally {
        await second.stop();
      }
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
