// Test harness for the browser tests: a real parleyd on 127.0.0.1 and a free
// port (its own data directory, codes through the file SMS provider), the
// real `parley` CLI with its own profile, and Debian's Chromium driven by
// playwright-core. Everything started here is stopped in `close()`.
//
// Environment (ctest sets it, web/CMakeLists.txt): PARLEYD, PARLEY_CLI,
// PARLEY_WEB_DIR, CHROMIUM (default /usr/bin/chromium).
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through ctest, or set it by hand)`);
  return v;
};

export async function waitFor(what, fn, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let phoneCounter = 0;
export function newPhone() {
  // +1 555 plus 7 digits from the pid and a counter: unique per run.
  return '+1555' + String((process.pid * 100 + ++phoneCounter) % 1e7).padStart(7, '0');
}

export class World {
  constructor() {
    this.dir = mkdtempSync(path.join(tmpdir(), 'parley-web-'));
    this.children = [];
    this.frames = []; // every WebSocket frame of every page: {dir, payload}
    this.console = []; // every console message of every page
  }

  // Starts parleyd (again on the same port and data when it ran before),
  // with `extra` flags.
  async startServer(extra = []) {
    const sms = path.join(this.dir, 'otp.jsonl');
    this.sms = sms;
    const listen = this.url ? this.url.replace('http://', '') : '127.0.0.1:0';
    const p = spawn(need('PARLEYD'), [
      '--listen', listen, '--data-dir', path.join(this.dir, 'server'),
      '--sms-provider', 'file:' + sms, '--otp-per-phone', '0', '--otp-per-address-per-hour', '0',
      '--device-send-rate', '0', '--web-dir', need('PARLEY_WEB_DIR'), ...extra,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(p);
    this.server = p;
    this.serverLog = '';
    p.stderr.on('data', (d) => (this.serverLog += d));
    const lines = createInterface({ input: p.stdout });
    this.url = await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('parleyd did not start: ' + this.serverLog)), 20_000);
      lines.on('line', (l) => {
        const m = /parleyd listening on (\S+)/.exec(l);
        if (m) { clearTimeout(t); resolve(m[1]); }
      });
      p.on('exit', (c) => reject(new Error(`parleyd exited ${c}: ${this.serverLog}`)));
    });
    return this.url;
  }

  async stopServer() {
    const p = this.server;
    if (p.exitCode !== null) return;
    await new Promise((r) => {
      p.on('exit', r);
      p.kill('SIGTERM');
    });
  }

  async code(phone) {
    return waitFor('a code for ' + phone, () => {
      if (!existsSync(this.sms)) return null;
      const codes = readFileSync(this.sms, 'utf8').trim().split('\n').filter(Boolean)
        .map((l) => JSON.parse(l)).filter((c) => c.phone === phone);
      return codes.length ? codes[codes.length - 1].code : null;
    });
  }

  // ---- the CLI ----
  cliEnv() {
    return { ...process.env, XDG_DATA_HOME: path.join(this.dir, 'cli') };
  }
  cli(args, { input, timeoutMs = 30_000 } = {}) {
    return new Promise((resolve, reject) => {
      const p = execFile(need('PARLEY_CLI'), args, { env: this.cliEnv(), timeout: timeoutMs },
        (err, stdout, stderr) => (err ? reject(new Error(`parley ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
      if (input !== undefined) p.stdin.end(input);
    });
  }
  async cliLogin(profile, phone) {
    await this.cli(['--profile', profile, '--server', this.url, 'login', '--phone', phone, '--request-code']);
    const code = await this.code(phone);
    const out = await this.cli(['--profile', profile, '--json', '--server', this.url, 'login', '--phone', phone, '--code', code]);
    const line = out.trim().split('\n').map((l) => JSON.parse(l)).find((o) => o.user_id);
    return line;
  }
  // A long-running CLI command whose JSON lines are collected; `until(pred)`
  // waits for one that matches.
  cliStream(args, { stdin = 'ignore' } = {}) {
    const p = spawn(need('PARLEY_CLI'), args, { env: this.cliEnv(), stdio: [stdin, 'pipe', 'pipe'] });
    this.children.push(p);
    const seen = [];
    let text = '';
    createInterface({ input: p.stdout }).on('line', (l) => {
      text += l + '\n';
      try { seen.push(JSON.parse(l)); } catch { /* human output */ }
    });
    p.stderr.on('data', (d) => (text += d));
    return {
      proc: p,
      lines: seen,
      text: () => text,
      until: (what, pred, ms = 30_000) => waitFor(what, () => seen.find(pred), ms),
      untilText: (what, s, ms = 30_000) => waitFor(what, () => text.includes(s), ms),
      stop: () => p.kill('SIGTERM'),
    };
  }

  // ---- the browser ----
  async browser() {
    if (!this.chromium) {
      this.chromium = await chromium.launch({
        executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
        headless: true,
      });
    }
    return this.chromium;
  }
  async page({ width = 1200, height = 800 } = {}) {
    const b = await this.browser();
    const ctx = await b.newContext({ viewport: { width, height } });
    const page = await ctx.newPage();
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => this.frames.push({ dir: 'sent', payload: String(f.payload) }));
      ws.on('framereceived', (f) => this.frames.push({ dir: 'received', payload: String(f.payload) }));
    });
    page.on('pageerror', (e) => console.error('page error:', e));
    page.on('console', (m) => this.console.push(m.text()));
    await page.goto(this.url + '/');
    return page;
  }
  async browserSignIn(page, phone) {
    await page.getByRole('textbox', { name: 'Phone number' }).fill(phone);
    await page.getByRole('button', { name: 'Send code' }).click();
    const code = await this.code(phone);
    await page.getByRole('textbox', { name: 'Code' }).fill(code);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(phone, { exact: true }).waitFor();
    // The hello answer names this device's account.
    const hello = await waitFor('hello', () =>
      this.frames.map((f) => { try { return JSON.parse(f.payload); } catch { return {}; } })
        .find((o) => o.op === 'ok' && o.user_id && o.device_id && o.head_seq !== undefined));
    return { user_id: hello.user_id, device_id: hello.device_id };
  }

  async close() {
    await this.chromium?.close().catch(() => {});
    for (const c of this.children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(this.children.map((c) => c.exitCode !== null ? null : new Promise((r) => {
      const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 10_000);
      c.on('exit', () => { clearTimeout(t); r(); });
    })));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
