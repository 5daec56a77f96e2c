// One Parley device's Signal state: X3DH + Double Ratchet through
// @privacyresearch/libsignal-protocol-typescript (wire-compatible with the
// libsignal-protocol-c the SDK uses), Sender Keys (senderkeys.ts), safety
// numbers (fingerprint.ts). State lives in a Kv (sealed IndexedDB in the
// browser). Devices are named as the SDK names them: "<user>.<device>",
// libsignal device id 1.
//
// The port's one wire divergence: it writes PreKeySignalMessage.preKeyId = 0
// when the bundle had no one-time prekey, and libsignal-protocol-c then
// looks for prekey 0 and refuses the message (SG_ERR_INVALID_KEY_ID).
// stripZeroPreKeyId drops the field (the wrapper is not under the MAC).
import {
  Direction,
  KeyHelper,
  SessionBuilder,
  SessionCipher,
  SignalProtocolAddress,
  type KeyPairType,
  type StorageType,
} from '@privacyresearch/libsignal-protocol-typescript';
import { concat, fromBase64, fromBinaryString, toBase64, toBuffer, toBytes, equal } from './bytes';
import { safetyNumber } from './fingerprint';
import type { Kv } from './kv';
import { decode, encode } from './proto';
import { SenderKeys } from './senderkeys';

export type Device = { user: string; device: string };
export type Ciphertext = Device & { type: 'prekey' | 'message'; data: string };
// One entry of keys.bundle's "devices" (wire shape).
export type Bundle = {
  device_id: string;
  registration_id?: number;
  identity_key: string;
  signed_prekey: { id: number; key: string; signature: string };
  one_time_prekey?: { id: number; key: string };
};
// keys.upload's fields (wire shape).
export type KeyUpload = {
  identity_key?: string;
  registration_id?: number;
  signed_prekey?: { id: number; key: string; signature: string };
  one_time_prekeys: { id: number; key: string }[];
};

export const kPrekeyTarget = 100;
export const kPrekeyLow = 20;
const kSignedPrekeyLifetimeMs = 7 * 24 * 3600 * 1000;
const kMaxPrekeyId = 0xffffff;

export function addressName(d: Device) {
  return `${d.user}.${d.device}`;
}
// The port passes "<name>" or "<name>.<deviceId>"; ours is always "<user>.<device>".
function nameOf(encoded: string | number): string {
  const parts = String(encoded).split('.');
  return parts.slice(0, 2).join('.');
}

type StoredPair = { pub: string; priv: string };
const pack = (kp: KeyPairType): string =>
  JSON.stringify({ pub: toBase64(kp.pubKey), priv: toBase64(kp.privKey) });
const unpack = (s: string | undefined): KeyPairType | undefined => {
  if (!s) return undefined;
  const o = JSON.parse(s) as StoredPair;
  return { pubKey: toBuffer(fromBase64(o.pub)), privKey: toBuffer(fromBase64(o.priv)) };
};

// Drops field 1 (preKeyId) from a PreKeySignalMessage when it is 0.
export function stripZeroPreKeyId(message: Uint8Array): Uint8Array {
  const fields = decode(message.subarray(1));
  const zero = fields.findIndex((f) => f.no === 1 && f.wire === 0 && f.int === 0);
  if (zero < 0) return message;
  fields.splice(zero, 1);
  return concat(message.subarray(0, 1), encode(fields));
}

class Storage implements StorageType {
  constructor(private kv: Kv) {}
  async getIdentityKeyPair() {
    return unpack(await this.kv.get('identity:self'));
  }
  async getLocalRegistrationId() {
    const v = await this.kv.get('registration_id');
    return v === undefined ? undefined : Number(v);
  }
  // Trust on first use: a device's identity may not change under a session;
  // the app forgets the device first when the server says its keys changed.
  async isTrustedIdentity(identifier: string, identityKey: ArrayBuffer, _d: Direction) {
    const known = await this.kv.get('identity:' + nameOf(identifier));
    return known === undefined || equal(fromBase64(known), toBytes(identityKey));
  }
  async saveIdentity(encodedAddress: string, publicKey: ArrayBuffer) {
    const key = 'identity:' + nameOf(encodedAddress);
    const known = await this.kv.get(key);
    await this.kv.put(key, toBase64(publicKey));
    return known !== undefined && known !== toBase64(publicKey);
  }
  async loadPreKey(id: string | number) {
    return unpack(await this.kv.get('prekey:' + id));
  }
  async storePreKey(id: number | string, kp: KeyPairType) {
    await this.kv.put('prekey:' + id, pack(kp));
  }
  async removePreKey(id: number | string) {
    await this.kv.delete('prekey:' + id);
    await this.kv.put('prekeys_used', String(Number((await this.kv.get('prekeys_used')) ?? 0) + 1));
  }
  async storeSession(encodedAddress: string, record: string) {
    await this.kv.put('session:' + nameOf(encodedAddress), record);
  }
  async loadSession(encodedAddress: string) {
    return this.kv.get('session:' + nameOf(encodedAddress));
  }
  async loadSignedPreKey(id: number | string) {
    return unpack(await this.kv.get('signed:' + id));
  }
  async storeSignedPreKey(id: number | string, kp: KeyPairType) {
    await this.kv.put('signed:' + id, pack(kp));
  }
  async removeSignedPreKey(id: number | string) {
    await this.kv.delete('signed:' + id);
  }
}

export class SignalDevice {
  readonly storage: Storage;
  readonly senderKeys: SenderKeys;
  private constructor(
    private kv: Kv,
    readonly self: Device,
  ) {
    this.storage = new Storage(kv);
    this.senderKeys = new SenderKeys(kv);
  }

  // Opens the device's state, making an identity key pair and registration
  // id on first use.
  static async open(kv: Kv, self: Device): Promise<SignalDevice> {
    const d = new SignalDevice(kv, self);
    if (!(await kv.get('identity:self'))) {
      const identity = await KeyHelper.generateIdentityKeyPair();
      await kv.put('identity:self', pack(identity));
      await kv.put('registration_id', String(KeyHelper.generateRegistrationId() || 1));
    }
    return d;
  }

  async identityKey(): Promise<Uint8Array> {
    const kp = await this.storage.getIdentityKeyPair();
    if (!kp) throw new Error('no identity key');
    return toBytes(kp.pubKey);
  }

  private async nextPrekeyId(): Promise<number> {
    const id = Number((await this.kv.get('next_prekey_id')) ?? 1);
    await this.kv.put('next_prekey_id', String(id >= kMaxPrekeyId ? 1 : id + 1));
    return id;
  }

  // What keys.upload should send now: everything on first use; later new
  // one-time prekeys when fewer than kPrekeyLow are left on the server, and
  // a new signed prekey once the current one is a week old. Null: nothing.
  async keysToUpload(left?: number, now = Date.now(), target = kPrekeyTarget): Promise<KeyUpload | null> {
    const identity = await this.storage.getIdentityKeyPair();
    if (!identity) throw new Error('no identity key');
    const first = (await this.kv.get('uploaded')) === undefined;
    const up: KeyUpload = { one_time_prekeys: [] };
    if (first) {
      up.identity_key = toBase64(identity.pubKey);
      up.registration_id = await this.storage.getLocalRegistrationId();
    }
    const signedAt = Number((await this.kv.get('signed_at')) ?? 0);
    if (first || now - signedAt > kSignedPrekeyLifetimeMs) {
      const id = Number((await this.kv.get('signed_id')) ?? 0) + 1;
      const spk = await KeyHelper.generateSignedPreKey(identity, id);
      await this.storage.storeSignedPreKey(id, spk.keyPair);
      await this.kv.put('signed_id', String(id));
      await this.kv.put('signed_at', String(now));
      up.signed_prekey = { id, key: toBase64(spk.keyPair.pubKey), signature: toBase64(spk.signature) };
    }
    const have = first ? 0 : left;
    if (have !== undefined && have < kPrekeyLow) {
      for (let i = have; i < target; i++) {
        const id = await this.nextPrekeyId();
        const pk = await KeyHelper.generatePreKey(id);
        await this.storage.storePreKey(id, pk.keyPair);
        up.one_time_prekeys.push({ id, key: toBase64(pk.keyPair.pubKey) });
      }
    }
    if (!up.identity_key && !up.signed_prekey && up.one_time_prekeys.length === 0) return null;
    return up;
  }

  // Call once the server accepted keysToUpload's answer.
  async markUploaded() {
    await this.kv.put('uploaded', '1');
  }

  // One-time prekeys used up by sessions others started since the last reset.
  async prekeysUsed(reset = false): Promise<number> {
    const n = Number((await this.kv.get('prekeys_used')) ?? 0);
    if (reset) await this.kv.put('prekeys_used', '0');
    return n;
  }

  private address(d: Device) {
    return new SignalProtocolAddress(addressName(d), 1);
  }

  async hasSession(d: Device): Promise<boolean> {
    return new SessionCipher(this.storage, this.address(d)).hasOpenSession();
  }

  // The identity key this device last saw for `d`, if any.
  async knownIdentity(d: Device): Promise<Uint8Array | undefined> {
    const v = await this.kv.get('identity:' + addressName(d));
    return v === undefined ? undefined : fromBase64(v);
  }

  // X3DH from a keys.bundle entry. Throws on a bad signature, or when the
  // bundle's identity differs from the one known for that device (forget
  // the device first: keys_changed).
  async startSession(user: string, b: Bundle) {
    const d = { user, device: String(b.device_id) };
    await new SessionBuilder(this.storage, this.address(d)).processPreKey({
      identityKey: toBuffer(fromBase64(b.identity_key)),
      registrationId: b.registration_id,
      signedPreKey: {
        keyId: b.signed_prekey.id,
        publicKey: toBuffer(fromBase64(b.signed_prekey.key)),
        signature: toBuffer(fromBase64(b.signed_prekey.signature)),
      },
      preKey: b.one_time_prekey
        ? { keyId: b.one_time_prekey.id, publicKey: toBuffer(fromBase64(b.one_time_prekey.key)) }
        : undefined,
    });
  }

  // One ciphertext per device; each must have a session.
  async encrypt(devices: Device[], plaintext: Uint8Array): Promise<Ciphertext[]> {
    const out: Ciphertext[] = [];
    for (const d of devices) {
      const m = await new SessionCipher(this.storage, this.address(d)).encrypt(toBuffer(plaintext));
      let bytes = fromBinaryString(m.body ?? '');
      if (m.type === 3) bytes = stripZeroPreKeyId(bytes);
      out.push({ ...d, type: m.type === 3 ? 'prekey' : 'message', data: toBase64(bytes) });
    }
    return out;
  }

  async decrypt(sender: Device, c: { type: string; data: string }): Promise<Uint8Array> {
    const cipher = new SessionCipher(this.storage, this.address(sender));
    const data = toBuffer(fromBase64(c.data));
    const plain =
      c.type === 'prekey'
        ? await cipher.decryptPreKeyWhisperMessage(data, 'binary')
        : await cipher.decryptWhisperMessage(data, 'binary');
    return toBytes(plain);
  }

  // Drops the session, the known identity and the sender keys of a device.
  async forgetDevice(d: Device) {
    const name = addressName(d);
    await this.kv.delete('session:' + name);
    await this.kv.delete('identity:' + name);
    await this.senderKeys.forgetSender(name);
  }

  // ---- Sender Keys ----
  ownSenderKey(group: string) {
    return this.senderKeys.ownDistribution(group, addressName(this.self));
  }
  hasOwnSenderKey(group: string) {
    return this.senderKeys.hasOwn(group, addressName(this.self));
  }
  processSenderKey(group: string, sender: Device, distribution: Uint8Array) {
    return this.senderKeys.process(group, addressName(sender), distribution);
  }
  groupEncrypt(group: string, plaintext: Uint8Array) {
    return this.senderKeys.encrypt(group, addressName(this.self), plaintext);
  }
  groupDecrypt(group: string, sender: Device, message: Uint8Array) {
    return this.senderKeys.decrypt(group, addressName(sender), message);
  }
  rotateSenderKey(group: string) {
    return this.senderKeys.rotate(group, addressName(this.self));
  }

  // The safety number with `remoteUser`: this device's key is added to
  // `localKeys` (the user's other devices) when missing.
  async safetyNumber(localKeys: Uint8Array[], remoteUser: string, remoteKeys: Uint8Array[]) {
    const own = await this.identityKey();
    const local = localKeys.some((k) => equal(k, own)) ? localKeys : [...localKeys, own];
    return safetyNumber(this.self.user, local, remoteUser, remoteKeys);
  }
}

// Splits ciphertexts into groups whose JSON stays under `limit` bytes, in
// order, greedily; one that is alone over the limit goes alone.
export function packCiphertexts<T>(cts: T[], limit: number): T[][] {
  const out: T[][] = [];
  let part: T[] = [];
  let size = 2;
  for (const c of cts) {
    const n = JSON.stringify(c).length + 1;
    if (part.length && size + n > limit) {
      out.push(part);
      part = [];
      size = 2;
    }
    part.push(c);
    size += n;
  }
  if (part.length) out.push(part);
  return out;
}
