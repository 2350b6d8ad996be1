/**
 * The curation step under duplicate delivery and races (at-least-once queues, a supervisor that resends, forced
 * reruns): whatever the interleaving, one version per series is current, its manifest names exactly the parts in the
 * folder, the newest run wins, one end event is sent, and staging is emptied once the curation ended.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CuratedManifest,
  curateExportFile,
  handleCurationPoison,
  superviseCurations,
} from '../../../src/pipeline/curateExport';
import type { CurateMessage } from '../../../src/pipeline/curationPorts';
import { parseCurateMessage } from '../../../src/pipeline/messages';
import { type CuratingFakeDeps, drainCuration, makeCuratingDeps, succeededUsdRun } from '../../support/curationFakes';

const SERIES = 'unbilled-usage/exportMonth=2024-10/exportCurrency=USD/exportAttributeSet=full';
const CURATED = `curated/${SERIES}`;
const FOCUS = `focus/${SERIES}`;
const FOLDERS = [CURATED, FOCUS];

/** The curation messages waiting on export-curate, taken off the queue. */
function takeMessages(deps: CuratingFakeDeps): CurateMessage[] {
  return deps.curation.queue.pending.splice(0).map((raw) => parseCurateMessage(raw));
}

function parquet(deps: CuratingFakeDeps, folder: string): string[] {
  return deps.curation.store.paths(`${folder}/`).filter((path) => path.endsWith('.parquet'));
}

function manifest(deps: CuratingFakeDeps, folder: string): CuratedManifest {
  return deps.destination.json(`${folder}/manifest.json`) as CuratedManifest;
}

/** Each folder's manifest is `runId`'s and names exactly the parts in the folder, all of them present. */
function assertCurrent(deps: CuratingFakeDeps, runId: string): void {
  for (const folder of FOLDERS) {
    const written = manifest(deps, folder);
    assert.equal(written.source.runId, runId, `${folder}: manifest`);
    assert.deepEqual(
      parquet(deps, folder).map((path) => path.slice(folder.length + 1)),
      written.files.map((file) => file.name).sort(),
      `${folder}: the parts in the folder are exactly those its manifest names`,
    );
  }
}

/** Delivers messages until none fail (the queue's retries), at most `rounds` times. */
async function deliverUntilDone(deps: CuratingFakeDeps, messages: CurateMessage[], rounds = 5): Promise<void> {
  let left = messages;
  for (let round = 0; left.length > 0; round++) {
    assert.ok(round < rounds, 'messages kept failing');
    const outcomes = await Promise.allSettled(left.map((message) => curateExportFile(message, deps)));
    left = left.filter((_, i) => outcomes[i]?.status === 'rejected');
    assert.deepEqual(await drainCuration(deps), []);
  }
}

describe('curation under duplicate delivery and races', () => {
  it('converts a file delivered twice at once and publishes once; the slower duplicate leaves nothing in staging', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    const messages = takeMessages(deps);
    const first = messages[0] as CurateMessage & { kind: 'file' };
    const stem = first.blobName.replace('.json.gz', '');
    // The first delivery of the first file is held before its upload until the other delivery has published.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding = true;
    let isHeld: () => void = () => undefined;
    const heldNow = new Promise<void>((resolve) => {
      isHeld = resolve;
    });
    deps.curation.store.beforeUpload = async (path) => {
      if (holding && path.includes(stem)) {
        holding = false;
        isHeld();
        await held;
      }
    };
    const slow = curateExportFile(first, deps);
    await heldNow;
    await deliverUntilDone(deps, messages);
    assert.equal(deps.curation.ledger.curation(runId).status, 'succeeded');
    release();
    await slow;

    assert.equal(deps.curation.ledger.curation(runId).status, 'succeeded');
    assert.equal(deps.telemetry.curationsCompleted.length, 1, 'one end event');
    assertCurrent(deps, runId);
    assert.deepEqual(deps.curation.store.paths('_curation-staging/'), [], 'staging is empty once the curation ended');
  });

  it('makes the version current once when its fan-in is delivered twice at once after its publisher died', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const first = await succeededUsdRun(deps);
    await drainCuration(deps);
    const runId = await succeededUsdRun(deps, true);
    let died = false;
    deps.curation.store.beforeCopy = () => {
      if (!died) {
        died = true;
        throw new Error('process died while copying');
      }
    };
    for (const message of takeMessages(deps)) await curateExportFile(message, deps).catch(() => undefined);
    assert.ok(died);
    assert.equal(deps.curation.ledger.curation(runId).status, 'publishing');
    // What the dying publisher had sent (a publish message of its own) is lost with it.
    deps.curation.queue.pending.splice(0);

    // The supervisor's publish message and a duplicate of it, at once.
    const publish: CurateMessage = { version: 1, kind: 'publish', runId };
    await deliverUntilDone(deps, [publish, publish, publish]);

    assert.equal(deps.curation.ledger.curation(runId).status, 'succeeded');
    assert.equal(deps.curation.ledger.curation(runId).current, true);
    assert.equal(deps.telemetry.curationsCompleted.length, 2, 'one end event for each of the two curations');
    assertCurrent(deps, runId);
    assert.ok(FOLDERS.every((folder) => parquet(deps, folder).every((path) => !path.includes(first))));
    assert.deepEqual(deps.curation.store.paths('_curation-staging/'), []);
  });

  // Every place of the older run's publication where the newer run's whole curation can happen: before each of its
  // copies (3 parts per table) and before each of its manifest writes.
  const POSITIONS = [
    ...[1, 2, 3, 4, 5, 6].map((n) => ({ at: 'copy' as const, n })),
    ...[1, 2].map((n) => ({ at: 'manifest' as const, n })),
  ];
  for (const position of POSITIONS) {
    it(`never makes an older run current once a forced rerun is: the rerun publishes before the older run's ${position.at} #${position.n}`, async () => {
      const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
      const older = await succeededUsdRun(deps);
      const olderMessages = takeMessages(deps);
      const newer = await succeededUsdRun(deps, true);
      const newerMessages = takeMessages(deps);
      let seen = 0;
      const interleave = async () => {
        seen += 1;
        if (seen === position.n) await deliverUntilDone(deps, newerMessages);
      };
      deps.curation.store.beforeCopy = async (from) => {
        if (position.at === 'copy' && from.includes(older)) await interleave();
      };
      const write = deps.destination.writeJson.bind(deps.destination);
      deps.destination.writeJson = async (path, value, condition) => {
        const runId = (value as Partial<CuratedManifest>).source?.runId;
        if (position.at === 'manifest' && path.endsWith('/manifest.json') && runId === older) await interleave();
        return write(path, value, condition);
      };
      await deliverUntilDone(deps, olderMessages);
      assert.equal(seen >= position.n, true, 'the rerun ran at that place');

      assert.equal(deps.curation.ledger.curation(newer).status, 'succeeded');
      assert.equal(deps.curation.ledger.curation(newer).current, true);
      assert.equal(deps.curation.ledger.curation(older).status, 'succeeded');
      assertCurrent(deps, newer);
      assert.deepEqual(deps.curation.store.paths('_curation-staging/'), []);
    });
  }

  // The supervisor fails a slow publisher (no progress, no resume left) right after its n-th copy into the curated
  // folder; after the third, the publisher has nothing left to copy and goes on to write manifest.json.
  for (const n of [1, 3]) {
    it(`does not make current the version of a publisher whose curation the supervisor failed after its copy #${n}, and leaves none of its parts`, async () => {
      const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD', EXPORT_MAX_RESUMES: '1' } });
      const first = await succeededUsdRun(deps);
      await drainCuration(deps);
      const second = await succeededUsdRun(deps, true);
      let copies = 0;
      const store = deps.curation.store;
      const copy = store.copy.bind(store);
      store.copy = async (from, to) => {
        await copy(from, to);
        if (!from.includes(second) || ++copies !== n) return;
        const row = deps.curation.ledger.curations.get(second);
        if (row !== undefined) row.value.resumes = 1;
        deps.clock.advanceSeconds(31 * 60);
        assert.equal((await superviseCurations(deps))?.failed, 1);
      };
      // A copy whose staged part the failure removed fails (the queue retries it; the curation has ended by then).
      await drainCuration(deps);

      const curation = deps.curation.ledger.curation(second);
      assert.equal(curation.status, 'failed');
      assert.equal(curation.errorCode, 'CURATION_STALLED');
      assertCurrent(deps, first);
      assert.deepEqual(deps.curation.store.paths('_curation-staging/'), [], 'a failed curation empties its staging');
    });
  }

  it('empties the staging folder of a curation that failed', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURRENCIES: 'USD' } });
    const runId = await succeededUsdRun(deps);
    const messages = takeMessages(deps);
    // Two files convert, the third fails for good (its message is poisoned).
    await deliverUntilDone(deps, messages.slice(0, 2));
    assert.ok(deps.curation.store.paths('_curation-staging/').length > 0);
    await handleCurationPoison(messages[2], deps, runId);

    assert.equal(deps.curation.ledger.curation(runId).status, 'failed');
    assert.deepEqual(deps.curation.store.paths('_curation-staging/'), []);
  });
});
