/**
 * Preloaded (`node -r moduleProbe.js`) by the bench into a command it spawns: when the process exits, writes the
 * DuckDB modules it had loaded (`{ "duckdb": [paths] }`) to BENCH_MODULES_FILE. The native binding is loaded through
 * require(), so it is in require.cache too.
 */
import { writeFileSync } from 'node:fs';

const file = process.env['BENCH_MODULES_FILE'];
if (file !== undefined && file !== '') {
  process.once('exit', () => {
    const duckdb = Object.keys(require.cache).filter((name) => /[\\/]@?duckdb|duckdb\.node$/.test(name));
    writeFileSync(file, JSON.stringify({ duckdb }));
  });
}
