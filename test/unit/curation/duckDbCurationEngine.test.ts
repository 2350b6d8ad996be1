import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONVERSIONS_PER_PROCESS, DuckDbCurationEngine } from '../../../src/adapters/curation/duckDbCurationEngine';
import type { CurationEngineInput, CurationEngineResult } from '../../../src/pipeline/curationPorts';

const INPUT: CurationEngineInput = {
  inputPath: 'raw.json.gz',
  dataset: 'unbilledUsage',
  attributeSet: 'full',
  billingMonth: '2026-11',
  outputDir: 'out',
  partName: 'p',
  sourceRunId: 'r',
  sourceFileName: 'f',
};

const RESULT: CurationEngineResult = {
  focusVersion: '1.2',
  rowsRead: 0,
  rowsConverted: 0,
  rejected: { count: 0, reasons: {} },
  curated: [],
  focus: [],
  totals: { raw: {}, curated: {}, focus: {} },
};

describe('the DuckDB curation engine', () => {
  it('runs at most CONVERSIONS_PER_PROCESS conversions at once; the others wait their turn, a failure frees its place', async () => {
    let running = 0;
    let most = 0;
    let calls = 0;
    const engine = new DuckDbCurationEngine({ threads: 1 }, CONVERSIONS_PER_PROCESS, async (input) => {
      calls += 1;
      const call = calls;
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running -= 1;
      assert.deepEqual(input.engine, { threads: 1 });
      if (call === 1) throw new Error('out of memory');
      return RESULT;
    });
    const results = await Promise.allSettled(Array.from({ length: 7 }, () => engine.convert(INPUT)));
    assert.equal(most, CONVERSIONS_PER_PROCESS);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 6);
    assert.equal(calls, 7);
  });
});
