// The web client's reconnect backoff: exponential, capped, and jittered so that a group (or a
// whole server's worth of clients) that lost the connection together does not return in lockstep.
// Pure function, so no browser is needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../web-client/connection.js';

test('each attempt waits between half and all of its exponential ceiling, capped at 8 s', () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(8000, 500 * 2 ** attempt);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt);
      assert.ok(d >= ceiling / 2 && d <= ceiling, `attempt ${attempt}: ${d} outside [${ceiling / 2}, ${ceiling}]`);
    }
  }
});

test('two hundred clients dropped at once come back spread out, not in the same millisecond', () => {
  const delays = Array.from({ length: 200 }, () => Math.floor(backoffDelay(0)));
  const distinct = new Set(delays).size;
  const spread = Math.max(...delays) - Math.min(...delays);
  // Uniform over 250 ms: about 140 distinct milliseconds are expected; fewer than 80 would mean
  // the jitter is gone.
  assert.ok(distinct >= 80, `only ${distinct} distinct delays`);
  assert.ok(spread >= 150, `spread only ${spread} ms`);
});
