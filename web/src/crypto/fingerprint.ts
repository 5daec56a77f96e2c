// Safety numbers, as libsignal-protocol-c's fingerprint_generator_create_for_list
// computes them (what `parley safety-number` prints): for each side, its
// identity keys sorted by their 32 raw bytes and concatenated serialized
// (0x05 || 32), then h = SHA-512(0x0000 || keys || id || keys) and
// h = SHA-512(h || keys) for 5200 iterations in all; 30 bytes of h make six
// 5-digit groups; the side whose 30 digits sort lower comes first.
import { concat, toBuffer, toBytes, utf8 } from './bytes';

export const kFingerprintIterations = 5200;

function compare(a: Uint8Array, b: Uint8Array): number {
  for (let i = 1; i < 33; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

async function sideDigits(id: string, keys: Uint8Array[], iterations: number): Promise<string> {
  const sorted = [...keys].sort(compare);
  const keyBytes = concat(...sorted);
  let hash = toBytes(
    await crypto.subtle.digest(
      'SHA-512',
      toBuffer(concat(new Uint8Array([0, 0]), keyBytes, utf8.encode(id), keyBytes)),
    ),
  );
  for (let i = 1; i < iterations; i++) {
    hash = toBytes(await crypto.subtle.digest('SHA-512', toBuffer(concat(hash, keyBytes))));
  }
  let out = '';
  for (let i = 0; i < 30; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) v = v * 256 + hash[i + j];
    out += String(v % 100000).padStart(5, '0');
  }
  return out;
}

// The 60 digits, both sides equal. Keys are serialized (33 bytes, 0x05 first).
export async function safetyNumber(
  localUser: string,
  localKeys: Uint8Array[],
  remoteUser: string,
  remoteKeys: Uint8Array[],
  iterations = kFingerprintIterations,
): Promise<string> {
  for (const k of [...localKeys, ...remoteKeys]) {
    if (k.byteLength !== 33 || k[0] !== 5) throw new Error('safety number: bad identity key');
  }
  const local = await sideDigits(localUser, localKeys, iterations);
  const remote = await sideDigits(remoteUser, remoteKeys, iterations);
  return local <= remote ? local + remote : remote + local;
}

// "12345 67890 ..." (12 groups of 5), as shown to people.
export function groupDigits(n: string): string {
  return n.match(/.{1,5}/g)?.join(' ') ?? n;
}
