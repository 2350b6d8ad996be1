import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { curlWalkthrough, parseEmulatorArgs } from '../../../src/emulator/main';

describe('emulator command flags', () => {
  it('parses the scenario, port and an existing Azurite', () => {
    const options = parseEmulatorArgs([
      '--port',
      '8443',
      '--blob-count',
      '5',
      '--rows-per-blob',
      '100',
      '--seed',
      '9',
      '--dialect',
      'navigationLink',
      '--polls',
      '0',
      '--retry-after',
      '0',
      '--sas-lifetime',
      '60',
      '--azurite-blob-endpoint',
      'http://127.0.0.1:10000/msbilling/',
      '--azurite-key',
      'a2V5',
    ]);
    assert.equal(options.port, 8443);
    assert.deepEqual(options.scenario, {
      blobCount: 5,
      rowsPerBlob: 100,
      seed: 9,
      dialect: 'navigationLink',
      odataType: true,
      pollsBeforeSuccess: 0,
      retryAfterSeconds: 0,
      sasLifetimeSeconds: 60,
    });
    assert.deepEqual(options.azurite, {
      blobEndpoint: 'http://127.0.0.1:10000/msbilling',
      accountName: 'msbilling',
      accountKey: 'a2V5',
    });
  });

  it('defaults to a free port, its own Azurite and the default scenario', () => {
    const options = parseEmulatorArgs([]);
    assert.equal(options.port, 0);
    assert.equal(options.azurite, undefined);
    assert.deepEqual(options.scenario, {});
  });

  it('rejects bad values naming the flag', () => {
    assert.throws(() => parseEmulatorArgs(['--blob-count', 'many']), /--blob-count/);
    assert.throws(() => parseEmulatorArgs(['--dialect', 'xml']), /--dialect/);
    assert.throws(() => parseEmulatorArgs(['--rows-per-blob', '0']), /--rows-per-blob/);
    assert.throws(
      () => parseEmulatorArgs(['--azurite-blob-endpoint', 'http://127.0.0.1:1/msbilling']),
      /--azurite-key/,
    );
    assert.throws(() => parseEmulatorArgs(['--azurite-key', 'x']), /--azurite-blob-endpoint/);
    assert.throws(() => parseEmulatorArgs(['--nonsense']));
  });

  it('prints a curl walk-through for the dialect in use', () => {
    const emulator = { baseUrl: 'https://127.0.0.1:1234/v1.0', caCertPath: '/tmp/ca.pem', token: 'dev' };
    const inline = curlWalkthrough(emulator, 'inline');
    assert.match(
      inline,
      /curl -si --cacert "\$CA" -X POST "\$BASE\/reports\/partners\/billing\/usage\/unbilled\/export"/,
    );
    assert.match(inline, /resourceLocation\)\)/);
    assert.match(inline, /m\.rootDirectory\+"\/"\+m\.blobs\[0\]\.name\+"\?"\+m\.sasToken/);
    assert.match(curlWalkthrough(emulator, 'navigationLink'), /resourceLocation@odata\.navigationLink/);
  });
});
