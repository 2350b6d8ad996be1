import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { createGzip, gunzipSync } from 'node:zlib';
import { gzippedUsageBlob } from '../../../src/emulator/exportDataStore';
import { GZIP_CHUNK_BYTES, RAW_CHUNK_BYTES } from '../../../src/emulator/gzipUsageProtocol';
import { type UsageDataSpec, usageBlobChunks } from '../../../src/emulator/usageData';

const spec: UsageDataSpec = {
  seed: 11,
  currency: 'USD',
  attributeSet: 'full',
  billingMonth: '202610',
  usageDays: 31,
  partnerTenantId: '0e195b37-4574-4539-bc42-0e539b9684c0',
  rowsPerBlob: 4000,
};

async function collect(stream: Readable, delayMs = 0): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        if (delayMs > 0) setTimeout(callback, delayMs);
        else callback();
      },
    }),
  );
  return Buffer.concat(chunks);
}

describe('gzipped usage blob (worker thread)', () => {
  it('gives exactly the bytes of gzipping the generated rows in-process', async () => {
    const fromWorker = await collect(gzippedUsageBlob(spec, 2));
    const inProcess = await collect(
      Readable.from(usageBlobChunks(spec, 2, RAW_CHUNK_BYTES)).pipe(
        createGzip({ level: 1, chunkSize: GZIP_CHUNK_BYTES }),
      ),
    );
    assert.ok(fromWorker.equals(inProcess));
    assert.equal(gunzipSync(fromWorker).toString('utf8').trimEnd().split('\n').length, 4000);
  });

  it('completes with the same bytes under a slow consumer (flow control)', async () => {
    const fast = await collect(gzippedUsageBlob(spec, 0));
    const slow = await collect(gzippedUsageBlob(spec, 0), 2);
    assert.ok(slow.equals(fast));
  });

  it('stops its worker when the consumer gives up', async () => {
    const stream = gzippedUsageBlob({ ...spec, rowsPerBlob: 2_000_000 }, 0);
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    assert.ok(first.length > 0);
    stream.destroy();
    await new Promise((resolve) => stream.once('close', resolve));
    assert.equal(stream.destroyed, true);
  });
});
