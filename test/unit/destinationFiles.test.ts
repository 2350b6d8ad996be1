import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { isExportError } from '../../src/errors';
import {
  type DestinationFile,
  downloadFiles,
  formatBytes,
  localPathFor,
  UnsafePathError,
} from '../../src/local/destinationFiles';
import { parseFilesFlags } from '../../src/local/filesCommand';

const root = mkdtempSync(join(tmpdir(), 'csp-destination-files-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A container whose blobs are in memory; `short` blobs end early (a connection cut mid-download). */
function fakeContainer(blobs: Record<string, string>, short: string[] = []): ContainerClient {
  return {
    getBlobClient: (name: string) => ({
      download: async () => {
        const body = blobs[name];
        if (body === undefined) throw Object.assign(new Error('BlobNotFound'), { statusCode: 404 });
        const bytes = Buffer.from(body);
        return {
          contentLength: bytes.length,
          readableStreamBody: Readable.from([short.includes(name) ? bytes.subarray(0, 1) : bytes]),
        };
      },
    }),
  } as unknown as ContainerClient;
}

function file(path: string, size: number): DestinationFile {
  return { path, size, contentType: null, lastModified: null, kind: 'raw', dataset: null, series: null, runId: null };
}

/** Every file under a folder, as paths relative to it. */
function tree(dir: string, prefix = ''): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? tree(join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name}`],
  );
}

describe('files: where downloads go', () => {
  it('a blob goes under the folder at its container path', () => {
    assert.equal(
      localPathFor('/data/out', 'unbilled-usage/billingMonth=2026-12/run=1/manifest.json'),
      '/data/out/unbilled-usage/billingMonth=2026-12/run=1/manifest.json',
    );
  });

  it('a name with a "..", "." or empty segment, a backslash, a NUL or a leading slash is refused', () => {
    for (const name of ['../escape', 'a/../../escape', 'a/./b', 'a//b', '/etc/passwd', 'a\\..\\b', 'a\0b', '..', '']) {
      assert.throws(() => localPathFor('/data/out', name), UnsafePathError, JSON.stringify(name));
    }
  });

  it('downloadFiles writes the safe files, refuses the others and writes nothing outside the folder', async () => {
    const parent = join(root, 'refuse');
    const dir = join(parent, 'out');
    const blobs = { 'ok/a.txt': 'alpha', '../escape.txt': 'evil', 'ok/../../escape2.txt': 'evil' };
    const results = await downloadFiles(
      fakeContainer(blobs),
      Object.entries(blobs).map(([path, body]) => file(path, body.length)),
      dir,
    );
    assert.deepEqual(
      results.map((result) => [result.path, result.action]),
      [
        ['ok/a.txt', 'written'],
        ['../escape.txt', 'refused'],
        ['ok/../../escape2.txt', 'refused'],
      ],
    );
    assert.match(results[1]!.reason ?? '', /would not stay inside the download folder/);
    assert.deepEqual(tree(parent), ['out/ok/a.txt']);
    assert.equal(readFileSync(join(dir, 'ok', 'a.txt'), 'utf8'), 'alpha');
  });

  it('a file already there with the same size is skipped; one of another size, or a JSON pointer, is written again', async () => {
    const dir = join(root, 'skip');
    mkdirSync(join(dir, 'f'), { recursive: true });
    writeFileSync(join(dir, 'f', 'same.txt'), 'XXXXX');
    writeFileSync(join(dir, 'f', 'other.txt'), 'old');
    // latest.json of an older run: same length (run ids have a fixed length), other content.
    writeFileSync(join(dir, 'f', 'latest.json'), '{"runId":"A"}');
    const blobs = { 'f/same.txt': 'hello', 'f/other.txt': 'longer body', 'f/latest.json': '{"runId":"B"}' };
    const results = await downloadFiles(
      fakeContainer(blobs),
      Object.entries(blobs).map(([path, body]) => file(path, body.length)),
      dir,
    );
    assert.deepEqual(
      results.map((result) => result.action),
      ['skipped', 'written', 'written'],
    );
    assert.equal(readFileSync(join(dir, 'f', 'latest.json'), 'utf8'), '{"runId":"B"}', 'the current pointer');
    assert.equal(readFileSync(join(dir, 'f', 'same.txt'), 'utf8'), 'XXXXX');
    assert.equal(readFileSync(join(dir, 'f', 'other.txt'), 'utf8'), 'longer body');
  });

  it('a download cut short fails and leaves no file at that name (so the next download does not skip it)', async () => {
    const dir = join(root, 'short');
    const blobs = { 'g/cut.json.gz': 'abcdef' };
    await assert.rejects(
      downloadFiles(fakeContainer(blobs, ['g/cut.json.gz']), [file('g/cut.json.gz', 6)], dir),
      (error: unknown) => isExportError(error) && /Downloading "g\/cut\.json\.gz"/.test(error.message),
    );
    assert.deepEqual(tree(dir), []);
  });

  it('sizes are printed for people', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 5 * 1024 ** 2].map(formatBytes), [
      '0 B',
      '1023 B',
      '1.0 KiB',
      '1.5 KiB',
      '5.0 MiB',
    ]);
  });
});

describe('files: flags', () => {
  it('no flag selects the current data; --all every run; --run one run, narrowed by --dataset', () => {
    assert.deepEqual(parseFilesFlags([]).selection, { mode: 'current', datasets: undefined });
    assert.deepEqual(parseFilesFlags(['--all']).selection, { mode: 'all', datasets: undefined });
    assert.deepEqual(parseFilesFlags(['--run', '20261207T060000123Z-9f3a1c2b', '--dataset', 'billedUsage']).selection, {
      mode: 'run',
      runId: '20261207T060000123Z-9f3a1c2b',
      datasets: ['billedUsage'],
    });
    assert.equal(parseFilesFlags(['--download', 'out', '--json']).download, 'out');
  });

  it('every problem is USAGE_INVALID (exit code 2) naming the flag', () => {
    for (const [args, pattern] of [
      [['--nope'], /unknown flag --nope\. Accepted: --run ID, --all, --dataset D, --download DIR, --json, --help\./],
      [['--run', 'x'], /--run: "x" is not a run id/],
      [['--all', '--run', '20261207T060000123Z-9f3a1c2b'], /give one of the two/],
      [['--download', ' '], /--download: a folder is accepted/],
    ] as const) {
      assert.throws(
        () => parseFilesFlags([...args]),
        (error: unknown) => isExportError(error) && error.code === 'USAGE_INVALID' && pattern.test(error.message),
      );
    }
  });
});
