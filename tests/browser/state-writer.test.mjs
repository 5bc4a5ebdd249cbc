// The web client's state has one writer: state.js's reducer (applyMessage for server messages,
// applyAction for the UI's own changes). No browser: this reads the other modules' source and
// fails on an assignment into the state, or a state collection changed in place, outside it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const webClient = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web-client');

test('only state.js writes into the state', () => {
  const problems = [];
  for (const f of readdirSync(webClient).filter((n) => n.endsWith('.js') && n !== 'state.js')) {
    readFileSync(join(webClient, f), 'utf8').split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      // `state.x = `, `state.x.y += `, `session.state = `, and Map/Set/array changes on the state.
      if (/\bstate(\.[A-Za-z_]+)+\s*([-+*/]?=)(?!=)/.test(code) || /\bstate(\.[A-Za-z_]+)+\.(set|delete|clear|add|push|unshift|splice|pop|shift)\(/.test(code)) {
        problems.push(`${f}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(problems, [], 'write through state.js (applyAction) instead');
});
