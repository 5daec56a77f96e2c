// The web client in a real Chromium against a real parleyd and the real
// `parley` CLI: sign-up uploads keys, 1:1 messages both ways with ticks up
// to "read" on both sides, typing, equal safety numbers, and not one
// WebSocket frame of the page carries a message's text.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { World, newPhone, waitFor } from './harness.mjs';

const world = new World();
const marker = (n) => `zebra${n}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const markers = [];
let page;
let web; // {user_id, device_id}
let cli; // {user_id, ...}
const webPhone = newPhone();
const cliPhone = newPhone();

before(async () => {
  await world.startServer();
});
after(async () => {
  await world.close();
});

test('the page is served with a strict CSP and hashed, immutable assets', async () => {
  const r = await fetch(world.url + '/some/app/path');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.equal(r.headers.get('cache-control'), 'no-cache');
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const html = await r.text();
  const asset = /src="(\/assets\/main-[A-Z0-9]+\.js)"/.exec(html)[1];
  const a = await fetch(world.url + asset);
  assert.equal(a.status, 200);
  assert.match(a.headers.get('cache-control'), /immutable/);
  assert.match(a.headers.get('content-type'), /javascript/);
});

test('sign-up in the browser uploads keys (the CLI finds them)', async () => {
  page = await world.page();
  await page.getByRole('button', { name: 'Send code' }).waitFor();
  if (process.env.PARLEY_WEB_SCREENSHOTS) {
    await page.screenshot({ path: `${process.env.PARLEY_WEB_SCREENSHOTS}/sign-in.png` });
  }
  web = await world.browserSignIn(page, webPhone);
  cli = await world.cliLogin('bob', cliPhone);
  // keys.upload went out and was accepted (100 one-time prekeys on the server).
  await waitFor('keys.upload', () => world.frames.some((f) => f.dir === 'sent' && f.payload.includes('"op":"keys.upload"')));
  await waitFor('keys.upload accepted', () => world.frames.some((f) => f.dir === 'received' && f.payload.includes('"one_time_prekeys_left":100')));
  const out = await world.cli(['--profile', 'bob', '--json', 'safety-number', web.user_id]);
  assert.match(out, /\d{5}/, 'the CLI computes a safety number from the browser device keys');
  // Chromium has X25519 in WebCrypto, and the app uses it (crypto/curve.ts).
  assert.ok(!world.console.some((t) => t.includes('WebCrypto has none')), world.console.join('\n'));
});

let chat; // the CLI's `parley --json chat --to <browser user>`, for tests 3 and 4

test('CLI -> browser: the message arrives decrypted, ticks reach read at the CLI', async () => {
  const m = marker(1);
  markers.push(m);
  chat = world.cliStream(['--profile', 'bob', '--json', 'chat', '--to', web.user_id], { stdin: 'pipe' });
  chat.proc.stdin.write(m + '\n');
  const sent = await chat.until('the CLI sent it', (o) => o.event === 'status' && o.status === 'sent');
  const conv = page.getByRole('list', { name: 'Conversations' }).getByRole('listitem').first();
  await conv.waitFor();
  // Not yet opened: it counts as unread.
  await conv.getByText('1 unread').or(conv.getByLabel('1 unread')).waitFor();
  await conv.getByRole('button').click();
  await page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: m }).waitFor();
  // The chat is open in the browser: it is read, and the CLI is told.
  await chat.until('read at the CLI', (o) => o.event === 'status' && o.status === 'read' && o.msg_id === sent.msg_id);
});

test('browser -> CLI: sent, delivered, read in the browser; typing reaches the CLI', async () => {
  const m = marker(2);
  markers.push(m);
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.pressSequentially('abc');
  await chat.until('typing at the CLI', (o) => o.event === 'typing');
  await box.fill(m);
  await page.getByRole('button', { name: 'Send' }).click();
  const mine = page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: m });
  await mine.waitFor();
  const got = await chat.until('the message at the CLI', (o) => o.event === undefined && o.text === m || o.event === 'message' && o.text === m);
  assert.equal(got.encrypted, true);
  // The CLI's chat shows it, so it is read.
  await mine.filter({ hasText: 'read' }).waitFor();
  // Presence: the CLI is connected, then gone with a last-seen time.
  const header = page.getByRole('region', { name: /^Chat with / });
  await header.getByText('online', { exact: true }).waitFor();
  chat.proc.stdin.end();
  chat.stop();
  await header.getByText(/^last seen /).waitFor();
});

test('new chat by phone number finds the same conversation', async () => {
  await page.getByRole('button', { name: 'New chat' }).click();
  const dialog = page.getByRole('dialog', { name: 'New chat' });
  await dialog.getByRole('textbox', { name: 'Phone number' }).fill(cliPhone);
  await dialog.getByRole('button', { name: 'Start chat' }).click();
  const list = page.getByRole('list', { name: 'Conversations' });
  await list.getByRole('listitem', { name: cliPhone }).waitFor();
  assert.equal(await list.getByRole('listitem').count(), 1);
  for (const m of markers) await page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: m }).waitFor();
});

test('safety numbers are equal in the browser and the CLI', async () => {
  await page.getByRole('button', { name: 'Safety number' }).click();
  const dialog = page.getByRole('dialog', { name: 'Safety number' });
  const digits = await waitFor('digits', async () => {
    const t = await dialog.locator('.digits').textContent().catch(() => null);
    return t && /^(\d{5} ){11}\d{5}$/.test(t.trim()) ? t.trim() : null;
  });
  const out = JSON.parse(await world.cli(['--profile', 'bob', '--json', 'safety-number', web.user_id]));
  assert.equal(out.safety_number, digits.replace(/ /g, ''));
  await dialog.getByRole('button', { name: 'Close' }).click();
});

test('a reload keeps the conversation and its keys; a second tab is refused', async () => {
  await page.reload();
  await page.getByText(webPhone, { exact: true }).waitFor();
  const conv = page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone });
  await conv.getByRole('button').click();
  const messages = page.getByRole('list', { name: 'Messages' });
  for (const m of markers) await messages.getByRole('listitem').filter({ hasText: m }).waitFor();
  const m = marker(3);
  markers.push(m);
  const before = world.frames.length;
  await world.cli(['--profile', 'bob', 'send', '--to', web.user_id, m]);
  await messages.getByRole('listitem').filter({ hasText: m }).waitFor();
  // The existing session carried it: a "message", not a new "prekey" one.
  const event = world.frames.slice(before).map((f) => JSON.parse(f.payload))
    .find((o) => o.op === 'event' && o.event?.type === 'message');
  const mine = event.event.body.ciphertexts.find((c) => c.device === web.device_id);
  assert.equal(mine.type, 'message');
  const second = await page.context().newPage();
  await second.goto(world.url + '/');
  await second.getByRole('alert').filter({ hasText: 'open in another tab' }).waitFor();
  await second.close();
});

test('phone-sized screens show the chat or the list, with a way back', async () => {
  const shots = process.env.PARLEY_WEB_SCREENSHOTS;
  if (shots) await page.screenshot({ path: `${shots}/chat-desktop.png` });
  await page.setViewportSize({ width: 390, height: 760 });
  await page.getByRole('textbox', { name: 'Message' }).waitFor();
  assert.equal(await page.getByRole('list', { name: 'Conversations' }).isVisible(), false);
  if (shots) await page.screenshot({ path: `${shots}/chat-phone.png` });
  await page.getByRole('button', { name: 'Back to chats' }).click();
  await page.getByRole('list', { name: 'Conversations' }).waitFor();
  assert.equal(await page.getByRole('textbox', { name: 'Message' }).isVisible(), false);
  if (shots) await page.screenshot({ path: `${shots}/list-phone.png` });
  await page.setViewportSize({ width: 1200, height: 800 });
});

test('a message written while the server is down goes out on reconnect', async () => {
  const m = marker(4);
  markers.push(m);
  await world.stopServer();
  await page.getByRole('status').filter({ hasText: 'Offline' }).waitFor();
  const conv = page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone });
  await conv.getByRole('button').click();
  await page.getByRole('textbox', { name: 'Message' }).fill(m);
  await page.getByRole('button', { name: 'Send' }).click();
  const mine = page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: m });
  await mine.filter({ hasText: 'sending' }).waitFor();
  await world.startServer();
  await page.getByRole('status').filter({ hasText: 'Online' }).waitFor({ timeout: 60_000 });
  await mine.filter({ hasText: /sent|delivered|read/ }).waitFor();
  const listen = world.cliStream(['--profile', 'bob', '--json', 'listen']);
  const got = await listen.until('the offline message at the CLI', (o) => o.event === 'message' && o.text === m);
  assert.equal(got.encrypted, true);
  await mine.filter({ hasText: /delivered|read/ }).waitFor();
  listen.stop();
});

let group; // {id, name, carolPhone}: the group of the next tests

test('a group with two CLI users: Sender Keys both ways', async () => {
  const carolPhone = newPhone();
  const carolUser = (await world.cliLogin('carol', carolPhone)).user_id;
  const name = `Trip ${process.pid}`;
  await page.getByRole('button', { name: 'New group' }).click();
  const dialog = page.getByRole('dialog', { name: 'New group' });
  await dialog.getByRole('textbox', { name: 'Group name' }).fill(name);
  await dialog.getByRole('textbox', { name: 'Members' }).fill(`${cliPhone}, ${carolPhone}`);
  await dialog.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name }).waitFor();
  const created = world.frames.map((f) => JSON.parse(f.payload)).find((o) => o.op === 'ok' && o.group_id);
  const g1 = marker(5);
  markers.push(g1);
  await page.getByRole('textbox', { name: 'Message' }).fill(g1);
  await page.getByRole('button', { name: 'Send' }).click();
  const messages = page.getByRole('list', { name: 'Messages' });
  await messages.getByRole('listitem').filter({ hasText: g1 }).filter({ hasText: /sent|delivered|read/ }).waitFor();
  const bob = world.cliStream(['--profile', 'bob', '--json', 'listen']);
  const carol = world.cliStream(['--profile', 'carol', '--json', 'listen']);
  for (const who of [bob, carol]) {
    const got = await who.until('the group message at a CLI', (o) => o.event === 'message' && o.text === g1);
    assert.equal(got.conv.group, created.group_id);
    assert.equal(got.encrypted, true);
  }
  bob.stop();
  carol.stop();
  // The group message went out as one Sender Keys ciphertext, after a sender_key distribution.
  const sent = world.frames.filter((f) => f.dir === 'sent').map((f) => JSON.parse(f.payload)).filter((o) => o.op === 'send' && o.to?.group);
  assert.ok(sent.some((o) => o.kind === 'sender_key' && o.body.ciphertexts.length >= 2));
  assert.ok(sent.some((o) => o.kind === 'e2ee' && o.body.group?.data));
  const g2 = marker(6);
  markers.push(g2);
  await world.cli(['--profile', 'bob', 'send', '--group', created.group_id, g2]);
  const theirs = messages.getByRole('listitem').filter({ hasText: g2 });
  await theirs.waitFor();
  await theirs.filter({ hasText: cliPhone }).waitFor(); // the sender, by phone number
  group = { id: created.group_id, name, carolPhone, carolUser };
});

test('group members: rename, remove (the removed member cannot read what follows), leave', async () => {
  const list = page.getByRole('list', { name: 'Conversations' });
  await list.getByRole('listitem', { name: group.name }).getByRole('button').click();
  await page.getByRole('button', { name: 'Group info' }).click();
  const dialog = page.getByRole('dialog', { name: 'Group info' });
  const members = dialog.getByRole('list', { name: 'Members' });
  for (const who of ['You', cliPhone, group.carolPhone]) await members.getByRole('listitem', { name: who }).waitFor();
  if (process.env.PARLEY_WEB_SCREENSHOTS) await page.screenshot({ path: `${process.env.PARLEY_WEB_SCREENSHOTS}/group-info.png` });
  const renamed = `${group.name} (renamed)`;
  await dialog.getByRole('textbox', { name: 'Group name' }).fill(renamed);
  await dialog.getByRole('button', { name: 'Rename' }).click();
  await list.getByRole('listitem', { name: renamed }).waitFor();
  const info = JSON.parse(await world.cli(['--profile', 'bob', '--json', 'group', 'info', group.id]));
  assert.equal(info.name, renamed);
  const before = world.frames.length;
  await dialog.getByRole('button', { name: `Remove ${group.carolPhone}` }).click();
  await members.getByRole('listitem', { name: group.carolPhone }).waitFor({ state: 'detached' });
  await dialog.getByRole('button', { name: 'Close' }).click();
  const bob = world.cliStream(['--profile', 'bob', '--json', 'listen']);
  const carol = world.cliStream(['--profile', 'carol', '--json', 'listen']);
  await carol.until('carol told she was removed', (o) => o.event === 'group' && o.change === 'removed' && o.group_id === group.id);
  const g3 = marker(9);
  markers.push(g3);
  await page.getByRole('textbox', { name: 'Message' }).fill(g3);
  await page.getByRole('button', { name: 'Send' }).click();
  await bob.until('the message after the removal at bob', (o) => o.event === 'message' && o.text === g3);
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(!carol.text().includes(g3), 'the removed member did not get it');
  bob.stop();
  carol.stop();
  // A new sender key went out after the removal, to bob's devices only.
  const dist = world.frames.slice(before).filter((f) => f.dir === 'sent').map((f) => JSON.parse(f.payload))
    .filter((o) => o.op === 'send' && o.kind === 'sender_key');
  assert.ok(dist.length >= 1, 'the sender key was rotated and sent again');
  for (const d of dist) assert.ok(d.body.ciphertexts.every((c) => c.user !== group.carolUser));
  // Leaving: the chat says so, and the group is read-only.
  await page.getByRole('button', { name: 'Group info' }).click();
  await dialog.getByRole('button', { name: 'Leave group' }).click();
  await dialog.getByText('You are no longer a member of this group.').waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();
  await page.getByRole('region', { name: /^Chat with / }).getByText('you are no longer a member').waitFor();
});

test('the device list: a linked CLI device is shown and removed, and safety numbers follow', async () => {
  await world.cliLogin('web-cli', webPhone); // a second device of the browser's account
  await page.getByRole('button', { name: 'Devices' }).click();
  const dialog = page.getByRole('dialog', { name: 'Devices' });
  const devices = dialog.getByRole('list', { name: 'Linked devices' });
  await waitFor('two devices', async () => (await devices.getByRole('listitem').count()) === 2);
  await devices.getByText('this browser').waitFor();
  await dialog.getByRole('button', { name: 'Close' }).click();
  const safety = async () => {
    await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone }).getByRole('button').click();
    await page.getByRole('button', { name: 'Safety number' }).click();
    const d = page.getByRole('dialog', { name: 'Safety number' });
    const digits = await waitFor('digits', async () => {
      const t = await d.locator('.digits').textContent().catch(() => null);
      return t && /^(\d{5} ){11}\d{5}$/.test(t.trim()) ? t.trim().replace(/ /g, '') : null;
    });
    await d.getByRole('button', { name: 'Close' }).click();
    const cliSays = JSON.parse(await world.cli(['--profile', 'bob', '--json', 'safety-number', web.user_id])).safety_number;
    assert.equal(digits, cliSays, 'the browser and the CLI agree');
    return digits;
  };
  const withTwo = await safety();
  await page.getByRole('button', { name: 'Devices' }).click();
  await devices.getByRole('button', { name: /^Remove / }).click();
  await waitFor('one device', async () => (await devices.getByRole('listitem').count()) === 1);
  await dialog.getByRole('button', { name: 'Close' }).click();
  const withOne = await safety();
  assert.notEqual(withOne, withTwo, 'the removed device left the safety number');
});

test('first contact after the CLI user ran out of one-time prekeys (preKeyId 0)', async () => {
  // A throwaway client on the page's origin uses up bob's one-time prekeys.
  const drainer = await (await world.browser()).newContext().then((c) => c.newPage());
  await drainer.goto(world.url + '/nothing-here');
  const phone = newPhone();
  await drainer.evaluate((p) => fetch('/v1/auth/otp', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ phone: p }) }), phone);
  const code = await world.code(phone);
  const left = await drainer.evaluate(async ({ p, c, user }) => {
    const t = await (await fetch('/v1/auth/verify', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ phone: p, code: c, device: { name: 'drain', platform: 'web' } }) })).json();
    const ws = new WebSocket(`ws://${location.host}/v1/ws`);
    const answers = new Map();
    ws.onmessage = (m) => { const f = JSON.parse(m.data); if (f.rid) answers.get(f.rid)?.(f); };
    await new Promise((r) => (ws.onopen = r));
    let rid = 0;
    const call = (f) => new Promise((r) => { const id = String(++rid); answers.set(id, r); ws.send(JSON.stringify({ ...f, rid: id })); });
    await call({ op: 'hello', token: t.access_token });
    for (let i = 0; i < 400; i++) {
      const b = await call({ op: 'keys.bundle', user });
      if (!b.devices.some((d) => d.one_time_prekey)) { ws.close(); return i; }
    }
    ws.close();
    return -1;
  }, { p: phone, c: code, user: cli.user_id });
  assert.ok(left > 0, 'bob had one-time prekeys, and they ran out');
  await drainer.close();
  // A new browser user writes to bob first: X3DH without a one-time prekey.
  const fresh = await world.page();
  const freshPhone = newPhone();
  await world.browserSignIn(fresh, freshPhone);
  await fresh.getByRole('button', { name: 'New chat' }).click();
  const dialog = fresh.getByRole('dialog', { name: 'New chat' });
  await dialog.getByRole('textbox', { name: 'Phone number' }).fill(cliPhone);
  await dialog.getByRole('button', { name: 'Start chat' }).click();
  const m = marker(7);
  markers.push(m);
  await fresh.getByRole('textbox', { name: 'Message' }).fill(m);
  await fresh.getByRole('button', { name: 'Send' }).click();
  const listen = world.cliStream(['--profile', 'bob', '--json', 'listen']);
  const got = await listen.until('the first-contact message at the CLI', (o) => o.event === 'message' && o.text === m);
  assert.equal(got.encrypted, true);
  assert.equal(got.decrypt_error, undefined);
  listen.stop();
  await fresh.context().close();
});

test('an encrypted file both ways with the CLI; an upload cut off by a reload resumes', async () => {
  const conv = page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone });
  await conv.getByRole('button').click();
  const messages = page.getByRole('list', { name: 'Messages' });
  await page.getByText(/^Files up to 100 MB/).waitFor(); // the server's limit, shown before any upload
  // Browser -> CLI: 2.5 MiB go up in 1 MiB PATCHes; the second one is held
  // back and the page reloaded, so the upload must resume at the server's offset.
  const data = randomBytes(2.5 * 1024 * 1024);
  const name = `notes-${process.pid}.bin`;
  const uploads = [];
  page.on('request', (r) => {
    if (r.url().includes('/v1/uploads')) uploads.push({ method: r.method(), offset: r.headers()['upload-offset'] });
  });
  let patches = 0;
  let held;
  const heldNow = new Promise((r) => (held = r));
  await page.route('**/v1/uploads/**', async (route) => {
    if (route.request().method() === 'PATCH' && ++patches === 2) return held(); // never answered
    await route.continue();
  });
  await page.getByLabel('Attach file').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: data });
  const mine = messages.getByRole('listitem').filter({ hasText: name });
  await heldNow;
  const bar = mine.getByRole('progressbar', { name: 'Upload progress' });
  await waitFor('progress shown', async () => Number(await bar.getAttribute('value').catch(() => 0)) > 0.3);
  await mine.filter({ hasText: 'sending' }).waitFor();
  const beforeReload = uploads.length;
  // The held PATCH dies with the page. (Unrouting first let it through on a
  // loaded machine: the rest went up before the reload, and after it the
  // HEAD found nothing left to resume.)
  await page.reload();
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  await conv.getByRole('button').click();
  await mine.filter({ hasText: /sent|delivered|read/ }).waitFor();
  const resumed = uploads.slice(beforeReload);
  assert.equal(uploads.filter((u) => u.method === 'POST').length, 1, 'one upload, not a new one after the reload');
  assert.ok(resumed.some((u) => u.method === 'HEAD'), 'the offset was asked for after the reload');
  assert.ok(resumed.some((u) => u.method === 'PATCH' && Number(u.offset) >= 1024 * 1024), JSON.stringify(resumed));
  const listen = world.cliStream(['--profile', 'bob', '--json', 'listen']);
  const got = await listen.until('the file message at the CLI', (o) => o.event === 'message' && o.kind === 'file' && o.body?.name === name);
  listen.stop();
  assert.equal(got.encrypted, true);
  assert.equal(got.body.size, data.length);
  const out = path.join(world.dir, 'got-' + name);
  await world.cli(['--profile', 'bob', '--json', 'get-file', got.msg_id, '--output', out]);
  assert.ok(readFileSync(out).equals(data), 'the CLI decrypted the same bytes');

  // CLI -> browser: an image, shown inline (decrypted in the page), and downloadable.
  const png = await page.screenshot({ clip: { x: 0, y: 0, width: 160, height: 90 } });
  const photo = path.join(world.dir, `photo-${process.pid}.png`);
  writeFileSync(photo, png);
  await world.cli(['--profile', 'bob', 'send-file', '--to', web.user_id, photo]);
  const theirs = messages.getByRole('listitem').filter({ hasText: path.basename(photo) });
  const img = theirs.getByRole('img', { name: path.basename(photo) });
  await img.waitFor();
  await waitFor('the image decoded', () => img.evaluate((e) => e.complete && e.naturalWidth === 160 && e.naturalHeight === 90));
  if (process.env.PARLEY_WEB_SCREENSHOTS) await page.screenshot({ path: `${process.env.PARLEY_WEB_SCREENSHOTS}/chat-files.png` });
  const [saved] = await Promise.all([
    page.waitForEvent('download'),
    theirs.getByRole('button', { name: `Download ${path.basename(photo)}` }).click(),
  ]);
  assert.equal(saved.suggestedFilename(), path.basename(photo));
  // The download is the object URL the image shows (the page's CSP keeps
  // fetch() off blob: URLs, so the bytes are compared through it).
  assert.equal(saved.url(), await img.getAttribute('src'));
  assert.equal(createHash('sha256').update(readFileSync(await saved.path())).digest('hex'), createHash('sha256').update(png).digest('hex'));
  // The server stored ciphertext only: no upload or download carried a PNG.
  const sends = world.frames.filter((f) => f.dir === 'sent' && f.payload.includes('"media_id"'));
  assert.ok(sends.length >= 1 && sends.every((f) => JSON.parse(f.payload).kind === 'e2ee'));
  assert.ok(!sends.some((f) => f.payload.includes(name)), 'the file name is inside the ciphertext');
});

test('an event whose IndexedDB write fails is not acknowledged, and decrypts again after a reload', async () => {
  // The page's next write that touches the messages store fails, as a tab
  // killed midway would leave it. The event's session state, message and
  // cursor are one transaction: none of it is stored and it is not acked.
  // (Were the session state stored apart, the redelivered message could
  // no longer be decrypted: its message key would be used up.)
  await page.evaluate(() => {
    const open = IDBDatabase.prototype.transaction;
    IDBDatabase.prototype.transaction = function (stores, mode, ...rest) {
      const names = Array.isArray(stores) ? stores : [stores];
      if (mode === 'readwrite' && names.includes('messages')) throw new DOMException('simulated crash', 'AbortError');
      return open.call(this, stores, mode, ...rest);
    };
  });
  const m = marker(8);
  markers.push(m);
  const before = world.frames.length;
  await world.cli(['--profile', 'bob', 'send', '--to', web.user_id, m]);
  await page.getByRole('status').filter({ hasText: 'reload the page' }).waitFor();
  const after = world.frames.slice(before).map((f) => JSON.parse(f.payload));
  const event = after.find((o) => o.op === 'event' && o.event?.type === 'message');
  assert.ok(event, 'the event reached the page');
  assert.ok(!after.some((o) => o.op === 'ack' && BigInt(o.seq) >= BigInt(event.seq)), 'not acknowledged');
  await page.reload();
  const conv = page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone });
  await conv.getByRole('button').click();
  const mine = page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: m });
  await mine.waitFor();
  assert.equal(await page.getByText('could not decrypt').count(), 0);
  await waitFor('the ack after the reload', () =>
    world.frames.map((f) => JSON.parse(f.payload)).some((o) => o.op === 'ack' && BigInt(o.seq) >= BigInt(event.seq)));
});

test('history scrolls back page by page and keeps the scroll position', async () => {
  const lines = Array.from({ length: 60 }, (_, i) => marker(100 + i));
  markers.push(...lines);
  const chat = world.cliStream(['--profile', 'bob', '--json', 'chat', '--to', web.user_id], { stdin: 'pipe' });
  chat.proc.stdin.write(lines.join('\n') + '\n');
  await waitFor('60 sent', () => chat.lines.filter((o) => o.event === 'status' && o.status === 'sent').length >= 60, 60_000);
  chat.proc.stdin.end();
  chat.stop();
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone }).getByRole('button').click();
  const messages = page.getByRole('list', { name: 'Messages' });
  await messages.getByRole('listitem').filter({ hasText: lines[59] }).waitFor();
  assert.equal(await messages.getByRole('listitem').count(), 50, 'the newest 50 first');
  const firstText = await messages.getByRole('listitem').first().textContent();
  await messages.evaluate((e) => (e.scrollTop = 0)); // scrolled to the top: the next page comes
  await waitFor('older messages', async () => (await messages.getByRole('listitem').count()) > 50);
  const box = await messages.boundingBox();
  const was = await messages.getByRole('listitem').filter({ hasText: firstText.slice(0, 30) }).first().boundingBox();
  assert.ok(was.y >= box.y - 1 && was.y < box.y + box.height / 2, `the message at the top stayed in view (${was.y} in ${box.y}+${box.height})`);
  for (const m of lines) await messages.getByRole('listitem').filter({ hasText: m }).waitFor({ state: 'attached' });
  // Past what this browser stores: the server's history, page by page, until
  // it has no more; every message of this chat was readable here.
  const more = page.getByRole('button', { name: 'Load older messages' });
  for (let i = 0; i < 5 && (await more.count()); i++) {
    await messages.evaluate((e) => (e.scrollTop = 0));
    if (await more.count()) await more.click().catch(() => {});
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.equal(await more.count(), 0, 'the whole history was paged through');
  assert.equal(await page.getByText(/older messages were encrypted/).count(), 0);
});

test('a new message goes ahead of a streaming backlog: acks stay contiguous and the whole backlog arrives', async () => {
  // The device offline while the CLI writes a backlog of more than the 256
  // events the server keeps in flight.
  const n = 600;
  const lines = Array.from({ length: n }, (_, i) => marker(1000 + i));
  markers.push(...lines);
  await page.goto('about:blank');
  const chat = world.cliStream(['--profile', 'bob', '--json', 'chat', '--to', web.user_id], { stdin: 'pipe' });
  chat.proc.stdin.write(lines.join('\n') + '\n');
  await waitFor(`${n} sent`, () => chat.lines.filter((o) => o.event === 'status' && o.status === 'sent').length >= n, 120_000);
  chat.proc.stdin.end();
  chat.stop();
  const from = world.frames.length;
  const frames = () =>
    world.frames.slice(from).map((f) => {
      try {
        return { dir: f.dir, o: JSON.parse(f.payload) };
      } catch {
        return { dir: f.dir, o: {} };
      }
    });
  await page.goto(world.url + '/');
  await waitFor('the backlog streaming', () => frames().some((f) => f.dir === 'received' && f.o.op === 'event'));
  // Sent now, it is pushed ahead of the rest of the backlog.
  const live = marker(1999);
  markers.push(live);
  await world.cli(['--profile', 'bob', 'send', '--to', web.user_id, live]);
  const hello = frames().find((f) => f.dir === 'sent' && f.o.op === 'hello').o;
  const base = BigInt(hello.resume_after ?? 0);
  // Every seq from the cursor on arrives, the live one included (n + 1
  // messages), and the page acknowledges all of them.
  const seqs = () => frames().filter((f) => f.dir === 'received' && f.o.op === 'event').map((f) => BigInt(f.o.seq));
  const acks = () => frames().filter((f) => f.dir === 'sent' && f.o.op === 'ack').map((f) => BigInt(f.o.seq));
  const top = base + BigInt(n + 1);
  await waitFor('every event, and the ack of the last', () => {
    const got = new Set(seqs());
    for (let s = base + 1n; s <= top; s++) if (!got.has(s)) return false;
    return acks().some((a) => a >= top);
  }, 60_000);
  const order = seqs();
  assert.ok(order.some((s, i) => i > 0 && s < order[i - 1]), 'the live event overtook the backlog (else this test proves nothing)');
  // No ack ever covered an event the page had not received by then.
  const have = new Set();
  let watermark = base;
  for (const f of frames()) {
    if (f.dir === 'received' && f.o.op === 'event') {
      have.add(BigInt(f.o.seq));
      while (have.has(watermark + 1n)) watermark++;
    } else if (f.dir === 'sent' && f.o.op === 'ack') {
      assert.ok(BigInt(f.o.seq) <= watermark, `ack ${f.o.seq} while only up to ${watermark} had arrived`);
    }
  }
  const conv = page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone });
  await conv.getByRole('button').click();
  const messages = page.getByRole('list', { name: 'Messages' });
  await messages.getByRole('listitem').filter({ hasText: live }).waitFor();
  await messages.getByRole('listitem').filter({ hasText: lines[n - 1] }).waitFor();
});

test('axe-core: no serious or critical accessibility violation on the main screens', async () => {
  const axe = readFileSync(new URL('../node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
  const violations = (p) =>
    p.evaluate(async (src) => {
      if (!window.axe) (0, eval)(src);
      const r = await window.axe.run(document, {
        resultTypes: ['violations'],
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'] },
      });
      return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
    }, axe);
  const check = async (p, screen) => assert.deepEqual(await violations(p), [], `axe on ${screen}`);
  const signIn = await (await world.browser()).newContext().then((c) => c.newPage());
  await signIn.goto(world.url + '/');
  await signIn.getByRole('button', { name: 'Send code' }).waitFor();
  await check(signIn, 'sign-in');
  // The check can fail: an input without a name is found (critical).
  await signIn.evaluate(() => document.body.append(document.createElement('input')));
  const planted = await violations(signIn);
  assert.ok(planted.some((v) => v.startsWith('label (critical)')), planted.join('; '));
  await signIn.context().close();
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone }).getByRole('button').click();
  await check(page, 'a 1:1 chat');
  await page.getByRole('button', { name: 'Safety number' }).click();
  await page.getByRole('dialog', { name: 'Safety number' }).locator('.digits').waitFor();
  await check(page, 'the safety number');
  await page.getByRole('dialog', { name: 'Safety number' }).getByRole('button', { name: 'Close' }).click();
  await page.getByRole('button', { name: 'Devices' }).click();
  await page.getByRole('dialog', { name: 'Devices' }).getByRole('list').waitFor();
  await check(page, 'devices');
  await page.keyboard.press('Escape');
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: /renamed/ }).getByRole('button').click();
  await page.getByRole('button', { name: 'Group info' }).click();
  await page.getByRole('dialog', { name: 'Group info' }).getByText('no longer a member').waitFor();
  await check(page, 'group info');
  await page.keyboard.press('Escape');
  await page.setViewportSize({ width: 390, height: 760 });
  await page.getByRole('button', { name: 'Back to chats' }).click();
  await check(page, 'the list, phone width');
  await page.setViewportSize({ width: 1200, height: 800 });
});

test('the keyboard alone: Enter sends, Shift+Enter is a new line, Tab order follows the screen', async () => {
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone }).getByRole('button').click();
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.focus();
  const m = marker(11);
  markers.push(m);
  await page.keyboard.type(m);
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  assert.equal(await box.inputValue(), m + '\nsecond line');
  await page.keyboard.press('Enter');
  await page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: m }).waitFor();
  assert.equal(await box.inputValue(), '');
  // Tab from the message box: Send, then Attach file (the composer's order).
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), 'Send');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Attach file');
});

test('every control has an accessible name; Tab reaches the main ones', async () => {
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone }).getByRole('button').click();
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('button, input, textarea, select, a[href]')]
      .filter((e) => e.offsetParent !== null)
      .filter((e) => !(e.getAttribute('aria-label')?.trim() || e.labels?.length || (e.tagName !== 'INPUT' && e.tagName !== 'TEXTAREA' && e.textContent.trim())))
      .map((e) => e.outerHTML.slice(0, 100)));
  assert.deepEqual(unnamed, []);
  const reached = new Set();
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => {
      const e = document.activeElement;
      return e?.getAttribute('aria-label') || (e?.tagName === 'BUTTON' ? e.textContent.trim() : e?.tagName);
    }));
  }
  for (const name of ['New chat', 'New group', 'Safety number', 'Messages', 'Message', 'Send']) {
    assert.ok(reached.has(name), `Tab reaches ${name} (reached: ${[...reached].join(', ')})`);
  }
});

test('the file limit of the server is shown, and a larger file is refused before any upload', async () => {
  await world.stopServer();
  await world.startServer(['--media-max-bytes', String(1024 * 1024)]);
  await page.getByRole('status').filter({ hasText: 'Online' }).waitFor({ timeout: 60_000 });
  await page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name: cliPhone }).getByRole('button').click();
  const limit = (1024 * 1024 - 28) / 1024; // the sealed file must fit: 28 bytes of nonce and tag
  await page.getByText(`Files up to ${limit.toFixed(0)} KB, end-to-end encrypted.`).waitFor();
  const uploads = [];
  const onRequest = (r) => r.url().includes('/v1/uploads') && r.method() !== 'OPTIONS' && uploads.push(r.method());
  page.on('request', onRequest);
  const name = `big-${process.pid}.bin`;
  await page.getByLabel('Attach file').setInputFiles({ name, mimeType: 'application/octet-stream', buffer: Buffer.alloc(1024 * 1024) });
  await page.getByRole('alert').filter({ hasText: `${name} is 1.0 MB; files can be up to` }).waitFor();
  assert.deepEqual(uploads, [], 'nothing was uploaded');
  assert.equal(await page.getByRole('list', { name: 'Messages' }).getByRole('listitem').filter({ hasText: name }).count(), 0);
  page.off('request', onRequest);
});

test('no WebSocket frame of the page carries a message text', () => {
  assert.ok(markers.length >= 2);
  assert.ok(world.frames.length > 10, 'frames were captured');
  for (const f of world.frames) {
    for (const m of markers) assert.ok(!f.payload.includes(m), `plaintext in a ${f.dir} frame: ${f.payload.slice(0, 200)}`);
  }
  const sends = world.frames.filter((f) => f.dir === 'sent' && f.payload.includes('"op":"send"'));
  assert.ok(sends.length >= 1);
  for (const s of sends) assert.ok(['e2ee', 'sender_key'].includes(JSON.parse(s.payload).kind), s.payload.slice(0, 200));
});
