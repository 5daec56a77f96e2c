// Node 18 (Debian 12's) has WebCrypto but not as globalThis.crypto; the
// crypto layer and the Signal port expect it there. Imported first.
import { webcrypto } from 'node:crypto';

if (!globalThis.crypto) (globalThis as any).crypto = webcrypto;
