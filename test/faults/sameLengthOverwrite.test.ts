/**
 * A copied blob rewritten in the destination with other bytes of the same length, after its copy and before the run
 * completes (issue 14): the fan-in must not take it for the copy. A fault proxy in front of the destination holds
 * the other copies while the first one (two at full scale) lands, so the test can rewrite it before the last copy lands.
 * FAULTS_SCALE=full: 6 blobs, two rewritten.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PARTNER_DEST_ACCOUNT } from '../../src/local/azurite';
import { type FaultProxy, startFaultProxy } from '../support/faultProxy';
import { type FaultEnv, startFaultEnv } from './support/faultEnv';
import { checkSeries, describeReport, endEventsOf } from './support/invariants';
import { FULL } from './support/scale';

const CURRENCY = 'TOW';
/** How long the proxy holds each later copy: the window in which the test rewrites the first blob. */
const HOLD_MS = 1000;
const BLOB_COUNT = FULL ? 6 : 3;
/** Copies let through at once: the blobs the test rewrites. */
const VICTIMS = FULL ? 2 : 1;

describe('a same-length overwrite between copy and completion', () => {
  let env: FaultEnv;
  let destinationProxy: FaultProxy;
  let copies = 0;

  before(async () => {
    env = await startFaultEnv({ scenario: { blobCount: BLOB_COUNT } });
    destinationProxy = await startFaultProxy({
      target: env.azurite.blobEndpoint,
      currencyOf: (request) => /currency=([A-Z]{3})/.exec(decodeURIComponent(request.url))?.[1],
      decide: (request) => {
        const isCopy = request.method === 'PUT' && request.headers['x-ms-copy-source'] !== undefined;
        if (request.currency !== CURRENCY || !isCopy) return undefined;
        copies++;
        // The first VICTIMS copies of the series land at once; the other first copies wait; copies again go through.
        return copies <= VICTIMS || copies > BLOB_COUNT ? undefined : { kind: 'delay', ms: HOLD_MS };
      },
    });
  });

  after(async () => {
    await env?.killAll();
    await destinationProxy?.stop();
    await env?.stop();
  });

  it('a same-length overwrite between copy and completion is detected: the blob is copied again and the run completes with the export bytes', async () => {
    const key = env.azurite.accountKey(PARTNER_DEST_ACCOUNT.name);
    const host = await env.spawnHost({
      name: 'same-length-overwrite',
      env: {
        DESTINATION_STORAGE:
          `DefaultEndpointsProtocol=http;AccountName=${PARTNER_DEST_ACCOUNT.name};AccountKey=${key};` +
          `BlobEndpoint=${destinationProxy.origin}/${PARTNER_DEST_ACCOUNT.name};` +
          `QueueEndpoint=${env.azurite.queueEndpoint}/${PARTNER_DEST_ACCOUNT.name};` +
          `TableEndpoint=${env.azurite.tableEndpoint}/${PARTNER_DEST_ACCOUNT.name};`,
      },
    });
    try {
      const posted = await env.post(host, { currencies: [CURRENCY] });
      assert.equal(posted.status, 202, JSON.stringify(posted.json));
      const runId = (posted.json as { runs: Array<{ runId: string }> }).runs[0]?.runId ?? '';

      const victims = await env.waitUntil('the copies let through', async () => {
        const copied = (await env.ledger.listBlobs(runId)).filter((b) => b.status === 'copied');
        return copied.length >= VICTIMS ? copied.slice(0, VICTIMS) : undefined;
      });
      const run = (await env.ledger.getRun(runId))?.value;
      assert.equal(run?.status, 'copying', 'the run has not completed yet');
      for (const victim of victims) {
        const blob = env.destination().getBlockBlobClient(`${run?.path}/${victim.name}`);
        const properties = await blob.getProperties();
        assert.equal(properties.contentLength, victim.byteCount);
        // Another writer: the same length and content type, other bytes (straight to Azurite, not through the proxy).
        await blob.uploadData(Buffer.alloc(victim.byteCount ?? 0, 0x5a), {
          blobHTTPHeaders: { blobContentType: properties.contentType ?? 'application/octet-stream' },
        });
      }

      const [ended] = await env.settle([runId], 60_000);
      assert.equal(ended?.status, 'succeeded', `${ended?.status} ${ended?.error ?? ''}`);
      const rows = await env.ledger.listBlobs(runId);
      for (const victim of victims) {
        assert.equal(rows.find((b) => b.name === victim.name)?.recopies, 1, `${victim.name} was copied again once`);
      }
      assert.ok(
        env.logs.some((l) => /changed since their copy/.test(l.line)),
        'the fan-in said why it copied again',
      );
      // Every blob of the folder is byte-identical to the export blob, manifest.json lists exactly them.
      const report = await checkSeries(env, { currency: CURRENCY });
      assert.deepEqual(report.problems, [], describeReport(report));
      assert.equal((await endEventsOf(env, runId)).length, 1, 'ended once');
    } finally {
      await host.stop();
    }
  });
});
