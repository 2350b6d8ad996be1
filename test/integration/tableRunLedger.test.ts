import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { odata } from '@azure/data-tables';
import {
  createBlobServiceClient,
  createQueueServiceClient,
  createTableClient,
  createTableServiceClient,
} from '../../src/adapters/storage/clients';
import { TableRunLedger } from '../../src/adapters/storage/tableRunLedger';
import type { StorageConnection } from '../../src/config';
import { isExportError } from '../../src/errors';
import type { RunRecord } from '../../src/pipeline/ports';
import { uniqueName, useAzurite } from '../support/azurite';

const azurite = useAzurite();

/** The host storage account (devstoreaccount1) through Azurite's IP-style endpoints. */
function hostConnection(): StorageConnection {
  return { kind: 'connectionString', connectionString: azurite().connectionString('devstoreaccount1') };
}

/** Table names of one test. */
function uniqueTables(): { runs: string; blobs: string; locks: string } {
  return { runs: uniqueName('runs'), blobs: uniqueName('blobs'), locks: uniqueName('locks') };
}

function newLedger(tableNames = uniqueTables(), now = () => new Date()): TableRunLedger {
  return new TableRunLedger(hostConnection(), { tableNames, clock: { now } });
}

/** A run id as the pipeline makes them: compact UTC start time, then random hex. */
function runIdAt(iso: string): string {
  return `${iso.replace(/[-:]/g, '').replace('.', '')}-${randomBytes(4).toString('hex')}`;
}

function run(startedAt: string, fields: Partial<RunRecord> = {}): RunRecord {
  return {
    runId: runIdAt(startedAt),
    currency: 'USD',
    billingPeriod: 'current',
    attributeSet: 'full',
    trigger: 'schedule',
    status: 'starting',
    force: false,
    startedAt,
    updatedAt: startedAt,
    polls: 0,
    blobsCopied: 0,
    byteCount: 0,
    ...fields,
  };
}

describe('storage clients', () => {
  it('reach Azurite through IP-style endpoints of a connection string (blob, queue and table over http)', async () => {
    const connection = hostConnection();
    const name = uniqueName('clients');
    const blobs = createBlobServiceClient(connection);
    await blobs.getContainerClient(name).create();
    const queues = createQueueServiceClient(connection);
    await queues.getQueueClient(name).create();
    const tables = createTableServiceClient(connection);
    await tables.createTable(name);
    const table = createTableClient(connection, name);
    await table.createEntity({ partitionKey: 'p', rowKey: 'r', value: 1 });
    assert.equal((await table.getEntity('p', 'r'))['value'], 1);
    assert.equal(table.url, `${azurite().tableEndpoint}/devstoreaccount1`);
  });

  it('understand UseDevelopmentStorage=true (the well-known Azurite ports)', () => {
    const dev: StorageConnection = { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' };
    assert.equal(createBlobServiceClient(dev).url, 'http://127.0.0.1:10000/devstoreaccount1');
    assert.equal(createQueueServiceClient(dev).url, 'http://127.0.0.1:10001/devstoreaccount1');
    assert.equal(createTableClient(dev, 'exportRuns').url, 'http://127.0.0.1:10002/devstoreaccount1');
  });

  it('build identity-based clients on the configured service URIs', () => {
    const identity: StorageConnection = {
      kind: 'identity',
      blobServiceUri: 'https://hoststore.blob.core.windows.net',
      queueServiceUri: 'https://hoststore.queue.core.windows.net',
      tableServiceUri: 'https://hoststore.table.core.windows.net',
      clientId: '00000000-0000-0000-0000-000000000001',
    };
    assert.match(createBlobServiceClient(identity).url, /^https:\/\/hoststore\.blob\.core\.windows\.net\/?$/);
    assert.match(createQueueServiceClient(identity).url, /^https:\/\/hoststore\.queue\.core\.windows\.net\/?$/);
    assert.equal(createTableClient(identity, 'exportRuns').tableName, 'exportRuns');
    assert.throws(
      () => createQueueServiceClient({ ...identity, queueServiceUri: undefined }),
      (error: unknown) => isExportError(error) && error.code === 'CONFIG_INVALID',
    );
  });
});

describe('TableRunLedger runs', () => {
  it('creates its tables on first use and returns a run as it was stored, absent fields absent', async () => {
    const ledger = newLedger();
    const record = run('2026-03-01T06:00:00.123Z', {
      force: true,
      byteCount: 5_000_000_123,
      blobCount: 3,
      operationUrl: 'https://graph.microsoft.com/v1.0/reports/partners/billing/operations/abc',
    });
    await ledger.createRun(record);

    const found = await ledger.getRun(record.runId);
    assert.ok(found !== undefined);
    assert.deepEqual(found.value, record);
    assert.equal(typeof found.value.byteCount, 'number');
    assert.equal(found.value.force, true);
    assert.ok(!('completedAt' in found.value), 'undefined fields are not stored');
    assert.ok(found.etag.length > 0);
    assert.equal(await ledger.getRun(runIdAt('2026-03-01T06:00:00.000Z')), undefined);
  });

  it('updates with the current etag, and refuses (false) with a stale one, leaving the row as the winner wrote it', async () => {
    const ledger = newLedger();
    const record = run('2026-03-01T06:00:00.000Z');
    await ledger.createRun(record);
    const read = await ledger.getRun(record.runId);
    assert.ok(read !== undefined);

    assert.equal(await ledger.updateRun(record.runId, { nextCheckAt: '2026-03-01T07:00:00.000Z' }, read.etag), true);
    assert.equal(await ledger.updateRun(record.runId, { nextCheckAt: '2026-03-01T07:00:05.000Z' }, read.etag), false);

    const after = await ledger.getRun(record.runId);
    assert.equal(after?.value.nextCheckAt, '2026-03-01T07:00:00.000Z');
    assert.notEqual(after?.etag, read.etag);
  });

  it('merges fields without an etag and clears a field given as undefined', async () => {
    const ledger = newLedger();
    const record = run('2026-03-01T06:00:00.000Z', { lastError: 'GRAPH_UNAVAILABLE: 503' });
    await ledger.createRun(record);

    assert.equal(await ledger.updateRun(record.runId, { status: 'waiting', polls: 2 }), true);
    assert.equal(await ledger.updateRun(record.runId, { status: 'copying', lastError: undefined }), true);

    const found = await ledger.getRun(record.runId);
    assert.equal(found?.value.status, 'copying');
    assert.equal(found?.value.polls, 2);
    assert.ok(found !== undefined && !('lastError' in found.value), 'lastError was cleared');
  });

  it('reports RUN_NOT_FOUND when updating a run that does not exist', async () => {
    const ledger = newLedger();
    await assert.rejects(
      ledger.updateRun(runIdAt('2026-03-01T06:00:00.000Z'), { status: 'failed' }),
      (error: unknown) => isExportError(error) && error.code === 'RUN_NOT_FOUND',
    );
  });

  it('lists runs newest first, with limit, date range, status and currency filters', async () => {
    const ledger = newLedger();
    const runs = [
      run('2026-02-27T06:00:00.000Z', { status: 'succeeded' }),
      run('2026-02-28T06:00:00.000Z', { status: 'failed', currency: 'EUR' }),
      run('2026-03-01T06:00:00.000Z', { status: 'succeeded' }),
      run('2026-03-02T06:00:00.000Z', { status: 'waiting', currency: 'EUR' }),
      run('2026-03-03T06:00:00.000Z', { status: 'succeeded' }),
    ];
    for (const record of [...runs].reverse()) await ledger.createRun(record);
    const ids = (list: RunRecord[]): string[] => list.map((record) => record.runId);
    const [r0, r1, r2, r3, r4] = runs.map((record) => record.runId);

    assert.deepEqual(ids(await ledger.listRuns({})), [r4, r3, r2, r1, r0]);
    assert.deepEqual(ids(await ledger.listRuns({ limit: 2 })), [r4, r3]);
    assert.deepEqual(ids(await ledger.listRuns({ since: '2026-03-01T06:00:00.000Z' })), [r4, r3, r2]);
    assert.deepEqual(ids(await ledger.listRuns({ until: '2026-03-01T06:00:00.000Z' })), [r1, r0]);
    assert.deepEqual(ids(await ledger.listRuns({ since: '2026-02-28T00:00:00Z', until: '2026-03-02T00:00:00Z' })), [
      r2,
      r1,
    ]);
    assert.deepEqual(ids(await ledger.listRuns({ status: 'succeeded', limit: 2 })), [r4, r2]);
    assert.deepEqual(ids(await ledger.listRuns({ currency: 'eur' })), [r3, r1]);
    assert.deepEqual(ids(await ledger.listRuns({ limit: 0 })), []);
  });

  it('lists the ended runs whose end event is not marked sent, and the run loop fields round-trip', async () => {
    const ledger = newLedger();
    const ended = run('2026-03-01T06:00:00.000Z', {
      status: 'succeeded',
      announced: false,
      resumes: 2,
      startAttempts: 1,
    });
    const announced = run('2026-03-01T06:00:01.000Z', { status: 'failed', announced: true });
    const legacy = run('2026-03-01T06:00:02.000Z', { status: 'succeeded' });
    for (const r of [ended, announced, legacy]) await ledger.createRun(r);
    assert.deepEqual(
      (await ledger.listRuns({ unannounced: true })).map((r) => r.runId),
      [ended.runId],
    );
    const read = await ledger.getRun(ended.runId);
    assert.equal(read?.value.announced, false);
    assert.equal(read?.value.resumes, 2);
    assert.equal(read?.value.startAttempts, 1);
    assert.equal((await ledger.getRun(legacy.runId))?.value.announced, undefined);
    await ledger.updateRun(ended.runId, { announced: true });
    assert.deepEqual(await ledger.listRuns({ unannounced: true }), []);
  });

  it('sets a copied blob back to pending, dropping its copy result and counting the re-copy (kept once copied again)', async () => {
    const ledger = newLedger();
    const r = run('2026-03-01T06:00:00.000Z', { status: 'copying' });
    await ledger.createRun(r);
    await ledger.addBlobs(r.runId, ['a.json.gz']);
    await ledger.markBlobCopied(r.runId, 'a.json.gz', {
      byteCount: 10,
      contentType: 'application/gzip',
      method: 'copyFromUrl',
      copiedAt: '2026-03-01T06:01:00.000Z',
    });
    assert.equal(await ledger.markBlobPending(r.runId, 'a.json.gz', 1), true);
    // A second finisher that found the same change: the row is no longer the copied one it read.
    assert.equal(await ledger.markBlobPending(r.runId, 'a.json.gz', 1), false, 'set back to pending once');
    assert.deepEqual(await ledger.getBlob(r.runId, 'a.json.gz'), {
      runId: r.runId,
      name: 'a.json.gz',
      status: 'pending',
      recopies: 1,
    });
    await ledger.markBlobCopied(r.runId, 'a.json.gz', {
      byteCount: 10,
      contentType: 'application/gzip',
      method: 'copyFromUrl',
      copiedAt: '2026-03-01T06:02:00.000Z',
    });
    assert.equal((await ledger.getBlob(r.runId, 'a.json.gz'))?.recopies, 1);
  });

  it('refuses to store a SAS in a run row (defence in depth) and stores nothing', async () => {
    const ledger = newLedger();
    const record = run('2026-03-01T06:00:00.000Z', {
      rootDirectory: 'https://msbilling.blob.core.windows.net/exports?sv=2025-11-05&sig=abcdef',
    });
    await assert.rejects(ledger.createRun(record), (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /rootDirectory/);
      assert.doesNotMatch(error.message, /abcdef/);
      return true;
    });
    assert.equal(await ledger.getRun(record.runId), undefined);

    const stored = run('2026-03-01T07:00:00.000Z');
    await ledger.createRun(stored);
    await assert.rejects(ledger.updateRun(stored.runId, { error: 'failed: https://x/y?se=1&SIG=zzz' }));
    assert.equal((await ledger.getRun(stored.runId))?.value.error, undefined);
  });

  it('records rejected queue messages apart from runs, redacted', async () => {
    const tables = uniqueTables();
    const ledger = newLedger(tables);
    await ledger.createRun(run('2026-03-01T06:00:00.000Z'));
    await ledger.recordRejectedMessage('export-copy', 'not JSON', '{"url":"https://a/b?sv=1&sig=SECRETSIG"} trailing');

    const rejected = await ledger.listRejectedMessages();
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]?.queue, 'export-copy');
    assert.equal(rejected[0]?.reason, 'not JSON');
    assert.doesNotMatch(rejected[0]?.excerpt ?? '', /SECRETSIG|sig=/);
    assert.equal((await ledger.listRuns({})).length, 1, 'rejected rows are not runs');

    const table = createTableClient(hostConnection(), tables.runs);
    const rows = [];
    for await (const row of table.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${'rejected'}` } })) {
      rows.push(row);
    }
    assert.equal(rows.length, 1);
  });
});

describe('TableRunLedger blobs', () => {
  it('adds blob rows once, keyed safely for names with / \\ # ?, and marks them copied', async () => {
    const ledger = newLedger();
    const runId = runIdAt('2026-03-01T06:00:00.000Z');
    const names = ['BillingMonth=202603/part-0001.json.gz', 'odd\\name#1?.json.gz', 'part-0002.json.gz'];
    await ledger.addBlobs(runId, names);
    await ledger.addBlobs(runId, [...names, 'part-0003.json.gz']);

    const listed = await ledger.listBlobs(runId);
    assert.deepEqual(listed.map((blob) => blob.name).sort(), [...names, 'part-0003.json.gz'].sort());
    assert.ok(listed.every((blob) => blob.status === 'pending' && blob.runId === runId));

    await ledger.markBlobCopied(runId, names[1] ?? '', {
      byteCount: 3_000_000_000,
      contentType: 'application/gzip',
      method: 'copyFromUrl',
      copiedAt: '2026-03-01T06:10:00.000Z',
    });
    assert.deepEqual(await ledger.getBlob(runId, names[1] ?? ''), {
      runId,
      name: names[1],
      status: 'copied',
      byteCount: 3_000_000_000,
      contentType: 'application/gzip',
      method: 'copyFromUrl',
      copiedAt: '2026-03-01T06:10:00.000Z',
    });
    // A redelivered addBlobs never resets a copied blob.
    await ledger.addBlobs(runId, names);
    assert.equal((await ledger.getBlob(runId, names[1] ?? ''))?.status, 'copied');
    assert.equal(await ledger.getBlob(runId, 'missing.json.gz'), undefined);
  });

  it('keeps the content hashes and destination ETag of a copy, drops them when the blob goes back to pending, and reads rows written without them', async () => {
    const ledger = newLedger();
    const runId = runIdAt('2026-03-01T06:00:00.000Z');
    await ledger.addBlobs(runId, ['a.json.gz', 'old.json.gz']);
    const copy = {
      byteCount: 10,
      contentType: 'application/gzip',
      method: 'copyFromUrl' as const,
      copiedAt: '2026-03-01T06:01:00.000Z',
    };
    await ledger.markBlobCopied(runId, 'a.json.gz', {
      ...copy,
      contentCrc64: 'AAECAwQFBgc=',
      contentMd5: 'CY9rzUYh03PK3k6DJie09g==',
      destinationEtag: '"0x8DC0FFEE"',
    });
    // A row as a version before hashes wrote it: a copy with no hash fields at all.
    await ledger.markBlobCopied(runId, 'old.json.gz', copy);

    assert.deepEqual(await ledger.getBlob(runId, 'a.json.gz'), {
      runId,
      name: 'a.json.gz',
      status: 'copied',
      ...copy,
      contentCrc64: 'AAECAwQFBgc=',
      contentMd5: 'CY9rzUYh03PK3k6DJie09g==',
      destinationEtag: '"0x8DC0FFEE"',
    });
    const listed = await ledger.listBlobs(runId);
    assert.deepEqual(listed[1], { runId, name: 'old.json.gz', status: 'copied', ...copy });

    await ledger.markBlobPending(runId, 'a.json.gz', 1);
    await ledger.markBlobCopied(runId, 'a.json.gz', { ...copy, destinationEtag: '"0x8DC0FFEF"' });
    assert.deepEqual(await ledger.getBlob(runId, 'a.json.gz'), {
      runId,
      name: 'a.json.gz',
      status: 'copied',
      ...copy,
      recopies: 1,
      destinationEtag: '"0x8DC0FFEF"',
    });
  });

  it('tells whether a blob of the run is still pending, by its own partition only, and again after one goes back to pending', async () => {
    const tables = uniqueTables();
    const ledger = newLedger(tables);
    const runId = runIdAt('2026-03-01T06:00:00.000Z');
    const other = runIdAt('2026-03-01T07:00:00.000Z');
    const names = Array.from({ length: 120 }, (_, i) => `part-${String(i).padStart(4, '0')}.json.gz`);
    await ledger.addBlobs(runId, names);
    await ledger.addBlobs(other, ['pending.json.gz']);
    const copy = {
      byteCount: 1,
      contentType: undefined,
      method: 'copyFromUrl' as const,
      copiedAt: '2026-03-01T06:01:00.000Z',
    };
    assert.equal(await ledger.hasPendingBlobs(runId), true);
    // Only the last row (in RowKey order it may be anywhere) is pending.
    for (const name of names.slice(0, -1)) await ledger.markBlobCopied(runId, name, copy);
    assert.equal(await ledger.hasPendingBlobs(runId), true);
    await ledger.markBlobCopied(runId, names.at(-1)!, copy);
    assert.equal(await ledger.hasPendingBlobs(runId), false, "another run's pending row does not count");
    assert.equal(await ledger.markBlobPending(runId, names[7]!, 1), true);
    assert.equal(await ledger.hasPendingBlobs(runId), true);
    assert.equal(await ledger.hasPendingBlobs(runIdAt('2026-03-01T08:00:00.000Z')), false);
  });

  it('reads the rows of named blobs with queries of at most 14 row keys, only from its own run, skipping unknown names', async () => {
    const ledger = newLedger();
    const runId = runIdAt('2026-03-01T06:00:00.000Z');
    const other = runIdAt('2026-03-01T07:00:00.000Z');
    const names = Array.from(
      { length: 40 },
      (_, i) => `BillingMonth=202603/part-${String(i).padStart(4, '0')}.json.gz`,
    );
    await ledger.addBlobs(runId, names);
    await ledger.addBlobs(other, names);
    await ledger.markBlobCopied(runId, names[20]!, {
      byteCount: 5,
      contentType: undefined,
      method: 'copyFromUrl',
      copiedAt: '2026-03-01T06:01:00.000Z',
    });
    const wanted = [...names.slice(3, 33), 'not-in-the-manifest.json.gz', names[5]!];

    const rows = await ledger.getBlobs(runId, wanted);

    assert.deepEqual(rows.map((row) => row.name).sort(), names.slice(3, 33));
    assert.ok(rows.every((row) => row.runId === runId));
    assert.equal(rows.find((row) => row.name === names[20])?.status, 'copied');
    assert.deepEqual(await ledger.getBlobs(runId, []), []);
  });

  it('records many copies in entity group transactions of at most 100 rows, keeping the re-copy count of a row', async () => {
    const ledger = newLedger();
    const runId = runIdAt('2026-03-01T06:00:00.000Z');
    const names = Array.from({ length: 130 }, (_, i) => `part-${String(i).padStart(4, '0')}.json.gz`);
    await ledger.addBlobs(runId, names);
    const copy = {
      byteCount: 7,
      contentType: 'application/gzip',
      method: 'copyFromUrl' as const,
      copiedAt: '2026-03-01T06:01:00.000Z',
    };
    await ledger.markBlobCopied(runId, names[3]!, copy);
    assert.equal(await ledger.markBlobPending(runId, names[3]!, 1), true);

    await ledger.markBlobsCopied(
      runId,
      names.map((name, i) => ({ name, ...copy, destinationEtag: `"0x${i}"` })),
    );

    const rows = await ledger.listBlobs(runId);
    assert.equal(rows.length, 130);
    assert.deepEqual(
      rows.filter((row) => row.status !== 'copied'),
      [],
      'every row copied',
    );
    assert.equal(rows.find((row) => row.name === names[129])?.destinationEtag, '"0x129"');
    assert.equal(rows.find((row) => row.name === names[3])?.recopies, 1, 'Merge keeps the re-copy count');
    assert.equal(await ledger.hasPendingBlobs(runId), false);
  });

  it('adds more than one batch of blobs, also when two workers add the same list at once', async () => {
    const tables = uniqueTables();
    const runId = runIdAt('2026-03-01T06:00:00.000Z');
    const names = Array.from({ length: 230 }, (_, i) => `part-${String(i).padStart(4, '0')}.json.gz`);
    await Promise.all([newLedger(tables).addBlobs(runId, names), newLedger(tables).addBlobs(runId, names)]);
    const listed = await newLedger(tables).listBlobs(runId);
    assert.equal(listed.length, 230);
    assert.deepEqual(
      listed.map((blob) => blob.name),
      names,
    );
  });
});

describe('TableRunLedger start locks', () => {
  it('gives the lock to one run, tells others who holds it, and lets the holder take it again', async () => {
    const ledger = newLedger();
    const never = async (): Promise<boolean> => false;
    assert.equal(await ledger.acquireStartLock('USD|current|full', 'run-a', never), undefined);
    assert.equal(await ledger.acquireStartLock('USD|current|full', 'run-b', never), 'run-a');
    assert.equal(await ledger.acquireStartLock('USD|current|full', 'run-a', never), undefined);
    assert.equal(await ledger.acquireStartLock('EUR|current|full', 'run-b', never), undefined);
  });

  it('asks isStale with the holder and how long it has held the lock, and replaces a stale holder', async () => {
    const ledger = newLedger();
    const asked: Array<[string, number]> = [];
    await ledger.acquireStartLock('USD/current/full', 'run-a', async () => false);
    const holder = await ledger.acquireStartLock('USD/current/full', 'run-b', async (id, heldMs) => {
      asked.push([id, heldMs]);
      return true;
    });
    assert.equal(holder, undefined);
    assert.deepEqual(
      asked.map(([id]) => id),
      ['run-a'],
    );
    assert.ok(Number(asked[0]?.[1]) >= 0 && Number(asked[0]?.[1]) < 2000, `held ${asked[0]?.[1]} ms`);
    assert.equal(await ledger.acquireStartLock('USD/current/full', 'run-c', async () => false), 'run-b');
  });

  it('measures how long a lock is held by the storage service clock, for two hosts whose clocks are 5 minutes apart', async () => {
    const tables = uniqueTables();
    const behind = newLedger(tables, () => new Date(Date.now() - 5 * 60_000));
    const ahead = newLedger(tables, () => new Date(Date.now() + 5 * 60_000));
    // The start lock's rule for a holder with no run row: stale after 15 s.
    const heldFor: Array<[string, number]> = [];
    const graceOf15s = (by: string) => async (_holder: string, heldMs: number) => {
      heldFor.push([by, heldMs]);
      return heldMs > 15_000;
    };
    assert.equal(await behind.acquireStartLock('USD|current|full', 'run-behind', graceOf15s('ahead')), undefined);
    assert.equal(await ahead.acquireStartLock('USD|current|full', 'run-ahead', graceOf15s('ahead')), 'run-behind');
    assert.equal(await ahead.acquireStartLock('EUR|current|full', 'run-ahead', graceOf15s('behind')), undefined);
    assert.equal(await behind.acquireStartLock('EUR|current|full', 'run-behind', graceOf15s('behind')), 'run-ahead');
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.equal(await ahead.acquireStartLock('USD|current|full', 'run-ahead', graceOf15s('ahead')), 'run-behind');
    assert.equal(await behind.acquireStartLock('EUR|current|full', 'run-behind', graceOf15s('behind')), 'run-ahead');
    const [fresh1, fresh2, later1, later2] = heldFor.map(([, ms]) => ms);
    for (const ms of [fresh1, fresh2]) assert.ok(Number(ms) >= 0 && Number(ms) < 1500, `a fresh lock held ${ms} ms`);
    // The Date header has whole seconds: 2.1 s later, at least one more second.
    for (const ms of [later1, later2]) assert.ok(Number(ms) >= 1000 && Number(ms) < 4000, `held ${ms} ms after 2.1 s`);
  });

  it('lets exactly one of many concurrent starters take the lock', async () => {
    const tables = uniqueTables();
    const contenders = Array.from({ length: 8 }, (_, i) => `run-${i}`);
    const results = await Promise.all(
      contenders.map((id) => newLedger(tables).acquireStartLock('USD|last|basic', id, async () => false)),
    );
    const winners = contenders.filter((_, i) => results[i] === undefined);
    assert.equal(winners.length, 1);
    assert.ok(results.every((result) => result === undefined || result === winners[0]));
  });

  it('releases only when the releasing run holds the lock', async () => {
    const ledger = newLedger();
    const never = async (): Promise<boolean> => false;
    await ledger.acquireStartLock('USD|current|full', 'run-a', never);
    await ledger.releaseStartLock('USD|current|full', 'run-b');
    assert.equal(await ledger.acquireStartLock('USD|current|full', 'run-b', never), 'run-a');
    await ledger.releaseStartLock('USD|current|full', 'run-a');
    assert.equal(await ledger.acquireStartLock('USD|current|full', 'run-b', never), undefined);
    await ledger.releaseStartLock('GBP|current|full', 'run-b');
  });
});
