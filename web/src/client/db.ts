// The browser's local store: IndexedDB (through idb), every value sealed
// with AES-256-GCM under a non-extractable WebCrypto key that lives in the
// same database (Element's pattern; docs/web.md says what this buys). The
// AAD is the store name and key, so a value cannot be moved to another
// slot. Keys (conversation and message ids) stay readable: the server knows
// them anyway.
//
// Stores: "device" (the sealing key), "signal" (identity, prekeys,
// sessions, sender keys), "meta" (account, refresh token, cursor),
// "convs" (conversation list), "messages" ("<conv>|<msg key>"), and
// "blobs": files being uploaded, already encrypted (AES-256-GCM, the bytes
// the server gets), by client_msg_id, so an upload resumes after a reload.
import { openDB, type IDBPDatabase } from 'idb';
import { fromUtf8, randomBytes, toBuffer, toBytes, utf8 } from '../crypto/bytes';
import type { Kv } from '../crypto/kv';

export type StoreName = 'signal' | 'meta' | 'convs' | 'messages';
type Sealed = { iv: Uint8Array; ct: ArrayBuffer };
// A write held by a batch: the value as JSON (taken when it was put), or
// undefined for a delete.
type Op = { store: StoreName; key: string; json?: string };
const opKey = (store: string, key: string) => store + '\0' + key;

// Batches: between begin() and commit() every put and delete is held in
// memory (reads see it) and commit() writes them all in ONE IndexedDB
// transaction, so a batch is stored whole or not at all. The client runs
// each incoming event (session state, message, conversation, cursor) and
// each encryption (session state before the ciphertext leaves) as a batch.
// Writes that arrive while a batch commits wait for it, so they land after.
export class LocalDb {
  private pending?: Map<string, Op>;
  private committing?: Map<string, Op>;
  private flushing: Promise<void> = Promise.resolve();
  // For tests: called with the batch's ops just before its transaction.
  onCommit?: (ops: Op[]) => void;

  private constructor(
    private db: IDBPDatabase,
    private key: CryptoKey,
  ) {}

  static async open(name = 'parley'): Promise<LocalDb> {
    const db = await openDB(name, 2, {
      upgrade(d, from) {
        if (from < 1) {
          d.createObjectStore('device');
          for (const s of ['signal', 'meta', 'convs', 'messages']) d.createObjectStore(s);
        }
        if (from < 2) d.createObjectStore('blobs');
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

  private async seal(store: string, key: string, json: string): Promise<Sealed> {
    const iv = randomBytes(12);
    const ct = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: toBuffer(iv), additionalData: toBuffer(utf8.encode(store + '\0' + key)) },
      this.key,
      toBuffer(utf8.encode(json)),
    );
    return { iv, ct };
  }

  private held(store: string, key: string): Op | undefined {
    const k = opKey(store, key);
    return this.pending?.get(k) ?? this.committing?.get(k);
  }

  begin() {
    if (this.pending) throw new Error('LocalDb: a batch is already open');
    this.pending = new Map();
  }

  // Writes the batch in one transaction; throws (and stores none of it)
  // when the transaction fails.
  async commit() {
    const ops = this.pending;
    this.pending = undefined;
    if (!ops || ops.size === 0) return;
    this.committing = ops;
    const done = (async () => {
      const list = [...ops.values()];
      const sealed = await Promise.all(
        list.map(async (o) => (o.json === undefined ? undefined : this.seal(o.store, o.key, o.json))),
      );
      this.onCommit?.(list);
      const tx = this.db.transaction([...new Set(list.map((o) => o.store))], 'readwrite');
      const writes = list.map((o, i) =>
        o.json === undefined ? tx.objectStore(o.store).delete(o.key) : tx.objectStore(o.store).put(sealed[i], o.key),
      );
      await Promise.all([...writes, tx.done]);
    })();
    this.flushing = done.catch(() => {});
    try {
      await done;
    } finally {
      if (this.committing === ops) this.committing = undefined;
    }
  }

  // Drops an open batch (nothing of it is written).
  abort() {
    this.pending = undefined;
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
    const op = this.held(store, key);
    if (op) return op.json === undefined ? undefined : (JSON.parse(op.json) as T);
    return this.unseal<T>(store, key, await this.db.get(store, key));
  }
  async put(store: StoreName, key: string, value: unknown) {
    const json = JSON.stringify(value);
    if (this.pending) return void this.pending.set(opKey(store, key), { store, key, json });
    await this.flushing;
    await this.db.put(store, await this.seal(store, key, json), key);
  }
  async delete(store: StoreName, key: string) {
    if (this.pending) return void this.pending.set(opKey(store, key), { store, key });
    await this.flushing;
    await this.db.delete(store, key);
  }
  async keys(store: StoreName, prefix = ''): Promise<string[]> {
    const range = prefix ? IDBKeyRange.bound(prefix, prefix + '\uffff') : undefined;
    const out = new Set((await this.db.getAllKeys(store, range)) as string[]);
    for (const ops of [this.committing, this.pending]) {
      for (const o of ops?.values() ?? []) {
        if (o.store !== store || !o.key.startsWith(prefix)) continue;
        if (o.json === undefined) out.delete(o.key);
        else out.add(o.key);
      }
    }
    return [...out].sort();
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

  // Encrypted files waiting for their upload (not sealed again: they are
  // AES-256-GCM ciphertext already, and their keys are in sealed messages).
  async putBlob(key: string, blob: Blob) {
    await this.db.put('blobs', blob, key);
  }
  async getBlob(key: string): Promise<Blob | undefined> {
    return (await this.db.get('blobs', key)) as Blob | undefined;
  }
  async deleteBlob(key: string) {
    await this.db.delete('blobs', key);
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
