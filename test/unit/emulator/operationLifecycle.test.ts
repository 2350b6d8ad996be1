import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LifecycleSettings, lifecycleStep } from '../../../src/emulator/operationLifecycle';

function steps(settings: LifecycleSettings, polls: number, elapsedMs = 0): string[] {
  return Array.from({ length: polls }, (_, index) => lifecycleStep(settings, index + 1, elapsedMs));
}

describe('operation lifecycle', () => {
  it('is done at the first poll when pollsBeforeSuccess is 0', () => {
    assert.deepEqual(steps({ pollsBeforeSuccess: 0, durationMs: 0, unknownStatusPolls: 0 }, 2), ['done', 'done']);
  });

  it('answers notStarted once, then running, for pollsBeforeSuccess polls', () => {
    assert.deepEqual(steps({ pollsBeforeSuccess: 3, durationMs: 0, unknownStatusPolls: 0 }, 4), [
      'notStarted',
      'running',
      'running',
      'done',
    ]);
  });

  it('inserts the unknownFutureValue polls after notStarted and before running', () => {
    assert.deepEqual(steps({ pollsBeforeSuccess: 2, durationMs: 0, unknownStatusPolls: 2 }, 5), [
      'notStarted',
      'unknownFutureValue',
      'unknownFutureValue',
      'running',
      'done',
    ]);
    assert.deepEqual(steps({ pollsBeforeSuccess: 0, durationMs: 0, unknownStatusPolls: 1 }, 2), [
      'unknownFutureValue',
      'done',
    ]);
  });

  it('keeps a timed operation running until its duration has passed', () => {
    const settings = { pollsBeforeSuccess: 0, durationMs: 1000, unknownStatusPolls: 0 };
    assert.equal(lifecycleStep(settings, 1, 10), 'notStarted');
    assert.equal(lifecycleStep(settings, 2, 999), 'running');
    assert.equal(lifecycleStep(settings, 3, 1000), 'done');
  });
});
