import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OperationStore, SavedOperation } from '../emulator/partnerBillingEmulator';

const ID = /^[0-9a-f-]{36}$/;

/**
 * Keeps the embedded emulator's operations in the data folder (`.azurite/emulator-operations/`), beside
 * the export data it wrote into Azurite: an interrupted local run resumes with the very operation Graph
 * (the emulator) accepted, instead of a second export.
 */
export function fileOperationStore(folder: string): OperationStore {
  const directory = join(folder, 'emulator-operations');
  let ready: Promise<unknown> | undefined;
  return {
    async save(operation: SavedOperation): Promise<void> {
      if (!ID.test(operation.id)) throw new Error(`Not an operation id: ${operation.id}`);
      ready ??= mkdir(directory, { recursive: true });
      await ready;
      const path = join(directory, `${operation.id}.json`);
      const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
      await writeFile(temporary, JSON.stringify(operation));
      await rename(temporary, path);
    },
    async load(id: string): Promise<SavedOperation | undefined> {
      if (!ID.test(id)) return undefined;
      try {
        const value = JSON.parse(await readFile(join(directory, `${id}.json`), 'utf8')) as SavedOperation;
        return value.id === id ? value : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
