/**
 * What the Functions host sees when it loads the app: a fake `@azure/functions-core` (the module only the
 * worker injects) records every registration, so names, triggers, schedules, routes and queues are checked
 * without the host. Runs in its own process (node --test runs each file in one), so the fake stays here.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import Module from 'node:module';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';

interface Binding {
  type: string;
  direction: string;
  [key: string]: unknown;
}

interface Registration {
  name: string;
  bindings: Record<string, Binding>;
  callback: unknown;
}

const registrations: Registration[] = [];
let programmingModels = 0;

/** The worker-side API that `@azure/functions` looks for; only what registration uses. */
const fakeCore = {
  setProgrammingModel(): void {
    programmingModels++;
  },
  registerFunction(metadata: { name: string; bindings: Record<string, Binding> }, callback: unknown) {
    registrations.push({ name: metadata.name, bindings: metadata.bindings, callback });
    return { dispose() {} };
  },
  registerHook() {
    return { dispose() {} };
  },
  log(): void {},
};

function installFakeCore(): void {
  const fakePath = join(__dirname, '__fake_azure_functions_core__.js');
  const loader = Module as unknown as {
    _resolveFilename: (request: string, ...rest: unknown[]) => string;
  };
  const resolve = loader._resolveFilename;
  loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    return request === '@azure/functions-core' ? fakePath : resolve.call(this, request, ...rest);
  };
  const fake = new Module(fakePath);
  fake.filename = fakePath;
  fake.loaded = true;
  fake.exports = fakeCore;
  require.cache[fakePath] = fake;
}

/** The app settings the code reads: importing a function file must not need any of them. */
const SETTINGS = [
  'EXPORT_CURRENCIES',
  'EXPORT_SCHEDULE',
  'AzureWebJobsStorage',
  'DESTINATION_STORAGE',
  'GRAPH_BASE_URL',
  'APPLICATIONINSIGHTS_CONNECTION_STRING',
];

const functionsDir = join(__dirname, '..', '..', 'src', 'functions');
const modules = new Map<string, Record<string, unknown>>();
const warnings: string[] = [];

function registered(name: string): Registration {
  const found = registrations.filter((r) => r.name === name);
  assert.equal(found.length, 1, `${name} is registered once`);
  return found[0] as Registration;
}

/** The one trigger binding of a function, and its other bindings. */
function triggerOf(registration: Registration): { trigger: Binding; others: Binding[] } {
  const bindings = Object.values(registration.bindings);
  const triggers = bindings.filter((b) => /trigger$/i.test(b.type));
  assert.equal(triggers.length, 1, `${registration.name} has one trigger`);
  return { trigger: triggers[0] as Binding, others: bindings.filter((b) => !/trigger$/i.test(b.type)) };
}

describe('function registration (what the Functions host sees)', () => {
  before(() => {
    installFakeCore();
    for (const name of SETTINGS) delete process.env[name];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      warnings.push(args.map(String).join(' '));
    };
    try {
      require(join(__dirname, '..', '..', 'src', 'index.js'));
      for (const file of readdirSync(functionsDir)
        .filter((f) => f.endsWith('.js'))
        .sort()) {
        modules.set(file.replace(/\.js$/, ''), require(join(functionsDir, file)) as Record<string, unknown>);
      }
    } finally {
      console.warn = warn;
    }
  });

  it('registers the eight functions under the names operators see in the portal, without any setting', () => {
    assert.deepEqual(registrations.map((r) => r.name).sort(), [
      'copyExportBlob',
      'exportCopyPoison',
      'exportStatusPoison',
      'listExportRuns',
      'pollExportStatus',
      'startExportsHttp',
      'startExportsTimer',
      'superviseRuns',
    ]);
    assert.equal(programmingModels, 1, 'the programming model is set once');
    assert.deepEqual(warnings, [], 'no test-mode warning: the fake runtime was detected');
  });

  it('registers each function from the file of its name, with the handler that file exports', () => {
    for (const registration of registrations) {
      const exports = modules.get(registration.name);
      assert.ok(exports !== undefined, `src/functions/${registration.name}.ts exists`);
      assert.equal(typeof exports[registration.name], 'function');
      assert.equal(registration.callback, exports[registration.name], `${registration.name} registers its own handler`);
    }
  });

  it('registers startExportsTimer on %EXPORT_SCHEDULE% with runOnStartup false', () => {
    const { trigger, others } = triggerOf(registered('startExportsTimer'));
    assert.equal(trigger.type, 'timerTrigger');
    assert.equal(trigger.direction, 'in');
    assert.equal(trigger['schedule'], '%EXPORT_SCHEDULE%');
    assert.equal(trigger['runOnStartup'], false);
    assert.equal(trigger['useMonitor'], true);
    assert.deepEqual(others, []);
  });

  it('registers superviseRuns every 10 minutes with runOnStartup false', () => {
    const { trigger, others } = triggerOf(registered('superviseRuns'));
    assert.equal(trigger.type, 'timerTrigger');
    assert.equal(trigger['schedule'], '0 */10 * * * *');
    assert.equal(trigger['runOnStartup'], false);
    assert.deepEqual(others, []);
  });

  const httpRoutes: Array<[string, string, string]> = [
    ['startExportsHttp', 'POST', 'exports'],
    ['listExportRuns', 'GET', 'exports/runs/{runId?}'],
  ];
  for (const [name, method, route] of httpRoutes) {
    it(`registers ${name} as ${method} /api/${route} behind a function key`, () => {
      const registration = registered(name);
      const { trigger, others } = triggerOf(registration);
      assert.equal(trigger.type, 'httpTrigger');
      assert.equal(trigger.direction, 'in');
      assert.deepEqual(trigger['methods'], [method]);
      assert.equal(trigger['route'], route);
      assert.equal(trigger['authLevel'], 'function');
      assert.deepEqual(
        others.map((b) => [b.type, b.direction]),
        [['http', 'out']],
      );
      assert.equal(registration.bindings['$return']?.type, 'http', 'the handler returns the response');
    });
  }

  const queueTriggers: Array<[string, string]> = [
    ['pollExportStatus', 'export-status'],
    ['copyExportBlob', 'export-copy'],
    ['exportStatusPoison', 'export-status-poison'],
    ['exportCopyPoison', 'export-copy-poison'],
  ];
  for (const [name, queueName] of queueTriggers) {
    it(`registers ${name} on the queue ${queueName} of AzureWebJobsStorage`, () => {
      const { trigger, others } = triggerOf(registered(name));
      assert.equal(trigger.type, 'queueTrigger');
      assert.equal(trigger.direction, 'in');
      assert.equal(trigger['queueName'], queueName);
      assert.equal(trigger['connection'], 'AzureWebJobsStorage');
      assert.deepEqual(others, [], 'no output binding: messages are sent with a delay by the queue adapter');
    });
  }
});
