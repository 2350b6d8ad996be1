/**
 * Preloaded (`node -r moduleProbe.js`) by the bench into a command it spawns: records when and from where the
 * process first loaded a DuckDB module, and when it exits writes `{ firstLoad?: { at, stack }, duckdb: [paths] }` to
 * BENCH_MODULES_FILE. The bench checks that DuckDB is not loaded on the way to the first Graph request, and only by a
 * conversion.
 */
import { writeFileSync } from 'node:fs';

import Module = require('node:module');

const file = process.env['BENCH_MODULES_FILE'];
if (file !== undefined && file !== '') {
  let firstLoad: { at: number; stack: string } | undefined;
  const internals = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const load = internals._load;
  internals._load = function probed(this: unknown, request: string, ...rest: unknown[]) {
    if (firstLoad === undefined && /duckdb/.test(request)) {
      firstLoad = { at: performance.timeOrigin + performance.now(), stack: new Error(request).stack ?? '' };
    }
    return load.call(this, request, ...rest);
  };
  process.once('exit', () => {
    const duckdb = Object.keys(require.cache).filter((name) => /[\\/]@?duckdb|duckdb\.node$/.test(name));
    writeFileSync(file, JSON.stringify({ firstLoad, duckdb }));
  });
}
