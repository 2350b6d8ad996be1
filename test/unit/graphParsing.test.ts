import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  billingMonthFromRoot,
  normaliseTimestamp,
  parseManifest,
  parseOperationBody,
} from '../../src/adapters/graph/operationParser';
import { parseRetryAfter } from '../../src/adapters/graph/retryAfter';
import { type ExportError, isExportError } from '../../src/errors';
import { redact, safeUrl } from '../../src/redact';

const NOW = Date.parse('2026-10-21T07:28:00.000Z');

/** The GET manifest example of the documentation (reference section 4.2), verbatim. */
const DOCUMENTED_MANIFEST = {
  id: '6fe687d7-1e0f-4bd6-9091-4672691f64bc',
  schemaVersion: '1',
  dataFormat: 'compressedJSON',
  createdDateTime: '2023-03-09T06:34:34.87Z',
  eTag: 'WYjLro78HdMg6vUWR',
  partnerTenantId: '0e195b37-4574-4539-bc42-0e539b9684c0',
  rootDirectory:
    'https://adlsreconbuprodeastus201.blob.core.windows.net/billedusagefastpath/v1/PartnerTenantId=0e195b37-4574-4539-bc42-0e539b9684c0/BillingMonth=202310/InvoiceId=G031809528/InvoiceVersion=202311/Fragment=basic/PartitionType=default',
  sasToken:
    'skoid=0c414a25-fd23-4785-815f-1258467f9ab7&sktid=975f013f-7f24-47e8-a7d3-abc4752bf346&skt=2023-12-13T00%3A37%3A17Z&ske=2023-12-14T00%3A37%3A17Z&sks=b&skv=2021-08-06&sv=2021-08-06&se=2023-12-13T12%3A37%3A17Z&sr=d&sp=rl&sdd=7&sig=REDACTED',
  partitionType: 'Default',
  blobCount: 1,
  blobs: [{ name: 'part-00049-b016029b-a7a7-4c46-9b5e-c925ac317ac6.c000.json.gz', partitionValue: 'default' }],
};

/** The live unbilled manifest observed by third parties (reference section 4.3), verbatim. */
const LIVE_MANIFEST = {
  id: 'b8d16d34-910e-47e4-8fa5-c934976a9a11',
  createdDateTime: '2024-10-08T00:57:36.037Z',
  schemaVersion: '2',
  dataFormat: 'compressedJSON',
  partitionType: 'default',
  eTag: '69D0qrTA8NTziitwV',
  partnerTenantId: '6e75cca6-47f0-47a3-a928-9d5315750bd9',
  rootDirectory:
    'https://adlsreconprodeastus2001.blob.core.windows.net/unbilledusagefastpath/v1/202410080035/PartnerTenantId=6e75cca6-47f0-47a3-a928-9d5315750bd9/BillingMonth=202410/Currency=INR/Fragment=full/PartitionType=default',
  sasToken:
    'skoid=5e84b29d-a991-42fa-8553-a691d7bac68f&sktid=975f013f-7f24-47e8-a7d3-abc4752bf346&skt=2024-10-08T06%3A16%3A29Z&ske=2024-10-09T06%3A16%3A29Z&sks=b&skv=2021-08-06&sv=2021-08-06&se=2024-10-08T07%3A16%3A29Z&sr=d&sp=rl&sdd=7&sig=REDACTED',
  blobCount: 1,
  blobs: [{ name: 'part-00103-9a209a5e-0378-4bb5-9b6a-75bb0fe7ae84.c000.json.gz', partitionValue: 'default' }],
};

const OUTSIDE_EMULATOR = { emulator: false };
const IN_EMULATOR = { emulator: true };

/** Runs `fn`, expects an ExportError with `code`, and returns it. */
function expectExportError(fn: () => unknown, code: string): ExportError {
  try {
    fn();
  } catch (error) {
    assert.ok(isExportError(error), `an ExportError expected, got ${String(error)}`);
    assert.equal(error.code, code);
    return error;
  }
  assert.fail(`expected ${code}, nothing was thrown`);
}

function manifestWith(changes: Record<string, unknown>): Record<string, unknown> {
  return { ...LIVE_MANIFEST, ...changes };
}

function refusedManifest(changes: Record<string, unknown>, reason: RegExp, rules = OUTSIDE_EMULATOR): void {
  const error = expectExportError(() => parseManifest(manifestWith(changes), rules), 'MANIFEST_INVALID');
  assert.equal(error.retryable, false);
  assert.match(error.message, reason);
  assert.doesNotMatch(error.message, /sig=/, 'the refusal does not quote the SAS');
}

describe('parseRetryAfter', () => {
  it('reads delta seconds', () => {
    assert.equal(parseRetryAfter('120', NOW), 120);
    assert.equal(parseRetryAfter(' 0 ', NOW), 0);
  });

  it('rounds decimal seconds up', () => {
    assert.equal(parseRetryAfter('1.5', NOW), 2);
    assert.equal(parseRetryAfter('10.0', NOW), 10);
  });

  it('reads an HTTP date as the seconds from now until then', () => {
    assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:29:30 GMT', NOW), 90);
  });

  it('rounds a partial second of an HTTP date up', () => {
    assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:01 GMT', NOW - 500), 2);
  });

  it('answers 0 for an HTTP date in the past', () => {
    assert.equal(parseRetryAfter('Wed, 21 Oct 2026 07:00:00 GMT', NOW), 0);
  });

  it('answers undefined for an absent, empty or unreadable header', () => {
    assert.equal(parseRetryAfter(null, NOW), undefined);
    assert.equal(parseRetryAfter(undefined, NOW), undefined);
    assert.equal(parseRetryAfter('   ', NOW), undefined);
    assert.equal(parseRetryAfter('soon', NOW), undefined);
    assert.equal(parseRetryAfter('in a minute', NOW), undefined);
  });
});

describe('parseOperationBody', () => {
  it('reads the documented succeeded example: @odata.type, succeeded, manifest behind a navigationLink', () => {
    const parsed = parseOperationBody({
      '@odata.type': '#microsoft.graph.partners.billing.exportSuccessOperation',
      id: '6fe687d7-1e0f-4bd6-9091-4672691f64bc',
      status: 'succeeded',
      createdDateTime: '2023-03-09T08:12:53',
      lastActionDateTime: '2023-03-09T08:37:48.5046691Z',
      'resourceLocation@odata.navigationLink':
        'https://graph.microsoft.com/v1.0/reports/partners/billing/manifests/8fe347d7-1e0f-4bd6-9091-4672691f32db',
    });
    assert.deepEqual(parsed, {
      kind: 'succeeded',
      status: 'succeeded',
      inlineManifest: undefined,
      manifestLink:
        'https://graph.microsoft.com/v1.0/reports/partners/billing/manifests/8fe347d7-1e0f-4bd6-9091-4672691f32db',
    });
  });

  it('reads the live dialect: no @odata.type and the manifest inline under resourceLocation', () => {
    const parsed = parseOperationBody({
      id: 'op-1',
      status: 'succeeded',
      createdDateTime: '2024-10-08T00:57:36.037Z',
      resourceLocation: LIVE_MANIFEST,
    });
    assert.equal(parsed.kind, 'succeeded');
    assert.deepEqual(parsed.kind === 'succeeded' && parsed.inlineManifest, LIVE_MANIFEST);
    assert.equal(parsed.kind === 'succeeded' && parsed.manifestLink, undefined);
  });

  it('takes the status "completed" of the resource pages for success', () => {
    const parsed = parseOperationBody({ status: 'completed', resourceLocation: LIVE_MANIFEST });
    assert.equal(parsed.kind, 'succeeded');
    assert.equal(parsed.status, 'completed');
  });

  it('prefers the navigationLink over an inline resourceLocation that is no manifest (old beta shape)', () => {
    const parsed = parseOperationBody({
      status: 'succeeded',
      resourceLocation: { '@odata.type': '#microsoft.graph.partners.billing' },
      'resourceLocation@odata.navigationLink': 'https://graph.microsoft.com/v1.0/reports/partners/billing/manifests/m1',
    });
    assert.equal(parsed.kind === 'succeeded' && parsed.inlineManifest, undefined);
    assert.equal(
      parsed.kind === 'succeeded' && parsed.manifestLink,
      'https://graph.microsoft.com/v1.0/reports/partners/billing/manifests/m1',
    );
  });

  it('refuses a success that carries no manifest in either form', () => {
    expectExportError(() => parseOperationBody({ status: 'succeeded' }), 'MANIFEST_INVALID');
    expectExportError(
      () => parseOperationBody({ status: 'succeeded', resourceLocation: { '@odata.type': '#x' } }),
      'MANIFEST_INVALID',
    );
  });

  it('reads the documented running example as running, a known status', () => {
    assert.deepEqual(
      parseOperationBody({
        '@odata.type': '#microsoft.graph.partners.billing.runningOperation',
        id: '6fe687d7-1e0f-4bd6-9091-4672691f64bc',
        status: 'running',
      }),
      { kind: 'running', status: 'running', unknownStatus: false },
    );
  });

  it('takes notStarted for running', () => {
    assert.deepEqual(parseOperationBody({ status: 'notStarted' }), {
      kind: 'running',
      status: 'notStarted',
      unknownStatus: false,
    });
  });

  for (const status of ['unknownFutureValue', 'processing']) {
    it(`treats the unknown status "${status}" as still running and flags it`, () => {
      assert.deepEqual(parseOperationBody({ status }), { kind: 'running', status, unknownStatus: true });
    });
  }

  it('reads the documented failed example with code 5000 "No data available"', () => {
    assert.deepEqual(
      parseOperationBody({
        '@odata.type': '#microsoft.graph.partners.billing.failedOperation',
        id: '6fe687d7-1e0f-4bd6-9091-4672691f64bc',
        status: 'failed',
        error: { message: 'No data available', code: '5000' },
      }),
      { kind: 'failed', status: 'failed', code: '5000', message: 'No data available' },
    );
  });

  it('reads a numeric error code as text', () => {
    const parsed = parseOperationBody({ status: 'failed', error: { code: 5000, message: 'No data available' } });
    assert.equal(parsed.kind === 'failed' && parsed.code, '5000');
  });

  it('lets @odata.type decide when the status is missing', () => {
    assert.equal(
      parseOperationBody({ '@odata.type': '#microsoft.graph.partners.billing.failedOperation', error: { code: '1' } })
        .kind,
      'failed',
    );
    assert.deepEqual(parseOperationBody({ '@odata.type': '#microsoft.graph.partners.billing.runningOperation' }), {
      kind: 'running',
      status: 'running',
      unknownStatus: false,
    });
    const success = parseOperationBody({
      '@odata.type': '#microsoft.graph.partners.billing.exportSuccessOperation',
      resourceLocation: LIVE_MANIFEST,
    });
    assert.equal(success.kind, 'succeeded');
  });

  it('flags a body with neither status nor a known @odata.type as an unknown running state', () => {
    assert.deepEqual(parseOperationBody({ id: 'x' }), { kind: 'running', status: '(none)', unknownStatus: true });
  });

  it('refuses a body that is not a JSON object, as a retryable protocol error', () => {
    const error = expectExportError(() => parseOperationBody(['running']), 'GRAPH_PROTOCOL');
    assert.equal(error.retryable, true);
    expectExportError(() => parseOperationBody('running'), 'GRAPH_PROTOCOL');
  });
});

describe('parseManifest', () => {
  it('reads the documented example, normalising partitionType and the timestamp', () => {
    assert.deepEqual(parseManifest(DOCUMENTED_MANIFEST, OUTSIDE_EMULATOR), {
      id: '6fe687d7-1e0f-4bd6-9091-4672691f64bc',
      schemaVersion: '1',
      dataFormat: 'compressedJSON',
      createdDateTime: '2023-03-09T06:34:34.870Z',
      eTag: 'WYjLro78HdMg6vUWR',
      partnerTenantId: '0e195b37-4574-4539-bc42-0e539b9684c0',
      rootDirectory: DOCUMENTED_MANIFEST.rootDirectory,
      sasToken: DOCUMENTED_MANIFEST.sasToken,
      partitionType: 'default',
      blobCount: 1,
      blobs: [{ name: 'part-00049-b016029b-a7a7-4c46-9b5e-c925ac317ac6.c000.json.gz', partitionValue: 'default' }],
    });
  });

  it('reads the live example (schemaVersion 2, lowercase default, sig=REDACTED token kept for the copy)', () => {
    const manifest = parseManifest(LIVE_MANIFEST, OUTSIDE_EMULATOR);
    assert.equal(manifest.schemaVersion, '2');
    assert.equal(manifest.partitionType, 'default');
    assert.equal(manifest.sasToken, LIVE_MANIFEST.sasToken);
    assert.equal(manifest.createdDateTime, '2024-10-08T00:57:36.037Z');
    assert.deepEqual(
      manifest.blobs.map((b) => b.name),
      ['part-00103-9a209a5e-0378-4bb5-9b6a-75bb0fe7ae84.c000.json.gz'],
    );
  });

  it('reads a timestamp without Z as UTC', () => {
    assert.equal(
      parseManifest(manifestWith({ createdDateTime: '2023-03-09T08:12:53' }), OUTSIDE_EMULATOR).createdDateTime,
      '2023-03-09T08:12:53.000Z',
    );
    assert.equal(normaliseTimestamp('2023-03-09T08:37:48.5046691Z'), '2023-03-09T08:37:48.504Z');
    assert.equal(normaliseTimestamp('2023-03-09T10:00:00+02:00'), '2023-03-09T08:00:00.000Z');
    assert.equal(normaliseTimestamp('yesterday'), undefined);
  });

  it('keeps both data formats, compressedJSON and compressedJSONLines', () => {
    assert.equal(
      parseManifest(manifestWith({ dataFormat: 'compressedJSON' }), OUTSIDE_EMULATOR).dataFormat,
      'compressedJSON',
    );
    assert.equal(
      parseManifest(manifestWith({ dataFormat: 'compressedJSONLines' }), OUTSIDE_EMULATOR).dataFormat,
      'compressedJSONLines',
    );
  });

  it('accepts the partition type Default and default alike', () => {
    assert.equal(parseManifest(manifestWith({ partitionType: 'Default' }), OUTSIDE_EMULATOR).partitionType, 'default');
    assert.equal(parseManifest(manifestWith({ partitionType: 'default' }), OUTSIDE_EMULATOR).partitionType, 'default');
  });

  it('drops a leading "?" of the SAS token and a trailing slash of the root', () => {
    const manifest = parseManifest(
      manifestWith({ sasToken: '?sv=2021-08-06&sig=abc', rootDirectory: `${LIVE_MANIFEST.rootDirectory}/` }),
      OUTSIDE_EMULATOR,
    );
    assert.equal(manifest.sasToken, 'sv=2021-08-06&sig=abc');
    assert.equal(manifest.rootDirectory, LIVE_MANIFEST.rootDirectory);
  });

  it('accepts blob names in sub-folders', () => {
    const manifest = parseManifest(
      manifestWith({ blobCount: 1, blobs: [{ name: 'day=01/part-0.json.gz', partitionValue: 'default' }] }),
      OUTSIDE_EMULATOR,
    );
    assert.equal(manifest.blobs[0]?.name, 'day=01/part-0.json.gz');
  });

  const badNames: Array<[string, RegExp]> = [
    ['../outside.json.gz', /contains a "\.\." segment/],
    ['a/../../b.json.gz', /contains a "\.\." segment/],
    ['/etc/passwd', /is an absolute path/],
    ['a\\b.json.gz', /contains a backslash/],
    ['part-0.json.gz?x=1', /contains "\?" or "#"/],
    ['part-0.json.gz#frag', /contains "\?" or "#"/],
    ['', /is empty/],
    ['a//b.json.gz', /empty or "\." segment/],
    ['manifest.json', /collides with our own manifest\.json/],
  ];
  for (const [name, reason] of badNames) {
    it(`refuses the blob name ${JSON.stringify(name)}`, () => {
      refusedManifest({ blobCount: 1, blobs: [{ name, partitionValue: 'default' }] }, reason);
    });
  }

  it('refuses a blob name listed twice', () => {
    const blob = { name: 'part-0.json.gz', partitionValue: 'default' };
    refusedManifest({ blobCount: 2, blobs: [blob, blob] }, /"part-0\.json\.gz" appears twice/);
  });

  it('refuses a blobCount that does not match the blobs listed', () => {
    refusedManifest({ blobCount: 2 }, /"blobCount" is 2 but 1 blobs are listed/);
    refusedManifest({ blobCount: 'many' }, /"blobCount" is not a whole number/);
  });

  it('refuses a manifest without id, eTag, rootDirectory, sasToken or blobs', () => {
    refusedManifest({ eTag: undefined }, /"eTag" is missing/);
    refusedManifest({ id: '' }, /"id" is missing/);
    refusedManifest({ rootDirectory: undefined }, /"rootDirectory" is missing/);
    refusedManifest({ sasToken: ' ' }, /"sasToken" is missing/);
    refusedManifest({ blobs: 'part-0.json.gz' }, /"blobs" is not a list/);
  });

  it('refuses an http root outside emulator mode', () => {
    refusedManifest(
      { rootDirectory: 'http://adlsreconprodeastus2001.blob.core.windows.net/unbilledusagefastpath/v1' },
      /must be an https Azure Blob endpoint/,
    );
  });

  it('refuses a root on a host that is not Azure Blob storage', () => {
    refusedManifest(
      { rootDirectory: 'https://evil.example.com/unbilledusagefastpath/v1' },
      /evil\.example\.com is not an Azure Blob endpoint/,
    );
    refusedManifest(
      { rootDirectory: 'https://acct.blob.core.windows.net.evil.example.com/c' },
      /is not an Azure Blob endpoint/,
    );
    refusedManifest({ rootDirectory: 'https://acct.blob.core.windows.net:8443/c' }, /is not an Azure Blob endpoint/);
  });

  it('refuses a root without a container', () => {
    refusedManifest({ rootDirectory: 'https://acct.blob.core.windows.net' }, /names no container/);
  });

  it('refuses a root with a query string or credentials', () => {
    refusedManifest(
      { rootDirectory: 'https://acct.blob.core.windows.net/c/v1?sv=2021-08-06&sig=abc' },
      /carries a query string or fragment/,
    );
    refusedManifest({ rootDirectory: 'https://user:pw@acct.blob.core.windows.net/c' }, /carries credentials/);
  });

  it('refuses a loopback root outside emulator mode and accepts it, over http too, in emulator mode', () => {
    const root = 'http://127.0.0.1:10000/devstoreaccount1/unbilledusagefastpath/v1/BillingMonth=202410';
    refusedManifest({ rootDirectory: root }, /https Azure Blob endpoint/);
    refusedManifest({ rootDirectory: root.replace('http:', 'https:') }, /is not an Azure Blob endpoint/);
    assert.equal(parseManifest(manifestWith({ rootDirectory: root }), IN_EMULATOR).rootDirectory, root);
    const localhost = 'https://localhost:10000/devstoreaccount1/c';
    assert.equal(parseManifest(manifestWith({ rootDirectory: localhost }), IN_EMULATOR).rootDirectory, localhost);
  });

  it('still refuses a foreign host in emulator mode', () => {
    refusedManifest({ rootDirectory: 'https://evil.example.com/c' }, /is not an Azure Blob endpoint/, IN_EMULATOR);
  });

  it('refuses a body that is not an object', () => {
    expectExportError(() => parseManifest(null, OUTSIDE_EMULATOR), 'MANIFEST_INVALID');
  });
});

describe('billingMonthFromRoot', () => {
  it('reads BillingMonth=YYYYMM of the live and documented roots as YYYY-MM', () => {
    assert.equal(billingMonthFromRoot(LIVE_MANIFEST.rootDirectory), '2024-10');
    assert.equal(billingMonthFromRoot(DOCUMENTED_MANIFEST.rootDirectory), '2023-10');
  });

  it('answers undefined without a BillingMonth segment or with an impossible month', () => {
    assert.equal(billingMonthFromRoot('https://acct.blob.core.windows.net/c/v1/Currency=USD'), undefined);
    assert.equal(billingMonthFromRoot('https://acct.blob.core.windows.net/c/BillingMonth=202413'), undefined);
    assert.equal(billingMonthFromRoot('https://acct.blob.core.windows.net/c/BillingMonth=2024101'), undefined);
  });
});

describe('redact', () => {
  it('removes the query string of a SAS URL and keeps the path', () => {
    const text =
      'Copy failed for https://acct.blob.core.windows.net/c/part-0.json.gz?sv=2021-08-06&se=2024-10-08T07%3A16%3A29Z&sr=b&sp=r&sig=abc%2Bdef%3D (403)';
    const out = redact(text);
    assert.equal(out, 'Copy failed for https://acct.blob.core.windows.net/c/part-0.json.gz?[REDACTED] (403)');
  });

  it('removes a bare sasToken string as Graph returns it', () => {
    const out = redact(`sasToken is ${LIVE_MANIFEST.sasToken} here`);
    assert.equal(out, 'sasToken is [REDACTED] here');
    assert.doesNotMatch(out, /sig=|skoid=|se=/);
  });

  it('removes a bearer token', () => {
    const out = redact(
      'Authorization: Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl was refused',
    );
    assert.equal(out, 'Authorization: Bearer [REDACTED] was refused');
  });

  it('removes a JWT on its own', () => {
    assert.equal(
      redact('token eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl expired'),
      'token [REDACTED] expired',
    );
  });

  it('removes the AccountKey of a connection string and keeps the rest', () => {
    assert.equal(
      redact(
        'DefaultEndpointsProtocol=https;AccountName=dest;AccountKey=a2V5+a2V5/a2V5==;EndpointSuffix=core.windows.net',
      ),
      'DefaultEndpointsProtocol=https;AccountName=dest;AccountKey=[REDACTED];EndpointSuffix=core.windows.net',
    );
  });

  it('removes the value of a JSON "sasToken" field, even one without sig=', () => {
    assert.equal(
      redact('{"rootDirectory":"https://a.blob.core.windows.net/c","sasToken":"opaque-value","blobCount":1}'),
      '{"rootDirectory":"https://a.blob.core.windows.net/c","sasToken":"[REDACTED]","blobCount":1}',
    );
  });

  it('leaves ordinary text alone', () => {
    const texts = [
      'Copied part-00001-9a209a5e.c000.json.gz (1024 bytes, copyFromUrl).',
      'Export succeeded: 3 blobs to copy into unbilled-usage/billingMonth=2024-10/currency=USD/attributeSet=full/run=20241008T060000000Z-00000001',
      'https://adlsreconprodeastus2001.blob.core.windows.net/unbilledusagefastpath/v1/BillingMonth=202410/Currency=INR',
      'Graph export operation failed with code 5000: No data available',
    ];
    for (const text of texts) assert.equal(redact(text), text);
  });
});

describe('safeUrl', () => {
  it('keeps scheme, host and path and drops the query string', () => {
    assert.equal(
      safeUrl('https://acct.blob.core.windows.net/c/part-0.json.gz?sv=2021&sig=abc'),
      'https://acct.blob.core.windows.net/c/part-0.json.gz',
    );
  });
});
