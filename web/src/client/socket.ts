// The WebSocket to parleyd (PROTOCOL.md section 2): hello with the access
// token, requests matched to answers by rid, events and pushes handed to
// the client, and reconnection with exponential backoff and jitter
// (0.5 s doubling to 30 s) that resumes after the last acknowledged seq.
export type Frame = Record<string, any>;

export class RequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly frame: Frame,
  ) {
    super(message || code);
  }
}

export type SocketHooks = {
  token: () => Promise<string>; // a fresh access token
  resumeAfter: () => string | undefined;
  onReady: (hello: Frame) => Promise<void> | void;
  onPush: (frame: Frame) => void;
  onState: (state: 'connecting' | 'online' | 'offline' | 'replaced' | 'signed_out', detail?: string) => void;
  onAuthFailed: (code: string) => Promise<boolean>; // true: try again
};

const kBackoffMinMs = 500;
const kBackoffMaxMs = 30_000;
const kRequestTimeoutMs = 20_000;

export class Socket {
  private ws?: WebSocket;
  private rid = 0;
  private pending = new Map<string, { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: number }>();
  private attempts = 0;
  private stopped = false;
  private retryTimer?: number;
  ready = false;

  constructor(private hooks: SocketHooks) {}

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.ws?.close(1000);
  }

  private url() {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws`;
  }

  private connect() {
    if (this.stopped) return;
    this.hooks.onState('connecting');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = async () => {
      try {
        const token = await this.hooks.token();
        const hello: Frame = { op: 'hello', token, client: { name: 'parley-web', version: '0.1' } };
        const resume = this.hooks.resumeAfter();
        if (resume) hello.resume_after = resume;
        const ok = await this.request(hello, true);
        this.ready = true;
        this.attempts = 0;
        await this.hooks.onReady(ok);
        this.hooks.onState('online');
      } catch (e) {
        const code = e instanceof RequestError ? e.code : 'network';
        if (code === 'invalid_token' || code === 'token_expired' || code === 'device_revoked') {
          if (!(await this.hooks.onAuthFailed(code))) {
            this.stopped = true;
            this.hooks.onState('signed_out', code);
          }
        }
        ws.close();
      }
    };
    ws.onmessage = (m) => {
      let f: Frame;
      try {
        f = JSON.parse(String(m.data));
      } catch {
        return;
      }
      if ((f.op === 'ok' || f.op === 'error') && f.rid !== undefined) {
        const p = this.pending.get(String(f.rid));
        if (!p) return;
        this.pending.delete(String(f.rid));
        clearTimeout(p.timer);
        if (f.op === 'ok') p.resolve(f);
        else p.reject(new RequestError(f.code, f.message ?? '', f));
        return;
      }
      this.hooks.onPush(f);
    };
    ws.onclose = (c) => {
      if (this.ws !== ws) return;
      this.ready = false;
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new RequestError('disconnected', 'connection closed', {}));
      }
      this.pending.clear();
      if (this.stopped) return;
      if (c.code === 4409) {
        this.hooks.onState('replaced', 'this device opened a newer connection');
        return;
      }
      if (c.code === 4403) {
        this.hooks.onState('signed_out', 'device_revoked');
        return;
      }
      const delay = Math.min(kBackoffMaxMs, kBackoffMinMs * 2 ** this.attempts) * (0.5 + Math.random() / 2);
      this.attempts++;
      this.hooks.onState('offline', `reconnecting in ${Math.round(delay / 1000)} s`);
      this.retryTimer = window.setTimeout(() => this.connect(), delay);
    };
  }

  // Reconnect now (the browser says it is online again).
  kick() {
    if (this.stopped || this.ready) return;
    clearTimeout(this.retryTimer);
    this.attempts = 0;
    this.connect();
  }

  send(frame: Frame) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  request(frame: Frame, beforeReady = false): Promise<Frame> {
    if (!beforeReady && !this.ready) {
      return Promise.reject(new RequestError('disconnected', 'offline', {}));
    }
    const rid = String(++this.rid);
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(rid);
        reject(new RequestError('timeout', 'no answer', {}));
      }, kRequestTimeoutMs);
      this.pending.set(rid, { resolve, reject, timer });
      this.send({ ...frame, rid });
    });
  }
}
