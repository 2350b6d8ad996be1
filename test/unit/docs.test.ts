import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

/**
 * The user documentation (README.md and docs/*.md) is written for the people who run the export and read its data:
 * every relative link must lead somewhere, and nothing may read as the log of how the project was built.
 */

const root = join(__dirname, '..', '..', '..');
const README_MAX_LINES = 200;

function markdownFiles(): string[] {
  const docs = readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => join(root, 'docs', name));
  return [join(root, 'README.md'), ...docs];
}

const files = markdownFiles().map((path) => ({ path, name: relative(root, path), text: readFileSync(path, 'utf8') }));

/** The text with fenced code blocks blanked (line numbers kept), so links and words are read from prose only. */
function withoutFences(text: string): string {
  let inFence = false;
  return text
    .split('\n')
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line)) {
        inFence = !inFence;
        return '';
      }
      return inFence ? '' : line;
    })
    .join('\n');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFences(text).split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading === null) continue;
    const base = (heading[1] ?? '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images `[text](target)` and reference definitions `[label]: target`, outside code. */
function linksOf(text: string): Link[] {
  const links: Link[] = [];
  withoutFences(text)
    .split('\n')
    .forEach((raw, index) => {
      const line = raw.replace(/`[^`]*`/g, '``');
      for (const m of line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        links.push({ line: index + 1, target: m[1] ?? '' });
      }
      const definition = /^\s*\[[^\]]+\]:\s*(\S+)/.exec(line);
      if (definition !== null) links.push({ line: index + 1, target: definition[1] ?? '' });
      // A Markdown file named by its path in a code span (`reference/x.md`) is a pointer too: it must be there.
      for (const m of raw.matchAll(/`([\w.-]+(?:\/[\w.-]+)+\.md)`/g))
        links.push({ line: index + 1, target: m[1] ?? '' });
    });
  return links;
}

/** Words that belong to the way the project is worked on, not to the product a user runs. */
const PROCESS_WORDS: Array<{ pattern: RegExp; why: string }> = [
  { pattern: /(^|[\s(,;])#\d+\b/, why: 'an issue or pull request number' },
  { pattern: /\b(issue|pull request|PR)\s+#?\d+/i, why: 'an issue or pull request number' },
  { pattern: /\bitems?\s+\d+\b/i, why: 'the item of an issue' },
  { pattern: /\bhelpers?\b/i, why: 'who did the work' },
  { pattern: /\bsessions?\b/i, why: 'who did the work' },
  { pattern: /\bbranch(es)?\b/i, why: 'the branches of development' },
  { pattern: /\bworktrees?\b/i, why: 'the branches of development' },
  { pattern: /\bmerged? (main|into main|the branch)\b/i, why: 'the branches of development' },
  { pattern: /\bthe lead\b/i, why: 'who did the work' },
  { pattern: /\breviewers?\b/i, why: 'who did the work' },
  { pattern: /\bclosing note\b/i, why: 'who did the work' },
  { pattern: /\bpreviously\b/i, why: 'change-log wording: say what is' },
  { pattern: /\bno longer\b(?! (exists|follow))/i, why: 'change-log wording: say what is' },
  { pattern: /\b(now|was|were|got|been) fixed\b/i, why: 'change-log wording: say what is' },
  { pattern: /\bbefore (this|the) (change|fix)\b/i, why: 'change-log wording: say what is' },
  { pattern: /\bwhat was fixed\b/i, why: 'change-log wording: say what is' },
  { pattern: /\bTODO\b|\bFIXME\b|\bXXX\b/, why: 'unfinished work' },
];

/** Paths outside the repository, wherever they appear (code blocks included). */
const OUTSIDE_PATHS: Array<{ pattern: RegExp; why: string }> = [
  { pattern: /\/work\//, why: 'a path of the machine the docs were written on' },
  { pattern: /\.\.\/shared\b|\bshared\/(SPEC|HOUSE-STYLE|reference)/, why: 'notes outside the repository' },
  { pattern: /\bSPEC\.md\b|\bHOUSE-STYLE\.md\b|\bplatform-notes\.md\b/, why: 'notes outside the repository' },
];

/** Every hit of the process words in one Markdown text, as `line: word (why)`. */
function processWordHits(text: string): string[] {
  const hits: string[] = [];
  const prose = withoutFences(text).split('\n');
  text.split('\n').forEach((full, index) => {
    const line = (prose[index] ?? '').replace(/`[^`]*`/g, '``');
    for (const { pattern, why } of PROCESS_WORDS) {
      const m = pattern.exec(line);
      if (m !== null) hits.push(`${index + 1}: "${m[0].trim()}" (${why})`);
    }
    for (const { pattern, why } of OUTSIDE_PATHS) {
      const m = pattern.exec(full);
      if (m !== null) hits.push(`${index + 1}: "${m[0].trim()}" (${why})`);
    }
  });
  return hits;
}

/** The first paragraph after the title. */
function firstParagraph(text: string): string {
  const lines = text.split('\n');
  let i = lines.findIndex((l) => /^#\s/.test(l)) + 1;
  while (i < lines.length && (lines[i] ?? '').trim() === '') i++;
  const paragraph: string[] = [];
  while (i < lines.length && (lines[i] ?? '').trim() !== '') paragraph.push(lines[i++] ?? '');
  return paragraph.join(' ');
}

describe('the user documentation (README.md and docs/*.md)', () => {
  it('links only to files and headings that exist in the repository', () => {
    const broken: string[] = [];
    for (const file of files) {
      for (const { line, target } of linksOf(file.text)) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: and the like
        const [pathPart = '', anchor] = target.split('#', 2);
        const path = pathPart === '' ? file.path : resolve(dirname(file.path), decodeURIComponent(pathPart));
        // A code span may name a file from the repository root (`docs/data.md`) rather than from the page.
        if (!existsSync(path) && existsSync(resolve(root, pathPart))) continue;
        if (!existsSync(path)) {
          broken.push(`${file.name}:${line} links ${target}, which does not exist`);
          continue;
        }
        if (anchor !== undefined && anchor !== '' && path.endsWith('.md')) {
          if (!anchorsOf(readFileSync(path, 'utf8')).has(anchor.toLowerCase())) {
            broken.push(`${file.name}:${line} links ${target}: ${relative(root, path)} has no heading #${anchor}`);
          }
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  it('uses no words of the way it was worked on (issue numbers, branches, helpers, change-log wording, outside paths)', () => {
    const hits = files.flatMap((file) => processWordHits(file.text).map((hit) => `${file.name}:${hit}`));
    assert.deepEqual(hits, []);
  });

  it('catches the process words it is meant to catch, and lets product wording through', () => {
    const caught = [
      'See issue 14.',
      'Measured for #12.',
      'Item 3 of the list.',
      'A helper found it.',
      'In this session we measured.',
      'On branch faults.',
      'This is previously unseen.',
      'The flag no longer applies.',
      'The race was fixed.',
      'Before this change it hung.',
      'Read ../shared/SPEC.md first.',
      'Copied from /work/main.',
      'TODO: say more.',
    ];
    for (const text of caught) assert.notDeepEqual(processWordHits(text), [], text);
    const product = [
      'A run the app can no longer follow fires the alert.',
      'The operation no longer exists.',
      'The crash point `copy.beforeCopy#1` is reached once.',
      'Issue a `POST` to start an export.',
      '```\n# 1. Start an export\n```',
    ];
    for (const text of product) assert.deepEqual(processWordHits(text), [], text);
  });

  it('opens each page of docs/ with whom it is for', () => {
    const without = files
      .filter((file) => file.name.startsWith('docs'))
      .filter((file) => !/^For\b/.test(firstParagraph(file.text)))
      .map((file) => `${file.name}: "${firstParagraph(file.text).slice(0, 80)}…"`);
    assert.deepEqual(without, [], 'the first paragraph after the title starts with "For …" and names the readers');
  });

  it(`keeps README.md a front door of at most ${README_MAX_LINES} lines, with a picture of a run's path`, () => {
    const readme = files.find((file) => file.name === 'README.md')?.text ?? '';
    const lines = readme.trimEnd().split('\n').length;
    assert.ok(lines <= README_MAX_LINES, `README.md has ${lines} lines; move detail into docs/`);
    assert.match(readme, /```mermaid\n/, 'README.md has a Mermaid diagram of a run');
  });

  it('lists every page of docs/ in the README, so that a reader finds it from the front door', () => {
    const readme = files.find((file) => file.name === 'README.md')?.text ?? '';
    const linked = new Set(linksOf(readme).map((link) => link.target.split('#')[0]));
    const missing = files
      .filter((file) => file.name.startsWith('docs'))
      .map((file) => relative(root, file.path).split('\\').join('/'))
      .filter((name) => !linked.has(name));
    assert.deepEqual(missing, []);
  });

  it('draws the deployment as a Mermaid diagram in docs/deploy.md', () => {
    const deploy = files.find((file) => file.name === join('docs', 'deploy.md'))?.text ?? '';
    assert.match(deploy, /```mermaid\n/);
  });
});

describe('docs: the pages messages point at', () => {
  it('every docs/*.md#anchor a message in src names exists, and no message sends the user to the README', () => {
    const sources: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts')) sources.push(path);
      }
    };
    walk(join(root, 'src'));
    let named = 0;
    for (const path of sources) {
      const text = readFileSync(path, 'utf8');
      assert.doesNotMatch(text, /\(see README|\(README, /, `${relative(root, path)} sends the user to the README`);
      for (const match of text.matchAll(/docs\/([\w-]+\.md)#([\w-]+)/g)) {
        named += 1;
        const doc = join(root, 'docs', match[1] ?? '');
        assert.ok(existsSync(doc), `${relative(root, path)}: ${match[0]} names a page that exists`);
        assert.ok(anchorsOf(readFileSync(doc, 'utf8')).has(match[2] ?? ''), `${relative(root, path)}: ${match[0]}`);
      }
    }
    assert.ok(named >= 2, 'the doctor and Partner Center messages name their docs');
  });
});
