import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExportError } from '../errors';

/**
 * Settings of the command line: the environment first, then `local.settings.json`'s `Values`
 * (as `func start` reads them). Blank values count as absent.
 */
export function readLocalSettings(
  env: Record<string, string | undefined> = process.env,
  folder: string = process.cwd(),
): { values: Record<string, string | undefined>; file: string | undefined } {
  const path = join(folder, 'local.settings.json');
  const fromFile: Record<string, string> = {};
  let file: string | undefined;
  if (existsSync(path)) {
    file = path;
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new ExportError(
        'CONFIG_INVALID',
        `local.settings.json is not valid JSON (${error instanceof Error ? error.message : String(error)}); accepted: {"Values": {"SETTING": "value", ...}}`,
      );
    }
    const values = typeof json === 'object' && json !== null ? (json as { Values?: unknown }).Values : undefined;
    if (values !== undefined && (typeof values !== 'object' || values === null || Array.isArray(values))) {
      throw new ExportError('CONFIG_INVALID', 'local.settings.json: "Values" must be an object of string settings.');
    }
    for (const [key, value] of Object.entries((values ?? {}) as Record<string, unknown>)) {
      if (typeof value === 'string' && value.trim() !== '') fromFile[key] = value;
      else if (typeof value === 'number' || typeof value === 'boolean') fromFile[key] = String(value);
    }
  }
  const merged: Record<string, string | undefined> = { ...fromFile };
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value.trim() !== '') merged[key] = value;
  }
  return { values: merged, file };
}

/** Has this setting (or its identity-based `__*` form) been given? */
export function hasSetting(values: Record<string, string | undefined>, name: string): boolean {
  return Object.entries(values).some(
    ([key, value]) => (key === name || key.startsWith(`${name}__`)) && value !== undefined && value.trim() !== '',
  );
}
