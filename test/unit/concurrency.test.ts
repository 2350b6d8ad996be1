import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapLimited } from '../../src/concurrency';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('mapLimited', () => {
  it('keeps the order of the items and never runs more than the limit at once', async () => {
    let inFlight = 0;
    let most = 0;
    const results = await mapLimited([5, 1, 4, 2, 3, 0], 3, async (item, index) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      await pause(item * 3);
      inFlight -= 1;
      return `${index}:${item}`;
    });
    assert.deepEqual(results, ['0:5', '1:1', '2:4', '3:2', '4:3', '5:0']);
    assert.equal(most, 3);
  });

  it('starts nothing after a failure, lets the calls in flight end, then throws the first failure', async () => {
    const started: number[] = [];
    const ended: number[] = [];
    await assert.rejects(
      mapLimited([0, 1, 2, 3, 4, 5], 2, async (item) => {
        started.push(item);
        if (item === 1) throw new Error('item 1 failed');
        await pause(20);
        ended.push(item);
      }),
      /item 1 failed/,
    );
    assert.deepEqual(started, [0, 1], 'no item starts after the failure');
    assert.deepEqual(ended, [0], 'the call in flight ended before the failure was thrown');
  });

  it('returns at once for no items', async () => {
    assert.deepEqual(await mapLimited([], 4, async () => 1), []);
  });
});
