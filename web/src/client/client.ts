// The Parley client in the browser: account and tokens, the WebSocket,
// end-to-end encryption (crypto/signal.ts) with the SDK's envelopes, the
// conversation list and messages kept in the sealed IndexedDB (db.ts),
// receipts, typing. The UI reads `state` and listens for "change".
//
// Receiving: events are handled one at a time in seq order; each event's
// writes (the session state its decryption moved, the message, the
// conversation, the cursor) are one IndexedDB transaction (LocalDb
// batches), and only then is it acknowledged: a tab killed or a failed
// write midway stores none of it and acks nothing, so the event comes
// again and decrypts again. Encryption runs the same way (one at a time,
// its session state stored before the ciphertext is sent), so a ratchet
// step is never lost and a message key never used twice.
import { fromBase64, fromUtf8, toBase64, toHex, utf8 } from '../crypto/bytes';
import { openFile, sealFile } from '../crypto/files';
import { groupDigits } from '../crypto/fingerprint';
import { packCiphertexts, SignalDevice, type Bundle, type Device } from '../crypto/signal';
import { LocalDb } from './db';
import { download, formatBytes, imageType, kSealOverhead, maxUploadBytes, upload } from './media';
import { RequestError, Socket, type Frame } from './socket';
import { kGapTimeoutMs, Watermark } from './watermark';

export type Status = 'sending' | 'sent' | 'delivered' | 'read' | 'failed';
// A file message's body, as the SDK writes it (sdk/src/media.cpp): the key
// and the digest of the encrypted blob travel inside the encrypted message.
export type FileInfo = {
  name: string;
  content_type: string;
  size: number; // of the plaintext
  key?: string;
  digest?: string;
  media_id?: string;
  upload_url?: string; // while uploading: the tus upload to resume
};
export type Message = {
  msg_id?: string;
  client_msg_id: string;
  conv: string; // "u:<user>" (1:1) or "g:<group>"
  from: string; // user id
  from_label?: string; // in groups: the sender's phone number or name
  outgoing: boolean;
  kind: string;
  text: string;
  ts_ms: number;
  status?: Status;
  error?: string;
  file?: FileInfo;
  progress?: number; // 0..1 while a file uploads (not stored)
};
export type Conversation = {
  id: string;
  peer?: string; // user id of a 1:1 chat
  title: string;
  last_text: string;
  last_ts_ms: number;
  unread: number;
  members?: string[]; // user ids of a group's members (this user included)
  admins?: string[]; // user ids of a group's admins
  left?: boolean; // this user is no longer a member of the group
};
export type Account = {
  user_id: string;
  device_id: string;
  phone: string;
  refresh_token: string;
};
type Tokens = Account & { access_token: string; access_expires_in_s: number };
type ConnState = 'connecting' | 'online' | 'offline' | 'replaced' | 'signed_out';

const kStatusRank: Record<Status, number> = { failed: 0, sending: 1, sent: 2, delivered: 3, read: 4 };
const kTypingShowMs = 6000;
const kTypingRepeatMs = 3000;
const kMaxStaleRetries = 3;
// The ciphertexts of one sender_key send, serialized, stay under this (the
// body limit is 64 KiB; the SDK packs up to 58 KiB too).
const kMaxDistributionBytes = 58 * 1024;

async function postJson(path: string, body: unknown): Promise<any> {
  const r = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new RequestError(data?.error?.code ?? 'http_' + r.status, data?.error?.message ?? '', data);
  return data;
}

export async function sha256Hex(s: string) {
  return toHex(await crypto.subtle.digest('SHA-256', utf8.encode(s)));
}

export class Client extends EventTarget {
  account?: Account;
  conn: ConnState = 'offline';
  connDetail = '';
  convs = new Map<string, Conversation>();
  messages = new Map<string, Message[]>(); // by conv, oldest first
  typing = new Map<string, number>(); // conv -> shown until (ms)
  presence = new Map<string, { online: boolean; last_seen_ms?: number }>(); // by user
  openConv?: string;
  maxUpload?: number; // the server's limit for a file, plaintext bytes

  private db!: LocalDb;
  private signal?: SignalDevice;
  private socket?: Socket;
  private access?: { token: string; until: number };
  private cursor?: string; // the watermark as stored: what hello resumes after
  private readonly mark = new Watermark();
  private lock: Promise<unknown> = Promise.resolve();
  private devices = new Map<string, Device[]>(); // user -> devices with keys
  private identities = new Map<string, Uint8Array>(); // "<user>.<device>" -> identity key
  private typingSent = new Map<string, number>();

  private changed() {
    this.dispatchEvent(new Event('change'));
  }

  // Runs fn alone (after every job queued before it) as one LocalDb batch:
  // its writes are stored in one transaction when it ends, or not at all
  // when it throws. Every use of the Signal state goes through here; fn
  // must not call exclusive() itself.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(async () => {
      this.db.begin();
      try {
        const v = await fn();
        await this.db.commit();
        return v;
      } catch (e) {
        this.db.abort();
        throw e;
      }
    });
    this.lock = run.catch(() => {});
    return run;
  }

  async init() {
    this.db = await LocalDb.open();
    this.account = await this.db.get<Account>('meta', 'account');
    if (!this.account) return this.changed();
    this.cursor = await this.db.get<string>('meta', 'cursor');
    this.mark.hello(this.cursor, undefined);
    for (const [, c] of await this.db.all<Conversation>('convs')) this.convs.set(c.id, c);
    for (const [, m] of await this.db.all<Message>('messages')) {
      const list = this.messages.get(m.conv) ?? [];
      list.push(m);
      this.messages.set(m.conv, list);
    }
    for (const list of this.messages.values()) list.sort((a, b) => a.ts_ms - b.ts_ms);
    await this.startDevice();
  }

  // ---- Sign-in ----
  async requestCode(phone: string) {
    await postJson('/v1/auth/otp', { phone });
  }

  async signIn(phone: string, code: string) {
    const t = (await postJson('/v1/auth/verify', {
      phone,
      code,
      device: { name: 'Web browser', platform: 'web' },
    })) as Tokens;
    this.account = { user_id: t.user_id, device_id: t.device_id, phone, refresh_token: t.refresh_token };
    this.access = { token: t.access_token, until: Date.now() + (t.access_expires_in_s - 30) * 1000 };
    await this.db.put('meta', 'account', this.account);
    await this.startDevice();
  }

  async signOut() {
    this.socket?.stop();
    await this.db.wipe();
    location.assign('/');
  }

  private async startDevice() {
    const a = this.account!;
    this.signal = await SignalDevice.open(this.db.signalKv(), { user: a.user_id, device: a.device_id });
    this.socket = new Socket({
      token: () => this.accessToken(),
      resumeAfter: () => this.cursor,
      onReady: (ok) => {
        this.mark.hello(undefined, ok.head_seq === undefined ? undefined : String(ok.head_seq));
        return this.onReady();
      },
      onPush: (f) => this.onPush(f),
      onState: (s, d) => {
        this.conn = s;
        this.connDetail = d ?? '';
        this.changed();
      },
      onAuthFailed: async (code) => {
        this.access = undefined;
        if (code === 'device_revoked') return false;
        try {
          await this.accessToken();
          return true;
        } catch {
          return false;
        }
      },
    });
    window.addEventListener('online', () => this.socket?.kick());
    this.socket.start();
    this.changed();
  }

  private async accessToken(): Promise<string> {
    if (this.access && Date.now() < this.access.until) return this.access.token;
    const a = this.account!;
    const t = (await postJson('/v1/auth/refresh', { refresh_token: a.refresh_token })) as Tokens;
    a.refresh_token = t.refresh_token;
    await this.db.put('meta', 'account', a);
    this.access = { token: t.access_token, until: Date.now() + (t.access_expires_in_s - 30) * 1000 };
    return t.access_token;
  }

  private request(frame: Frame) {
    if (!this.socket) return Promise.reject(new RequestError('disconnected', 'offline', {}));
    return this.socket.request(frame);
  }

  // After every hello: publish keys when the server needs them.
  private async onReady() {
    const s = this.signal!;
    const count = await this.request({ op: 'keys.count' });
    const up = await this.exclusive(() => s.keysToUpload(Number(count.one_time_prekeys_left)));
    if (up) {
      await this.request({ op: 'keys.upload', ...up });
      await this.exclusive(() => s.markUploaded());
    }
    void this.retryUnsent();
    // The server's file limit, read again on every connection (it may
    // have been restarted with another).
    void maxUploadBytes().then(
      (n) => {
        this.maxUpload = n === undefined ? undefined : n - kSealOverhead;
        this.changed();
      },
      () => {},
    );
    void this.subscribePresence([...this.convs.values()].flatMap((c) => (c.peer ? [c.peer] : [])));
  }

  private async subscribePresence(users: string[]) {
    if (users.length === 0) return;
    try {
      const r = await this.request({ op: 'presence.subscribe', users: users.slice(0, 500) });
      for (const st of r.statuses ?? []) {
        this.presence.set(String(st.user), { online: !!st.online, last_seen_ms: st.last_seen_ms ?? undefined });
      }
      this.changed();
    } catch {
      /* shown without presence */
    }
  }

  // ---- Receiving ----
  private onPush(f: Frame) {
    if (f.op === 'event') {
      // Acknowledged is the watermark, once it moves (watermark.ts).
      this.exclusive(() => this.onEvent(f)).then(
        (upTo) => this.acked(upTo),
        (e) => this.storageFailed(e),
      );
    } else if (f.op === 'presence') {
      this.presence.set(String(f.user), { online: !!f.online, last_seen_ms: f.last_seen_ms ?? undefined });
      this.changed();
    } else if (f.op === 'typing') {
      const conv = f.conv?.group ? 'g:' + f.conv.group : 'u:' + f.from?.user;
      if (f.state === 'composing') this.typing.set(conv, Date.now() + kTypingShowMs);
      else this.typing.delete(conv);
      this.changed();
      setTimeout(() => this.changed(), kTypingShowMs + 50);
    }
  }

  // Stores the event; returns the watermark when it moved.
  private async onEvent(f: Frame): Promise<string | undefined> {
    // After a failed write nothing more is stored: a later cursor would let
    // a reload skip the event that was lost.
    if (this.storageBroken) throw new Error('an earlier event could not be stored');
    const seq = String(f.seq);
    if (!this.mark.fresh(seq)) return undefined; // had it: sent again after a reconnect
    const e = f.event ?? {};
    try {
      if (e.type === 'message') await this.onMessage(e);
      else if (e.type === 'receipt') await this.onReceipt(e);
      else if (e.type === 'keys_changed') await this.onKeysChanged(e);
      else if (e.type === 'read_sync') await this.onReadSync(e);
      else if (e.type === 'group') await this.onGroup(e);
      else if (e.type === 'device') this.devices.delete(this.account!.user_id); // re-read before the next send
    } catch (err) {
      console.error('event', e.type, err);
    }
    // If this batch then fails to commit, the client stops until a reload
    // (storageFailed), which starts again from the cursor stored before.
    const upTo = this.mark.stored(seq);
    if (upTo === undefined) return undefined;
    await this.db.put('meta', 'cursor', upTo);
    this.cursor = upTo;
    return upTo;
  }

  private acked(upTo: string | undefined) {
    if (upTo !== undefined) this.socket?.send({ op: 'ack', seq: upTo });
    if (this.mark.hasGap() && this.gapTimer === undefined) {
      this.gapTimer = setTimeout(() => {
        this.gapTimer = undefined;
        this.exclusive(async () => {
          const w = this.mark.skipStaleGap();
          if (w !== undefined) {
            await this.db.put('meta', 'cursor', w);
            this.cursor = w;
          }
          return w;
        }).then(
          (w) => this.acked(w),
          (e) => this.storageFailed(e),
        );
      }, kGapTimeoutMs);
    }
  }
  private gapTimer?: ReturnType<typeof setTimeout>;

  // An event's batch could not be written: it was not acknowledged, and
  // nothing after it may be (acks are cumulative). Stop; a reload starts
  // again from what IndexedDB holds, and the server sends the event again.
  private storageBroken = false;
  private storageFailed(e: unknown) {
    console.error('storing an event failed', e);
    this.storageBroken = true;
    if (this.conn === 'signed_out') return;
    this.socket?.stop();
    this.socket = undefined;
    this.conn = 'offline';
    this.connDetail = 'could not save to this browser’s storage; reload the page';
    this.changed();
  }

  private convKey(c: { user?: string; group?: string }) {
    return c.group ? 'g:' + c.group : 'u:' + c.user;
  }

  private async onMessage(e: Frame) {
    const conv = this.convKey(e.conv ?? {});
    const list = this.messages.get(conv) ?? [];
    if (list.some((m) => m.msg_id === e.msg_id)) return;
    const from: Device = { user: String(e.from?.user), device: String(e.from?.device) };
    const me = this.account!;
    let kind = e.kind;
    let body: any = e.body;
    let error: string | undefined;
    let mediaId: string | undefined = e.media_id ? String(e.media_id) : undefined;
    if (kind === 'e2ee' || kind === 'sender_key') {
      if (from.user === me.user_id && from.device === me.device_id) return; // our own copy
      const ct = (body?.ciphertexts ?? []).find(
        (c: any) => String(c.user) === me.user_id && String(c.device) === me.device_id,
      );
      try {
        if (kind === 'sender_key') {
          if (!ct) return;
          const inner = JSON.parse(fromUtf8.decode(await this.signal!.decrypt(from, ct)));
          await this.signal!.processSenderKey(String(inner.group), from, fromBase64(inner.distribution));
          return;
        }
        let plain: Uint8Array;
        if (body?.group?.data && e.conv?.group) {
          plain = await this.signal!.groupDecrypt(String(e.conv.group), from, fromBase64(body.group.data));
        } else if (ct) {
          plain = await this.signal!.decrypt(from, ct);
          await this.afterPrekeyMessage(ct.type);
        } else {
          throw new Error('no ciphertext for this device');
        }
        const inner = JSON.parse(fromUtf8.decode(plain));
        kind = inner.kind;
        body = inner.body;
        if (inner.media_id) mediaId = String(inner.media_id);
      } catch (err) {
        error = 'could not decrypt';
        console.warn('decrypt', err);
      }
    }
    const file = !error && mediaId && body && typeof body === 'object' ? fileInfo(body, mediaId) : undefined;
    const text = error ?? (kind === 'text' ? String(body?.text ?? '') : file ? file.name : `[${kind}]`);
    const m: Message = {
      from_label: conv.startsWith('g:') && !e.outgoing ? (this.names.get(from.user) ?? 'User ' + from.user) : undefined,
      msg_id: String(e.msg_id),
      client_msg_id: String(e.client_msg_id ?? ''),
      conv,
      from: from.user,
      outgoing: !!e.outgoing,
      kind,
      text,
      ts_ms: Number(e.ts_ms),
      status: e.outgoing ? 'sent' : undefined,
      error,
      file,
    };
    await this.store(m);
    const c = await this.ensureConv(conv, e.conv?.user ? String(e.conv.user) : undefined);
    c.last_text = file ? 'File: ' + text : text;
    c.last_ts_ms = m.ts_ms;
    if (!m.outgoing) {
      if (this.openConv === conv && document.visibilityState === 'visible') void this.markRead(conv);
      else c.unread += 1;
    }
    this.typing.delete(conv);
    await this.db.put('convs', conv, c);
    this.changed();
  }

  private prekeyMessages = 0;
  // Every few sessions others start with us, top the server's prekeys up.
  private async afterPrekeyMessage(type: string) {
    if (type !== 'prekey' || ++this.prekeyMessages % 5 !== 0) return;
    void this.onReady().catch(() => {});
  }

  private async onReceipt(e: Frame) {
    const conv = this.convKey(e.conv ?? {});
    const status = e.status as Status;
    const ids = new Set<string>((e.msg_ids ?? []).map(String));
    for (const m of this.messages.get(conv) ?? []) {
      if (m.outgoing && m.msg_id && ids.has(m.msg_id) && kStatusRank[status] > kStatusRank[m.status ?? 'sent']) {
        m.status = status;
        await this.db.put('messages', this.msgKey(m), m);
      }
    }
    this.changed();
  }

  private async onReadSync(e: Frame) {
    const c = this.convs.get(this.convKey(e.conv ?? {}));
    if (c) {
      c.unread = 0;
      await this.db.put('convs', c.id, c);
      this.changed();
    }
  }

  private async onKeysChanged(e: Frame) {
    const d = { user: String(e.user), device: String(e.device) };
    await this.signal!.forgetDevice(d);
    this.devices.delete(d.user);
    this.identities.delete(`${d.user}.${d.device}`);
  }

  private msgKey(m: Message) {
    return `${m.conv}|${m.client_msg_id || m.msg_id}`;
  }

  private async store(m: Message) {
    const list = this.messages.get(m.conv) ?? [];
    const at = list.findIndex((x) => x.client_msg_id && x.client_msg_id === m.client_msg_id);
    if (at >= 0) list[at] = m;
    else list.push(m);
    list.sort((a, b) => a.ts_ms - b.ts_ms);
    this.messages.set(m.conv, list);
    await this.db.put('messages', this.msgKey(m), { ...m, progress: undefined });
  }

  private async ensureConv(id: string, peer?: string, title?: string): Promise<Conversation> {
    let c = this.convs.get(id);
    if (!c) {
      c = { id, peer, title: title ?? '', last_text: '', last_ts_ms: 0, unread: 0 };
      this.convs.set(id, c);
      if (!title) await this.nameConv(c);
      if (peer) void this.subscribePresence([peer]);
    }
    return c;
  }

  private async nameConv(c: Conversation) {
    c.title = c.peer ? 'User ' + c.peer : 'Group ' + c.id.slice(2);
    if (!c.peer) return;
    try {
      const r = await this.request({ op: 'profile.get', users: [c.peer] });
      const name = r.profiles?.[0]?.name;
      if (name) c.title = name;
    } catch {
      /* keep the id */
    }
  }

  // ---- History (scroll-back) ----
  // What this browser stores is the history it can read: a device is given
  // only its own ciphertext, so the server's older messages of a chat are
  // encrypted for the user's other devices (or were sent before this one
  // was linked). `history` pages through them: messages not in the clear
  // are counted, the rest (sent unencrypted by another client) kept.
  private history = new Map<string, { done: boolean; unreadable: number; before?: string }>();
  historyDone(conv: string) {
    return this.history.get(conv)?.done ?? false;
  }
  unreadableHistory(conv: string) {
    return this.history.get(conv)?.unreadable ?? 0;
  }
  // One page of the server's history before the oldest message known;
  // answers how many messages were added.
  async loadHistory(conv: string, limit: number): Promise<number> {
    const h = this.history.get(conv) ?? { done: false, unreadable: 0 };
    this.history.set(conv, h);
    if (h.done) return 0;
    const list = this.messages.get(conv) ?? [];
    const before = h.before ?? list.find((m) => m.msg_id)?.msg_id;
    let r: Frame;
    try {
      r = await this.request({ op: 'history', conv: this.wireConv(conv), limit, ...(before ? { before_msg_id: before } : {}) });
    } catch (err) {
      if (err instanceof RequestError && (err.code === 'not_member' || err.code === 'not_found')) {
        h.done = true;
        this.changed();
        return 0;
      }
      throw err;
    }
    const known = new Set(list.map((m) => m.msg_id));
    let added = 0;
    for (const e of (r.messages ?? []) as Frame[]) {
      h.before = String(e.msg_id);
      if (known.has(String(e.msg_id))) continue;
      if (e.kind === 'sender_key') continue;
      if (e.kind === 'e2ee') {
        h.unreadable += 1;
        continue;
      }
      const from = String(e.from?.user ?? '');
      await this.store({
        msg_id: String(e.msg_id),
        client_msg_id: String(e.client_msg_id ?? e.msg_id),
        conv,
        from,
        outgoing: from === this.account!.user_id,
        kind: String(e.kind),
        text: e.kind === 'text' ? String(e.body?.text ?? '') : `[${e.kind}]`,
        ts_ms: Number(e.ts_ms),
        status: from === this.account!.user_id ? 'sent' : undefined,
      });
      added += 1;
    }
    if (!r.more) h.done = true;
    this.changed();
    return added;
  }

  // ---- Conversations ----
  async startChat(phone: string): Promise<string> {
    const hash = await sha256Hex(phone);
    const r = await this.request({ op: 'contacts.discover', hashes: [hash] });
    const match = (r.matches ?? []).find((m: any) => m.hash === hash);
    if (!match) throw new Error('No Parley user has this phone number.');
    const id = 'u:' + match.user_id;
    const c = await this.ensureConv(id, String(match.user_id), phone);
    c.title = phone;
    this.names.set(String(match.user_id), phone);
    await this.db.put('convs', id, c);
    this.changed();
    return id;
  }

  open(conv?: string) {
    this.openConv = conv;
    if (conv) void this.markRead(conv);
    this.changed();
  }

  async markRead(conv: string) {
    const c = this.convs.get(conv);
    const last = [...(this.messages.get(conv) ?? [])].reverse().find((m) => !m.outgoing && m.msg_id);
    if (c && c.unread) {
      c.unread = 0;
      await this.db.put('convs', conv, c);
      this.changed();
    }
    if (!last || !this.socket?.ready) return;
    const readKey = 'read:' + conv;
    if ((await this.db.get<string>('meta', readKey)) === last.msg_id) return;
    try {
      await this.request({ op: 'read', conv: this.wireConv(conv), up_to_msg_id: last.msg_id });
      await this.db.put('meta', readKey, last.msg_id);
    } catch {
      /* sent again when the chat is next shown */
    }
  }

  private wireConv(conv: string) {
    return conv.startsWith('g:') ? { group: conv.slice(2) } : { user: conv.slice(2) };
  }

  typingNow(conv: string, composing: boolean) {
    const last = this.typingSent.get(conv) ?? 0;
    if (composing && Date.now() - last < kTypingRepeatMs) return;
    this.typingSent.set(conv, composing ? Date.now() : 0);
    this.socket?.send({ op: 'typing', to: this.wireConv(conv), state: composing ? 'composing' : 'paused' });
  }

  // ---- Sending (1:1, end-to-end encrypted) ----
  async sendText(conv: string, text: string) {
    await this.queueOutgoing(conv, 'text', text);
  }

  // A file: checked against the server's limit, encrypted here, kept in
  // IndexedDB until its upload is done (so a reload resumes it), uploaded
  // through tus, then sent as an encrypted "file" message.
  async sendFile(conv: string, f: File) {
    if (this.maxUpload !== undefined && f.size > this.maxUpload) {
      throw new Error(`${f.name} is ${formatBytes(f.size)}; files can be up to ${formatBytes(this.maxUpload)}.`);
    }
    const sealed = await sealFile(new Uint8Array(await f.arrayBuffer()));
    const file: FileInfo = {
      name: f.name,
      content_type: f.type || 'application/octet-stream',
      size: f.size,
      key: sealed.key,
      digest: sealed.digest,
    };
    const id = crypto.randomUUID();
    await this.db.putBlob(id, new Blob([sealed.blob as BlobPart], { type: 'application/octet-stream' }));
    await this.queueOutgoing(conv, 'file', f.name, file, id);
  }

  private async queueOutgoing(conv: string, kind: string, text: string, file?: FileInfo, id = crypto.randomUUID()) {
    const me = this.account!;
    const m: Message = {
      client_msg_id: id,
      conv,
      from: me.user_id,
      outgoing: true,
      kind,
      text,
      ts_ms: Date.now(),
      status: 'sending',
      file,
    };
    await this.store(m);
    const c = await this.ensureConv(conv, conv.startsWith('u:') ? conv.slice(2) : undefined);
    c.last_text = file ? 'File: ' + text : text;
    c.last_ts_ms = m.ts_ms;
    await this.db.put('convs', conv, c);
    this.typingSent.set(conv, 0);
    this.changed();
    await this.trySend(m);
  }

  private sending = new Set<string>();
  private async trySend(m: Message) {
    if (this.sending.has(m.client_msg_id) || !this.socket?.ready) return;
    this.sending.add(m.client_msg_id);
    try {
      const f = m.file;
      if (f && !f.media_id) await this.uploadFile(m, f);
      const mediaId = f?.media_id;
      const body = f
        ? { name: f.name, content_type: f.content_type, size: f.size, key: f.key, digest: f.digest }
        : { text: m.text };
      const inner = utf8.encode(JSON.stringify({ kind: m.kind, body, ...(mediaId ? { media_id: mediaId } : {}) }));
      const peer = m.conv.slice(2);
      let r: Frame | undefined;
      if (m.conv.startsWith('g:')) r = await this.sendGroup(peer, m.client_msg_id, inner, mediaId);
      for (let attempt = 0; !r; attempt++) {
        const cts = await this.exclusive(async () => this.signal!.encrypt(await this.recipients(peer), inner));
        try {
          r = await this.request({
            op: 'send',
            to: { user: peer },
            client_msg_id: m.client_msg_id,
            kind: 'e2ee',
            body: { sender_device: this.account!.device_id, ciphertexts: cts },
            ...(mediaId ? { media_id: mediaId } : {}),
          });
          break;
        } catch (err) {
          if (!(err instanceof RequestError) || err.code !== 'stale_devices' || attempt >= kMaxStaleRetries) throw err;
          await this.exclusive(() => this.repairDevices(err.frame));
        }
      }
      m.msg_id = String(r.msg_id);
      m.ts_ms = Number(r.ts_ms) || m.ts_ms;
      if (kStatusRank[m.status ?? 'sending'] < kStatusRank.sent) m.status = 'sent';
      m.error = undefined;
      if (f) void this.db.deleteBlob(m.client_msg_id);
    } catch (err) {
      const code = err instanceof RequestError ? err.code : 'crypto';
      if (code === 'disconnected' || code === 'timeout') {
        m.status = 'sending'; // retried on reconnect
      } else {
        m.status = 'failed';
        m.error = err instanceof Error ? err.message : String(err);
      }
    } finally {
      this.sending.delete(m.client_msg_id);
      m.progress = undefined;
    }
    await this.store(m);
    this.changed();
  }

  private async uploadFile(m: Message, f: FileInfo) {
    const blob = await this.db.getBlob(m.client_msg_id);
    if (!blob) throw new Error('the file is no longer here to upload');
    f.media_id = await upload(blob, {
      token: () => this.accessToken(),
      url: f.upload_url,
      onUrl: async (url) => {
        f.upload_url = url;
        await this.store(m);
      },
      onProgress: (sent, total) => {
        m.progress = total ? sent / total : 0;
        this.changed();
      },
    });
    f.upload_url = undefined;
    await this.store(m);
  }

  // A received or sent file, downloaded, checked against its digest and
  // decrypted: an object URL (kept for the page's life).
  private fileUrls = new Map<string, Promise<string>>();
  fileUrl(m: Message): Promise<string> {
    const f = m.file;
    if (!f?.media_id) return Promise.reject(new Error('the file is not uploaded yet'));
    const id = f.media_id;
    let p = this.fileUrls.get(id);
    if (!p) {
      p = (async () => {
        const blob = await download(id, await this.accessToken());
        const plain = f.key && f.digest ? await openFile(blob, f.key, f.digest) : blob;
        const type = imageType(f.name, f.content_type) ?? 'application/octet-stream';
        return URL.createObjectURL(new Blob([plain as BlobPart], { type }));
      })();
      p.catch(() => this.fileUrls.delete(id));
      this.fileUrls.set(id, p);
    }
    return p;
  }

  // Messages typed while offline (or cut off) go out after the next hello.
  private async retryUnsent() {
    for (const list of this.messages.values()) {
      for (const m of list) if (m.outgoing && m.status === 'sending') await this.trySend(m);
    }
  }

  // Every device of `peer` and this user's other devices, each with a session.
  private async recipients(peer: string): Promise<Device[]> {
    const me = this.account!;
    const users = peer === me.user_id ? [peer] : [peer, me.user_id];
    const out: Device[] = [];
    for (const u of users) {
      if (!this.devices.has(u)) await this.fetchBundles(u);
      for (const d of this.devices.get(u) ?? []) {
        if (d.user === me.user_id && d.device === me.device_id) continue;
        out.push(d);
      }
    }
    return out;
  }

  private async fetchBundles(user: string, only?: Set<string>) {
    let r: Frame;
    try {
      r = await this.request({ op: 'keys.bundle', user });
    } catch (err) {
      // No device with keys (for this user's own account: none but this one).
      if (!(err instanceof RequestError) || err.code !== 'not_found') throw err;
      r = { devices: [] };
    }
    const list: Device[] = [];
    const me = this.account!;
    for (const b of (r.devices ?? []) as Bundle[]) {
      const d = { user, device: String(b.device_id) };
      list.push(d);
      this.identities.set(`${user}.${d.device}`, fromBase64(b.identity_key));
      if (user === me.user_id && d.device === me.device_id) continue;
      if (only && !only.has(d.device)) continue;
      const known = await this.signal!.knownIdentity(d);
      if (known && toBase64(known) !== b.identity_key) await this.signal!.forgetDevice(d);
      if (!(await this.signal!.hasSession(d))) await this.signal!.startSession(user, b);
    }
    this.devices.set(user, list);
  }

  private async repairDevices(f: Frame) {
    for (const x of f.extra ?? []) {
      const d = { user: String(x.user), device: String(x.device) };
      await this.signal!.forgetDevice(d);
      this.devices.set(d.user, (this.devices.get(d.user) ?? []).filter((y) => y.device !== d.device));
    }
    const missing = new Map<string, Set<string>>();
    for (const x of f.missing ?? []) {
      const s = missing.get(String(x.user)) ?? new Set<string>();
      s.add(String(x.device));
      missing.set(String(x.user), s);
    }
    for (const [u, s] of missing) await this.fetchBundles(u, s);
  }

  // ---- Groups (Sender Keys) ----
  async createGroup(name: string, phones: string[]): Promise<string> {
    const ids: string[] = [];
    for (const phone of phones) ids.push(await this.userByPhone(phone));
    const r = await this.request({ op: 'group.create', name, members: ids });
    const id = 'g:' + r.group_id;
    const c = await this.ensureConv(id, undefined, name);
    c.members = [this.account!.user_id, ...ids];
    await this.db.put('convs', id, c);
    this.changed();
    return id;
  }

  names = new Map<string, string>(); // user id -> phone, for people found by phone

  // How a person is shown: the phone number they were found by, else their
  // profile name, else their id.
  label(user: string) {
    if (user === this.account?.user_id) return 'You';
    return this.names.get(user) ?? this.profileNames.get(user) ?? 'User ' + user;
  }
  private profileNames = new Map<string, string>();
  async loadNames(users: string[]) {
    const need = users.filter((u) => !this.names.has(u) && !this.profileNames.has(u));
    if (need.length === 0) return;
    try {
      const r = await this.request({ op: 'profile.get', users: need });
      for (const p of r.profiles ?? []) if (p.name) this.profileNames.set(String(p.user), String(p.name));
      this.changed();
    } catch {
      /* ids stay */
    }
  }

  private async userByPhone(phone: string): Promise<string> {
    const hash = await sha256Hex(phone);
    const r = await this.request({ op: 'contacts.discover', hashes: [hash] });
    const match = (r.matches ?? []).find((x: any) => x.hash === hash);
    if (!match) throw new Error(`No Parley user has the phone number ${phone}.`);
    this.names.set(String(match.user_id), phone);
    return String(match.user_id);
  }

  // ---- Group members (PROTOCOL.md section 4: admins add, remove, promote,
  // demote and rename; anyone leaves). The server's group event follows,
  // and onGroup re-reads the group (and rotates the sender key when
  // someone left). ----
  async groupInfo(conv: string): Promise<Conversation> {
    const c = this.convs.get(conv)!;
    await this.refreshGroup(c);
    void this.loadNames(c.members ?? []);
    this.changed();
    return c;
  }
  private async groupOp(conv: string, frame: Frame) {
    await this.request({ ...frame, group_id: conv.slice(2) });
    await this.groupInfo(conv);
  }
  async groupAdd(conv: string, phones: string[]) {
    const users: string[] = [];
    for (const p of phones) users.push(await this.userByPhone(p));
    await this.groupOp(conv, { op: 'group.add', users });
  }
  groupRemove(conv: string, user: string) {
    return this.groupOp(conv, { op: 'group.remove', users: [user] });
  }
  groupSetAdmin(conv: string, user: string, admin: boolean) {
    return this.groupOp(conv, { op: admin ? 'group.promote' : 'group.demote', user });
  }
  async groupRename(conv: string, name: string) {
    await this.groupOp(conv, { op: 'group.update', name });
    const c = this.convs.get(conv)!;
    c.title = name;
    await this.db.put('convs', conv, c);
  }
  async groupLeave(conv: string) {
    await this.request({ op: 'group.leave', group_id: conv.slice(2) });
    const c = this.convs.get(conv)!;
    c.left = true;
    await this.db.put('convs', conv, c);
    this.changed();
  }

  // ---- This account's devices ----
  async listDevices(): Promise<{ device_id: string; name: string; platform: string; last_active_ms?: number; current: boolean }[]> {
    const r = await this.request({ op: 'devices.list' });
    return (r.devices ?? []).map((d: any) => ({
      device_id: String(d.device_id),
      name: String(d.name ?? ''),
      platform: String(d.platform ?? ''),
      last_active_ms: d.last_active_ms ?? undefined,
      current: !!d.current,
    }));
  }
  // Removes a linked device: it is signed out, and its keys leave every
  // safety number and every message sent from now on.
  async removeDevice(deviceId: string) {
    await this.request({ op: 'devices.remove', device_id: deviceId });
    const me = this.account!.user_id;
    await this.exclusive(() => this.signal!.forgetDevice({ user: me, device: deviceId }));
    this.devices.delete(me);
    this.identities.delete(`${me}.${deviceId}`);
    this.changed();
  }

  private async refreshGroup(c: Conversation) {
    try {
      const info = await this.request({ op: 'group.info', group_id: c.id.slice(2) });
      c.title = String(info.name ?? c.title);
      c.members = (info.members ?? []).map((x: any) => String(x.user));
      c.admins = (info.members ?? []).filter((x: any) => x.role === 'admin').map((x: any) => String(x.user));
      c.left = false;
    } catch (err) {
      if (err instanceof RequestError && (err.code === 'not_member' || err.code === 'not_found')) c.left = true;
    }
    await this.db.put('convs', c.id, c);
  }

  private async onGroup(e: Frame) {
    const id = 'g:' + e.group_id;
    const c = await this.ensureConv(id, undefined, e.name ? String(e.name) : undefined);
    const me = this.account!.user_id;
    const users: string[] = (e.users ?? []).map(String);
    if ((e.change === 'removed' || e.change === 'left') && !users.includes(me)) {
      // Someone left: a new sender key, so they cannot read what follows.
      await this.signal!.rotateSenderKey(e.group_id);
      await this.db.delete('meta', 'skdist:' + e.group_id);
    }
    if (!c.title) c.title = 'Group';
    await this.refreshGroup(c);
    this.changed();
  }

  // Sends this device's sender key to the member devices that lack it, then
  // the message as one Sender Keys ciphertext.
  private async sendGroup(group: string, clientMsgId: string, inner: Uint8Array, mediaId?: string): Promise<Frame> {
    const c = this.convs.get('g:' + group)!;
    if (!c.members) await this.refreshGroup(c);
    if (c.left) throw new RequestError('not_member', 'You are no longer a member of this group.', {});
    const me = this.account!;
    const done = new Set((await this.db.get<string[]>('meta', 'skdist:' + group)) ?? []);
    const dist = await this.exclusive(() => this.signal!.ownSenderKey(group));
    for (let attempt = 0; ; attempt++) {
      const { need, cts } = await this.exclusive(async () => {
        const need: Device[] = [];
        for (const u of c.members ?? []) {
          if (!this.devices.has(u)) await this.fetchBundles(u);
          for (const d of this.devices.get(u) ?? []) {
            const key = `${d.user}.${d.device}`;
            if (!(d.user === me.user_id && d.device === me.device_id) && !done.has(key)) need.push(d);
          }
        }
        const payload = utf8.encode(JSON.stringify({ group, distribution: toBase64(dist) }));
        return { need, cts: need.length ? await this.signal!.encrypt(need, payload) : [] };
      });
      if (need.length === 0) break;
      try {
        // A send's body is at most 64 KiB: a big group's key goes out in
        // several sends (the server takes any subset of the devices).
        for (const part of packCiphertexts(cts, kMaxDistributionBytes)) {
          await this.request({
            op: 'send',
            to: { group },
            client_msg_id: crypto.randomUUID(),
            kind: 'sender_key',
            body: { sender_device: me.device_id, ciphertexts: part },
          });
          for (const d of part) done.add(`${d.user}.${d.device}`);
          await this.db.put('meta', 'skdist:' + group, [...done]);
        }
        break;
      } catch (err) {
        if (!(err instanceof RequestError) || err.code !== 'stale_devices' || attempt >= kMaxStaleRetries) throw err;
        await this.exclusive(() => this.repairDevices(err.frame));
      }
    }
    const data = await this.exclusive(() => this.signal!.groupEncrypt(group, inner));
    return this.request({
      op: 'send',
      to: { group },
      client_msg_id: clientMsgId,
      kind: 'e2ee',
      body: { sender_device: me.device_id, group: { data: toBase64(data) } },
      ...(mediaId ? { media_id: mediaId } : {}),
    });
  }

  // ---- Safety number ----
  async safetyNumber(conv: string): Promise<string> {
    const peer = conv.slice(2);
    const me = this.account!;
    const keysOf = async (u: string) => {
      if (!this.devices.has(u) || (this.devices.get(u) ?? []).some((d) => !this.identities.has(`${u}.${d.device}`))) {
        await this.fetchBundles(u);
      }
      return (this.devices.get(u) ?? []).map((d) => this.identities.get(`${u}.${d.device}`)!);
    };
    const [local, remote] = await this.exclusive(async () => [await keysOf(me.user_id), await keysOf(peer)]);
    if (remote.length === 0) throw new Error('This person has no device with encryption keys yet.');
    return groupDigits(await this.signal!.safetyNumber(local, peer, remote));
  }
}

// A file message's body (ours or the SDK's), with fields checked: it came
// from another client.
function fileInfo(body: any, mediaId: string): FileInfo | undefined {
  if (typeof body.name !== 'string') return undefined;
  const name = body.name.split(/[\\/]/).pop() || 'file';
  return {
    name,
    content_type: typeof body.content_type === 'string' ? body.content_type : 'application/octet-stream',
    size: Number.isSafeInteger(body.size) && body.size >= 0 ? body.size : 0,
    key: typeof body.key === 'string' ? body.key : undefined,
    digest: typeof body.digest === 'string' ? body.digest : undefined,
    media_id: mediaId,
  };
}
