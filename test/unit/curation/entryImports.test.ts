import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = join(__dirname, '..', '..', '..', '..');
const src = join(root, 'src');

/** The static (load-time) imports of a TypeScript file: `import … from`, not `import type`, not require() or import(). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers: string[] = [];
  for (const match of text.matchAll(/^\s*(import|export)\s+(?!type\b)[^;]*?\sfrom\s+'([^']+)'/gms)) {
    specifiers.push(match[2] as string);
  }
  for (const match of text.matchAll(/^\s*import\s+'([^']+)'/gm)) specifiers.push(match[1] as string);
  return specifiers;
}

function resolveLocal(from: string, specifier: string): string | undefined {
  const base = resolve(dirname(from), specifier);
  for (const candidate of [`${base}.ts`, join(base, 'index.ts')]) if (existsSync(candidate)) return candidate;
  return undefined;
}

/** Every module an entry loads at start-up (following static imports only) and the packages they import. */
function loadedAtStart(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (files.has(file)) continue;
    files.add(file);
    for (const specifier of staticImports(file)) {
      if (specifier.startsWith('.')) {
        const target = resolveLocal(file, specifier);
        if (target !== undefined) queue.push(target);
      } else packages.add(specifier);
    }
  }
  return { files, packages };
}

const entries = [
  join(src, 'index.ts'),
  join(src, 'local', 'cli.ts'),
  ...readdirSync(join(src, 'functions'))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => join(src, 'functions', name)),
];

describe('DuckDB stays out of the entry points', () => {
  it('loads neither src/curation nor @duckdb/* when the Functions entry, a function file or the command line starts', () => {
    for (const entry of entries) {
      const { files, packages } = loadedAtStart(entry);
      const curation = [...files].filter((file) => file.startsWith(join(src, 'curation')));
      assert.deepEqual(
        curation.map((file) => relative(root, file)),
        [],
        relative(root, entry),
      );
      assert.deepEqual(
        [...packages].filter((name) => name.startsWith('@duckdb/')),
        [],
        relative(root, entry),
      );
    }
  });

  it('has no DuckDB module in require.cache after the compiled Functions entry and every function file are loaded', () => {
    // The same rule at run time, on tsc's output (dist/src): lazy require() calls are not followed by the static
    // check above. `npm run bench` checks the bundle and `run` the same way (item 2).
    const built = join(root, 'dist', 'src');
    const files = [
      join(built, 'index.js'),
      ...readdirSync(join(built, 'functions'))
        .filter((name) => name.endsWith('.js'))
        .map((name) => join(built, 'functions', name)),
    ];
    const script = `for (const f of JSON.parse(process.argv[1])) require(f);
process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((k) => /[\\\\/]@?duckdb|duckdb\\.node$/.test(k))));`;
    const loaded = JSON.parse(
      execFileSync(process.execPath, ['-e', script, JSON.stringify(files)], {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    ) as string[];
    assert.ok(files.length > 1);
    assert.deepEqual(loaded, []);
    const probe = JSON.parse(
      execFileSync(
        process.execPath,
        [
          '-e',
          script,
          JSON.stringify([
            join(built, 'adapters', 'curation', 'duckDbCurationEngine.js'),
            join(built, 'curation', 'convertFile.js'),
          ]),
        ],
        { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    ) as string[];
    assert.ok(probe.length > 0, 'the probe sees DuckDB when convertFile is loaded');
  });

  it('sees the import that would break the rule (the check can fail)', () => {
    const { files, packages } = loadedAtStart(join(src, 'curation', 'convertFile.ts'));
    assert.ok(packages.has('@duckdb/node-api'));
    assert.ok(files.has(join(src, 'curation', 'focus12.ts')));
  });
});
