import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { type AzuriteInstance, startAzurite } from '../../src/local/azurite';

/**
 * Starts one in-memory Azurite for the calling test file (in `before`) and stops it in `after`.
 * Call it at the top level of a test file (or of a describe); use the returned getter inside tests.
 * A start failure fails the suite with Azurite's stderr: it never skips.
 */
export function useAzurite(): () => AzuriteInstance {
  let azurite: AzuriteInstance | undefined;
  before(async () => {
    azurite = await startAzurite();
  });
  after(async () => {
    await azurite?.stop();
  });
  return () => {
    if (azurite === undefined) throw new Error('Azurite is not running: useAzurite() must be called before the tests.');
    return azurite;
  };
}

let counter = 0;

/**
 * A fresh name valid as a blob container, a queue and a table: lowercase letters and digits only,
 * starting with a letter, 3 to 63 characters (tables forbid hyphens, containers and queues forbid upper case).
 */
export function uniqueName(prefix: string): string {
  let head = prefix.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (!/^[a-z]/.test(head)) head = `t${head}`;
  counter++;
  const tail = `${counter.toString(36)}${randomBytes(4).toString('hex')}`;
  return `${head.slice(0, 63 - tail.length)}${tail}`;
}

export type { AzuriteInstance };
