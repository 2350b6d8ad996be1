/**
 * fast-check generators of hostile input: HTTP bodies of POST /api/exports, query strings of
 * GET /api/exports/runs, queue messages of both queues, Graph operation bodies and manifests.
 * Each mixes arbitrary values with near-valid ones (a valid shape with one field broken), which are
 * the ones that reach deep into the validation.
 */
import fc from 'fast-check';

const RUN_ID = '20261125T060000000Z-0badc0de';
const ODD_STRINGS = [
  '',
  ' ',
  '..',
  '../../etc/passwd',
  '%2e%2e%2f',
  'file:///etc/passwd',
  'javascript:alert(1)',
  '\u0000',
  '\uD800',
  'null',
  '{}',
  '[]',
  '1e309',
  '-0',
  'sig=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH%3D',
  'Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi',
  'a'.repeat(5000),
  '<script>alert(1)</script>',
  "'; DROP TABLE exportRuns; --",
  "PartitionKey eq 'x' or true",
];

export const oddString = fc.oneof(fc.constantFrom(...ODD_STRINGS), fc.string(), fc.string({ unit: 'binary' }));

const anyJsonish = fc.oneof(fc.jsonValue(), oddString, fc.integer(), fc.boolean(), fc.constant(null));

/** Bodies of POST /api/exports, as sent over the wire (text). */
export const startBodyText: fc.Arbitrary<string> = fc.oneof(
  oddString,
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc
    .record(
      {
        currencies: fc.oneof(
          fc.array(fc.oneof(fc.constantFrom('USD', 'usd', 'EURO', 'U$D', ''), oddString), { maxLength: 6 }),
          oddString,
          anyJsonish,
        ),
        billingPeriods: fc.oneof(
          fc.constantFrom('current', 'last', 'CURRENT', 'previous', ''),
          fc.array(fc.oneof(fc.constantFrom('current', 'last', 'next'), oddString), { maxLength: 4 }),
          anyJsonish,
        ),
        attributeSet: fc.oneof(fc.constantFrom('full', 'basic', 'FULL', 'all', ''), anyJsonish),
        force: fc.oneof(fc.boolean(), fc.constantFrom('true', 1, 0), anyJsonish),
        extra: anyJsonish,
      },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
);

/** Query parameters of GET /api/exports/runs. */
export const runQueryParams: fc.Arbitrary<Record<string, string>> = fc.dictionary(
  fc.oneof(fc.constantFrom('since', 'until', 'status', 'currency', 'limit'), fc.string({ maxLength: 8 })),
  fc.oneof(
    fc.constantFrom('2026-11-01', 'yesterday', 'succeeded', 'SUCCEEDED', 'usd', 'US', '0', '501', '50', '-1', '1.5'),
    oddString,
  ),
  { maxKeys: 6 },
);

/** Queue message bodies (the decoded text) of export-status and export-copy. */
export const queueMessageText: fc.Arbitrary<string> = fc.oneof(
  oddString,
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc
    .record(
      {
        version: fc.oneof(fc.constantFrom(1, 2, '1', 0), anyJsonish),
        kind: fc.oneof(fc.constantFrom('start', 'poll', 'copy', 'START'), anyJsonish),
        runId: fc.oneof(fc.constantFrom(RUN_ID, 'not-a-run', `${RUN_ID}x`, ''), anyJsonish),
        attempt: fc.oneof(fc.integer({ min: -5, max: 200000 }), anyJsonish),
        blobName: fc.oneof(fc.constantFrom('a.json.gz', '', '../x', 'x'.repeat(2000)), anyJsonish),
        extra: anyJsonish,
      },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
);

const SAFE_ROOT = 'https://msbilling.blob.core.windows.net/unbilledusagefastpath/v1/x/BillingMonth=202611/Currency=USD';
const ROOTS = [
  SAFE_ROOT,
  'http://msbilling.blob.core.windows.net/c/x',
  'https://attacker.example.com/c/x',
  'https://msbilling.blob.core.windows.net.attacker.example.com/c/x',
  'https://user:pass@msbilling.blob.core.windows.net/c/x',
  'https://msbilling.blob.core.windows.net:8443/c/x',
  'https://msbilling.blob.core.windows.net/c/x?sv=1&sig=abc',
  'https://msbilling.blob.core.windows.net/c/x#frag',
  'https://msbilling.blob.core.windows.net/',
  'file:///etc/passwd',
  'javascript:alert(1)',
  'data:text/plain,hello',
  'ftp://msbilling.blob.core.windows.net/c',
  '//msbilling.blob.core.windows.net/c',
  'http://169.254.169.254/metadata/identity',
  'not a url',
];
const SEGMENTS = [
  '..',
  '.',
  '',
  'a',
  'part-0.json.gz',
  '%2e%2e',
  '\\',
  'C:',
  '?sig=x',
  '#f',
  '\u0000',
  '\n',
  'manifest.json',
  'é',
];

/** A blob name built from hostile segments. */
export const hostileBlobName: fc.Arbitrary<string> = fc.oneof(
  fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 5 }).map((s) => s.join('/')),
  fc.constantFrom('/etc/passwd', '../../escape.json.gz', 'a/../../b', 'MANIFEST.JSON', 'x'.repeat(901)),
  fc.string({ minLength: 1, maxLength: 40 }),
);

/** Manifests: a valid one with fields broken, or anything. */
export const hostileManifest: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 1, arbitrary: anyJsonish },
  {
    weight: 6,
    arbitrary: fc
      .record({
        rootDirectory: fc.oneof(fc.constantFrom(...ROOTS), fc.webUrl(), oddString),
        names: fc.array(fc.oneof(fc.constantFrom('part-1.json.gz', 'part-2.json.gz'), hostileBlobName), {
          maxLength: 8,
        }),
        countDelta: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -3, max: 10000 })),
        countAsString: fc.boolean(),
        drop: fc.subarray(['id', 'eTag', 'rootDirectory', 'sasToken', 'blobs', 'blobCount', 'createdDateTime']),
        createdDateTime: fc.oneof(fc.constant('2026-11-25T11:55:57Z'), oddString),
      })
      .map((m) => {
        const count = m.names.length + m.countDelta;
        const manifest: Record<string, unknown> = {
          id: 'manifest-1',
          schemaVersion: '2',
          dataFormat: 'compressedJSON',
          createdDateTime: m.createdDateTime,
          eTag: 'etag-1',
          partnerTenantId: 'tenant',
          rootDirectory: m.rootDirectory,
          sasToken: 'sv=2025-11-05&sr=c&sp=rl&sig=SECRETSECRETSECRETSECRETSECRET%3D',
          partitionType: 'default',
          blobCount: m.countAsString ? String(count) : count,
          blobs: m.names.map((name) => ({ name, partitionValue: 'default' })),
        };
        for (const key of m.drop) delete manifest[key];
        return manifest;
      }),
  },
);

/** Graph operation bodies: statuses known and unknown, shapes broken. */
export const hostileOperation: fc.Arbitrary<unknown> = fc.oneof(
  anyJsonish,
  fc.record(
    {
      status: fc.oneof(
        fc.constantFrom('notStarted', 'running', 'succeeded', 'completed', 'failed', 'unknownFutureValue', 'Paused'),
        anyJsonish,
      ),
      '@odata.type': fc.oneof(
        fc.constantFrom(
          '#microsoft.graph.partners.billing.exportSuccessOperation',
          '#microsoft.graph.partners.billing.failedOperation',
        ),
        anyJsonish,
      ),
      resourceLocation: fc.oneof(hostileManifest, anyJsonish),
      'resourceLocation@odata.navigationLink': fc.oneof(fc.webUrl(), anyJsonish),
      error: fc.oneof(fc.record({ code: anyJsonish, message: anyJsonish }), anyJsonish),
    },
    { requiredKeys: [] },
  ),
);
