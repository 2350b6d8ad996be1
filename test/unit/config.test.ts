import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Config, checkSchedule, isLoopbackUrl, loadConfig } from '../../src/config';
import { isExportError } from '../../src/errors';

/** The smallest valid set of settings. */
const MINIMAL: Readonly<Record<string, string>> = {
  EXPORT_CURRENCIES: 'USD',
  AzureWebJobsStorage: 'UseDevelopmentStorage=true',
  DESTINATION_STORAGE: 'UseDevelopmentStorage=true',
};

function load(env: Record<string, string | undefined>): Config {
  return loadConfig({ ...MINIMAL, ...env });
}

/** The problem lines of the CONFIG_INVALID error thrown for `env` (fails when nothing is thrown). */
function problems(env: Record<string, string | undefined>, base: Record<string, string> = MINIMAL): string[] {
  try {
    loadConfig({ ...base, ...env });
  } catch (error) {
    assert.ok(isExportError(error), 'an ExportError is thrown');
    assert.equal(error.code, 'CONFIG_INVALID');
    assert.equal(error.retryable, false);
    const lines = error.message.split('\n');
    return lines.slice(1).map((line) => {
      assert.match(line, /^- /);
      return line.slice(2);
    });
  }
  assert.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** Asserts exactly one problem, about `setting`, matching `accepted`. */
function oneProblem(env: Record<string, string | undefined>, setting: string, accepted: RegExp): string {
  const found = problems(env);
  assert.equal(found.length, 1, `one problem expected, got: ${found.join(' | ')}`);
  const [problem] = found as [string];
  assert.ok(problem.startsWith(`${setting}:`), `"${problem}" names ${setting}`);
  assert.match(problem, accepted);
  return problem;
}

describe('loadConfig', () => {
  describe('reporting', () => {
    it('reports every bad setting together in one error, one line per setting naming it and what is accepted', () => {
      const found = problems({
        EXPORT_CURRENCIES: 'US',
        EXPORT_BILLING_PERIODS: 'previous',
        EXPORT_ATTRIBUTE_SET: 'all',
        EXPORT_SCHEDULE: '0 6 * * *',
      });
      assert.equal(found.length, 4);
      assert.match(found[0]!, /^EXPORT_CURRENCIES: "US" .*three-letter ISO 4217 codes are accepted/);
      assert.match(found[1]!, /^EXPORT_BILLING_PERIODS: "previous" .*accepted: current, last, or current,last/);
      assert.match(found[2]!, /^EXPORT_ATTRIBUTE_SET: "all" .*accepted: full or basic/);
      assert.match(found[3]!, /^EXPORT_SCHEDULE: "0 6 \* \* \*" has 5 fields; a six-field NCRONTAB/);
    });

    it('says how many problems there are in the first line of the error', () => {
      try {
        loadConfig({});
        assert.fail('loadConfig accepted an empty environment');
      } catch (error) {
        assert.ok(isExportError(error));
        assert.match(error.message, /^Configuration is invalid \(3 problems\):\n/);
      }
    });

    it('reports the three required settings when nothing is configured', () => {
      const found = problems({}, {});
      assert.deepEqual(
        found.map((p) => p.split(':')[0]),
        ['EXPORT_CURRENCIES', 'AzureWebJobsStorage', 'DESTINATION_STORAGE'],
      );
      assert.match(found[0]!, /missing; comma-separated ISO 4217 codes are accepted/);
    });

    it('treats a blank setting like an absent one', () => {
      const config = load({ EXPORT_BILLING_PERIODS: '   ', EXPORT_ATTRIBUTE_SET: '' });
      assert.deepEqual(config.billingPeriods, ['current']);
      assert.equal(config.attributeSet, 'full');
      oneProblem({ EXPORT_CURRENCIES: '  ' }, 'EXPORT_CURRENCIES', /missing/);
    });
  });

  describe('defaults', () => {
    it('fills every optional setting with its documented default', () => {
      const config = load({});
      assert.deepEqual(config.currencies, ['USD']);
      assert.deepEqual(config.billingPeriods, ['current']);
      assert.equal(config.attributeSet, 'full');
      assert.equal(config.schedule, '0 0 6 * * *');
      assert.deepEqual(config.graph, {
        baseUrl: 'https://graph.microsoft.com/v1.0',
        emulator: false,
        caCertFile: undefined,
      });
      assert.equal(config.destination.container, 'partner-billing');
      assert.equal(config.destination.prefix, 'unbilled-usage');
      assert.deepEqual(config.polling, { initialDelaySeconds: 30, maxDelaySeconds: 900, maxWaitHours: 6 });
      assert.deepEqual(config.copy, {
        singleCopyMaxBytes: 256 * 1024 * 1024,
        blockSizeBytes: 16 * 1024 * 1024,
        concurrency: 32,
      });
      assert.equal(config.appInsightsConnectionString, undefined);
    });
  });

  describe('EXPORT_CURRENCIES', () => {
    it('upper-cases, trims and de-duplicates the currency codes, keeping their order', () => {
      assert.deepEqual(load({ EXPORT_CURRENCIES: ' usd, Eur ,USD,,gbp ' }).currencies, ['USD', 'EUR', 'GBP']);
    });

    for (const bad of ['US', 'USDX', 'U5D', '€UR']) {
      it(`refuses "${bad}", which is not three letters`, () => {
        oneProblem(
          { EXPORT_CURRENCIES: `USD,${bad}` },
          'EXPORT_CURRENCIES',
          new RegExp(`"${bad}" is not a currency code`),
        );
      });
    }

    it('reports each bad code of the list', () => {
      const found = problems({ EXPORT_CURRENCIES: 'US,EURO' });
      assert.equal(found.length, 2);
      assert.ok(found.every((p) => p.startsWith('EXPORT_CURRENCIES:')));
    });

    it('refuses a three-letter code that is no ISO 4217 currency, naming it (Intl.supportedValuesOf)', () => {
      const problem = oneProblem({ EXPORT_CURRENCIES: 'USD,xyz' }, 'EXPORT_CURRENCIES', /"XYZ" is not an ISO 4217/);
      assert.match(problem, /accepted: codes such as USD, EUR/);
      assert.deepEqual(load({ EXPORT_CURRENCIES: 'CHF,jpy,ZAR' }).currencies, ['CHF', 'JPY', 'ZAR']);
    });

    it('refuses a list with no code in it', () => {
      oneProblem({ EXPORT_CURRENCIES: ' , ,' }, 'EXPORT_CURRENCIES', /no currency given/);
    });
  });

  describe('EXPORT_BILLING_PERIODS and EXPORT_ATTRIBUTE_SET', () => {
    it('accepts current, last and both, in any case, without duplicates', () => {
      assert.deepEqual(load({ EXPORT_BILLING_PERIODS: 'last' }).billingPeriods, ['last']);
      assert.deepEqual(load({ EXPORT_BILLING_PERIODS: 'Current, LAST, current' }).billingPeriods, ['current', 'last']);
    });

    it('refuses a billing period other than current or last', () => {
      oneProblem(
        { EXPORT_BILLING_PERIODS: 'current,previous' },
        'EXPORT_BILLING_PERIODS',
        /"previous" is not a billing period/,
      );
    });

    it('accepts full and basic in any case', () => {
      assert.equal(load({ EXPORT_ATTRIBUTE_SET: 'basic' }).attributeSet, 'basic');
      assert.equal(load({ EXPORT_ATTRIBUTE_SET: 'FULL' }).attributeSet, 'full');
    });

    it('refuses an attribute set other than full or basic', () => {
      oneProblem({ EXPORT_ATTRIBUTE_SET: 'minimal' }, 'EXPORT_ATTRIBUTE_SET', /accepted: full or basic/);
    });
  });

  describe('EXPORT_SCHEDULE', () => {
    it('accepts a six-field NCRONTAB expression', () => {
      assert.equal(load({ EXPORT_SCHEDULE: '0 */5 * * * *' }).schedule, '0 */5 * * * *');
      assert.equal(checkSchedule('0 30 6 * * 1-5'), undefined);
    });

    it('refuses a five-field cron expression, saying six fields are expected', () => {
      oneProblem({ EXPORT_SCHEDULE: '0 6 * * *' }, 'EXPORT_SCHEDULE', /has 5 fields; a six-field NCRONTAB expression/);
    });

    it('refuses six fields with an out-of-range value', () => {
      oneProblem(
        { EXPORT_SCHEDULE: '0 0 25 * * *' },
        'EXPORT_SCHEDULE',
        /is not a valid NCRONTAB expression.*e\.g\. "0 0 6 \* \* \*"/,
      );
    });

    it('refuses six fields that are not cron values', () => {
      oneProblem({ EXPORT_SCHEDULE: 'a b c d e f' }, 'EXPORT_SCHEDULE', /is not a valid NCRONTAB expression/);
    });
  });

  describe('GRAPH_BASE_URL', () => {
    it('accepts an https Graph root and drops a trailing slash, outside emulator mode', () => {
      const config = load({ GRAPH_BASE_URL: 'https://graph.microsoft.com/beta/' });
      assert.equal(config.graph.baseUrl, 'https://graph.microsoft.com/beta');
      assert.equal(config.graph.emulator, false);
    });

    it('refuses plain http, since Graph tokens are only sent over TLS', () => {
      oneProblem({ GRAPH_BASE_URL: 'http://graph.microsoft.com/v1.0' }, 'GRAPH_BASE_URL', /must use https/);
    });

    it('refuses plain http even for a loopback emulator', () => {
      oneProblem({ GRAPH_BASE_URL: 'http://127.0.0.1:8443/v1.0' }, 'GRAPH_BASE_URL', /must use https/);
    });

    it('refuses something that is not a URL', () => {
      oneProblem({ GRAPH_BASE_URL: 'graph.microsoft.com' }, 'GRAPH_BASE_URL', /is not a valid URL/);
    });

    it('refuses a URL with a query string', () => {
      oneProblem({ GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0?x=1' }, 'GRAPH_BASE_URL', /query string/);
    });

    for (const url of ['https://127.0.0.1:8443/v1.0', 'https://localhost:8443/v1.0', 'https://[::1]:8443/v1.0']) {
      it(`switches to emulator mode for the loopback root ${url}`, () => {
        const config = load({ GRAPH_BASE_URL: url });
        assert.equal(config.graph.emulator, true);
        assert.equal(config.graph.baseUrl, url);
      });
    }

    it('does not take a host that merely starts with 127 or localhost for loopback', () => {
      assert.equal(isLoopbackUrl('https://localhost.evil.example.com/v1.0'), false);
      assert.equal(isLoopbackUrl('https://127.0.0.1.nip.io/v1.0'), false);
      assert.equal(load({ GRAPH_BASE_URL: 'https://localhost.evil.example.com/v1.0' }).graph.emulator, false);
    });

    it('accepts GRAPH_CA_CERT_FILE in emulator mode only', () => {
      const config = load({ GRAPH_BASE_URL: 'https://127.0.0.1:8443/v1.0', GRAPH_CA_CERT_FILE: '/tmp/emulator.pem' });
      assert.equal(config.graph.caCertFile, '/tmp/emulator.pem');
      oneProblem({ GRAPH_CA_CERT_FILE: '/tmp/emulator.pem' }, 'GRAPH_CA_CERT_FILE', /only accepted in emulator mode/);
    });
  });

  describe('destination storage', () => {
    it('takes a connection string', () => {
      const config = load({ DESTINATION_STORAGE: 'DefaultEndpointsProtocol=https;AccountName=dest;AccountKey=a2V5' });
      assert.deepEqual(config.destination.connection, {
        kind: 'connectionString',
        connectionString: 'DefaultEndpointsProtocol=https;AccountName=dest;AccountKey=a2V5',
      });
    });

    it('takes a blob endpoint reached with the managed identity, with the user-assigned client id', () => {
      const config = load({
        DESTINATION_STORAGE: undefined,
        DESTINATION_STORAGE__blobServiceUri: 'https://dest.blob.core.windows.net/',
        DESTINATION_STORAGE__clientId: '00000000-0000-0000-0000-000000000001',
      });
      assert.deepEqual(config.destination.connection, {
        kind: 'identity',
        blobServiceUri: 'https://dest.blob.core.windows.net',
        queueServiceUri: undefined,
        tableServiceUri: undefined,
        clientId: '00000000-0000-0000-0000-000000000001',
      });
    });

    it('refuses both a connection string and a blob endpoint', () => {
      oneProblem(
        { DESTINATION_STORAGE__blobServiceUri: 'https://dest.blob.core.windows.net' },
        'DESTINATION_STORAGE',
        /both a connection string and .*set exactly one of the two forms/,
      );
    });

    it('refuses a configuration with no destination at all', () => {
      oneProblem({ DESTINATION_STORAGE: undefined }, 'DESTINATION_STORAGE', /missing; set exactly one of/);
    });

    it('refuses a connection string that is not a storage one', () => {
      oneProblem({ DESTINATION_STORAGE: 'hello' }, 'DESTINATION_STORAGE', /is not a storage connection string/);
    });

    it('refuses a blob endpoint with a query string (no SAS in settings)', () => {
      oneProblem(
        {
          DESTINATION_STORAGE: undefined,
          DESTINATION_STORAGE__blobServiceUri: 'https://dest.blob.core.windows.net?sv=1',
        },
        'DESTINATION_STORAGE__blobServiceUri',
        /must not carry a query string/,
      );
    });

    it('accepts a valid container name and refuses an invalid one', () => {
      assert.equal(load({ DESTINATION_CONTAINER: 'billing-2024' }).destination.container, 'billing-2024');
      oneProblem({ DESTINATION_CONTAINER: 'Partner_Billing' }, 'DESTINATION_CONTAINER', /3-63 lowercase letters/);
      oneProblem({ DESTINATION_CONTAINER: 'a--b' }, 'DESTINATION_CONTAINER', /single hyphens/);
    });

    it('trims slashes around the prefix and refuses ".." or "?" in it', () => {
      assert.equal(load({ DESTINATION_PREFIX: '/exports/unbilled/' }).destination.prefix, 'exports/unbilled');
      oneProblem({ DESTINATION_PREFIX: 'exports/../x' }, 'DESTINATION_PREFIX', /no "\.\."/);
      oneProblem({ DESTINATION_PREFIX: 'exports?x' }, 'DESTINATION_PREFIX', /is not a folder path/);
      oneProblem({ DESTINATION_PREFIX: 'a//b' }, 'DESTINATION_PREFIX', /non-empty segments/);
    });
  });

  describe('host storage (AzureWebJobsStorage)', () => {
    it('derives the blob, queue and table endpoints from the identity-based account name', () => {
      const config = load({
        AzureWebJobsStorage: undefined,
        AzureWebJobsStorage__accountName: 'hoststore01',
        AzureWebJobsStorage__clientId: 'client-1',
      });
      assert.deepEqual(config.hostStorage, {
        kind: 'identity',
        blobServiceUri: 'https://hoststore01.blob.core.windows.net',
        queueServiceUri: 'https://hoststore01.queue.core.windows.net',
        tableServiceUri: 'https://hoststore01.table.core.windows.net',
        clientId: 'client-1',
      });
    });

    it('derives the destination blob endpoint from DESTINATION_STORAGE__accountName', () => {
      const config = load({ DESTINATION_STORAGE: undefined, DESTINATION_STORAGE__accountName: 'partnerdest' });
      assert.equal(config.destination.connection.kind, 'identity');
      assert.equal(
        config.destination.connection.kind === 'identity' && config.destination.connection.blobServiceUri,
        'https://partnerdest.blob.core.windows.net',
      );
    });

    it('accepts explicit service URIs for every host service', () => {
      const config = load({
        AzureWebJobsStorage: undefined,
        AzureWebJobsStorage__blobServiceUri: 'https://h.blob.core.windows.net',
        AzureWebJobsStorage__queueServiceUri: 'https://h.queue.core.windows.net',
        AzureWebJobsStorage__tableServiceUri: 'https://h.table.core.windows.net',
      });
      assert.equal(
        config.hostStorage.kind === 'identity' && config.hostStorage.tableServiceUri,
        'https://h.table.core.windows.net',
      );
    });

    it('refuses a blob endpoint alone for the host, which needs queues and tables too', () => {
      oneProblem(
        { AzureWebJobsStorage: undefined, AzureWebJobsStorage__blobServiceUri: 'https://h.blob.core.windows.net' },
        'AzureWebJobsStorage',
        /needs AzureWebJobsStorage__accountName, or all of/,
      );
    });

    it('refuses an account name that Azure would not accept', () => {
      oneProblem(
        { AzureWebJobsStorage: undefined, AzureWebJobsStorage__accountName: 'Host_Store' },
        'AzureWebJobsStorage__accountName',
        /3-24 lowercase letters and digits/,
      );
    });

    it('refuses a missing host storage', () => {
      oneProblem({ AzureWebJobsStorage: undefined }, 'AzureWebJobsStorage', /missing; a connection string, or/);
    });
  });

  describe('tunables', () => {
    it('reads every tunable within its range', () => {
      const config = load({
        EXPORT_POLL_INITIAL_SECONDS: '10',
        EXPORT_POLL_MAX_SECONDS: '600',
        EXPORT_MAX_WAIT_HOURS: '0.5',
        EXPORT_COPY_SINGLE_MAX_MIB: '100',
        EXPORT_COPY_BLOCK_MIB: '8',
        EXPORT_COPY_CONCURRENCY: '4',
      });
      assert.deepEqual(config.polling, { initialDelaySeconds: 10, maxDelaySeconds: 600, maxWaitHours: 0.5 });
      assert.deepEqual(config.copy, { singleCopyMaxBytes: 100 * 1048576, blockSizeBytes: 8 * 1048576, concurrency: 4 });
    });

    const outOfRange: Array<[string, string, RegExp]> = [
      ['EXPORT_POLL_INITIAL_SECONDS', '0', /a whole number from 1 to 3600/],
      ['EXPORT_POLL_INITIAL_SECONDS', '1.5', /a whole number from 1 to 3600/],
      ['EXPORT_POLL_INITIAL_SECONDS', 'soon', /a whole number from 1 to 3600/],
      ['EXPORT_POLL_MAX_SECONDS', '90000', /a whole number from 1 to 86400/],
      ['EXPORT_MAX_WAIT_HOURS', '200', /a number from 0\.001 to 168/],
      ['EXPORT_MAX_WAIT_HOURS', '0', /a number from 0\.001 to 168/],
      ['EXPORT_COPY_SINGLE_MAX_MIB', '300', /a whole number from 1 to 256/],
      ['EXPORT_COPY_BLOCK_MIB', '0', /a whole number from 1 to 4000/],
      ['EXPORT_COPY_CONCURRENCY', '65', /a whole number from 1 to 64/],
    ];
    for (const [setting, value, accepted] of outOfRange) {
      it(`refuses ${setting}=${value}, naming the accepted range`, () => {
        const problem = oneProblem({ [setting]: value }, setting, accepted);
        assert.match(problem, new RegExp(`"${value.replace('.', '\\.')}" is not accepted`));
      });
    }

    it('refuses a maximum poll delay below the initial one', () => {
      oneProblem(
        { EXPORT_POLL_INITIAL_SECONDS: '120', EXPORT_POLL_MAX_SECONDS: '60' },
        'EXPORT_POLL_MAX_SECONDS',
        /must not be below EXPORT_POLL_INITIAL_SECONDS/,
      );
    });

    it('does not blame a valid maximum poll delay for an invalid initial one (regression: the default 30 stood in for it)', () => {
      oneProblem(
        { EXPORT_POLL_INITIAL_SECONDS: 'soon', EXPORT_POLL_MAX_SECONDS: '2' },
        'EXPORT_POLL_INITIAL_SECONDS',
        /a whole number from 1 to 3600/,
      );
    });

    it('reads the Application Insights connection string when set', () => {
      assert.equal(
        load({ APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=abc' }).appInsightsConnectionString,
        'InstrumentationKey=abc',
      );
    });
  });

  describe('FinOps hub drop-in (FINOPS_HUB_*)', () => {
    const HUB_URI = 'https://sthub.blob.core.windows.net';
    const EMULATOR = { GRAPH_BASE_URL: 'https://127.0.0.1:8443/v1.0' };

    it('is off when neither FINOPS_HUB_STORAGE form is set', () => {
      assert.equal(load({}).finOpsHub, undefined);
      assert.equal(load({ FINOPS_HUB_SCOPE: 'partner-billing' }).finOpsHub, undefined);
    });

    it('reaches the hub with the managed identity, with the default scope csp/{partnerTenantId}', () => {
      const config = load({
        FINOPS_HUB_STORAGE__blobServiceUri: `${HUB_URI}/`,
        FINOPS_HUB_STORAGE__clientId: '00000000-0000-0000-0000-000000000002',
      });
      assert.deepEqual(config.finOpsHub, {
        connection: {
          kind: 'identity',
          blobServiceUri: HUB_URI,
          queueServiceUri: undefined,
          tableServiceUri: undefined,
          clientId: '00000000-0000-0000-0000-000000000002',
        },
        scope: 'csp/{partnerTenantId}',
        datasets: ['unbilledUsage'],
        local: false,
      });
    });

    it('sends unbilled usage alone to the hub by default, and the datasets FINOPS_HUB_DATASETS names otherwise', () => {
      assert.deepEqual(load({ FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI }).finOpsHub?.datasets, ['unbilledUsage']);
      assert.deepEqual(
        load({ FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, FINOPS_HUB_DATASETS: ' billedReconciliation , ' }).finOpsHub
          ?.datasets,
        ['billedReconciliation'],
      );
    });

    it('accepts unbilled and billed datasets together (they hold different months once invoiced)', () => {
      assert.deepEqual(
        load({ FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, FINOPS_HUB_DATASETS: 'unbilledUsage,billedUsage' })
          .finOpsHub?.datasets,
        ['unbilledUsage', 'billedUsage'],
      );
      assert.deepEqual(
        load({
          FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI,
          FINOPS_HUB_DATASETS: 'unbilledReconciliation,billedReconciliation',
        }).finOpsHub?.datasets,
        ['unbilledReconciliation', 'billedReconciliation'],
      );
    });

    it('refuses an unknown dataset in FINOPS_HUB_DATASETS and an empty list, naming the accepted ids', () => {
      oneProblem(
        { FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, FINOPS_HUB_DATASETS: 'unbilledUsage,invoices' },
        'FINOPS_HUB_DATASETS',
        /"invoices" is not a dataset; accepted: any of unbilledUsage, unbilledReconciliation, billedUsage, billedReconciliation, billedAggregatedUsage/,
      );
      oneProblem(
        { FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, FINOPS_HUB_DATASETS: ' , ' },
        'FINOPS_HUB_DATASETS',
        /no dataset given; accepted: any of unbilledUsage, /,
      );
    });

    for (const [pair, why] of [
      ['unbilledUsage,unbilledReconciliation', /reconciliation's usage-based lines restate the usage/],
      ['billedUsage,billedReconciliation', /reconciliation's usage-based lines restate the usage/],
      ['billedAggregatedUsage,billedReconciliation', /reconciliation's usage-based lines restate the usage/],
      ['billedUsage,billedAggregatedUsage', /aggregated usage restates the same invoice/],
    ] as const) {
      it(`refuses FINOPS_HUB_DATASETS "${pair}": the hub would count the same charges twice`, () => {
        const [first, second] = pair.split(',');
        const problem = oneProblem(
          { FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, FINOPS_HUB_DATASETS: `${pair},unbilledUsage` },
          'FINOPS_HUB_DATASETS',
          why,
        );
        assert.match(problem, new RegExp(`${first} and ${second} together count the same charges twice`));
        assert.match(problem, /keep one of the two/);
      });
    }

    it('takes a connection string and a scope of its own, trimmed of slashes', () => {
      const hub = load({
        FINOPS_HUB_STORAGE: 'DefaultEndpointsProtocol=https;AccountName=sthub;AccountKey=a2V5',
        FINOPS_HUB_SCOPE: '/partners/contoso/{partnerTenantId}/',
      }).finOpsHub;
      assert.equal(hub?.connection.kind, 'connectionString');
      assert.equal(hub?.scope, 'partners/contoso/{partnerTenantId}');
      assert.equal(hub?.local, false);
    });

    it('accepts a loopback (Azurite) hub in emulator mode and marks it local', () => {
      const hub = load({
        ...EMULATOR,
        FINOPS_HUB_STORAGE:
          'DefaultEndpointsProtocol=http;AccountName=hub;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/hub;',
      }).finOpsHub;
      assert.equal(hub?.local, true);
      assert.equal(load({ ...EMULATOR, FINOPS_HUB_STORAGE: 'UseDevelopmentStorage=true' }).finOpsHub?.local, true);
    });

    it('refuses a loopback hub outside emulator mode: a FinOps hub is an Azure storage account', () => {
      oneProblem(
        { FINOPS_HUB_STORAGE: 'UseDevelopmentStorage=true' },
        'FINOPS_HUB_STORAGE',
        /only accepted in emulator mode/,
      );
      oneProblem(
        { FINOPS_HUB_STORAGE: 'AccountName=hub;AccountKey=a2V5;BlobEndpoint=http://localhost:10000/hub' },
        'FINOPS_HUB_STORAGE',
        /only accepted in emulator mode/,
      );
    });

    it('refuses both forms at once, a blob endpoint over http, and a client id without an endpoint', () => {
      oneProblem(
        { FINOPS_HUB_STORAGE: 'UseDevelopmentStorage=true', FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, ...EMULATOR },
        'FINOPS_HUB_STORAGE',
        /set exactly one of the two forms/,
      );
      oneProblem(
        { FINOPS_HUB_STORAGE__blobServiceUri: 'http://sthub.blob.core.windows.net' },
        'FINOPS_HUB_STORAGE__blobServiceUri',
        /must use https/,
      );
      // A SAS pasted into the endpoint setting never reaches the error (which is logged and printed).
      const withSas = problems({
        FINOPS_HUB_STORAGE__blobServiceUri: 'http://sthub.blob.core.windows.net/?sv=2025-11-05&sig=c2VjcmV0',
      });
      assert.ok(withSas.some((p) => /must use https/.test(p)));
      for (const problem of withSas) assert.doesNotMatch(problem, /sig=|c2VjcmV0/);
      oneProblem(
        { FINOPS_HUB_STORAGE__clientId: '00000000-0000-0000-0000-000000000002' },
        'FINOPS_HUB_STORAGE__clientId',
        /set both, or neither/,
      );
    });

    for (const [scope, accepted] of [
      ['a//b', /one to eight non-empty segments/],
      ['csp/../x', /one to eight non-empty segments/],
      ['csp/{tenant}', /placeholder \{partnerTenantId\}/],
      ['csp tenant', /segments are letters, digits/],
      ['12/csp', /would read as a day/],
      ['csp/a__b', /must not contain "__"/],
      ['csp/manifest.json', /segment named manifest\.json/],
      ['a/b/c/d/e/f/g/h/i', /one to eight/],
    ] as const) {
      it(`refuses FINOPS_HUB_SCOPE "${scope}", saying what a scope may be`, () => {
        oneProblem(
          { FINOPS_HUB_STORAGE__blobServiceUri: HUB_URI, FINOPS_HUB_SCOPE: scope },
          'FINOPS_HUB_SCOPE',
          accepted,
        );
      });
    }

    it('reports hub problems together with every other bad setting', () => {
      const found = problems({
        EXPORT_ATTRIBUTE_SET: 'all',
        FINOPS_HUB_STORAGE__blobServiceUri: 'http://sthub.blob.core.windows.net',
        FINOPS_HUB_SCOPE: 'a//b',
      });
      assert.deepEqual(
        found.map((p) => p.split(':')[0]),
        ['EXPORT_ATTRIBUTE_SET', 'FINOPS_HUB_SCOPE', 'FINOPS_HUB_STORAGE__blobServiceUri'],
      );
    });
  });
});
