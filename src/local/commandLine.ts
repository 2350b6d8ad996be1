import { parseArgs } from 'node:util';
import { classifyError, ExportError, errorMessage } from '../errors';
import { redact } from '../redact';

/**
 * The command line's flags, help texts and errors. Each command is described once (a CommandSpec): its `--help`
 * text and its flag errors come from that description, so the two cannot drift. Every problem becomes an
 * ExportError with a code; `describeFailure` turns it into the one line the user sees,
 * `error CODE: what was wrong. Accepted: …`, and the exit code of docs/cli.md.
 */

/** One flag of a command. */
export interface FlagSpec {
  /** The long name, without dashes. */
  name: string;
  /** The placeholder of its value (`N`, `LIST`); absent: a switch that takes no value. */
  value?: string;
  /** A one-letter alias. */
  short?: string;
  /** What it does (lines after the first are indented under it in the help). */
  description: string;
}

/** One command: its help text and the flags it accepts. */
export interface CommandSpec {
  name: string;
  /** One line, for the list of commands. */
  summary: string;
  /** What follows the command's name in the usage line, e.g. `[RUN_ID] [flags]`. */
  arguments: string;
  /** Paragraphs shown under the usage line. */
  description: string;
  flags: FlagSpec[];
  /** At most this many positional arguments (0 when absent). */
  maxPositionals?: number;
  examples: string[];
  /** Paragraphs after the examples (where the command reads from, what it needs). */
  notes?: string;
  /** The command's own exit-code line, when its codes differ from EXIT_CODES_TEXT (the default). */
  exitCodes?: string;
}

/** Exit codes of every command (SPEC section 9; docs/cli.md lists them). */
export const EXIT_CODES = {
  ok: 0,
  runDidNotSucceed: 1,
  usageOrConfiguration: 2,
  folderBusy: 3,
} as const;

export const EXIT_CODES_TEXT = `Exit codes: 0 done; 1 a run (or a download) did not succeed; 2 bad usage or configuration (a flag,
a setting, an unknown command, a taken port, nothing could start); 3 another command owns .azurite/;
130 / 143 interrupted (Ctrl-C / SIGTERM).`;

/** Error codes that mean "fix the command or the settings": exit code 2. */
const USAGE_CODES = new Set(['USAGE_INVALID', 'CONFIG_INVALID', 'PORT_IN_USE', 'HOST_STORAGE_UNAVAILABLE']);

export const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', description: 'this text' };

/** What a command line says, once every flag was checked. */
export interface ParsedCommandLine {
  /** Flag values by long name: the text of a flag with a value, `true` for a switch given. */
  values: Record<string, string | true | undefined>;
  positionals: string[];
  /** `--help` or `-h` was given: print the help, nothing else is checked. */
  help: boolean;
}

function flagLabel(flag: FlagSpec): string {
  return `--${flag.name}${flag.value === undefined ? '' : ` ${flag.value}`}`;
}

/** `--a X, --b, --help` for error messages. */
export function acceptedFlags(spec: CommandSpec): string {
  return [...spec.flags, HELP_FLAG].map(flagLabel).join(', ');
}

/** A problem with the command line: USAGE_INVALID, exit code 2. */
export function usageError(spec: CommandSpec | undefined, problem: string, accepted?: string): ExportError {
  const prefix = spec === undefined ? '' : `${spec.name}: `;
  const help = spec === undefined ? 'csp-unbilled-export --help' : `${spec.name} --help`;
  const acceptedText = accepted === undefined ? '' : ` Accepted: ${accepted}.`;
  return new ExportError('USAGE_INVALID', `${prefix}${problem}.${acceptedText} See "${help}".`);
}

/**
 * Reads a command's arguments against its description. Node's parser runs without its own errors (their text is
 * Node's, not ours); each token is then checked here: an unknown flag lists the accepted ones, a flag without its
 * value or a switch with one says so, an argument where none is accepted is named.
 */
export function parseCommandLine(spec: CommandSpec, argv: string[]): ParsedCommandLine {
  const flags = [...spec.flags, HELP_FLAG];
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const flag of flags) {
    options[flag.name] = {
      type: flag.value === undefined ? 'boolean' : 'string',
      ...(flag.short === undefined ? {} : { short: flag.short }),
    };
  }
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((token) => token.kind === 'option' && token.name === 'help')) {
    return { values: {}, positionals: [], help: true };
  }
  const values: ParsedCommandLine['values'] = {};
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      if (positionals.length >= (spec.maxPositionals ?? 0)) {
        throw usageError(
          spec,
          `unexpected argument "${token.value}"`,
          spec.maxPositionals === undefined ? `flags only: ${acceptedFlags(spec)}` : `${spec.arguments}`,
        );
      }
      positionals.push(token.value);
      continue;
    }
    const flag = flags.find((f) => f.name === token.name);
    if (flag === undefined) throw usageError(spec, `unknown flag ${token.rawName}`, acceptedFlags(spec));
    if (flag.value === undefined) {
      if (token.value !== undefined) throw usageError(spec, `${token.rawName} takes no value`, flagLabel(flag));
      values[flag.name] = true;
    } else {
      // Without its value, Node's lenient parser takes the next flag as the value: refuse that too.
      if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-'))) {
        throw usageError(
          spec,
          `${token.rawName} needs a value`,
          `${flagLabel(flag)} (a value starting with "-" is written --${flag.name}=VALUE)`,
        );
      }
      values[flag.name] = token.value;
    }
  }
  return { values, positionals, help: false };
}

/** The text of a flag given with a value (undefined when absent). */
export function stringFlag(parsed: ParsedCommandLine, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === 'string' ? value : undefined;
}

/** Was this switch given? */
export function switchFlag(parsed: ParsedCommandLine, name: string): boolean {
  return parsed.values[name] === true;
}

/** A `--port` value: an integer from 0 (any free port) to 65535; undefined when absent. */
export function portFlag(spec: CommandSpec, parsed: ParsedCommandLine): number | undefined {
  const text = stringFlag(parsed, 'port');
  if (text === undefined) return undefined;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw usageError(spec, `--port: "${text}" is not a port`, 'an integer from 1 to 65535, or 0 for any free port');
  }
  return port;
}

/** The `--help` text of a command. */
export function formatHelp(spec: CommandSpec): string {
  const flags = [...spec.flags, HELP_FLAG];
  const labels = flags.map((flag) => `${flag.short === undefined ? '    ' : `-${flag.short}, `}${flagLabel(flag)}`);
  const width = Math.max(...labels.map((label) => label.length)) + 2;
  const lines = [`Usage: csp-unbilled-export ${spec.name} ${spec.arguments}`.trimEnd(), '', spec.description, ''];
  lines.push('Flags:');
  flags.forEach((flag, index) => {
    const [first, ...more] = flag.description.split('\n');
    lines.push(`  ${(labels[index] ?? '').padEnd(width)}${first ?? ''}`);
    for (const line of more) lines.push(`  ${' '.repeat(width)}${line}`);
  });
  lines.push('', 'Examples:', ...spec.examples.map((example) => `  ${example}`), '');
  if (spec.notes !== undefined) lines.push(spec.notes, '');
  lines.push(spec.exitCodes ?? EXIT_CODES_TEXT);
  return lines.join('\n');
}

/** The line a failed command prints and its exit code: `error CODE: message` (redacted). */
export function describeFailure(error: unknown): { line: string; exitCode: number } {
  if (error instanceof Error && error.name === 'FolderBusyError') {
    return { line: `error FOLDER_BUSY: ${redact(error.message)}`, exitCode: EXIT_CODES.folderBusy };
  }
  // Classified, so that an endpoint that cannot be reached is named with its setting, not a bare ECONNREFUSED.
  const classified = classifyError(error);
  return {
    line: `error ${classified.code}: ${redact(errorMessage(classified))}`,
    exitCode: USAGE_CODES.has(classified.code) ? EXIT_CODES.usageOrConfiguration : EXIT_CODES.runDidNotSucceed,
  };
}
