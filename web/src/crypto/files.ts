// Encrypted files, as the SDK makes them (docs/e2ee.md): AES-256-GCM under
// a random 32-byte key, blob = nonce(12) || ciphertext || tag(16), uploaded
// as application/octet-stream; the key (base64) and the SHA-256 (hex) of
// the blob travel inside the encrypted "file" message.
import { concat, fromBase64, randomBytes, toBase64, toBuffer, toBytes, toHex } from './bytes';

export type SealedFile = { blob: Uint8Array; key: string; digest: string };

export async function sha256Hex(data: Uint8Array): Promise<string> {
  return toHex(await crypto.subtle.digest('SHA-256', toBuffer(data)));
}

export async function sealFile(plain: Uint8Array): Promise<SealedFile> {
  const raw = randomBytes(32);
  const nonce = randomBytes(12);
  const key = await crypto.subtle.importKey('raw', toBuffer(raw), 'AES-GCM', false, ['encrypt']);
  const ct = toBytes(
    await crypto.subtle.encrypt({ name: 'AES-GCM', iv: toBuffer(nonce) }, key, toBuffer(plain)),
  );
  const blob = concat(nonce, ct);
  return { blob, key: toBase64(raw), digest: await sha256Hex(blob) };
}

// Throws when the blob is not the one the message names, or was altered.
export async function openFile(blob: Uint8Array, keyB64: string, digest: string): Promise<Uint8Array> {
  if ((await sha256Hex(blob)) !== digest.toLowerCase()) throw new Error('file: digest mismatch');
  if (blob.byteLength < 12 + 16) throw new Error('file: too short');
  const raw = fromBase64(keyB64);
  if (raw.byteLength !== 32) throw new Error('file: bad key');
  const key = await crypto.subtle.importKey('raw', toBuffer(raw), 'AES-GCM', false, ['decrypt']);
  return toBytes(
    await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: toBuffer(blob.subarray(0, 12)) },
      key,
      toBuffer(blob.subarray(12)),
    ),
  );
}
