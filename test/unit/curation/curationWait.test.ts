import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitForCurations } from '../../../src/local/curationWait';
import type { RunRecord } from '../../../src/pipeline/ports';
import { makeCuratingDeps } from '../../support/curationFakes';

const RUN: RunRecord = {
  runId: '20261125T114100123Z-9f3a1c2b',
  currency: 'USD',
  billingPeriod: 'current',
  attributeSet: 'full',
  trigger: 'manual',
  status: 'succeeded',
  force: false,
  startedAt: '2026-11-25T11:41:00.123Z',
  updatedAt: '2026-11-25T11:45:00.000Z',
  polls: 1,
  blobsCopied: 1,
  byteCount: 1,
};

describe('the command line waiting for curations', () => {
  it('returns the ended curation of a succeeded run', async () => {
    const deps = makeCuratingDeps();
    await deps.curation.ledger.createCuration(
      {
        runId: RUN.runId,
        status: 'succeeded',
        curationVersion: '1.0',
        fileCount: 1,
        startedAt: RUN.updatedAt,
        updatedAt: RUN.updatedAt,
      },
      [],
    );
    const found = await waitForCurations([RUN], deps, 5_000, 1);
    assert.equal(found.get(RUN.runId)?.status, 'succeeded');
  });

  it('stops waiting for a succeeded run whose curation never started, after the start grace, not the timeout', async () => {
    const deps = makeCuratingDeps();
    const started = Date.now();
    const found = await waitForCurations([RUN], deps, 60_000, 1, 50);
    assert.equal(found.size, 0);
    assert.ok(Date.now() - started < 5_000);
  });

  it('waits for nothing with EXPORT_CURATION off', async () => {
    const deps = makeCuratingDeps({ env: { EXPORT_CURATION: 'off' } });
    assert.equal((await waitForCurations([RUN], deps, 60_000, 1)).size, 0);
  });
});
