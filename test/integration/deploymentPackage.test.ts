/**
 * The deployment package, proven (issue 8, item 3): built exactly as `azd deploy` builds it for this azure.yaml
 * (test/support/azdPackage.ts follows azd's source), unpacked into an empty folder far from any node_modules, and
 * loaded there by a fresh Node process the way the Functions worker loads an app (package.json `main`, a glob,
 * each matching file required), with a stand-in for `@azure/functions-core`. Every function of src/names.ts must
 * register with its trigger, schedule, queue, route and auth level, and the code loaded on first invocation must
 * load from the package alone.
 *
 * The build runs in a copy of the project (node_modules linked), so the working tree's dist/ is never rewritten
 * while other test files run. PACKAGE_TEST_PROJECT=<folder> checks another checkout (e.g. an older commit).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { collectPackageFiles, readAzureYamlService, resolveRemoteBuild } from '../support/azdPackage';
import { assertRegistration, type Binding, expectedFunctionNames } from '../support/expectedRegistrations';
import { fakeFunctionsCoreJs } from '../support/nodeScript';

const repoRoot = join(__dirname, '..', '..', '..');
const projectRoot = process.env['PACKAGE_TEST_PROJECT'] ?? repoRoot;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Runs in the unpacked package: what the worker does at start-up (azure-functions-nodejs-worker src/startApp.ts). */
const WORKER_STAND_IN = String.raw`
const Module = require('node:module');
const { readdirSync, readFileSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');
const appDir = process.cwd();
const registrations = [];
const warnings = [];
let programmingModels = 0;
${fakeFunctionsCoreJs(`  setProgrammingModel() { programmingModels++; },
  registerFunction(metadata, callback) { registrations.push({ name: metadata.name, bindings: metadata.bindings, callback }); return { dispose() {} }; },
  registerHook() { return { dispose() {} }; },
  log() {},`)}
console.warn = (...args) => warnings.push(args.map(String).join(' '));

/** globby(main, { cwd }) for the patterns package.json files use: {a,b}, *, **. */
function glob(pattern) {
  const alternatives = (p) => {
    const m = /\{([^{}]*)\}/.exec(p);
    return m === null ? [p] : m[1].split(',').flatMap((alt) => alternatives(p.slice(0, m.index) + alt + p.slice(m.index + m[0].length)));
  };
  const regexes = alternatives(pattern.replace(/^\.\//, '')).map((p) => new RegExp('^' + p.split('**/').map((part) => part.split('*').map((s) => s.replace(/[.+?^$()|[\]\\]/g, '\\$&')).join('[^/]*')).join('(?:.*/)?') + '$'));
  const files = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.push(relative(appDir, full).split('\\').join('/'));
    }
  };
  walk(appDir);
  return files.filter((f) => regexes.some((r) => r.test(f))).sort();
}

(async () => {
  const packageJson = JSON.parse(readFileSync(join(appDir, 'package.json'), 'utf8'));
  const main = packageJson.main;
  const entryFiles = main ? glob(main) : [];
  for (const file of entryFiles) {
    const path = join(appDir, file);
    if (file.endsWith('.mjs') || (file.endsWith('.js') && packageJson.type === 'module')) await import(path);
    else require(path);
  }
  // Everything else the package holds loads too (lazily required code: load it and every getter it exports).
  const others = {};
  for (const file of glob('**/*.js').filter((f) => !entryFiles.includes(f))) {
    const exports = require(join(appDir, file));
    others[file] = Object.keys(exports).filter((key) => exports[key] !== undefined);
  }
  // A first invocation without any setting: the handler loads the lazily required code and fails on the settings.
  let invocation = null;
  const timer = registrations.find((r) => r.name === 'startExportsTimer');
  if (timer) {
    const context = { log() {}, info() {}, warn() {}, error() {}, invocationId: 'package-test', functionName: timer.name };
    try {
      await timer.callback({ isPastDue: false }, context);
      invocation = { ok: true };
    } catch (error) {
      invocation = { ok: false, name: error.name, code: error.code, message: String(error.message).slice(0, 400) };
    }
  }
  // The curation engine as the curateExportFile function builds it (composition.ts), converting one raw file: DuckDB
  // must load from the package (its linux-x64 binding next to core.js), never from a node_modules.
  const nativeBefore = Object.keys(require.cache).filter((file) => file.endsWith('.node'));
  let curation = null;
  try {
    const composition = require(join(appDir, 'core.js'))['src/composition.ts'];
    const storage = { kind: 'connectionString', connectionString: 'UseDevelopmentStorage=true' };
    const deps = composition.buildSharedDeps({
      graph: { baseUrl: 'https://127.0.0.1:1/v1.0', emulator: true, caCertFile: undefined },
      hostStorage: storage,
      destination: { connection: storage, container: 'partner-billing', prefix: 'unbilled-usage', prefixes: {} },
      invoiceDiscovery: { mode: 'off', months: 3 },
      partnerCenter: { baseUrl: 'https://127.0.0.1:1/v1', emulator: true },
      copy: { singleCopyMaxBytes: 1, blockSizeBytes: 1, concurrency: 1 },
      curation: { enabled: true },
      appInsightsConnectionString: undefined,
    }, {});
    const { mkdtempSync, writeFileSync } = require('node:fs');
    const { gzipSync } = require('node:zlib');
    const dir = mkdtempSync(join(require('node:os').tmpdir(), 'package-curation-'));
    const line = JSON.stringify({ CustomerName: 'Contoso', BillingCurrency: 'USD', BillingPreTaxTotal: 1.25, UsageDate: '2026-11-02T00:00:00Z' });
    writeFileSync(join(dir, 'raw.json.gz'), gzipSync([line, line, ''].join(String.fromCharCode(10))));
    const result = await deps.curation.engine.convert({ inputPath: join(dir, 'raw.json.gz'), dataset: 'unbilledUsage',
      attributeSet: 'full', billingMonth: '2026-11', outputDir: join(dir, 'out'), partName: 'p', sourceRunId: 'r', sourceFileName: 'f' });
    curation = { ok: true, rowsRead: result.rowsRead, focusRows: result.focus.reduce((n, p) => n + p.rowCount, 0),
      native: Object.keys(require.cache).filter((file) => file.endsWith('.node')).map((file) => relative(appDir, file).split('\\').join('/')) };
  } catch (error) {
    curation = { ok: false, message: String(error && error.stack || error).slice(0, 800) };
  }
  let functionsResolvable = true;
  try { require.resolve('@azure/functions'); } catch { functionsResolvable = false; }
  process.stdout.write(JSON.stringify({ main, entryFiles, programmingModels, warnings, functionsResolvable, others, invocation, nativeBefore, curation,
    registrations: registrations.map((r) => ({ name: r.name, bindings: r.bindings, handler: typeof r.callback })) }));
})().catch((error) => { process.stderr.write(String(error && error.stack || error)); process.exit(1); });
`;

interface WorkerReport {
  main: string | undefined;
  entryFiles: string[];
  programmingModels: number;
  warnings: string[];
  functionsResolvable: boolean;
  others: Record<string, string[]>;
  invocation: { ok: boolean; name?: string; code?: string; message?: string } | null;
  /** Native modules loaded before the curation engine was used (none: DuckDB is not loaded at start-up). */
  nativeBefore: string[];
  curation: { ok: boolean; rowsRead?: number; focusRows?: number; native?: string[]; message?: string } | null;
  registrations: Array<{ name: string; bindings: Record<string, Binding>; handler: string }>;
}

const work = mkdtempSync(join(tmpdir(), 'package-test-'));
const copy = join(work, 'project');
const appDir = join(work, 'wwwroot');
let files: Array<{ path: string; bytes: number }> = [];
let report: WorkerReport | undefined;

describe('the deployment package azd uploads (built here, loaded by a stand-in Functions worker)', () => {
  before(() => {
    // The project as a fresh clone has it (no dist/, no local state), with the installed dependencies linked.
    cpSync(projectRoot, copy, {
      recursive: true,
      filter: (source) =>
        !/[\\/](node_modules|dist|\.git|\.azurite|\.local|\.azure|local\.settings\.json)$/.test(source),
    });
    symlinkSync(join(projectRoot, 'node_modules'), join(copy, 'node_modules'), 'dir');

    const service = readAzureYamlService(copy).properties;
    assert.equal(service.get('host'), 'function', 'azure.yaml: host function');
    assert.match(service.get('language') ?? '', /^(ts|js)$/, 'azure.yaml: language ts or js');
    const remoteBuildSetting = service.has('remoteBuild') ? service.get('remoteBuild') === 'true' : undefined;
    // What azd decides at deploy time (Flex Consumption); a refusal fails the test with azd's message.
    const remoteBuild = resolveRemoteBuild(join(copy, service.get('project') ?? '.'), remoteBuildSetting);
    assert.equal(
      remoteBuild,
      false,
      'the package is built here and deployed as it is (a remote build would install and build on the platform)',
    );

    // Restore (npm install) is already done: node_modules is linked. Build and Package both run `npm run build`.
    const project = join(copy, service.get('project') ?? '.');
    const build = spawnSync(npm, ['run', 'build'], { cwd: project, encoding: 'utf8', env: process.env });
    assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
    const packageRoot = join(project, service.get('dist') ?? '');
    assert.ok(existsSync(packageRoot), `the package folder ${service.get('dist') ?? '.'} exists after the build`);
    files = collectPackageFiles(packageRoot, remoteBuildSetting);

    // Unzipped on the platform: the files alone, in a folder with no node_modules above it.
    for (const file of files) {
      mkdirSync(dirname(join(appDir, file.path)), { recursive: true });
      cpSync(join(packageRoot, file.path), join(appDir, file.path));
    }
    for (let dir = appDir; dir !== dirname(dir); dir = dirname(dir)) {
      assert.ok(!existsSync(join(dirname(dir), 'node_modules')), `no node_modules above the app folder (${dir})`);
    }
    writeFileSync(join(work, 'worker.js'), WORKER_STAND_IN);
    const run = spawnSync(process.execPath, [join(work, 'worker.js')], {
      cwd: appDir,
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', NODE_PATH: '', NO_PROXY: '127.0.0.1,localhost' },
    });
    assert.equal(run.status, 0, `the stand-in worker failed to load the app:\n${run.stderr}`);
    report = JSON.parse(run.stdout) as WorkerReport;
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('uploads the built app only: no node_modules, sources, tests, settings or TypeScript', (t) => {
    const paths = files.map((f) => f.path);
    assert.ok(paths.includes('host.json'), 'host.json is in the package');
    assert.ok(paths.includes('package.json'), 'package.json is in the package');
    for (const path of paths) {
      assert.doesNotMatch(
        path,
        /(^|\/)(node_modules|src|test|infra|\.git)\//,
        `${path} does not belong in the package`,
      );
      assert.doesNotMatch(path, /\.ts$|local\.settings\.json$|\.map$/, `${path} does not belong in the package`);
    }
    const bytes = files.reduce((sum, f) => sum + f.bytes, 0);
    const zipped = files.reduce((sum, f) => sum + deflateRawSync(readFileSync(join(appDir, f.path))).length, 0);
    t.diagnostic(
      `package: ${paths.join(', ')}; ${(bytes / 1048576).toFixed(2)} MiB, about ${(zipped / 1048576).toFixed(2)} MiB zipped`,
    );
  });

  it('loads package.json main from the package alone, where @azure/functions is no installed package', () => {
    assert.ok(report !== undefined);
    assert.ok(report.main, 'package.json has a main');
    assert.ok(report.entryFiles.length > 0, `main "${report.main}" matches files of the package`);
    assert.equal(report.functionsResolvable, false, 'no node_modules is reachable: everything comes from the package');
    assert.equal(report.programmingModels, 1, 'the programming model is set once');
    assert.deepEqual(report.warnings, [], 'no test-mode warning: the stand-in worker was detected');
  });

  it('registers every function of src/names.ts once, each with its handler', () => {
    assert.ok(report !== undefined);
    assert.deepEqual(report.registrations.map((r) => r.name).sort(), expectedFunctionNames());
    for (const registration of report.registrations) assert.equal(registration.handler, 'function', registration.name);
  });

  for (const name of expectedFunctionNames()) {
    it(`registers ${name} with its trigger, schedule, queue, route and auth level`, () => {
      const registration = report?.registrations.find((r) => r.name === name);
      assert.ok(registration !== undefined, `${name} is registered`);
      assertRegistration(name, registration.bindings);
    });
  }

  it('loads the code of the first invocation from the package too, and reports missing settings as CONFIG_INVALID', () => {
    assert.ok(report !== undefined);
    for (const [file, keys] of Object.entries(report.others)) assert.ok(keys.length >= 0, `${file} loads`);
    assert.ok(report.invocation !== null, 'startExportsTimer was invoked');
    assert.equal(report.invocation.ok, false, 'without settings the invocation fails');
    assert.equal(report.invocation.code, 'CONFIG_INVALID', `the settings are named: ${report.invocation.message}`);
  });

  it('loads DuckDB only when the curation engine converts, from the linux-x64 binding the package carries', () => {
    assert.ok(report !== undefined);
    assert.deepEqual(report.nativeBefore, [], 'no native module is loaded by the entry, the functions or their code');
    assert.ok(report.curation?.ok, `the curation engine converted a file: ${report.curation?.message ?? ''}`);
    assert.equal(report.curation.rowsRead, 2);
    assert.deepEqual(report.curation.native, ['duckdb/linux-x64/duckdb.node']);
    assert.ok(
      files.some((f) => f.path === 'duckdb/linux-x64/libduckdb.so'),
      'libduckdb.so is next to the binding',
    );
  });
});
