import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonPatch, mergePatch, strategicMergePatch } from '../src/patch.js';

const doc = {
  metadata: { name: 'a', annotations: { x: '1', y: '2' } },
  rules: [{ verbs: ['get'] }],
};

test('merge patch adds, replaces and deletes keys; lists are replaced', () => {
  assert.deepEqual(mergePatch(doc, { metadata: { annotations: { x: null, z: '3' } }, rules: [] }), {
    metadata: { name: 'a', annotations: { y: '2', z: '3' } },
    rules: [],
  });
});

test('strategic merge patch ignores directives and honours $patch: replace', () => {
  const out = strategicMergePatch(doc, {
    $setElementOrder: { rules: [] },
    metadata: { annotations: { $patch: 'replace', only: 'this' } },
  });
  assert.deepEqual(out, {
    metadata: { name: 'a', annotations: { only: 'this' } },
    rules: [{ verbs: ['get'] }],
  });
});

test('JSON patch operations', () => {
  const out = jsonPatch(doc, [
    { op: 'test', path: '/metadata/name', value: 'a' },
    { op: 'add', path: '/rules/-', value: { verbs: ['list'] } },
    { op: 'add', path: '/metadata/annotations~1x', value: 'no' },
    { op: 'replace', path: '/metadata/annotations/x', value: 'one' },
    { op: 'remove', path: '/metadata/annotations/y' },
    { op: 'copy', from: '/metadata/name', path: '/metadata/label' },
    { op: 'move', from: '/metadata/label', path: '/metadata/moved' },
  ]);
  assert.deepEqual(out, {
    metadata: { name: 'a', annotations: { x: 'one' }, 'annotations/x': 'no', moved: 'a' },
    rules: [{ verbs: ['get'] }, { verbs: ['list'] }],
  });
});

test('JSON patch rejects bad operations without touching the input', () => {
  const before = JSON.stringify(doc);
  for (const ops of [
    {},
    [{ op: 'nope', path: '/a' }],
    [{ op: 'add', path: 'no-slash', value: 1 }],
    [{ op: 'test', path: '/metadata/name', value: 'b' }],
    [{ op: 'remove', path: '/rules/5' }],
  ]) {
    assert.throws(() => jsonPatch(doc, ops), { name: 'ApiError' });
  }
  assert.equal(JSON.stringify(doc), before);
});
