// Curve25519 as libsignal uses it (keys 0x05 || 32 bytes, XEdDSA-style
// signatures with the Montgomery key), from the Signal port's compiled
// curve25519 (the same C code libsignal-protocol-c has).
import { AsyncCurve25519Wrapper } from '@privacyresearch/curve25519-typescript';
import { setCurve } from '@privacyresearch/libsignal-protocol-typescript';
import { crypto as internal } from '@privacyresearch/libsignal-protocol-typescript/lib/internal';
import { equal, randomBytes, toBuffer, toBytes } from './bytes';

export type KeyPair = { pub: Uint8Array; priv: Uint8Array };

export async function generateKeyPair(): Promise<KeyPair> {
  const kp = await internal.createKeyPair();
  return { pub: toBytes(kp.pubKey), priv: toBytes(kp.privKey) };
}

export async function sign(priv: Uint8Array, message: Uint8Array): Promise<Uint8Array> {
  return toBytes(await internal.Ed25519Sign(toBuffer(priv), toBuffer(message)));
}

// True when `sig` is `pub`'s signature of `message`.
export async function verify(
  pub: Uint8Array,
  message: Uint8Array,
  sig: Uint8Array,
): Promise<boolean> {
  if (sig.byteLength !== 64 || pub.byteLength !== 33 || pub[0] !== 5) return false;
  try {
    // The port's verify throws on a bad signature.
    await internal.Ed25519Verify(toBuffer(pub), toBuffer(message), toBuffer(sig));
    return true;
  } catch {
    return false;
  }
}

// ---- X25519 through WebCrypto ----
// The port's curve25519 is compiled C run as JavaScript: ~10 ms a key pair
// or an agreement. WebCrypto's X25519 (Chromium, Firefox, Safari, Node)
// does both in well under a millisecond. useWebCryptoX25519() installs a
// curve that takes key pairs and agreements from WebCrypto and signatures
// (XEdDSA with the Montgomery key, which WebCrypto has not) from the
// compiled code; it first checks that WebCrypto gives the same bytes as the
// compiled curve, and keeps the compiled curve when it cannot.

// PKCS#8 for an X25519 private key (RFC 8410): this, then the 32 bytes.
const kPkcs8Prefix = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

function clamp(priv: ArrayBuffer): Uint8Array {
  const p = new Uint8Array(priv.slice(0));
  p[0] &= 248;
  p[31] &= 127;
  p[31] |= 64;
  return p;
}

function fromBase64Url(s: string): Uint8Array {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

class WebCryptoCurve {
  readonly compiled = new AsyncCurve25519Wrapper();

  private importPrivate(priv: Uint8Array, extractable: boolean) {
    const pkcs8 = new Uint8Array(kPkcs8Prefix.length + 32);
    pkcs8.set(kPkcs8Prefix);
    pkcs8.set(priv, kPkcs8Prefix.length);
    return crypto.subtle.importKey('pkcs8', toBuffer(pkcs8), { name: 'X25519' }, extractable, ['deriveBits']);
  }

  async keyPair(privKey: ArrayBuffer) {
    const priv = clamp(privKey);
    const jwk = await crypto.subtle.exportKey('jwk', await this.importPrivate(priv, true));
    if (!jwk.x) throw new Error('X25519: no public key');
    return { pubKey: toBuffer(fromBase64Url(jwk.x)), privKey: toBuffer(priv) };
  }

  // Throws for a small-order public key (an all-zero secret), which the
  // compiled curve would have turned into zeros.
  async sharedSecret(pubKey: ArrayBuffer, privKey: ArrayBuffer) {
    const pub = await crypto.subtle.importKey('raw', pubKey, { name: 'X25519' }, false, []);
    const priv = await this.importPrivate(clamp(privKey), false);
    return crypto.subtle.deriveBits({ name: 'X25519', public: pub }, priv, 256);
  }

  sign(privKey: ArrayBuffer, message: ArrayBuffer) {
    return this.compiled.sign(privKey, message);
  }
  verify(pubKey: ArrayBuffer, message: ArrayBuffer, sig: ArrayBuffer) {
    return this.compiled.verify(pubKey, message, sig);
  }
}

// True when WebCrypto's X25519 is in use from now on.
export async function useWebCryptoX25519(): Promise<boolean> {
  try {
    const c = new WebCryptoCurve();
    const a = toBuffer(randomBytes(32));
    const b = toBuffer(randomBytes(32));
    const [mine, ref, other] = await Promise.all([c.keyPair(a), c.compiled.keyPair(a), c.compiled.keyPair(b)]);
    if (!equal(toBytes(mine.pubKey), toBytes(ref.pubKey)) || !equal(toBytes(mine.privKey), toBytes(ref.privKey))) return false;
    const [s1, s2] = await Promise.all([c.sharedSecret(other.pubKey, a), c.compiled.sharedSecret(other.pubKey, a)]);
    if (!equal(toBytes(s1), toBytes(s2))) return false;
    setCurve(c);
    return true;
  } catch {
    return false;
  }
}
