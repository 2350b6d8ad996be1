import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportError, isExportError } from '../../src/errors';
import {
  blobNamesOf,
  COPY_BATCH_MAX_BLOBS,
  COPY_BATCH_MAX_NAME_CHARS,
  COPY_MESSAGES_SPREAD,
  copyMessagesFor,
} from '../../src/pipeline/copyBatches';
import { copyExportBlob } from '../../src/pipeline/copyExportBlob';
import { handlePoisonMessage } from '../../src/pipeline/handlePoisonMessage';
import { parseCopyMessage, parseStatusMessage } from '../../src/pipeline/messages';
import { pollExportStatus } from '../../src/pipeline/pollExportStatus';
import type { BlobRecord, RunLedger } from '../../src/pipeline/ports';
import { startExports } from '../../src/pipeline/startExports';
import { type FakeDeps, makeDeps, makeManifest, succeeded } from '../support/fakes';

const RUN_ID = '20241008T060000000Z-0a1b2c3d';
const names = (count: number, prefix = 'part') =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}.json.gz`);

/** A USD run whose export succeeded with `blobs` blobs: copying, its copy messages pending. */
async function copyingRun(blobs: number): Promise<{ deps: FakeDeps; runId: string; blobNames: string[] }> {
  const deps = makeDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
  const [started] = await startExports({ trigger: 'manual', currencies: ['USD'], billingPeriods: ['current'] }, deps);
  const blobNames = names(blobs);
  deps.graph.scriptOperation('*', succeeded(makeManifest({ blobNames })));
  const status = deps.queue.pendingStatus.shift();
  assert.ok(status !== undefined);
  deps.clock.advanceSeconds(status.delaySeconds);
  await pollExportStatus(parseStatusMessage(status.raw), deps);
  return { deps, runId: started!.runId, blobNames };
}

function deliver(deps: FakeDeps, raw: string): Promise<void> {
  return copyExportBlob(parseCopyMessage(raw), deps);
}

/** Counts the ledger calls the copy handler makes (the requests of item 4 in docs/performance.md). */
function countLedgerCalls(ledger: RunLedger): Map<string, number> {
  const counts = new Map<string, number>();
  for (const method of [
    'getRun',
    'getBlob',
    'getBlobs',
    'listBlobs',
    'hasPendingBlobs',
    'markBlobCopied',
    'markBlobsCopied',
    'updateRun',
  ] as const) {
    if (typeof ledger[method] !== 'function') continue;
    const original = ledger[method].bind(ledger) as (...args: unknown[]) => Promise<unknown>;
    (ledger as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      counts.set(method, (counts.get(method) ?? 0) + 1);
      return original(...args);
    };
  }
  return counts;
}

describe('copy messages of a run', () => {
  it(`sends one message per blob, in the single-blob format, while a run has at most ${COPY_MESSAGES_SPREAD} blobs`, () => {
    const messages = copyMessagesFor(RUN_ID, names(COPY_MESSAGES_SPREAD));
    assert.equal(messages.length, COPY_MESSAGES_SPREAD);
    assert.deepEqual(messages[0], { version: 1, runId: RUN_ID, blobName: 'part-00000.json.gz' });
  });

  it(`spreads 200 blobs evenly over ${COPY_MESSAGES_SPREAD} batch messages, each blob named once, in order`, () => {
    const all = names(200);
    const messages = copyMessagesFor(RUN_ID, all);
    assert.equal(messages.length, COPY_MESSAGES_SPREAD);
    const sizes = messages.map((m) => blobNamesOf(m).length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `even shares: ${sizes.join(',')}`);
    assert.deepEqual(messages.flatMap(blobNamesOf), all);
  });

  it(`names at most ${COPY_BATCH_MAX_BLOBS} blobs per message for a large run`, () => {
    const messages = copyMessagesFor(RUN_ID, names(1000));
    assert.equal(messages.length, Math.ceil(1000 / COPY_BATCH_MAX_BLOBS));
    assert.ok(messages.every((m) => blobNamesOf(m).length <= COPY_BATCH_MAX_BLOBS));
    assert.equal(messages.flatMap(blobNamesOf).length, 1000);
  });

  it('splits a batch whose names would not fit one queue message (64 KiB, base64)', () => {
    const long = names(64, 'x'.repeat(1000));
    const messages = copyMessagesFor(RUN_ID, long);
    assert.deepEqual(messages.flatMap(blobNamesOf), long);
    for (const message of messages) {
      const text = Buffer.from(JSON.stringify(message)).toString('base64');
      assert.ok(text.length <= 64 * 1024, `${text.length} characters of base64`);
      assert.ok(blobNamesOf(message).join('').length <= COPY_BATCH_MAX_NAME_CHARS);
    }
  });

  it('parses the single-blob format of messages already in queues and the batch format, and refuses a batch naming a blob twice', () => {
    assert.deepEqual(parseCopyMessage({ version: 1, runId: RUN_ID, blobName: 'a.json.gz' }), {
      version: 1,
      runId: RUN_ID,
      blobName: 'a.json.gz',
    });
    assert.deepEqual(blobNamesOf(parseCopyMessage({ version: 1, runId: RUN_ID, blobNames: ['a', 'b'] })), ['a', 'b']);
    for (const bad of [
      { version: 1, runId: RUN_ID, blobNames: [] },
      { version: 1, runId: RUN_ID, blobNames: ['a', 'a'] },
      { version: 1, runId: RUN_ID, blobNames: names(COPY_BATCH_MAX_BLOBS + 1) },
      { version: 1, runId: RUN_ID, blobName: 'a', blobNames: ['b'] },
    ]) {
      assert.throws(
        () => parseCopyMessage(bad),
        (error: unknown) => isExportError(error) && error.code === 'MESSAGE_INVALID',
      );
    }
  });
});

describe('copyExportBlob with a batch of blobs', () => {
  it('completes a 200-blob run with 16 copy messages, each blob copied once and listed in manifest.json', async () => {
    const { deps, runId, blobNames } = await copyingRun(200);
    const raws = deps.queue.takeCopies();
    assert.equal(raws.length, COPY_MESSAGES_SPREAD);

    for (const raw of raws) await deliver(deps, raw);

    const run = deps.ledger.run(runId);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.blobsCopied, 200);
    assert.equal(deps.copier.calls.length, 200);
    const manifest = deps.destination.json(`${run.path}/manifest.json`) as { blobs: Array<{ name: string }> };
    assert.deepEqual(
      manifest.blobs.map((b) => b.name),
      [...blobNames].sort(),
    );
    assert.equal(deps.telemetry.completed.length, 1);
  });

  it("reads the run once and the blob rows once per batch message, and records the batch's copies in one write", async () => {
    const { deps, runId } = await copyingRun(200);
    const [first] = deps.queue.takeCopies();
    const counts = countLedgerCalls(deps.ledger);

    await deliver(deps, first!);

    const names = blobNamesOf(parseCopyMessage(first!));
    assert.equal(counts.get('getRun'), 1);
    assert.equal(counts.get('getBlob') ?? 0, 0);
    assert.equal(counts.get('markBlobsCopied'), 1);
    const rows = (await deps.ledger.listBlobs(runId)).filter((b) => names.includes(b.name));
    assert.deepEqual(
      rows.map((b) => b.status),
      names.map(() => 'copied'),
    );
  });

  it("reads only the batch's own rows for a batch message that is not the last, and asks the ledger only whether a blob is still pending", async () => {
    const { deps, runId } = await copyingRun(200);
    deps.copier.byteCountFor = () => 1024;
    const [first] = deps.queue.takeCopies();
    const counts = countLedgerCalls(deps.ledger);

    await deliver(deps, first!);

    // The rows of the batch (a query naming them, no listing of the run's rows); "was this the last?" is one small query.
    assert.equal(counts.get('getBlobs') ?? 0, 1);
    assert.equal(counts.get('listBlobs') ?? 0, 0);
    assert.equal(counts.get('hasPendingBlobs') ?? 0, 1);
    // The progress comes from the run's recorded progress and the batch's copies.
    const blobs = blobNamesOf(parseCopyMessage(first!)).length;
    assert.equal(deps.ledger.run(runId).blobsCopied, blobs);
    assert.equal(deps.ledger.run(runId).byteCount, blobs * 1024);
  });

  it('lists the blob rows only in the batch message that finds none pending, which completes the run', async () => {
    const { deps, runId } = await copyingRun(200);
    const raws = deps.queue.takeCopies();
    for (const raw of raws.slice(0, -1)) await deliver(deps, raw);
    assert.equal(deps.ledger.run(runId).status, 'copying');
    const counts = countLedgerCalls(deps.ledger);

    await deliver(deps, raws.at(-1)!);

    assert.equal(counts.get('getBlobs') ?? 0, 1, 'the rows of the batch');
    assert.equal(counts.get('listBlobs') ?? 0, 1, 'every row, once, for manifest.json');
    assert.equal(deps.ledger.run(runId).status, 'succeeded');
    assert.equal(deps.ledger.run(runId).blobsCopied, 200);
  });

  it('completes the run in one pass when another message recorded progress after the last one read the run', async () => {
    const { deps, runId } = await copyingRun(200);
    const raws = deps.queue.takeCopies();
    for (const raw of raws.slice(0, -2)) await deliver(deps, raw);
    const [slower, last] = raws.slice(-2);
    const slowerNames = new Set(blobNamesOf(parseCopyMessage(slower!)));
    // Both read the run; the last message's copies take longer, so the other one records its progress in between.
    deps.copier.delayTicks = (path) => (slowerNames.has(path.split('/').at(-1)!) ? 0 : 50);
    const counts = countLedgerCalls(deps.ledger);

    await Promise.all([deliver(deps, slower!), deliver(deps, last!)]);

    assert.equal(deps.ledger.run(runId).status, 'succeeded');
    assert.equal(counts.get('listBlobs'), 1, 'every row once for manifest.json: no second pass after a lost commit');
  });

  it('finishes a committed run from its manifest.json, listing neither the rows nor the folder again', async () => {
    const { deps, runId } = await copyingRun(200);
    const raws = deps.queue.takeCopies();
    for (const raw of raws.slice(0, -1)) await deliver(deps, raw);
    // The finisher writes manifest.json, then fails to write latest.json (transient): the message is retried.
    const writeJson = deps.destination.writeJson.bind(deps.destination);
    let failLatest = true;
    deps.destination.writeJson = async (path, value, condition) => {
      if (failLatest && path.endsWith('latest.json')) {
        failLatest = false;
        throw new ExportError('DESTINATION_UNAVAILABLE', 'latest.json: 503 ServerBusy', { retryable: true });
      }
      return writeJson(path, value, condition);
    };
    await assert.rejects(deliver(deps, raws.at(-1)!));
    assert.equal(deps.ledger.run(runId).status, 'copying');
    assert.ok(deps.ledger.run(runId).committedAt !== undefined);
    const counts = countLedgerCalls(deps.ledger);
    let listings = 0;
    const list = deps.destination.list.bind(deps.destination);
    deps.destination.list = async (prefix) => {
      listings += 1;
      return list(prefix);
    };

    await deliver(deps, raws.at(-1)!);

    assert.equal(deps.ledger.run(runId).status, 'succeeded');
    assert.equal(counts.get('listBlobs') ?? 0, 0);
    assert.equal(listings, 0);
  });

  it('records the progress and the liveness of a run of 1,000 blobs after every batch message that copied something', async () => {
    const { deps, runId } = await copyingRun(1000);
    const raws = deps.queue.takeCopies();
    assert.ok(raws.length >= 32, 'batches of at most 32 blobs');
    let copied = 0;
    for (const raw of raws.slice(0, raws.length / 2)) {
      deps.clock.advanceSeconds(60);
      await deliver(deps, raw);
      copied += blobNamesOf(parseCopyMessage(raw)).length;
      const run = deps.ledger.run(runId);
      assert.equal(run.blobsCopied, copied, 'each batch adds its copies, although it is under 5 % of the blobs');
      assert.equal(run.updatedAt, deps.clock.now().toISOString(), 'the supervisor sees the run alive');
    }
    // A redelivered batch that finds its blobs copied adds nothing.
    await deliver(deps, raws[0]!);
    assert.equal(deps.ledger.run(runId).blobsCopied, copied);
  });

  it('completes a 200-blob run exactly once when all its batch messages, and a duplicate of each, arrive at once', async () => {
    const { deps, runId } = await copyingRun(200);
    const raws = deps.queue.takeCopies();

    await Promise.all([...raws, ...raws].map((raw) => deliver(deps, raw)));

    const run = deps.ledger.run(runId);
    assert.equal(run.status, 'succeeded');
    assert.equal(run.blobsCopied, 200);
    assert.equal(deps.telemetry.completed.length, 1);
    const manifest = deps.destination.json(`${run.path}/manifest.json`) as { blobs: unknown[] };
    assert.equal(manifest.blobs.length, 200);
  });

  it('copies only the blobs not recorded yet when a batch message is redelivered', async () => {
    const { deps, runId } = await copyingRun(40);
    const [first] = deps.queue.takeCopies();
    const batch = blobNamesOf(parseCopyMessage(first!));
    assert.ok(batch.length > 1);

    await deliver(deps, first!);
    await deliver(deps, first!);

    assert.equal(deps.copier.calls.length, batch.length, 'the redelivery copies nothing');
    for (const name of batch) assert.equal((await deps.ledger.getBlob(runId, name))?.status, 'copied');
  });

  it('records the blobs copied before one failed, rethrows for the queue, and the retry copies only the rest', async () => {
    const { deps, runId } = await copyingRun(40);
    const raws = deps.queue.takeCopies();
    const [first] = raws;
    const batch = blobNamesOf(parseCopyMessage(first!));
    // The copies run a few at a time: the first one started fails, the others in flight finish and are recorded.
    const failure = new ExportError('DESTINATION_UNAVAILABLE', 'The destination answered 503.', {
      retryable: true,
      status: 503,
    });
    deps.copier.failNext(failure);

    await assert.rejects(deliver(deps, first!), (error: unknown) => error === failure);

    const rows = new Map<string, BlobRecord | undefined>();
    for (const name of batch) rows.set(name, await deps.ledger.getBlob(runId, name));
    const copied = batch.filter((name) => rows.get(name)?.status === 'copied');
    assert.ok(copied.length >= 1 && copied.length < batch.length, `${copied.length} of ${batch.length} recorded`);
    assert.match(deps.ledger.run(runId).lastError ?? '', /^DESTINATION_UNAVAILABLE/);

    const before = deps.copier.calls.length;
    await deliver(deps, first!);
    const retried = deps.copier.calls.slice(before).map((c) => c.destinationPath.split('/').pop());
    assert.deepEqual(
      retried.sort(),
      batch.filter((name) => !copied.includes(name)).sort(),
      'the retry copies the blobs not recorded, and only those',
    );
    for (const raw of raws.slice(1)) await deliver(deps, raw);
    assert.equal(deps.ledger.run(runId).status, 'succeeded');
  });

  it('still takes single-blob messages of a run whose copies were sent in batches (messages queued by an older version)', async () => {
    const { deps, runId, blobNames } = await copyingRun(40);
    deps.queue.takeCopies();

    for (const blobName of blobNames) await deliver(deps, JSON.stringify({ version: 1, runId, blobName }));

    assert.equal(deps.ledger.run(runId).status, 'succeeded');
    assert.equal(deps.copier.calls.length, 40);
  });

  it('fails the run with MANIFEST_INVALID when a batch names a blob that is not in the run', async () => {
    const { deps, runId, blobNames } = await copyingRun(40);
    deps.queue.takeCopies();

    await deliver(deps, JSON.stringify({ version: 1, runId, blobNames: [blobNames[0], 'other.json.gz'] }));

    const run = deps.ledger.run(runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'MANIFEST_INVALID');
    assert.match(run.error ?? '', /other\.json\.gz/);
    assert.equal(deps.copier.calls.length, 0, 'nothing of the batch is copied');
  });

  it('fails the run with MESSAGE_POISONED naming the batch when a batch message is poisoned', async () => {
    const { deps, runId } = await copyingRun(40);
    const [first] = deps.queue.takeCopies();

    await handlePoisonMessage('export-copy-poison', Buffer.from(first!).toString('base64'), deps);

    const run = deps.ledger.run(runId);
    assert.equal(run.status, 'failed');
    assert.equal(run.errorCode, 'MESSAGE_POISONED');
    const batch = blobNamesOf(parseCopyMessage(first!));
    assert.match(run.error ?? '', new RegExp(`^the copies of ${batch.length} blobs \\(part-00000\\.json\\.gz, `));
    assert.deepEqual(
      deps.telemetry.poisoned.map((p) => [p.queue, p.runId]),
      [['export-copy-poison', runId]],
    );
  });
});
