/**
 * The resolved deployments of infra/snapshots/*.snapshot.json (what `bicep snapshot` predicts ARM deploys) checked
 * against the code: the app settings src/config.ts SETTINGS reads (and none Flex Consumption refuses), the queues and
 * tables of src/names.ts, every role the code needs on the right scope, shared keys off, HTTPS and TLS 1.2 only, no
 * basic publishing credentials, and alert queries that name the events and dimensions the code emits.
 * The snapshots themselves are validated against the templates by bicep.infra.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SETTINGS } from '../../src/config';
import { HOST_STORAGE_CONNECTION, QueueNames, TableNames, TelemetryEvents } from '../../src/names';
import { TERMINAL_STATUSES } from '../../src/pipeline/ports';
import {
  BUILT_IN_ROLES,
  COPY_ALLOWANCE_HOURS,
  EVENT_DIMENSIONS,
  EVENT_MEASUREMENTS,
  FLEX_FORBIDDEN_SETTINGS,
  HOST_STORAGE_IDENTITY_SETTINGS,
  NOT_SET_IN_INFRA,
  REQUIRED_ROLES,
  SET_BEYOND_SETTINGS,
  SET_ONLY_WITH_FINOPS_HUB,
} from '../support/infraExpectations';
import { at, isExpression, type Json, type PredictedResource, readSnapshot, type Snapshot } from './support';

// ---------------------------------------------------------------------------------------------------------------
// The cases, written out independently of the .bicepparam files
// ---------------------------------------------------------------------------------------------------------------

interface AppRegistration {
  tenantId: string;
  clientId: string;
  secretUri: string;
}

interface Case {
  /** infra/snapshots/<name>.bicepparam and .snapshot.json */
  name: string;
  /** Resource id of the existing destination account, or undefined for a new one. */
  existingDestination?: string;
  appRegistration?: AppRegistration;
  /** Resource id of a FinOps hub's storage account (finOpsHubStorageAccountId), or undefined for no hub. */
  finOpsHub?: string;
  /** App settings whose value differs from the SETTINGS default in this case. */
  settings: Record<string, string>;
  currencies: string[];
  billingPeriods: string[];
  attributeSet: string;
  maxWaitHours: number;
  /** The daily datasets the no-success rule expects: EXPORT_DATASETS filtered to the unbilled ones. */
  dailyDatasets: string[];
  /** Folders the retention rule of a new destination account deletes under (the daily datasets' folders). */
  retentionFolders?: string[];
  alertEmail: boolean;
}

const appRegistration: AppRegistration = {
  tenantId: '33333333-3333-3333-3333-333333333333',
  clientId: '44444444-4444-4444-4444-444444444444',
  secretUri: 'https://kv-partner.vault.azure.net/secrets/graph-client-secret',
};

const CASES: Case[] = [
  {
    name: 'new-destination',
    settings: { EXPORT_CURRENCIES: 'USD,EUR', EXPORT_BILLING_PERIODS: 'current,last' },
    currencies: ['USD', 'EUR'],
    billingPeriods: ['current', 'last'],
    attributeSet: 'full',
    maxWaitHours: 6,
    dailyDatasets: ['unbilledUsage'],
    retentionFolders: ['unbilled-usage', 'unbilled-reconciliation'],
    alertEmail: true,
  },
  {
    name: 'existing-destination-managed-identity',
    existingDestination:
      '/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-shared-storage/providers/Microsoft.Storage/storageAccounts/stshareddata',
    settings: { EXPORT_CURRENCIES: 'EUR' },
    currencies: ['EUR'],
    billingPeriods: ['current'],
    attributeSet: 'full',
    maxWaitHours: 6,
    dailyDatasets: ['unbilledUsage'],
    alertEmail: false,
  },
  {
    name: 'existing-destination-app-registration',
    existingDestination:
      '/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-finance-data/providers/Microsoft.Storage/storageAccounts/stfinancedata',
    appRegistration,
    settings: {
      EXPORT_CURRENCIES: 'USD',
      EXPORT_ATTRIBUTE_SET: 'basic',
      DESTINATION_CONTAINER: 'csp-billing',
      DESTINATION_PREFIX: 'graph/unbilled',
      EXPORT_MAX_WAIT_HOURS: '12',
      // As written in the parameter: the code matches trimmed, in any letter case.
      EXPORT_DATASETS: 'billedUsage, UnbilledUsage,unbilledReconciliation , billedReconciliation',
      DESTINATION_PREFIX_BILLED_USAGE: 'graph/billed-usage',
      EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
      EXPORT_INVOICE_MONTHS: '6',
    },
    currencies: ['USD'],
    billingPeriods: ['current'],
    attributeSet: 'basic',
    maxWaitHours: 12,
    dailyDatasets: ['unbilledUsage', 'unbilledReconciliation'],
    alertEmail: false,
  },
  {
    // Every optional string passed as '' (an older azd): the SETTINGS defaults must be in effect.
    name: 'new-destination-app-registration-older-azd',
    appRegistration,
    settings: { EXPORT_CURRENCIES: 'USD' },
    currencies: ['USD'],
    billingPeriods: ['current'],
    attributeSet: 'full',
    maxWaitHours: 6,
    dailyDatasets: ['unbilledUsage'],
    retentionFolders: ['unbilled-usage', 'unbilled-reconciliation'],
    alertEmail: false,
  },
  {
    // Only the billed datasets, found through Partner Center: no daily series, the no-success rule disabled.
    name: 'billed-only-discovery',
    appRegistration,
    settings: {
      EXPORT_CURRENCIES: 'USD',
      EXPORT_DATASETS: 'billedUsage,billedReconciliation,billedAggregatedUsage',
      DESTINATION_PREFIX_BILLED_AGGREGATED_USAGE: 'billed/aggregated-usage',
      EXPORT_INVOICE_DISCOVERY: 'partnerCenter',
    },
    currencies: ['USD'],
    billingPeriods: ['current'],
    attributeSet: 'full',
    maxWaitHours: 6,
    dailyDatasets: [],
    retentionFolders: ['unbilled-usage', 'unbilled-reconciliation'],
    alertEmail: false,
  },
  {
    name: 'finops-hub',
    finOpsHub:
      '/subscriptions/55555555-5555-5555-5555-555555555555/resourceGroups/rg-finops-hub/providers/Microsoft.Storage/storageAccounts/stfinopshubx7',
    settings: {
      EXPORT_CURRENCIES: 'USD',
      FINOPS_HUB_SCOPE: 'partners/contoso/{partnerTenantId}',
      FINOPS_HUB_DATASETS: 'unbilledUsage,billedUsage',
    },
    currencies: ['USD'],
    billingPeriods: ['current'],
    attributeSet: 'full',
    maxWaitHours: 6,
    dailyDatasets: ['unbilledUsage'],
    retentionFolders: ['unbilled-usage', 'unbilled-reconciliation'],
    alertEmail: false,
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Reading a snapshot
// ---------------------------------------------------------------------------------------------------------------

function ofType(snapshot: Snapshot, type: string): PredictedResource[] {
  return snapshot.predictedResources.filter((r) => r.type.toLowerCase() === type.toLowerCase());
}

function one(snapshot: Snapshot, type: string): PredictedResource {
  const found = ofType(snapshot, type);
  assert.equal(found.length, 1, `exactly one ${type}`);
  return found[0] as PredictedResource;
}

function text(value: Json | undefined): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

interface RoleAssignment {
  scope: string;
  role: string;
  principal: string;
}

/** Role assignments as (scope, role name, principal expression); the scope comes from the predicted resource id. */
function roleAssignments(snapshot: Snapshot): RoleAssignment[] {
  return ofType(snapshot, 'Microsoft.Authorization/roleAssignments').map((r) => {
    const scope = /^\[extensionResourceId\('([^']+)', 'Microsoft\.Authorization\/roleAssignments'/.exec(r.id)?.[1];
    assert.ok(scope !== undefined, `role assignment scope in ${r.id}`);
    const definition = text(at(r.properties ?? null, 'roleDefinitionId'));
    const id = /roleDefinitions\/([0-9a-f-]{36})$/.exec(definition)?.[1] ?? '';
    const role = BUILT_IN_ROLES[id];
    assert.ok(role !== undefined, `unknown role definition ${definition}`);
    return { scope, role, principal: text(at(r.properties ?? null, 'principalId')) };
  });
}

/** The names of customDimensions / customMeasurements a query reads, and the event names it compares. */
function queryReads(query: string): { events: string[]; dimensions: string[]; measurements: string[] } {
  const code = query.replace(/\/\/.*$/gm, '');
  const events: string[] = [];
  for (const m of code.matchAll(/\bname\s*==\s*"([^"]*)"/g)) events.push(m[1] ?? '');
  for (const m of code.matchAll(/\bname\s+in\s*\(([^)]*)\)/g)) {
    for (const literal of (m[1] ?? '').matchAll(/"([^"]*)"/g)) events.push(literal[1] ?? '');
  }
  return {
    events,
    dimensions: [...code.matchAll(/customDimensions\.(\w+)/g)].map((m) => m[1] ?? ''),
    measurements: [...code.matchAll(/customMeasurements\.(\w+)/g)].map((m) => m[1] ?? ''),
  };
}

/** Checks a query names only events the code sends, and reads only dimensions and measurements those events carry. */
function assertQueryMatchesCode(query: string, where: string): void {
  const reads = queryReads(query);
  assert.ok(reads.events.length > 0, `${where}: compares an event name`);
  const known = new Set<string>(Object.values(TelemetryEvents));
  for (const event of reads.events) assert.ok(known.has(event), `${where}: unknown event ${event}`);
  const carried = new Set(reads.events.flatMap((event) => EVENT_DIMENSIONS[event] ?? []));
  for (const dimension of reads.dimensions) {
    assert.ok(carried.has(dimension), `${where}: ${reads.events.join('/')} carry no dimension "${dimension}"`);
  }
  for (const measurement of reads.measurements) {
    assert.ok(EVENT_MEASUREMENTS.includes(measurement), `${where}: no measurement "${measurement}"`);
  }
}

/** The columns of a query's result: the names in its last `project` (or `project-away`-free) statement. */
function resultColumns(query: string): string[] {
  const code = query.replace(/\/\/.*$/gm, '');
  const statements = code.split(/\n\|\s*/);
  const project = [...statements].reverse().find((s) => /^project\b/.test(s.trim()));
  assert.ok(project !== undefined, 'the query ends with a project');
  return project
    .trim()
    .replace(/^project\s+/, '')
    .split(',')
    .map((column) => (column.split('=')[0] ?? '').trim());
}

// ---------------------------------------------------------------------------------------------------------------
// Tests, per case
// ---------------------------------------------------------------------------------------------------------------

for (const testCase of CASES) {
  describe(`snapshot ${testCase.name}`, () => {
    const snapshot = readSnapshot(testCase.name);
    const identity = one(snapshot, 'Microsoft.ManagedIdentity/userAssignedIdentities');
    const identityClientId = `reference('${identity.id}', '2024-11-30').clientId`;
    const identityPrincipalId = `reference('${identity.id}', '2024-11-30').principalId`;
    const site = one(snapshot, 'Microsoft.Web/sites');
    const config = one(snapshot, 'Microsoft.Web/sites/config');
    const settings = config.properties ?? {};
    const accounts = ofType(snapshot, 'Microsoft.Storage/storageAccounts');
    const queueAccount = ofType(snapshot, 'Microsoft.Storage/storageAccounts/queueServices/queues')[0]?.id.split(
      '/queueServices/',
    )[0];
    const hostAccount = accounts.find((a) => a.id === queueAccount);
    const destinationContainerName = testCase.settings.DESTINATION_CONTAINER ?? 'partner-billing';

    it('predicts the deployment without diagnostics', () => {
      assert.deepEqual(snapshot.diagnostics, []);
      assert.ok(hostAccount !== undefined, 'the host storage account holds the queues');
    });

    it('sets every setting the code reads (or leaves it out on purpose) and only settings someone reads', () => {
      assert.ok(config.name.endsWith('/appsettings'));
      assert.ok(!isExpression(settings as Json), 'the app settings resolve to an object before deployment');
      const names = new Set(Object.keys(settings));
      const missing = SETTINGS.filter(
        (s) =>
          !names.has(s.name) &&
          NOT_SET_IN_INFRA[s.name] === undefined &&
          !(testCase.finOpsHub === undefined && SET_ONLY_WITH_FINOPS_HUB.includes(s.name)),
      );
      assert.deepEqual(
        missing.map((s) => s.name),
        [],
        'not set and not in NOT_SET_IN_INFRA',
      );
      for (const name of Object.keys(NOT_SET_IN_INFRA)) assert.ok(!names.has(name), `${name} is left out on purpose`);
      const known = new Set(SETTINGS.map((s) => s.name));
      const unknown = [...names].filter(
        (n) => !known.has(n) && SET_BEYOND_SETTINGS[n] === undefined && !n.startsWith(`${HOST_STORAGE_CONNECTION}__`),
      );
      assert.deepEqual(unknown, [], 'set, but read by nobody');
    });

    it('sets none of the settings Flex Consumption refuses', () => {
      for (const name of FLEX_FORBIDDEN_SETTINGS) assert.ok(!(name in settings), `${name} must not be set`);
      assert.doesNotMatch(JSON.stringify(site), /linuxFxVersion|WEBSITE_RUN_FROM_PACKAGE|FUNCTIONS_WORKER_RUNTIME/);
    });

    it('gives every setting with a default the value this case expects (the SETTINGS default unless overridden)', () => {
      let compared = 0;
      for (const setting of SETTINGS) {
        const value = settings[setting.name];
        if (value === undefined || isExpression(value)) continue;
        const expected = testCase.settings[setting.name] ?? setting.default;
        if (expected === undefined) continue;
        compared++;
        assert.equal(value, expected, setting.name);
      }
      assert.ok(compared >= 11, `compared ${compared} settings`);
      for (const [name, value] of Object.entries(testCase.settings)) assert.equal(settings[name], value, name);
    });

    it('reaches host storage, the destination and Application Insights with the user-assigned identity', () => {
      for (const property of HOST_STORAGE_IDENTITY_SETTINGS) {
        assert.ok(`${HOST_STORAGE_CONNECTION}__${property}` in settings, property);
      }
      assert.equal(settings[`${HOST_STORAGE_CONNECTION}__credential`], 'managedidentity');
      assert.equal(settings[`${HOST_STORAGE_CONNECTION}__clientId`], `[${identityClientId}]`);
      for (const service of ['blob', 'queue', 'table']) {
        const uri = text(settings[`${HOST_STORAGE_CONNECTION}__${service}ServiceUri`]);
        assert.ok(uri.includes(`reference('${hostAccount?.id}', '2026-09-01').primaryEndpoints.${service}`), uri);
      }
      assert.equal(settings.DESTINATION_STORAGE__clientId, `[${identityClientId}]`);
      const destinationAccount =
        testCase.existingDestination ?? accounts.find((a) => a.id !== hostAccount?.id)?.id ?? '(none)';
      assert.ok(
        text(settings.DESTINATION_STORAGE__blobServiceUri).includes(
          `reference('${destinationAccount}', '2026-09-01').primaryEndpoints.blob`,
        ),
      );
      assert.equal(
        settings.APPLICATIONINSIGHTS_AUTHENTICATION_STRING,
        `[format('ClientId={0};Authorization=AAD', ${identityClientId})]`,
      );
      const appInsights = one(snapshot, 'Microsoft.Insights/components');
      assert.equal(at(appInsights.properties ?? null, 'DisableLocalAuth'), true);
      assert.ok(text(settings.APPLICATIONINSIGHTS_CONNECTION_STRING).includes(`reference('${appInsights.id}'`));
    });

    it(
      testCase.appRegistration === undefined
        ? 'calls Graph with the managed identity (no tenant, no secret)'
        : 'calls Graph with the app registration: tenant, client id and a Key Vault reference, all three',
      () => {
        const registration = testCase.appRegistration;
        if (registration === undefined) {
          assert.equal(settings.AZURE_CLIENT_ID, `[${identityClientId}]`);
          assert.ok(!('AZURE_TENANT_ID' in settings));
          assert.ok(!('AZURE_CLIENT_SECRET' in settings));
          assert.equal(snapshot.outputs?.GRAPH_CREDENTIAL, 'managedIdentity');
        } else {
          assert.equal(settings.AZURE_CLIENT_ID, registration.clientId);
          assert.equal(settings.AZURE_TENANT_ID, registration.tenantId);
          assert.equal(settings.AZURE_CLIENT_SECRET, `@Microsoft.KeyVault(SecretUri=${registration.secretUri})`);
          assert.equal(snapshot.outputs?.GRAPH_CREDENTIAL, 'appRegistration');
        }
        // Key Vault references resolve with the user-assigned identity.
        assert.equal(at(site.properties ?? null, 'keyVaultReferenceIdentity'), identity.id);
      },
    );

    it(
      testCase.finOpsHub === undefined
        ? 'sets no FinOps hub setting without a hub'
        : "reaches the FinOps hub's storage account with the user-assigned identity",
      () => {
        const hubSettings = Object.keys(settings).filter((name) => name.startsWith('FINOPS_HUB_'));
        if (testCase.finOpsHub === undefined) {
          assert.deepEqual(hubSettings, []);
          assert.equal(snapshot.outputs?.FINOPS_HUB_BLOB_SERVICE_URI, '');
          return;
        }
        assert.deepEqual(hubSettings.sort(), [...SET_ONLY_WITH_FINOPS_HUB].sort());
        assert.equal(settings.FINOPS_HUB_STORAGE__clientId, `[${identityClientId}]`);
        assert.ok(
          text(settings.FINOPS_HUB_STORAGE__blobServiceUri).includes(
            `reference('${testCase.finOpsHub}', '2026-09-01').primaryEndpoints.blob`,
          ),
          text(settings.FINOPS_HUB_STORAGE__blobServiceUri),
        );
      },
    );

    it('grants every role the code needs, on the narrowest scope, to the app identity only', () => {
      const assignments = roleAssignments(snapshot);
      const destinationContainer = `${
        testCase.existingDestination ?? accounts.find((a) => a.id !== hostAccount?.id)?.id
      }/blobServices/default/containers/${destinationContainerName}`;
      const expected: RoleAssignment[] = [
        ...REQUIRED_ROLES.hostStorageAccount.map((role) => ({ scope: hostAccount?.id ?? '', role })),
        ...REQUIRED_ROLES.destinationContainer.map((role) => ({ scope: destinationContainer, role })),
        ...REQUIRED_ROLES.appInsights.map((role) => ({
          scope: one(snapshot, 'Microsoft.Insights/components').id,
          role,
        })),
        ...(testCase.finOpsHub === undefined
          ? []
          : REQUIRED_ROLES.finOpsHubIngestion.map((role) => ({
              scope: `${testCase.finOpsHub}/blobServices/default/containers/ingestion`,
              role,
            }))),
      ].map((a) => ({ ...a, principal: `[${identityPrincipalId}]` }));
      const key = (a: RoleAssignment): string => `${a.role} on ${a.scope} to ${a.principal}`;
      assert.deepEqual(assignments.map(key).sort(), expected.map(key).sort());
      for (const a of assignments) assert.match(a.scope, /\/providers\/.+\/.+/, 'resource scope, never a group');
    });

    it('turns shared keys off and enforces HTTPS and TLS 1.2 on every storage account it creates', () => {
      assert.equal(accounts.length, testCase.existingDestination === undefined ? 2 : 1);
      for (const account of accounts) {
        const p = account.properties ?? null;
        assert.equal(at(p, 'allowSharedKeyAccess'), false, `${account.name}: allowSharedKeyAccess`);
        assert.equal(at(p, 'supportsHttpsTrafficOnly'), true, `${account.name}: HTTPS only`);
        assert.equal(at(p, 'minimumTlsVersion'), 'TLS1_2', `${account.name}: TLS 1.2`);
        assert.equal(at(p, 'allowBlobPublicAccess'), false, `${account.name}: no public blob access`);
      }
    });

    it(
      testCase.existingDestination === undefined
        ? 'creates the destination container and its retention rule in the new account'
        : 'writes nothing to the existing destination account: no container PUT, no lifecycle policy',
      () => {
        const touching = snapshot.predictedResources.filter(
          (r) => testCase.existingDestination !== undefined && r.id.startsWith(`${testCase.existingDestination}/`),
        );
        if (testCase.existingDestination !== undefined) {
          assert.deepEqual(
            touching.map((r) => r.type),
            [],
            'only the role assignment (an extension resource) may target it',
          );
        } else {
          const containers = ofType(snapshot, 'Microsoft.Storage/storageAccounts/blobServices/containers');
          assert.ok(containers.some((c) => c.name.endsWith(`/default/${destinationContainerName}`)));
          const policies = ofType(snapshot, 'Microsoft.Storage/storageAccounts/managementPolicies');
          assert.equal(policies.length, 1);
          // Only the daily datasets' folders age out; the billed datasets (one final export per invoice) are kept.
          const rules = at(policies[0]?.properties ?? null, 'policy.rules');
          const prefixMatch = Array.isArray(rules) ? at(rules[0] ?? null, 'definition.filters.prefixMatch') : undefined;
          assert.deepEqual(
            prefixMatch,
            (testCase.retentionFolders ?? []).map((folder) => `${destinationContainerName}/${folder}/`),
          );
        }
      },
    );

    it('runs Node.js 22 on Flex Consumption: HTTPS only, TLS 1.2, FTPS and basic publishing credentials off', () => {
      const plan = one(snapshot, 'Microsoft.Web/serverfarms');
      assert.equal(at(plan.sku ?? null, 'name'), 'FC1');
      const p = site.properties ?? null;
      assert.equal(at(p, 'httpsOnly'), true);
      assert.equal(at(p, 'siteConfig.minTlsVersion'), '1.2');
      assert.equal(at(p, 'siteConfig.scmMinTlsVersion'), '1.2');
      assert.equal(at(p, 'siteConfig.ftpsState'), 'Disabled');
      assert.equal(at(p, 'functionAppConfig.runtime.name'), 'node');
      assert.equal(at(p, 'functionAppConfig.runtime.version'), '22');
      const maximum = at(p, 'functionAppConfig.scaleAndConcurrency.maximumInstanceCount');
      assert.ok(typeof maximum === 'number' && maximum >= 1 && maximum <= 1000, `maximumInstanceCount ${maximum}`);
      assert.equal(at(p, 'functionAppConfig.deployment.storage.authentication.type'), 'UserAssignedIdentity');
      assert.equal(
        at(p, 'functionAppConfig.deployment.storage.authentication.userAssignedIdentityResourceId'),
        identity.id,
      );
      assert.equal(at(site.identity ?? null, 'type'), 'UserAssigned');
      const policies = ofType(snapshot, 'Microsoft.Web/sites/basicPublishingCredentialsPolicies');
      assert.deepEqual(policies.map((r) => r.name.split('/').pop()).sort(), ['ftp', 'scm']);
      for (const policy of policies) assert.equal(at(policy.properties ?? null, 'allow'), false, policy.name);
    });

    it('creates the queues and ledger tables of src/names.ts in the host storage account', () => {
      const leaf = (type: string): string[] =>
        ofType(snapshot, type)
          .filter((r) => r.id.startsWith(`${hostAccount?.id}/`))
          .map((r) => r.name.split('/').pop() ?? '')
          .sort();
      assert.deepEqual(
        leaf('Microsoft.Storage/storageAccounts/queueServices/queues'),
        Object.values(QueueNames).sort(),
      );
      assert.deepEqual(
        leaf('Microsoft.Storage/storageAccounts/tableServices/tables'),
        Object.values(TableNames).sort(),
      );
    });

    describe('alerts and workbook', () => {
      const rules = ofType(snapshot, 'Microsoft.Insights/scheduledQueryRules');
      const rule = (fragment: string): PredictedResource => {
        const found = rules.find((r) => r.name.includes(fragment));
        assert.ok(found !== undefined, `alert rule *${fragment}*`);
        return found;
      };
      const criterion = (r: PredictedResource): Json | undefined => {
        const all = at(r.properties ?? null, 'criteria.allOf');
        return Array.isArray(all) ? all[0] : undefined;
      };

      it('has five rules on Application Insights, each reading only events and dimensions the code emits', () => {
        assert.equal(rules.length, 5);
        const appInsights = one(snapshot, 'Microsoft.Insights/components').id;
        for (const r of rules) {
          assert.deepEqual(at(r.properties ?? null, 'scopes'), [appInsights]);
          const query = text(at(criterion(r) ?? null, 'query'));
          assertQueryMatchesCode(query, r.name);
          const columns = resultColumns(query);
          const dimensions = at(criterion(r) ?? null, 'dimensions');
          assert.ok(Array.isArray(dimensions) && dimensions.length > 0, `${r.name}: split by a dimension`);
          for (const d of dimensions) {
            const name = text(at(d, 'name'));
            assert.ok(columns.includes(name), `${r.name}: dimension ${name} is a column of its query (${columns})`);
          }
          const actions = at(r.properties ?? null, 'actions.actionGroups');
          assert.equal(Array.isArray(actions) ? actions.length : -1, testCase.alertEmail ? 1 : 0);
        }
      });

      it('alerts on every run the app can no longer follow: its ledger row deleted or unreadable', () => {
        const r = rule('ledger-integrity');
        const query = text(at(criterion(r) ?? null, 'query'));
        assert.match(
          query,
          new RegExp(`name in \\("${TelemetryEvents.runMissing}", "${TelemetryEvents.runUnreadable}"\\)`),
        );
        assert.equal(at(r.properties ?? null, 'enabled'), true);
      });

      it('alerts on every failed run, of every dataset, once per run (dataset, currency, run)', () => {
        const r = rule('run-failed');
        const query = text(at(criterion(r) ?? null, 'query'));
        assert.match(query, new RegExp(`name == "${TelemetryEvents.runFailed}"`));
        assert.doesNotMatch(query.replace(/\/\/.*$/gm, ''), /where\s+dataset\b/, 'no dataset is left out');
        assert.match(query, /dataset = iff\(isempty\(dataset\), "unbilledUsage", dataset\)/, 'older events count');
        assert.match(query, /\| summarize arg_max\(timestamp, \*\) by runId\n/, 'a run reported twice is one row');
        const dimensions = at(criterion(r) ?? null, 'dimensions');
        assert.deepEqual(Array.isArray(dimensions) ? dimensions.map((d) => at(d, 'name')) : [], [
          'dataset',
          'currency',
          'runId',
        ]);
      });

      it('alerts on every failed curation, once per run (dataset, currency, run)', () => {
        const r = rule('curation-failed');
        const query = text(at(criterion(r) ?? null, 'query'));
        assert.match(query, new RegExp(`name == "${TelemetryEvents.curationFailed}"`));
        assert.match(query, /\| summarize arg_max\(timestamp, \*\) by runId\n/);
        const dimensions = at(criterion(r) ?? null, 'dimensions');
        assert.deepEqual(Array.isArray(dimensions) ? dimensions.map((d) => at(d, 'name')) : [], [
          'dataset',
          'currency',
          'runId',
        ]);
      });

      it('sees a late-ingested event and alerts on it once: rules on events look back 6 h every 15 min, stateful, split by run', () => {
        for (const fragment of ['run-failed', 'curation-failed', 'message-poisoned', 'ledger-integrity']) {
          const r = rule(fragment);
          const p = r.properties ?? null;
          assert.equal(at(p, 'evaluationFrequency'), 'PT15M', fragment);
          assert.equal(at(p, 'windowSize'), 'PT6H', `${fragment}: the window overlaps many evaluations`);
          assert.equal(
            at(p, 'autoMitigate'),
            true,
            `${fragment}: stateful, so an event seen again does not alert again`,
          );
          const dimensions = at(criterion(r) ?? null, 'dimensions');
          assert.ok(
            Array.isArray(dimensions) && dimensions.some((d) => at(d, 'name') === 'runId'),
            `${fragment}: one alert per run`,
          );
          assert.match(
            text(at(criterion(r) ?? null, 'query')),
            /\| summarize arg_max\(timestamp, \*\)(, \w+ = count\(\))? by /,
          );
        }
      });

      it('pages (severity 1) only for an overdue series; a failed run is a warning, a poisoned message information', () => {
        const severity = (fragment: string): Json | undefined => at(rule(fragment).properties ?? null, 'severity');
        assert.equal(severity('no-success'), 1);
        assert.equal(severity('run-failed'), 2);
        assert.equal(severity('ledger-integrity'), 2);
        assert.equal(severity('curation-failed'), 2);
        assert.equal(severity('message-poisoned'), 3);
      });

      it('skips the service-side query validation (a new Application Insights resource), the queries being checked here', () => {
        for (const r of rules) assert.equal(at(r.properties ?? null, 'skipQueryValidation'), true, r.name);
      });

      it('expects a success of every daily series within 24 h + EXPORT_MAX_WAIT_HOURS + the copy allowance', () => {
        const r = rule('no-success');
        const query = text(at(criterion(r) ?? null, 'query'));
        const hours = 24 + testCase.maxWaitHours + COPY_ALLOWANCE_HOURS;
        assert.match(query, new RegExp(`^let successWindow = ${hours}h;$`, 'm'));
        // The snapshots fix deploymentTime (main.bicep's default is utcNow()).
        assert.match(query, /^let deployedAt = datetime\(2026-12-01T06:00:00Z\);$/m);
        assert.match(query, /where timestamp > ago\(2d\)/, 'the last success is looked for over the whole rule window');
        assert.match(query, /countedFrom = iff\(isnull\(lastSuccess\), deployedAt, lastSuccess\)/);
        assert.match(query, /where countedFrom < ago\(successWindow\)/);
        assert.match(query, new RegExp(`name == "${TelemetryEvents.runCompleted}"`));
        assert.match(query, /status in \("succeeded", "unchanged", "noData"\)/);
        const table = /datatable\([^)]*\) \[\n([\s\S]*?)\n\];/.exec(query)?.[1];
        assert.ok(table !== undefined, 'the query holds the expected series as a datatable');
        const rows = table
          .split(',\n')
          .map((row) => row.trim())
          .filter((row) => row !== '');
        const expected = testCase.dailyDatasets.flatMap((dataset) =>
          testCase.currencies.flatMap((currency) =>
            testCase.billingPeriods.map(
              (period) => `"${dataset}", "${currency}", "${period}", "${testCase.attributeSet}"`,
            ),
          ),
        );
        assert.deepEqual(rows.sort(), expected.sort(), 'one row per dataset x currency x period x attribute set');
        assert.match(query, /join kind=leftouter successes on dataset, currency, billingPeriod, attributeSet/);
        const dimensions = at(criterion(r) ?? null, 'dimensions');
        assert.deepEqual(Array.isArray(dimensions) ? dimensions.map((d) => at(d, 'name')) : [], ['series']);
        // The rule's window is the largest a log alert allows, and holds the query's own look-back.
        assert.equal(at(r.properties ?? null, 'windowSize'), 'P2D');
        assert.ok(hours <= 48);
        assert.equal(at(r.properties ?? null, 'autoMitigate'), true);
        // Kept when only billed datasets are configured (a provision updates an older rule), but disabled.
        assert.equal(at(r.properties ?? null, 'enabled'), testCase.dailyDatasets.length > 0);
        assert.ok(text(at(r.properties ?? null, 'displayName')).includes(`${hours} hours`));
      });

      it('alerts on a poisoned message whose poisoning ended its run, or whose run had not ended', () => {
        const query = text(at(criterion(rule('message-poisoned')) ?? null, 'query'));
        const filter = /where runStatus !in \(([^)]*)\) or endedRun == "true"$/m.exec(query);
        assert.ok(filter, 'the filter keeps endedRun "true" (runStatus is then "failed")');
        assert.deepEqual(
          [...(filter[1] ?? '').matchAll(/"([^"]*)"/g)].map((m) => m[1]).sort(),
          [...TERMINAL_STATUSES].sort(),
          'the final statuses of src/pipeline/ports.ts',
        );
      });

      it('deploys the workbook operators open first, on queries that match the code', () => {
        const workbook = one(snapshot, 'Microsoft.Insights/workbooks');
        const data = JSON.parse(text(at(workbook.properties ?? null, 'serializedData'))) as Json;
        const items = at(data, 'items');
        assert.ok(Array.isArray(items));
        const names = items.map((item) => text(at(item, 'name')));
        for (const name of ['runsPerDay', 'lastSuccess', 'failuresByCode', 'durationAndBytes', 'runHistory']) {
          assert.ok(names.includes(name), `workbook item ${name}`);
        }
        for (const item of items) {
          const query = at(item, 'content.query');
          if (typeof query === 'string') assertQueryMatchesCode(query, `workbook ${text(at(item, 'name'))}`);
        }
        assert.equal(at(workbook.properties ?? null, 'sourceId'), one(snapshot, 'Microsoft.Insights/components').id);
      });
    });
  });
}
