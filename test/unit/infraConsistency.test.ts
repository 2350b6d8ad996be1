/**
 * Keeps infra/ (Bicep, alert queries, azure.yaml) and the docs in step with the code: the settings the code
 * reads, the queues and tables it uses, the telemetry events the alerts count, the error codes it raises.
 * Reads files only; no Azure, no network.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { SETTINGS } from '../../src/config';
import { ErrorCodes } from '../../src/errors';
import { HOST_STORAGE_CONNECTION, QueueNames, TableNames, TelemetryEvents, TelemetryMetrics } from '../../src/names';
import {
  BUILT_IN_ROLES,
  FLEX_FORBIDDEN_SETTINGS,
  HOST_STORAGE_IDENTITY_SETTINGS,
  NOT_SET_IN_INFRA,
  SET_BEYOND_SETTINGS,
  SET_ONLY_WITH_FINOPS_HUB,
} from '../support/infraExpectations';

// What the infra deliberately does differently from SETTINGS (each with its reason), the roles and the settings
// Flex Consumption refuses: test/support/infraExpectations.ts (shared with the snapshot tests of npm run test:infra).

/** Environment values azd itself provides (the rest must be outputs of infra/main.bicep). */
const AZD_BUILT_IN_VALUES = ['AZURE_ENV_NAME', 'AZURE_LOCATION', 'AZURE_SUBSCRIPTION_ID', 'AZURE_PRINCIPAL_ID'];

/** Microsoft Graph PartnerBilling.Read.All, application permission: docs/deploy.md grants it. */
const PARTNER_BILLING_READ_ALL_APP_ROLE = '7c3e1994-38ff-4412-a99b-9369f6bb7706';

// ---------------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------------

/** The repository root: the nearest folder above this file whose package.json is this project's. */
function findRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
      if (parsed.name === 'csp-unbilled-export') return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No csp-unbilled-export package.json above ${__dirname}`);
    dir = parent;
  }
}

const root = findRoot();
const infraDir = join(root, 'infra');

function read(...segments: string[]): string {
  return readFileSync(join(root, ...segments), 'utf8');
}

function listFiles(dir: string, extension: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(path, extension));
    else if (entry.name.endsWith(extension)) out.push(path);
  }
  return out.sort();
}

function relativeName(path: string): string {
  return path.slice(root.length + 1).replace(/\\/g, '/');
}

// ---------------------------------------------------------------------------------------------------------------
// A little Bicep reading: comments out, declarations, object keys
// ---------------------------------------------------------------------------------------------------------------

/** Bicep source with every comment blanked (strings kept, line breaks kept), so that comments never count as code. */
function stripBicepComments(source: string): string {
  let out = '';
  let i = 0;
  while (i < source.length) {
    if (source.startsWith("'''", i)) {
      const end = source.indexOf("'''", i + 3);
      const stop = end === -1 ? source.length : end + 3;
      out += source.slice(i, stop);
      i = stop;
    } else if (source[i] === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== "'" && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
    } else if (source.startsWith('//', i)) {
      const end = source.indexOf('\n', i);
      const stop = end === -1 ? source.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (source.startsWith('/*', i)) {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      out += source[i];
      i++;
    }
  }
  return out;
}

const DECLARATION = /^(?:@|param |var |resource |module |output |targetScope|metadata |type |func |import )/;

/** The text of a top-level `var NAME = ...` declaration, up to the next top-level declaration. */
function varExpression(code: string, name: string): string {
  const lines = code.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^var ${name}\\s*=`).test(line));
  assert.notEqual(start, -1, `infra/main.bicep declares no "var ${name}"`);
  const body: string[] = [lines[start] ?? ''];
  for (const line of lines.slice(start + 1)) {
    if (DECLARATION.test(line)) break;
    body.push(line);
  }
  return body.join('\n');
}

/** `KEY: expression` lines of the object literals in an expression (app settings objects have no nesting). */
function objectEntries(expression: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of expression.split('\n')) {
    const match = /^\s+(?:'([^']+)'|([A-Za-z_][A-Za-z0-9_]*))\s*:\s*(.+?)\s*$/.exec(line);
    if (match !== null) entries.set(match[1] ?? match[2] ?? '', match[3] ?? '');
  }
  return entries;
}

/** String literals of an expression. */
function stringLiterals(expression: string): string[] {
  return [...expression.matchAll(/'((?:[^'\\\n]|\\.)*)'/g)].map((m) => m[1] ?? '');
}

interface BicepParam {
  type: string;
  default: string | undefined;
}

/** `param NAME TYPE [= DEFAULT]` declarations (default as written, string quotes removed). */
function params(code: string): Map<string, BicepParam> {
  const out = new Map<string, BicepParam>();
  for (const match of code.matchAll(/^param (\w+) (\w+)(?: = (.+?))?\s*$/gm)) {
    const raw = match[3];
    const value = raw === undefined ? undefined : (/^'(.*)'$/.exec(raw)?.[1] ?? raw);
    out.set(match[1] ?? '', { type: match[2] ?? '', default: value });
  }
  return out;
}

function outputs(code: string): Set<string> {
  return new Set([...code.matchAll(/^output (\w+) /gm)].map((m) => m[1] ?? ''));
}

// ---------------------------------------------------------------------------------------------------------------
// The infra as the tests see it
// ---------------------------------------------------------------------------------------------------------------

const mainSource = read('infra', 'main.bicep');
const mainCode = stripBicepComments(mainSource);
const bicepFiles = listFiles(infraDir, '.bicep');
const bicepSources = new Map(bicepFiles.map((file) => [file, readFileSync(file, 'utf8')]));
const queryFiles = listFiles(join(infraDir, 'queries'), '.kql');
const functionAppCode = stripBicepComments(read('infra', 'modules', 'functionApp.bicep'));

/**
 * The app settings of infra/main.bicep: `var appSettings = union(a, b, ...)` and the entries of a, b, ... A key set in
 * several parts keeps its first expression: the later parts are conditional overrides (empty by default).
 */
function appSettings(): Map<string, string> {
  const union = /^var appSettings\s*=\s*union\(([^)]*)\)/m.exec(mainCode);
  assert.ok(union !== null, 'infra/main.bicep must assemble the app settings as "var appSettings = union(...)"');
  const settings = new Map<string, string>();
  for (const part of (union[1] ?? '').split(',')) {
    for (const [key, value] of objectEntries(varExpression(mainCode, part.trim()))) {
      if (!settings.has(key)) settings.set(key, value);
    }
  }
  return settings;
}

const settings = appSettings();
const settingNames = new Set(SETTINGS.map((s) => s.name));

// ---------------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------------

describe('infra/main.bicep app settings', () => {
  it('sets every setting the code reads, or lists it as deliberately left out with a reason', () => {
    const missing = SETTINGS.filter((s) => !settings.has(s.name) && NOT_SET_IN_INFRA[s.name] === undefined);
    assert.deepEqual(
      missing.map((s) => s.name),
      [],
      'Set these in infra/main.bicep (a parameter or a resource output), or add them to NOT_SET_IN_INFRA with the reason',
    );
  });

  it('keeps the left-out list honest: every entry is a known setting that infra indeed leaves out', () => {
    for (const [name, reason] of Object.entries(NOT_SET_IN_INFRA)) {
      assert.ok(settingNames.has(name), `NOT_SET_IN_INFRA names ${name}, which src/config.ts SETTINGS no longer has`);
      assert.ok(!settings.has(name), `${name} is set in infra/main.bicep but listed as left out ("${reason}")`);
      assert.ok(reason.length > 20, `${name} needs a reason`);
    }
  });

  it('sets only settings the code, the Functions host or @azure/identity reads', () => {
    const hostPrefix = `${HOST_STORAGE_CONNECTION}__`;
    const unknown = [...settings.keys()].filter(
      (name) => !settingNames.has(name) && SET_BEYOND_SETTINGS[name] === undefined && !name.startsWith(hostPrefix),
    );
    assert.deepEqual(unknown, [], 'A typo, or a setting to add to src/config.ts SETTINGS (or to SET_BEYOND_SETTINGS)');
  });

  it('reaches host storage with the managed identity (identity-based AzureWebJobsStorage__* settings)', () => {
    for (const property of HOST_STORAGE_IDENTITY_SETTINGS) {
      assert.ok(settings.has(`${HOST_STORAGE_CONNECTION}__${property}`), `${HOST_STORAGE_CONNECTION}__${property}`);
    }
    assert.equal(settings.get(`${HOST_STORAGE_CONNECTION}__credential`), "'managedidentity'");
    assert.match(settings.get(`${HOST_STORAGE_CONNECTION}__clientId`) ?? '', /identity\.outputs\.clientId/);
  });

  it('reaches the destination and Application Insights with the user-assigned identity', () => {
    assert.ok(settings.has('DESTINATION_STORAGE__blobServiceUri'));
    assert.match(settings.get('DESTINATION_STORAGE__clientId') ?? '', /identity\.outputs\.clientId/);
    assert.match(settings.get('AZURE_CLIENT_ID') ?? '', /identity\.outputs\.clientId/);
    assert.match(
      settings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING') ?? '',
      /^'ClientId=\$\{identity\.outputs\.clientId\};Authorization=AAD'$/,
    );
    assert.ok(settings.has('APPLICATIONINSIGHTS_CONNECTION_STRING'));
  });

  it("gives every setting with a default in SETTINGS the same default in its Bicep parameter (and its fallback for '')", () => {
    const declared = params(mainCode);
    let compared = 0;
    for (const setting of SETTINGS) {
      const direct = settings.get(setting.name);
      if (setting.default === undefined || direct === undefined) continue;
      let expression: string = direct;
      // A string parameter an older azd may pass as '': var xInEffect = orDefault(param, 'fallback'), possibly
      // checked by var xChecked = <condition on xInEffect> ? xInEffect : fail(...).
      for (let hops = 0; hops < 3 && /^\w+$/.test(expression) && !declared.has(expression); hops++) {
        const variable: string = new RegExp(`^var ${expression}\\s*=\\s*(.+)$`, 'm').exec(mainCode)?.[1]?.trim() ?? '';
        const fallback = /^orDefault\((\w+), '([^']*)'\)$/.exec(variable);
        if (fallback !== null) {
          assert.equal(fallback[2], setting.default, `${setting.name}: the orDefault fallback differs from SETTINGS`);
          expression = fallback[1] ?? '';
        } else {
          expression = /\b\w+InEffect\b/.exec(variable)?.[0] ?? variable;
        }
      }
      const parameter = /^(?:string\((\w+)\)|(\w+))$/.exec(expression);
      const name = parameter?.[1] ?? parameter?.[2];
      const declaration = name === undefined ? undefined : declared.get(name);
      if (declaration === undefined) continue;
      compared++;
      assert.equal(
        declaration.default,
        setting.default,
        `param ${name} (${setting.name}) defaults to ${declaration.default}, src/config.ts to ${setting.default}`,
      );
    }
    assert.ok(compared >= 11, `only ${compared} settings map to parameters with defaults`);
  });

  it('sets none of the settings Flex Consumption refuses, anywhere in infra', () => {
    for (const [file, source] of bicepSources) {
      const code = stripBicepComments(source);
      for (const name of FLEX_FORBIDDEN_SETTINGS) {
        assert.doesNotMatch(code, new RegExp(`\\b${name}\\b`), `${relativeName(file)} sets ${name}`);
      }
    }
  });

  it('hands the assembled settings to the function app', () => {
    assert.match(mainCode, /^\s+appSettings: appSettings$/m, 'main.bicep passes appSettings to the function app');
    assert.match(functionAppCode, /name: 'appsettings'\s+properties: appSettings/, 'functionApp.bicep applies them');
  });
});

describe('infra function app', () => {
  it('runs Node.js 22 on Flex Consumption, with the runtime in functionAppConfig', () => {
    assert.match(functionAppCode, /sku: \{\s+name: 'FC1'\s+tier: 'FlexConsumption'\s+\}/);
    assert.match(functionAppCode, /functionAppConfig: \{[\s\S]*runtime: \{\s+name: 'node'\s+version: '22'\s+\}/);
    assert.doesNotMatch(functionAppCode, /linuxFxVersion|nodeVersion/);
    assert.match(functionAppCode, /httpsOnly: true/);
  });

  it('reads its deployment package from a blob container with the user-assigned identity', () => {
    assert.match(
      functionAppCode,
      /deployment: \{\s+storage: \{\s+type: 'blobContainer'[\s\S]*?authentication: \{\s+type: 'UserAssignedIdentity'/,
    );
  });

  it('disables shared key access, public blob access and TLS below 1.2 on every storage account it creates', () => {
    let accounts = 0;
    for (const [file, source] of bicepSources) {
      const code = stripBicepComments(source);
      for (const match of code.matchAll(/resource \w+ 'Microsoft\.Storage\/storageAccounts@[^']+'( existing)? = \{/g)) {
        if (match[1] !== undefined) continue;
        accounts++;
        const body = code.slice(match.index ?? 0);
        const end = body.search(/\n\}/);
        const account = body.slice(0, end);
        const name = relativeName(file);
        assert.match(account, /allowSharedKeyAccess: false/, `${name}: allowSharedKeyAccess`);
        assert.match(account, /allowBlobPublicAccess: false/, `${name}: allowBlobPublicAccess`);
        assert.match(account, /minimumTlsVersion: 'TLS1_2'/, `${name}: minimumTlsVersion`);
      }
    }
    assert.ok(accounts >= 2, 'host storage and the new destination account');
  });
});

describe('infra queues and tables', () => {
  it('creates every queue of src/names.ts QueueNames, and no other', () => {
    const declared = stringLiterals(varExpression(mainCode, 'hostQueueNames')).sort();
    assert.deepEqual(declared, Object.values(QueueNames).sort());
  });

  it('creates every ledger table of src/names.ts TableNames, and no other', () => {
    const declared = stringLiterals(varExpression(mainCode, 'ledgerTableNames')).sort();
    assert.deepEqual(declared, Object.values(TableNames).sort());
  });

  it('passes both lists to the host storage module, which creates one resource per name', () => {
    assert.match(mainCode, /queueNames: hostQueueNames/);
    assert.match(mainCode, /tableNames: ledgerTableNames/);
    const hostStorage = stripBicepComments(read('infra', 'modules', 'hostStorage.bicep'));
    assert.match(hostStorage, /queueServices\/queues@[^']+' = \[\s+for queueName in queueNames:/);
    assert.match(hostStorage, /tableServices\/tables@[^']+' = \[\s+for tableName in tableNames:/);
  });
});

describe('infra role assignments', () => {
  const guid = /'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'/gi;

  it('names every role definition GUID in a comment on the same or the previous line', () => {
    for (const [file, source] of bicepSources) {
      const lines = source.split('\n');
      lines.forEach((line, index) => {
        const code = line.split('//')[0] ?? '';
        for (const match of code.matchAll(guid)) {
          const id = (match[1] ?? '').toLowerCase();
          const role = BUILT_IN_ROLES[id];
          const where = `${relativeName(file)}:${index + 1}`;
          assert.ok(role !== undefined, `${where}: ${id} is not a known role; add it to BUILT_IN_ROLES with its name`);
          const comments = [line.slice(code.length), lines[index - 1] ?? ''].join(' ');
          assert.ok(comments.includes(role), `${where}: ${id} needs a comment naming "${role}"`);
        }
      });
    }
  });

  it('grants the host, destination and telemetry roles the app needs', () => {
    const rolesIn = (module: string): Set<string> =>
      new Set(
        [...read('infra', 'modules', module).matchAll(guid)].map(
          (m) => BUILT_IN_ROLES[(m[1] ?? '').toLowerCase()] ?? '',
        ),
      );
    // The roles on what the deployment creates are granted from main.bicep, through modules of their own
    // (storageRoles.bicep, appInsightsRoles.bicep), so that what-if can predict the modules that create them.
    const roleIds = (name: string): Set<string> =>
      new Set(
        [...varExpression(mainCode, name).matchAll(guid)].map((m) => BUILT_IN_ROLES[(m[1] ?? '').toLowerCase()] ?? ''),
      );
    const host = roleIds('hostStorageRoleIds');
    for (const role of [
      'Storage Blob Data Owner',
      'Storage Queue Data Contributor',
      'Storage Table Data Contributor',
    ]) {
      assert.ok(host.has(role), `host storage: ${role}`);
    }
    assert.ok(roleIds('telemetryRoleIds').has('Monitoring Metrics Publisher'));
    assert.ok(roleIds('destinationRoleIds').has('Storage Blob Data Contributor'));
    assert.match(mainCode, /roleIds: hostStorageRoleIds/);
    assert.match(mainCode, /roleIds: telemetryRoleIds/);
    assert.match(mainCode, /roleIds: destinationRoleIds/);
    assert.ok(rolesIn('existingDestination.bicep').has('Storage Blob Data Contributor'));
    assert.ok(rolesIn('finOpsHub.bicep').has('Storage Blob Data Contributor'), 'FinOps hub: the ingestion container');
  });

  it('grants the FinOps hub role and sets the hub settings only when a hub account is given, with the user-assigned identity', () => {
    assert.match(mainCode, /^module finOpsHub 'modules\/finOpsHub\.bicep' = if \(useFinOpsHub\) \{/m);
    assert.match(mainCode, /^var useFinOpsHub = !empty\(finOpsHubStorageAccountId\)$/m);
    assert.match(mainCode, /^var finOpsHubAppSettings = useFinOpsHub \? \{/m);
    assert.match(settings.get('FINOPS_HUB_STORAGE__clientId') ?? '', /identity\.outputs\.clientId/);
    assert.match(settings.get('FINOPS_HUB_STORAGE__blobServiceUri') ?? '', /finOpsHub!\.outputs\.blobServiceUri/);
    const hubPart = varExpression(mainCode, 'finOpsHubAppSettings');
    assert.deepEqual([...objectEntries(hubPart).keys()].sort(), [...SET_ONLY_WITH_FINOPS_HUB].sort());
    const hubModule = stripBicepComments(read('infra', 'modules', 'finOpsHub.bicep'));
    assert.match(
      hubModule,
      /resource ingestion '[^']+' existing = \{[^}]*name: 'ingestion'/,
      'the container is never created',
    );
    assert.match(hubModule, /scope: ingestion/, 'the role is scoped to the ingestion container');
  });
});

describe('infra alert queries', () => {
  const eventNames = new Set<string>(Object.values(TelemetryEvents));
  const metricNames = new Set<string>(Object.values(TelemetryMetrics));

  it('compares event names only with the events of src/names.ts TelemetryEvents', () => {
    for (const file of queryFiles) {
      const query = readFileSync(file, 'utf8').replace(/\/\/.*$/gm, '');
      const compared: string[] = [];
      for (const m of query.matchAll(/\bname\s*==\s*"([^"]*)"/g)) compared.push(m[1] ?? '');
      for (const m of query.matchAll(/\bname\s+in\s*\(([^)]*)\)/g)) {
        for (const literal of (m[1] ?? '').matchAll(/"([^"]*)"/g)) compared.push(literal[1] ?? '');
      }
      for (const name of compared)
        assert.ok(eventNames.has(name), `${relativeName(file)} counts unknown event ${name}`);
    }
  });

  it('mentions no ExportRun*/ExportMessage* name that the code does not send, in the queries or the Bicep', () => {
    const files = [...queryFiles, ...bicepFiles];
    for (const file of files) {
      for (const m of readFileSync(file, 'utf8').matchAll(/\bExport(?:Run|Message)[A-Za-z]*\b/g)) {
        const name = m[0];
        assert.ok(eventNames.has(name) || metricNames.has(name), `${relativeName(file)} names unknown ${name}`);
      }
    }
  });

  it('alerts on failed runs, on missing successful runs per series, and on poisoned messages that ended or met a run not ended', () => {
    const query = (name: string): string => read('infra', 'queries', name);
    assert.match(query('alert-run-failed.kql'), new RegExp(`name == "${TelemetryEvents.runFailed}"`));
    const noSuccess = query('alert-no-successful-run.kql');
    assert.match(noSuccess, new RegExp(`name == "${TelemetryEvents.runCompleted}"`));
    assert.match(noSuccess, /status in \("succeeded", "unchanged", "noData"\)/);
    assert.match(noSuccess, /^let successWindow = 32h;$/m);
    assert.match(noSuccess, /ago\(successWindow\)/);
    assert.match(
      noSuccess,
      /datatable\(dataset: string, currency: string, billingPeriod: string, attributeSet: string\) \[\n {4}"unbilledUsage", "USD", "current", "full"\n\];/,
    );
    assert.match(noSuccess, /join kind=leftouter successes on dataset, currency, billingPeriod, attributeSet/);
    const poisoned = query('alert-message-poisoned.kql');
    assert.match(poisoned, new RegExp(`name == "${TelemetryEvents.messagePoisoned}"`));
    assert.match(poisoned, /^ {4}endedRun = tostring\(customDimensions\.endedRun\),$/m);
    assert.match(
      poisoned,
      /^\| where runStatus !in \("succeeded", "unchanged", "noData", "failed"\) or endedRun == "true"$/m,
    );
  });

  it('loads every query file from the Bicep, and every loaded file exists', () => {
    const loaded = new Set<string>();
    for (const [file, source] of bicepSources) {
      for (const m of stripBicepComments(source).matchAll(/loadTextContent\('([^']+)'\)/g)) {
        const path = join(dirname(file), m[1] ?? '');
        assert.ok(existsSync(path), `${relativeName(file)} loads ${m[1]}, which does not exist`);
        loaded.add(path);
      }
    }
    for (const file of queryFiles) assert.ok(loaded.has(file), `${relativeName(file)} is not used by any Bicep file`);
  });

  it('fills the series and the window of the no-success alert from the configured values', () => {
    const alerts = stripBicepComments(read('infra', 'modules', 'alerts.bicep'));
    assert.match(alerts, /'let successWindow = 32h;', 'let successWindow = \$\{noSuccessWindowHours\}h;'/);
    assert.match(alerts, /' {4}"unbilledUsage", "USD", "current", "full"\\n'/);
    assert.match(alerts, /var noSuccessWindowHours = schedulePeriodHours \+ maxWaitHours \+ copyAllowanceHours/);
    assert.match(mainCode, /currencies: exportCurrencies/);
    assert.match(mainCode, /billingPeriods: billingPeriodsInEffect/);
    assert.match(mainCode, /attributeSet: attributeSetInEffect/);
    assert.match(mainCode, /maxWaitHours: maxWaitHours/);
    assert.match(settings.get('EXPORT_CURRENCIES') ?? '', /^exportCurrencies$/);
  });
});

describe('azd wiring', () => {
  const azureYaml = read('azure.yaml');
  const mainOutputs = outputs(mainCode);

  /** The services of azure.yaml: name -> its `key: value` lines (a minimal reader for this simple file). */
  function services(): Map<string, Map<string, string>> {
    const out = new Map<string, Map<string, string>>();
    let inServices = false;
    let current: Map<string, string> | undefined;
    for (const line of azureYaml.split('\n')) {
      if (/^\S/.test(line)) {
        inServices = /^services:\s*$/.test(line);
        current = undefined;
        continue;
      }
      if (!inServices) continue;
      const service = /^ {2}([\w-]+):\s*$/.exec(line);
      if (service !== null) {
        current = new Map();
        out.set(service[1] ?? '', current);
        continue;
      }
      const property = /^ {4}([\w-]+):\s*(.*?)\s*$/.exec(line);
      if (property !== null && current !== undefined) current.set(property[1] ?? '', property[2] ?? '');
    }
    return out;
  }

  it('deploys one TypeScript function service whose name is the azd-service-name tag of the function app', () => {
    const all = services();
    assert.equal(all.size, 1, 'azure.yaml has one service');
    const [name, service] = [...all][0] ?? ['', new Map<string, string>()];
    assert.equal(service.get('language'), 'ts');
    assert.equal(service.get('host'), 'function');
    assert.equal(service.get('project'), '.');
    const tag = /'azd-service-name': '([^']+)'/.exec(functionAppCode);
    assert.equal(tag?.[1], name, 'the azd-service-name tag in infra/modules/functionApp.bicep');
  });

  it('declares every parameter of main.parameters.json in main.bicep, and maps every required one', () => {
    const file = JSON.parse(read('infra', 'main.parameters.json')) as { parameters: Record<string, unknown> };
    const declared = params(mainCode);
    for (const name of Object.keys(file.parameters)) assert.ok(declared.has(name), `main.bicep has no param ${name}`);
    for (const [name, param] of declared) {
      if (param.default === undefined) assert.ok(name in file.parameters, `required param ${name} is not mapped`);
    }
  });

  it('refers only to outputs main.bicep has, in azure.yaml and docs/deploy.md', () => {
    const known = new Set([...mainOutputs, ...AZD_BUILT_IN_VALUES]);
    for (const m of azureYaml.matchAll(/\$(?:env:)?([A-Z][A-Z0-9_]+)/g)) {
      assert.ok(known.has(m[1] ?? ''), `azure.yaml uses ${m[1]}, which is no output of infra/main.bicep`);
    }
    const deploy = read('docs', 'deploy.md');
    for (const m of deploy.matchAll(/azd env get-value ([A-Z][A-Z0-9_]+)/g)) {
      assert.ok(known.has(m[1] ?? ''), `docs/deploy.md reads ${m[1]}, which is no output of infra/main.bicep`);
    }
    for (const output of ['AZURE_FUNCTION_APP_NAME', 'AZURE_RESOURCE_GROUP', 'AZURE_MANAGED_IDENTITY_PRINCIPAL_ID']) {
      assert.ok(mainOutputs.has(output), `main.bicep outputs ${output}`);
    }
  });
});

describe('docs', () => {
  it('has a section in docs/errors.md for every error code, and none for a code that no longer exists', () => {
    const text = read('docs', 'errors.md');
    const sections = [...text.matchAll(/^## (\S+)\s*$/gm)].map((m) => m[1] ?? '');
    const codes = new Set<string>(ErrorCodes);
    for (const code of ErrorCodes) assert.ok(sections.includes(code), `docs/errors.md has no "## ${code}" section`);
    for (const section of sections) {
      if (/^[A-Z][A-Z0-9_]+$/.test(section))
        assert.ok(codes.has(section), `docs/errors.md documents unknown ${section}`);
    }
    const bodies = text.split(/^## /m).slice(1);
    for (const body of bodies) {
      const code = body.split('\n')[0]?.trim() ?? '';
      if (!codes.has(code)) continue;
      assert.match(body, /\*\*Retried:\*\*/, `docs/errors.md ${code}: say whether it is retried`);
      assert.match(body, /\*\*What to do:\*\*/, `docs/errors.md ${code}: say what the operator should do`);
    }
  });

  it('grants PartnerBilling.Read.All and shows every alert query in docs/deploy.md', () => {
    const deploy = read('docs', 'deploy.md');
    assert.ok(deploy.includes(PARTNER_BILLING_READ_ALL_APP_ROLE), 'the PartnerBilling.Read.All app role id');
    for (const file of queryFiles) {
      const name = relativeName(file);
      assert.ok(deploy.includes(name), `docs/deploy.md does not point at ${name}`);
    }
  });

  it('quotes host.json values in the host.json table of docs/configuration.md exactly as host.json has them', () => {
    const rows = hostJsonTableRows(read('docs', 'configuration.md'));
    assert.ok(rows.length > 0, 'docs/configuration.md has a host.json table (a section whose heading names host.json)');
    const hostJson = JSON.parse(readFileSync(join(root, 'host.json'), 'utf8')) as unknown;
    for (const { path, quoted } of rows) {
      const actual = valueAt(hostJson, path);
      assert.ok(actual !== undefined, `docs/configuration.md quotes host.json ${path}, which host.json does not have`);
      assert.ok(
        sameValue(actual, quoted),
        `docs/configuration.md says ${path} is ${quoted}, host.json has ${JSON.stringify(actual)}`,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The host.json table of docs/configuration.md: the agreed format
// ---------------------------------------------------------------------------------------------------------------

/**
 * Rows of the host.json table(s) of a Markdown page: in a section whose heading contains "host.json", table rows whose
 * first two cells are code spans, the dotted host.json path and its value:
 * | `extensions.queues.maxDequeueCount` | `5` | why |
 */
function hostJsonTableRows(markdown: string): Array<{ path: string; quoted: string }> {
  const rows: Array<{ path: string; quoted: string }> = [];
  let inSection = false;
  for (const line of markdown.split('\n')) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading !== null) {
      inSection = (heading[1] ?? '').includes('host.json');
      continue;
    }
    if (!inSection) continue;
    const row = /^\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|/.exec(line);
    if (row !== null) rows.push({ path: row[1] ?? '', quoted: row[2] ?? '' });
  }
  return rows;
}

function valueAt(document: unknown, path: string): unknown {
  let current: unknown = document;
  for (const segment of path.split('.')) {
    if (typeof current !== 'object' || current === null || !(segment in current)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function sameValue(actual: unknown, quoted: string): boolean {
  if (typeof actual === 'string') return quoted === actual || quoted === JSON.stringify(actual);
  if (typeof actual === 'number' || typeof actual === 'boolean') return quoted === String(actual);
  return quoted === JSON.stringify(actual);
}
