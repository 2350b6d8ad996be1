import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { type ProgressDisplay, waitForRuns } from '../../src/local/progress';
import { TableNames } from '../../src/names';
import type { PipelineDeps } from '../../src/pipeline/deps';
import type { RunRecord, RunStatus, Versioned } from '../../src/pipeline/ports';

const RUN_ID = '20241008T060000000Z-0a1b2c3d';

function row(status: RunStatus): Versioned<RunRecord> {
  return {
    etag: 'e',
    value: {
      runId: RUN_ID,
      currency: 'USD',
      billingPeriod: 'current',
      attributeSet: 'full',
      trigger: 'manual',
      status,
      force: false,
      startedAt: '2024-10-08T06:00:00.000Z',
      updatedAt: '2024-10-08T06:00:00.000Z',
      polls: 1,
      blobsCopied: 0,
      byteCount: 0,
    } as RunRecord,
  };
}

const quiet: ProgressDisplay = { log() {}, update() {}, stop() {} };

/** An HTTP request from this process, as the ledger's write of a row (loopback; the answer does not matter). */
async function write(port: number, method: string, path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sent = request({ host: '127.0.0.1', port, method, path }, (response) => {
      response.resume();
      response.on('end', () => resolve());
    });
    sent.on('error', reject);
    sent.end();
  });
}

describe('waitForRuns of the command line', () => {
  it('sees a run end as soon as this process writes its ledger row, not a poll interval later', async () => {
    const server = createServer((_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    let status: RunStatus = 'copying';
    let reads = 0;
    const deps = {
      ledger: {
        getRun: async () => {
          reads += 1;
          return row(status);
        },
      },
    } as unknown as PipelineDeps;
    try {
      const started = Date.now();
      const waiting = waitForRuns([RUN_ID], deps, quiet, 60_000, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // A write to another table (a blob row) is no reason to read the run again.
      await write(port, 'PUT', `/devstoreaccount1/${TableNames.blobs}(PartitionKey='a',RowKey='b')`);
      status = 'succeeded';
      await write(port, 'PATCH', `/devstoreaccount1/${TableNames.runs}(PartitionKey='run',RowKey='${RUN_ID}')`);
      const [run] = await waiting;
      const elapsed = Date.now() - started;
      assert.equal(run?.status, 'succeeded');
      assert.ok(elapsed < 5_000, `seen after ${elapsed} ms, with a poll interval of 10 s`);
      assert.equal(reads, 2, 'one read at the start, one after the run row was written');
    } finally {
      server.close();
    }
  });
});
