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
import { assertRegistration, type Binding, expectedFunctionNames } from '../support/expectedRegistrations';

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

  it('registers every function of src/names.ts once, under the name operators see in the portal, without any setting', () => {
    assert.deepEqual(registrations.map((r) => r.name).sort(), expectedFunctionNames());
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

  for (const name of expectedFunctionNames()) {
    it(`registers ${name} with its trigger, schedule, queue, route and auth level`, () => {
      const found = registrations.filter((r) => r.name === name);
      assert.equal(found.length, 1, `${name} is registered once`);
      assertRegistration(name, (found[0] as Registration).bindings);
    });
  }
});
