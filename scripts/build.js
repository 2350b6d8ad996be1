#!/usr/bin/env node

// Builds with esbuild (no type checking: that is `npm run typecheck`, part of `npm test` and `npm run lint`).
//
//   node scripts/build.js             both of the below
//   node scripts/build.js --cli       the command line in one file: dist/cli/local/cli.js (with the emulator's
//                                     gzip worker next to it); the tests keep running tsc's dist/src and dist/test
//   node scripts/build.js --package   the deployment package in dist/package/ (azure.yaml `dist`):
//                                     main.js (index.ts and every function file: what the host loads),
//                                     core.js (what the first invocation loads), dependencies included,
//                                     host.json and a package.json whose `main` is main.js
//
// bin/csp-unbilled-export.js calls buildCli() itself when a source is newer than its output, so
// `npm start` and `npm run cli` never wait for a compiler. See docs/packaging.md.

const {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} = require('node:fs');
const { join, relative } = require('node:path');

const root = join(__dirname, '..');
const PACKAGE_DIR = join(root, 'dist', 'package');
const PACKAGE_MAIN = 'main.js';
/** Node of the Flex Consumption app (infra: functionAppConfig.runtime); the package must not need newer syntax. */
const TARGET = 'node20';

/** Every TypeScript file under `dir`, as absolute paths, sorted. */
function typeScriptFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...typeScriptFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out.sort();
}

/**
 * Resolves every package the way Node resolves it for the CommonJS code that tsc emits: with the "require"
 * condition of `exports`, also for `import` statements (esbuild would otherwise take the "import" condition
 * and bundle the ESM builds, some of which need import.meta.url, e.g. @azure/storage-common's crc64).
 */
const requireConditionPlugin = {
  name: 'require-condition',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.kind !== 'import-statement' && args.kind !== 'dynamic-import') return undefined;
      if (args.pluginData?.requireCondition) return undefined;
      const result = await build.resolve(args.path, {
        kind: 'require-call',
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { requireCondition: true },
      });
      return result.errors.length > 0 ? undefined : result;
    });
  },
};

/**
 * DuckDB (the curation engine) in the deployment package. Its JavaScript is bundled into core.js like every other
 * package; its native binding cannot be: the Functions platform (Linux x64, glibc) loads
 * `duckdb/linux-x64/duckdb.node` next to core.js, with `libduckdb.so` beside it (the binding's RUNPATH is $ORIGIN).
 * The other platforms' bindings stay unresolved requires, never taken there. The package has no node_modules.
 */
const DUCKDB_DIR = 'duckdb/linux-x64';
const duckdbBindingPlugin = {
  name: 'duckdb-binding',
  setup(build) {
    build.onResolve({ filter: /^@duckdb\/node-bindings-[^/]+\/duckdb\.node$/ }, (args) => ({
      path: args.path === '@duckdb/node-bindings-linux-x64/duckdb.node' ? `./${DUCKDB_DIR}/duckdb.node` : args.path,
      external: true,
    }));
  },
};

/** Copies the linux-x64 binding and the FinOps toolkit open data (read by the curation next to core.js). */
function copyCurationFiles(dir) {
  const binding = join(root, 'node_modules', '@duckdb', 'node-bindings-linux-x64');
  mkdirSync(join(dir, DUCKDB_DIR), { recursive: true });
  for (const name of ['duckdb.node', 'libduckdb.so', 'LICENSE']) {
    copyFileSync(join(binding, name), join(dir, DUCKDB_DIR, name));
  }
  cpSync(join(root, 'src', 'curation', 'data'), join(dir, 'data'), { recursive: true });
}

/** The command line, bundled (bin/csp-unbilled-export.js runs it). Three folders deep, as dist/src/local/cli.js is:
 * the code finds host.json at ../../.. and the emulator's gzip worker next to itself. */
const CLI_DIR = join(root, 'dist', 'cli', 'local');
const CLI_FILE = join(CLI_DIR, 'cli.js');

/** Newest modification time of the files a CLI bundle is made of (sources, lock file, this script). */
function newestInput() {
  const inputs = [...typeScriptFiles(join(root, 'src')), join(root, 'package-lock.json'), __filename];
  return Math.max(...inputs.filter((file) => existsSync(file)).map((file) => statSync(file).mtimeMs));
}

/** True when the CLI bundle is missing or older than a source (a few hundred stat calls, no compiler). */
function cliBuildIsStale() {
  return !existsSync(CLI_FILE) || statSync(CLI_FILE).mtimeMs < newestInput();
}

/**
 * dist/cli/local/cli.js: the command line and everything it imports in one file (one file to read instead of
 * about 900 modules), and the emulator's gzip worker next to it. Azurite stays a package: it runs as its own process.
 */
async function buildCli() {
  const esbuild = require('esbuild');
  await esbuild.build({
    entryPoints: {
      cli: join(root, 'src', 'local', 'cli.ts'),
      gzipUsageWorker: join(root, 'src', 'emulator', 'gzipUsageWorker.ts'),
    },
    outdir: CLI_DIR,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: TARGET,
    // DuckDB stays a package: its native binding is loaded from node_modules by the commands that convert or query.
    external: ['@azure/functions-core', 'azurite', '@duckdb/*'],
    plugins: [requireConditionPlugin],
    // Minified (half the bytes to compile at every command); names kept for error names and stack traces.
    minify: true,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
}

/** The files the Functions host loads: src/index.ts first (app.setup), then every function file. */
function functionEntryFiles() {
  const functionsDir = join(root, 'src', 'functions');
  const functionFiles = readdirSync(functionsDir)
    .filter((name) => name.endsWith('.ts'))
    .sort()
    .map((name) => join(functionsDir, name))
    // A function file registers a function (app.http, app.timer, app.storageQueue...); helpers do not.
    .filter((path) => /\bapp\.\w+\(/.test(readFileSync(path, 'utf8')));
  return [join(root, 'src', 'index.ts'), ...functionFiles];
}

/**
 * Splits the package in two files. The `require()` calls of src/functions/*.ts (and of src/index.ts and the
 * telemetry adapter) are the lazy loads of a handler's
 * first invocation (the pipeline, zod, composition.ts and with it the SDKs): in main.js each becomes a property
 * read of the second file, core.js, which the Functions host does not load at start-up (it is not `main`).
 * Everything else a function file imports (@azure/functions, names, errors) is in main.js.
 */
function lazySplitPlugin(lazyTargets) {
  // The files whose require() calls are lazy loads: the function files, the entry (composition.ts for the
  // telemetry options) and the telemetry adapter (the OpenTelemetry runtime and the Functions instrumentation).
  const functionsDir = join(root, 'src', 'functions');
  const lazyImporters = [join(root, 'src', 'index.ts'), join(root, 'src', 'telemetry', 'appInsightsTelemetry.ts')];
  return {
    name: 'lazy-split',
    setup(build) {
      build.onResolve({ filter: /.*/ }, async (args) => {
        const lazyImporter = args.importer.startsWith(functionsDir) || lazyImporters.includes(args.importer);
        if (args.kind !== 'require-call' || !lazyImporter) return undefined;
        if (args.pluginData?.lazySplit || args.pluginData?.requireCondition) return undefined;
        const resolved = await build.resolve(args.path, {
          kind: 'require-call',
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: { lazySplit: true },
        });
        if (resolved.errors.length > 0) return undefined;
        const key = relative(root, resolved.path).split('\\').join('/');
        lazyTargets.set(key, resolved.path);
        return { path: key, namespace: 'lazy-split' };
      });
      build.onLoad({ filter: /.*/, namespace: 'lazy-split' }, (args) => ({
        contents: `module.exports = require('./${CORE_FILE}')[${JSON.stringify(args.path)}];`,
        loader: 'js',
      }));
    },
  };
}

const CORE_FILE = 'core.js';

/** Options both files share: CommonJS for Node, minified (names kept for stack traces and error names). */
function bundleOptions() {
  return {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: TARGET,
    minify: true,
    keepNames: true,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  };
}

/** dist/package/: main.js (what the host loads), core.js (loaded by the first invocation), host.json, package.json. */
async function buildPackage() {
  const esbuild = require('esbuild');
  const entries = functionEntryFiles();
  rmSync(PACKAGE_DIR, { recursive: true, force: true });
  mkdirSync(PACKAGE_DIR, { recursive: true });
  const lazyTargets = new Map();
  const main = await esbuild.build({
    ...bundleOptions(),
    stdin: {
      contents: entries.map((file) => `require(${JSON.stringify(`./${relative(root, file)}`)});`).join('\n'),
      resolveDir: root,
      sourcefile: 'functions-entry.js',
      loader: 'js',
    },
    outfile: join(PACKAGE_DIR, PACKAGE_MAIN),
    // The Functions worker injects @azure/functions-core; it is no package. core.js sits next to main.js.
    external: ['@azure/functions-core', `./${CORE_FILE}`],
    plugins: [lazySplitPlugin(lazyTargets), requireConditionPlugin],
  });
  // Getters: a module of core.js runs when its first user asks for it, not when core.js loads.
  const coreEntry = [...lazyTargets]
    .map(
      ([key, path]) =>
        `Object.defineProperty(exports, ${JSON.stringify(key)}, { enumerable: true, get: () => require(${JSON.stringify(path)}) });`,
    )
    .join('\n');
  const core = await esbuild.build({
    ...bundleOptions(),
    stdin: { contents: coreEntry, resolveDir: root, sourcefile: 'core-entry.js', loader: 'js' },
    outfile: join(PACKAGE_DIR, CORE_FILE),
    external: ['@azure/functions-core'],
    plugins: [duckdbBindingPlugin, requireConditionPlugin],
  });
  copyCurationFiles(PACKAGE_DIR);
  const project = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const manifest = {
    name: project.name,
    version: project.version,
    description: project.description,
    license: project.license,
    private: true,
    main: PACKAGE_MAIN,
    engines: project.engines,
  };
  writeFileSync(join(PACKAGE_DIR, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(PACKAGE_DIR, 'host.json'), readFileSync(join(root, 'host.json')));
  return { outputs: { ...main.metafile.outputs, ...core.metafile.outputs } };
}

async function main(argv) {
  const cli = argv.includes('--cli');
  const pkg = argv.includes('--package');
  const both = !cli && !pkg;
  const started = performance.now();
  if (cli || both) await buildCli();
  if (pkg || both) {
    const metafile = await buildPackage();
    for (const [file, output] of Object.entries(metafile.outputs)) {
      console.log(`${relative(root, file)}: ${(output.bytes / 1024 / 1024).toFixed(2)} MiB`);
    }
  }
  console.log(
    `Built ${[cli || both ? 'dist/src' : '', pkg || both ? 'dist/package' : ''].filter(Boolean).join(' and ')} in ${Math.round(performance.now() - started)} ms (esbuild, no type check).`,
  );
}

module.exports = { buildCli, buildPackage, cliBuildIsStale, functionEntryFiles, CLI_FILE, PACKAGE_DIR, PACKAGE_MAIN };

if (require.main === module) {
  main(process.argv.slice(2)).catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
