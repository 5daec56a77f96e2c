// Where the crypto layer keeps its state: an async key-value store, one
// namespace per kind of record (the SDK keeps the same records in its
// profile's `kv` table, namespace "signal"). The browser uses SealedIdbKv
// (idbkv.ts); tests and node use MemoryKv.

export interface Kv {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  // Every key that starts with `prefix`, in key order.
  keys(prefix: string): Promise<string[]>;
}

export class MemoryKv implements Kv {
  private map = new Map<string, string>();
  async get(key: string) {
    return this.map.get(key);
  }
  async put(key: string, value: string) {
    this.map.set(key, value);
  }
  async delete(key: string) {
    this.map.delete(key);
  }
  async keys(prefix: string) {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}
