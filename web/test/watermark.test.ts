// The web client's ack watermark (src/client/watermark.ts): what it
// acknowledges when events arrive out of order, as the server sends them when
// a new event goes ahead of a streaming backlog (PROTOCOL.md section 3), and
// after a reconnect. Pure logic; no server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kGapTimeoutMs, Watermark } from '../src/client/watermark';

test('an event pushed ahead of the backlog is not acknowledged before the backlog below it', () => {
  const m = new Watermark();
  m.hello('10', '20'); // resumed after 10; the head was 20 at hello
  assert.equal(m.stored('11'), '11');
  assert.equal(m.stored('12'), '12');
  // A new event (21) overtakes the backlog's 13..20.
  assert.equal(m.fresh('21'), true);
  assert.equal(m.stored('21'), undefined, 'acknowledging 21 would end the backlog at 12');
  for (let s = 13; s < 20; ++s) assert.equal(m.stored(String(s)), String(s));
  assert.equal(m.stored('20'), '21', 'the backlog closes the gap, and 21 is covered');
  assert.equal(m.current(), '21');
});

test('duplicates sent again after a reconnect are recognised, below and above the watermark', () => {
  const m = new Watermark();
  m.hello('5', '9');
  m.stored('6');
  m.stored('8'); // 7 not yet here
  assert.equal(m.current(), '6');
  // Reconnect: hello resumes after 6; the server sends 7, 8, 9.
  m.hello(m.current(), '9');
  assert.equal(m.fresh('6'), false);
  assert.equal(m.fresh('7'), true);
  assert.equal(m.stored('7'), '8');
  assert.equal(m.fresh('8'), false, '8 was stored on the last connection');
  assert.equal(m.stored('9'), '9');
});

test('a device without a stored cursor starts at the first event, or at the head hello named', () => {
  const fromBacklog = new Watermark();
  fromBacklog.hello(undefined, '50');
  assert.equal(fromBacklog.current(), undefined);
  assert.equal(fromBacklog.stored('41'), '41'); // its cursor was 40: a backlog of 41..50
  const upToDate = new Watermark();
  upToDate.hello(undefined, '50');
  assert.equal(upToDate.stored('52'), undefined, '51 is still on its way');
  assert.equal(upToDate.stored('51'), '52');
});

test('seqs beyond 2^53 keep their precision', () => {
  const m = new Watermark();
  m.hello('9007199254740993', undefined);
  assert.equal(m.stored('9007199254740995'), undefined);
  assert.equal(m.stored('9007199254740994'), '9007199254740995');
});

test('a gap that stays open is passed after the timeout, and its event is still stored if it comes', () => {
  const m = new Watermark();
  m.hello('0', '3');
  assert.equal(m.stored('1', 1000), '1');
  assert.equal(m.stored('3', 1100), undefined); // 2 never comes (purged on its way)
  assert.equal(m.hasGap(), true);
  assert.equal(m.skipStaleGap(1100 + kGapTimeoutMs - 1), undefined, 'not yet: the gap opened at 1100');
  assert.equal(m.skipStaleGap(1100 + kGapTimeoutMs), '3');
  assert.equal(m.hasGap(), false);
  assert.equal(m.fresh('2'), true, 'a skipped seq arriving late is still new');
  assert.equal(m.stored('2', 9000), undefined, 'and does not move the watermark');
  assert.equal(m.fresh('2'), false);
  assert.equal(m.stored('4', 9100), '4');
});
