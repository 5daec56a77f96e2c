// Curve25519 as libsignal uses it (keys 0x05 || 32 bytes, XEdDSA-style
// signatures with the Montgomery key), from the Signal port's compiled
// curve25519 (the same C code libsignal-protocol-c has).
import { crypto as internal } from '@privacyresearch/libsignal-protocol-typescript/lib/internal';
import { toBuffer, toBytes } from './bytes';

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
