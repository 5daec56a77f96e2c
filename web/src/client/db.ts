// The browser's local store: IndexedDB (through idb), every value sealed
// with AES-256-GCM under a non-extractable WebCrypto key that lives in the
// same database (Element's pattern; docs/web.md says what this buys). The
// AAD is the store name and key, so a value cannot be moved to another
// slot. Keys (conversation and message ids) stay readable: the server knows
// them anyway.
//
// Stores: "device" (the sealing key), "signal" (identity, prekeys,
// sessions, sender keys), "meta" (account, refresh token, cursor),
// "convs" (conversation list), "messages" ("<conv>|<msg key>").
import { openDB, type IDBPDatabase } from 'idb';
import { fromUtf8, randomBytes, toBuffer, toBytes, utf8 } from '../crypto/bytes';
import type { Kv } from '../crypto/kv';

export type StoreName = 'signal' | 'meta' | 'convs' | 'messages';
type Sealed = { iv: Uint8Array; ct: ArrayBuffer };

export class LocalDb {
  private constructor(
    private db: IDBPDatabase,
    private key: CryptoKey,
  ) {}

  static async open(name = 'parley'): Promise<LocalDb> {
    const db = await openDB(name, 1, {
      upgrade(d) {
        d.createObjectStore('device');
        for (const s of ['signal', 'meta', 'convs', 'messages']) d.createObjectStore(s);
      },
    });
    let key = (await db.get('device', 'seal')) as CryptoKey | undefined;
    if (!key) {
      key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, [
        'encrypt',
        'decrypt',
      ]);
      await db.put('device', key, 'seal');
    }
    return new LocalDb(db, key);
  }

  private async seal(store: string, key: string, value: unknown): Promise<Sealed> {
    const iv = randomBytes(12);
    const ct = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: toBuffer(iv), additionalData: toBuffer(utf8.encode(store + '\0' + key)) },
      this.key,
      toBuffer(utf8.encode(JSON.stringify(value))),
    );
    return { iv, ct };
  }

  private async unseal<T>(store: string, key: string, s: Sealed | undefined): Promise<T | undefined> {
    if (!s) return undefined;
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: toBuffer(s.iv), additionalData: toBuffer(utf8.encode(store + '\0' + key)) },
      this.key,
      s.ct,
    );
    return JSON.parse(fromUtf8.decode(toBytes(plain))) as T;
  }

  async get<T>(store: StoreName, key: string): Promise<T | undefined> {
    return this.unseal<T>(store, key, await this.db.get(store, key));
  }
  async put(store: StoreName, key: string, value: unknown) {
    await this.db.put(store, await this.seal(store, key, value), key);
  }
  async delete(store: StoreName, key: string) {
    await this.db.delete(store, key);
  }
  async keys(store: StoreName, prefix = ''): Promise<string[]> {
    const range = prefix ? IDBKeyRange.bound(prefix, prefix + '\uffff') : undefined;
    return (await this.db.getAllKeys(store, range)) as string[];
  }
  // Every value whose key starts with prefix, in key order.
  async all<T>(store: StoreName, prefix = ''): Promise<[string, T][]> {
    const range = prefix ? IDBKeyRange.bound(prefix, prefix + '\uffff') : undefined;
    const tx = this.db.transaction(store);
    const out: [string, Sealed][] = [];
    let cursor = await tx.store.openCursor(range);
    while (cursor) {
      out.push([cursor.key as string, cursor.value as Sealed]);
      cursor = await cursor.continue();
    }
    await tx.done;
    const res: [string, T][] = [];
    for (const [k, v] of out) res.push([k, (await this.unseal<T>(store, k, v)) as T]);
    return res;
  }

  // Logout: everything goes, the sealing key too.
  async wipe() {
    const name = this.db.name;
    this.db.close();
    await new Promise<void>((resolve) => {
      const r = indexedDB.deleteDatabase(name);
      r.onsuccess = r.onerror = r.onblocked = () => resolve();
    });
  }

  signalKv(): Kv {
    return {
      get: (k) => this.get<string>('signal', k),
      put: (k, v) => this.put('signal', k, v),
      delete: (k) => this.delete('signal', k),
      keys: (p) => this.keys('signal', p),
    };
  }
}
