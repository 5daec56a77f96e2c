// The web client's crypto layer (src/crypto/) against libsignal-protocol-c
// through the SDK's Signal backend (tests/web/interop_peer.cpp): X3DH both
// ways, with and without a one-time prekey (the preKeyId 0 case), ratchet
// round trips, out-of-order delivery, Sender Keys both ways with a tampered
// message refused, safety numbers over key lists, AES-256-GCM files both
// ways. No server; ~seconds. Every run uses fresh random keys. Key pairs
// and agreements come from WebCrypto's X25519 (crypto/curve.ts), as in
// the app.
import './node-webcrypto';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fromBase64, fromUtf8, toBase64, utf8 } from '../src/crypto/bytes';
import { useWebCryptoX25519 } from '../src/crypto/curve';
import { openFile, sealFile, sha256Hex } from '../src/crypto/files';
import { MemoryKv } from '../src/crypto/kv';
import { packCiphertexts, SignalDevice, stripZeroPreKeyId, type Bundle, type Device } from '../src/crypto/signal';

type Answer = any;

class Peer {
  private proc = spawn(process.env.PARLEY_INTEROP_PEER ?? 'parley_web_interop_peer', [], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  private lines = createInterface({ input: this.proc.stdout! })[Symbol.asyncIterator]();
  async call(req: Answer): Promise<Answer> {
    this.proc.stdin!.write(JSON.stringify(req) + '\n');
    const next = await this.lines.next();
    if (next.done) throw new Error('peer exited');
    return JSON.parse(next.value);
  }
  async ok(req: Answer): Promise<Answer> {
    const a = await this.call(req);
    if (a.error) throw new Error(`peer ${req.op}: ${a.error}`);
    return a;
  }
  close() {
    this.proc.stdin!.end();
  }
}

const C: Device = { user: '1001', device: '11' };
const W: Device = { user: '2002', device: '22' };
const text = (s: string) => toBase64(utf8.encode(s));
const untext = (b: string) => fromUtf8.decode(fromBase64(b));

let peer: Peer;
let web: SignalDevice;
let cKeys: Answer; // the C device's first keys.upload
let wKeys: Answer;

function cBundle(withOtk: boolean, i = 0): Bundle {
  return {
    device_id: C.device,
    registration_id: cKeys.registration_id,
    identity_key: cKeys.identity_key,
    signed_prekey: cKeys.signed_prekey,
    one_time_prekey: withOtk ? cKeys.one_time_prekeys[i] : undefined,
  };
}

before(async () => {
  // The suite runs on WebCrypto's X25519 (key pairs, agreements), as the
  // app does wherever the browser has it; Node 20 has it.
  assert.equal(await useWebCryptoX25519(), true, 'WebCrypto X25519 agrees with the compiled curve');
  peer = new Peer();
  await peer.ok({ op: 'open', ...C });
  cKeys = await peer.ok({ op: 'keys' });
  web = await SignalDevice.open(new MemoryKv(), W);
  wKeys = (await web.keysToUpload()) as Answer;
  await web.markUploaded();
});
after(() => peer.close());

test('keys.upload from the web device has the SDK shape', () => {
  assert.equal(fromBase64(wKeys.identity_key).length, 33);
  assert.equal(fromBase64(wKeys.identity_key)[0], 5);
  assert.ok(wKeys.registration_id >= 1 && wKeys.registration_id < 16384);
  assert.equal(wKeys.one_time_prekeys.length, 100);
  assert.equal(fromBase64(wKeys.signed_prekey.signature).length, 64);
});

test('browser -> C: X3DH with a one-time prekey, then ratchet round trips', async () => {
  await web.startSession(C.user, cBundle(true, 0));
  const [first] = await web.encrypt([C], utf8.encode('hello C'));
  assert.equal(first.type, 'prekey');
  assert.equal(fromBase64(first.data)[0], 0x33);
  const d = await peer.ok({ op: 'decrypt', from: W, type: first.type, data: first.data });
  assert.equal(untext(d.data), 'hello C');
  for (let i = 0; i < 5; i++) {
    const back = await peer.ok({ op: 'encrypt', to: W, data: text(`reply ${i}`) });
    assert.equal(back.type, 'message');
    assert.equal(fromUtf8.decode(await web.decrypt(C, back)), `reply ${i}`);
    const [fwd] = await web.encrypt([C], utf8.encode(`again ${i}`));
    assert.equal(fwd.type, 'message');
    assert.equal(untext((await peer.ok({ op: 'decrypt', from: W, ...fwd })).data), `again ${i}`);
  }
});

test('C -> browser messages out of order', async () => {
  const burst = [];
  for (let i = 0; i < 3; i++) burst.push(await peer.ok({ op: 'encrypt', to: W, data: text(`burst ${i}`) }));
  for (const i of [2, 0, 1]) {
    assert.equal(fromUtf8.decode(await web.decrypt(C, burst[i])), `burst ${i}`);
  }
  // A replayed message is refused, not decrypted twice.
  await assert.rejects(web.decrypt(C, burst[0]));
});

test('C -> browser: X3DH from the browser bundle', async () => {
  const w2: Device = { user: '3003', device: '33' };
  const dev2 = await SignalDevice.open(new MemoryKv(), w2);
  const up = (await dev2.keysToUpload(undefined, Date.now(), 5)) as Answer;
  await peer.ok({
    op: 'start',
    user: w2.user,
    bundle: { device_id: w2.device, registration_id: up.registration_id, identity_key: up.identity_key,
              signed_prekey: up.signed_prekey, one_time_prekey: up.one_time_prekeys[3] },
  });
  const m = await peer.ok({ op: 'encrypt', to: w2, data: text('hi browser') });
  assert.equal(m.type, 'prekey');
  assert.equal(fromUtf8.decode(await dev2.decrypt(C, m)), 'hi browser');
  const [r] = await dev2.encrypt([C], utf8.encode('hi C'));
  assert.equal(r.type, 'message');
  assert.equal(untext((await peer.ok({ op: 'decrypt', from: w2, ...r })).data), 'hi C');
});

test('browser -> C without a one-time prekey (preKeyId 0 is left out)', async () => {
  const w3: Device = { user: '4004', device: '44' };
  const dev3 = await SignalDevice.open(new MemoryKv(), w3);
  await dev3.keysToUpload(undefined, Date.now(), 1);
  await dev3.startSession(C.user, cBundle(false));
  const [m] = await dev3.encrypt([C], utf8.encode('no otk'));
  assert.equal(m.type, 'prekey');
  assert.equal(untext((await peer.ok({ op: 'decrypt', from: w3, ...m })).data), 'no otk');
});

test('stripZeroPreKeyId is needed: the unpatched message is refused by C', async () => {
  const w4: Device = { user: '5005', device: '55' };
  const dev4 = await SignalDevice.open(new MemoryKv(), w4);
  await dev4.keysToUpload(undefined, Date.now(), 1);
  await dev4.startSession(C.user, cBundle(false));
  const [m] = await dev4.encrypt([C], utf8.encode('unpatched'));
  const patched = fromBase64(m.data);
  // Rebuild what the port wrote: field 1 = 0 first (it encodes in field order).
  const unpatched = new Uint8Array([patched[0], 0x08, 0x00, ...patched.subarray(1)]);
  assert.deepEqual(stripZeroPreKeyId(unpatched), patched);
  const refused = await peer.call({ op: 'decrypt', from: w4, type: 'prekey', data: toBase64(unpatched) });
  assert.ok(refused.error, 'libsignal-c should refuse preKeyId 0');
  assert.equal(untext((await peer.ok({ op: 'decrypt', from: w4, ...m })).data), 'unpatched');
});

test('C -> browser without a one-time prekey', async () => {
  const w5: Device = { user: '6006', device: '66' };
  const dev5 = await SignalDevice.open(new MemoryKv(), w5);
  const up = (await dev5.keysToUpload(undefined, Date.now(), 1)) as Answer;
  await peer.ok({
    op: 'start',
    user: w5.user,
    bundle: { device_id: w5.device, registration_id: up.registration_id, identity_key: up.identity_key,
              signed_prekey: up.signed_prekey },
  });
  const m = await peer.ok({ op: 'encrypt', to: w5, data: text('3-DH') });
  assert.equal(fromUtf8.decode(await dev5.decrypt(C, m)), '3-DH');
});

test('Sender Keys: browser reads C, C reads browser, tampering refused', async () => {
  const group = '777';
  // C's key to the browser (the SDK sends it pairwise; here directly).
  const dist = await peer.ok({ op: 'own_sender_key', group });
  await web.processSenderKey(group, C, fromBase64(dist.data));
  const gm = [];
  for (let i = 0; i < 3; i++) gm.push(await peer.ok({ op: 'group_encrypt', group, data: text(`group ${i}`) }));
  for (const i of [0, 2, 1]) {
    assert.equal(fromUtf8.decode(await web.groupDecrypt(group, C, fromBase64(gm[i].data))), `group ${i}`);
  }
  // The browser's key to C.
  const mine = await web.ownSenderKey(group);
  await peer.ok({ op: 'process_sender_key', group, from: W, data: toBase64(mine) });
  for (let i = 0; i < 3; i++) {
    const ct = await web.groupEncrypt(group, utf8.encode(`from web ${i}`));
    assert.equal(ct[0], 0x33);
    const d = await peer.ok({ op: 'group_decrypt', group, from: W, data: toBase64(ct) });
    assert.equal(untext(d.data), `from web ${i}`);
  }
  const ct = await web.groupEncrypt(group, utf8.encode('tampered'));
  ct[ct.length - 70] ^= 1;
  const refused = await peer.call({ op: 'group_decrypt', group, from: W, data: toBase64(ct) });
  assert.ok(refused.error, 'a tampered group message must be refused');
  const bad = await peer.ok({ op: 'group_encrypt', group, data: text('bad') });
  const badBytes = fromBase64(bad.data);
  badBytes[badBytes.length - 70] ^= 1;
  await assert.rejects(web.groupDecrypt(group, C, badBytes));
  // After a rotation, C needs the new key; with it, it reads again.
  await web.rotateSenderKey(group);
  const fresh = await web.ownSenderKey(group);
  await peer.ok({ op: 'process_sender_key', group, from: W, data: toBase64(fresh) });
  const after = await web.groupEncrypt(group, utf8.encode('rotated'));
  assert.equal(untext((await peer.ok({ op: 'group_decrypt', group, from: W, data: toBase64(after) })).data), 'rotated');
});

test('safety numbers over key lists equal the SDK', async () => {
  const cId = (await peer.ok({ op: 'identity' })).key;
  const other = await SignalDevice.open(new MemoryKv(), { user: W.user, device: '99' });
  const wIds = [await web.identityKey(), await other.identityKey()];
  const mine = await web.safetyNumber([wIds[1]], C.user, [fromBase64(cId)]);
  assert.match(mine, /^\d{60}$/);
  const theirs = await peer.ok({
    op: 'fingerprint', local_user: C.user, local_keys: [cId],
    remote_user: W.user, remote_keys: wIds.map((k) => toBase64(k)),
  });
  assert.equal(theirs.digits, mine);
});

test('AES-256-GCM files both ways', async () => {
  const plain = new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff);
  const sealed = await sealFile(plain);
  assert.equal(sealed.blob.length, plain.length + 28);
  assert.equal(sealed.digest, await sha256Hex(sealed.blob));
  const opened = await peer.ok({ op: 'open_file', blob: toBase64(sealed.blob), key: sealed.key });
  assert.deepEqual(fromBase64(opened.data), plain);
  const fromC = await peer.ok({ op: 'seal_file', data: toBase64(plain) });
  const blob = fromBase64(fromC.blob);
  assert.deepEqual(await openFile(blob, fromC.key, await sha256Hex(blob)), plain);
  blob[20] ^= 1;
  await assert.rejects(openFile(blob, fromC.key, await sha256Hex(blob)));
});

test('the sender key of a big group is split into sends under the body limit', () => {
  // 300 device ciphertexts of a prekey message's size (~600 B of base64).
  const cts = Array.from({ length: 300 }, (_, i) => ({
    user: String(1000 + i),
    device: '1',
    type: 'prekey',
    data: 'A'.repeat(560 + (i % 7) * 10),
  }));
  const limit = 58 * 1024;
  const parts = packCiphertexts(cts, limit);
  assert.ok(parts.length >= 3, `${parts.length} sends`);
  for (const p of parts) assert.ok(JSON.stringify(p).length <= limit, String(JSON.stringify(p).length));
  assert.deepEqual(parts.flat(), cts, 'every device once, in order');
  assert.deepEqual(packCiphertexts([], limit), []);
  assert.equal(packCiphertexts([{ data: 'x'.repeat(limit) }], limit).length, 1, 'an oversized one goes alone');
});
