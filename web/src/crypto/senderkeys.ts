// Sender Keys (group messages), byte-compatible with libsignal-protocol-c's
// group_cipher and group_session_builder, which the Signal port lacks:
//
//  SenderKeyMessage             0x33 || {1 id, 2 iteration, 3 ciphertext} || sig64
//  SenderKeyDistributionMessage 0x33 || {1 id, 2 iteration, 3 chainKey, 4 signingKey}
//
// Chain step: seed = HMAC-SHA256(ck, 0x01), next ck = HMAC-SHA256(ck, 0x02);
// HKDF-SHA256(seed, salt 32 x 0, "WhisperGroup") -> iv(16) || key(32);
// AES-256-CBC with PKCS#7 padding. The signature is curve25519_sign over
// version || protobuf with the sender's signing key. A receiver keeps up to
// 2000 skipped message keys per state and up to 5 states per sender (a
// sender that rotates its key keeps working while old messages arrive).
import { concat, fromBase64, randomBytes, toBase64, toBuffer, toBytes, utf8 } from './bytes';
import { generateKeyPair, sign, verify } from './curve';
import type { Kv } from './kv';
import { bytesField, decode, encode, intField } from './proto';

const kVersion = 0x33;
const kMaxSkipped = 2000;
const kMaxStates = 5;

type State = {
  id: number;
  iteration: number;
  chainKey: string; // base64
  signPub: string;
  signPriv?: string; // only for this device's own key
  skipped: Record<string, string>; // iteration -> seed (base64)
};
type SenderKeyRecord = { states: State[] };

async function hmac(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    'raw',
    toBuffer(key),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return toBytes(await crypto.subtle.sign('HMAC', k, toBuffer(data)));
}

async function messageKeys(seed: Uint8Array): Promise<{ iv: Uint8Array; key: Uint8Array }> {
  const k = await crypto.subtle.importKey('raw', toBuffer(seed), 'HKDF', false, ['deriveBits']);
  const bits = toBytes(
    await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: utf8.encode('WhisperGroup') },
      k,
      48 * 8,
    ),
  );
  return { iv: bits.slice(0, 16), key: bits.slice(16, 48) };
}

async function aesCbc(
  mode: 'encrypt' | 'decrypt',
  key: Uint8Array,
  iv: Uint8Array,
  data: Uint8Array,
): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', toBuffer(key), 'AES-CBC', false, [mode]);
  const fn = mode === 'encrypt' ? crypto.subtle.encrypt : crypto.subtle.decrypt;
  return toBytes(await fn.call(crypto.subtle, { name: 'AES-CBC', iv: toBuffer(iv) }, k, toBuffer(data)));
}

export class SenderKeys {
  constructor(private kv: Kv) {}

  private key(group: string, sender: string) {
    return `senderkey:${group}:${sender}`;
  }
  private async load(group: string, sender: string): Promise<SenderKeyRecord | undefined> {
    const raw = await this.kv.get(this.key(group, sender));
    return raw ? (JSON.parse(raw) as SenderKeyRecord) : undefined;
  }
  private async save(group: string, sender: string, r: SenderKeyRecord) {
    await this.kv.put(this.key(group, sender), JSON.stringify(r));
  }

  // This device's distribution message for the group (made on first use).
  async ownDistribution(group: string, self: string): Promise<Uint8Array> {
    let r = await this.load(group, self);
    if (!r || r.states.length === 0 || !r.states[0].signPriv) {
      const signing = await generateKeyPair();
      const id = new DataView(toBuffer(randomBytes(4))).getUint32(0) & 0x7fffffff;
      r = {
        states: [
          {
            id,
            iteration: 0,
            chainKey: toBase64(randomBytes(32)),
            signPub: toBase64(signing.pub),
            signPriv: toBase64(signing.priv),
            skipped: {},
          },
        ],
      };
      await this.save(group, self, r);
    }
    const s = r.states[0];
    return concat(
      new Uint8Array([kVersion]),
      encode([
        { no: 1, wire: 0, int: s.id },
        { no: 2, wire: 0, int: s.iteration },
        { no: 3, wire: 2, bytes: fromBase64(s.chainKey) },
        { no: 4, wire: 2, bytes: fromBase64(s.signPub) },
      ]),
    );
  }

  async hasOwn(group: string, self: string): Promise<boolean> {
    const r = await this.load(group, self);
    return !!r && r.states.length > 0 && !!r.states[0].signPriv;
  }

  // Forgets this device's key for the group: the next ownDistribution makes a new one.
  async rotate(group: string, self: string) {
    await this.kv.delete(this.key(group, self));
  }

  async forgetSender(sender: string) {
    for (const k of await this.kv.keys('senderkey:')) {
      if (k.endsWith(':' + sender)) await this.kv.delete(k);
    }
  }

  // A distribution message from `sender` (decrypted pairwise).
  async process(group: string, sender: string, distribution: Uint8Array) {
    if (distribution.byteLength < 2 || distribution[0] !== kVersion) {
      throw new Error('sender key distribution: bad version');
    }
    const f = decode(distribution.subarray(1));
    const id = intField(f, 1);
    const iteration = intField(f, 2) ?? 0;
    const chainKey = bytesField(f, 3);
    const signingKey = bytesField(f, 4);
    if (id === undefined || !chainKey || chainKey.byteLength !== 32 || !signingKey ||
        signingKey.byteLength !== 33 || signingKey[0] !== 5) {
      throw new Error('sender key distribution: missing fields');
    }
    const r = (await this.load(group, sender)) ?? { states: [] };
    r.states = r.states.filter((s) => s.id !== id);
    r.states.unshift({
      id,
      iteration,
      chainKey: toBase64(chainKey),
      signPub: toBase64(signingKey),
      skipped: {},
    });
    r.states = r.states.slice(0, kMaxStates);
    await this.save(group, sender, r);
  }

  async encrypt(group: string, self: string, plaintext: Uint8Array): Promise<Uint8Array> {
    const r = await this.load(group, self);
    const s = r?.states[0];
    if (!r || !s || !s.signPriv) throw new Error('no sender key for this group');
    const ck = fromBase64(s.chainKey);
    const seed = await hmac(ck, new Uint8Array([1]));
    const { iv, key } = await messageKeys(seed);
    const ciphertext = await aesCbc('encrypt', key, iv, plaintext);
    const body = concat(
      new Uint8Array([kVersion]),
      encode([
        { no: 1, wire: 0, int: s.id },
        { no: 2, wire: 0, int: s.iteration },
        { no: 3, wire: 2, bytes: ciphertext },
      ]),
    );
    const sig = await sign(fromBase64(s.signPriv), body);
    s.chainKey = toBase64(await hmac(ck, new Uint8Array([2])));
    s.iteration += 1;
    await this.save(group, self, r);
    return concat(body, sig);
  }

  async decrypt(group: string, sender: string, message: Uint8Array): Promise<Uint8Array> {
    if (message.byteLength < 1 + 64 || message[0] !== kVersion) {
      throw new Error('sender key message: bad version');
    }
    const body = message.subarray(0, message.byteLength - 64);
    const sig = message.subarray(message.byteLength - 64);
    const f = decode(body.subarray(1));
    const id = intField(f, 1);
    const iteration = intField(f, 2) ?? 0;
    const ciphertext = bytesField(f, 3);
    if (id === undefined || !ciphertext) throw new Error('sender key message: missing fields');
    const r = await this.load(group, sender);
    const s = r?.states.find((x) => x.id === id);
    if (!r || !s) throw new Error('no sender key from this device for this group');
    if (!(await verify(fromBase64(s.signPub), body, sig))) {
      throw new Error('sender key message: bad signature');
    }
    let seed: Uint8Array;
    if (iteration < s.iteration) {
      const kept = s.skipped[String(iteration)];
      if (!kept) throw new Error('sender key message: duplicate or too old');
      seed = fromBase64(kept);
      delete s.skipped[String(iteration)];
    } else {
      if (iteration - s.iteration > kMaxSkipped) throw new Error('sender key message: too far ahead');
      let ck = fromBase64(s.chainKey);
      while (s.iteration < iteration) {
        s.skipped[String(s.iteration)] = toBase64(await hmac(ck, new Uint8Array([1])));
        ck = await hmac(ck, new Uint8Array([2]));
        s.iteration += 1;
      }
      seed = await hmac(ck, new Uint8Array([1]));
      s.chainKey = toBase64(await hmac(ck, new Uint8Array([2])));
      s.iteration += 1;
      const keys = Object.keys(s.skipped);
      if (keys.length > kMaxSkipped) {
        keys.sort((a, b) => Number(a) - Number(b));
        for (const k of keys.slice(0, keys.length - kMaxSkipped)) delete s.skipped[k];
      }
    }
    const { iv, key } = await messageKeys(seed);
    const plain = await aesCbc('decrypt', key, iv, ciphertext);
    await this.save(group, sender, r);
    return plain;
  }
}
