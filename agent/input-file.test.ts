import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from './errors.ts';
import { readYamlFile } from './input-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-input-'));
const file = (name: string, content: string | Buffer) => {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
};
const hint = { missingHint: 'write one with edgectl inventory init' };

function refused(path: string, problem: RegExp, fix?: RegExp, read?: (p: string) => Buffer) {
  assert.throws(
    () => readYamlFile(path, { ...hint, ...(read ? { read } : {}) }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.problems.join('\n'), problem);
      if (fix) assert.match(e.hint ?? '', fix);
      return true;
    },
  );
}

test('plain YAML, anchors and aliases included, reads as data', () => {
  assert.deepEqual(readYamlFile(file('ok.yaml', 'a: &x [1, 2]\nb: *x\nc: "!not a tag"\n'), hint), {
    a: [1, 2],
    b: [1, 2],
    c: '!not a tag',
  });
});

test('a file that cannot be read says why; only a missing one gets the "write one" hint', () => {
  refused(join(dir, 'nope.yaml'), /does not exist \(ENOENT\)/, /inventory init/);
  refused(dir, /is a directory/, /the file itself/);
  const denied = () => {
    throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
  };
  refused('/etc/edgectl/site.yaml', /permission denied \(EACCES\)/, /chmod or chown/, denied);
  assert.throws(
    () => readYamlFile('/x', { ...hint, read: denied }),
    (e: ConfigError) => !/inventory init/.test(e.hint ?? ''),
  );
});

test('bytes that are not UTF-8 are refused, not replaced', () => {
  refused(
    file('latin1.yaml', Buffer.from('name: caf\xe9\n', 'latin1')),
    /not UTF-8 text: the byte at offset 9/,
    /UTF-8/,
  );
});

test('YAML tags and merge keys are refused with where they are', () => {
  refused(
    file('tag.yaml', 'site:\n  id: !!binary aGk=\n'),
    /YAML tag tag:yaml\.org,2002:binary \(line 2, column 7\) is not supported/,
  );
  refused(file('custom.yaml', 'a: !custom x\n'), /YAML tag !custom/);
  refused(
    file('merge.yaml', 'base: &b {user: edgectl}\nrobot:\n  <<: *b\n  name: r1\n'),
    /merge key << \(line 3, column 3\) is not supported: write the fields out/,
  );
});

test('broken YAML is one problem per error, still a ConfigError', () => {
  refused(file('bad.yaml', 'a: [1, 2\n'), /not valid YAML/);
  refused(file('dup.yaml', 'a: 1\na: 2\n'), /not valid YAML/);
});
