// Files over HTTP (PROTOCOL.md sections 1 and 6): resumable uploads through
// tus (tus-js-client) and downloads of /v1/media/{id}, both with the bearer
// token. What goes up is already encrypted (crypto/files.ts): the server
// stores application/octet-stream and never sees the name, type or bytes.
import { Upload } from 'tus-js-client';
import { RequestError } from './socket';

// Each PATCH carries at most this much: progress and resumption work in
// these steps (a PATCH cut off midway is sent again from the server's
// offset, read by HEAD).
export const kChunkBytes = 1 << 20;
// AES-256-GCM adds a 12-byte nonce and a 16-byte tag to every file.
export const kSealOverhead = 28;

export type UploadHooks = {
  token: () => Promise<string>;
  url?: string; // an upload begun earlier (this tab or before a reload)
  onUrl: (url: string) => void | Promise<void>;
  onProgress: (sent: number, total: number) => void;
};

// The server's upload limit (Tus-Max-Size), or undefined when it says none.
export async function maxUploadBytes(): Promise<number | undefined> {
  const r = await fetch('/v1/uploads', { method: 'OPTIONS', headers: { 'Tus-Resumable': '1.0.0' } });
  const v = Number(r.headers.get('Tus-Max-Size'));
  return Number.isFinite(v) && v > 0 ? v : undefined;
}

// Uploads `blob` (resuming `hooks.url` when given); resolves to the
// media_id. A network failure rejects with RequestError "disconnected"
// (the caller tries again later, from the same upload), a refusal with
// the server's status.
export function upload(blob: Blob, hooks: UploadHooks): Promise<string> {
  return new Promise((resolve, reject) => {
    const up: Upload = new Upload(blob, {
      endpoint: location.origin + '/v1/uploads',
      uploadUrl: hooks.url ?? null,
      chunkSize: kChunkBytes,
      retryDelays: [0, 1000, 3000],
      metadata: { content_type: 'application/octet-stream' },
      storeFingerprintForResuming: false,
      onBeforeRequest: async (req) => {
        req.setHeader('Authorization', 'Bearer ' + (await hooks.token()));
      },
      onUploadUrlAvailable: async () => {
        if (up.url) await hooks.onUrl(up.url);
      },
      onProgress: (sent, total) => hooks.onProgress(sent, total),
      onSuccess: () => {
        const id = up.url ? new URL(up.url, location.origin).pathname.split('/').pop() : undefined;
        if (id) resolve(id);
        else reject(new RequestError('protocol', 'the upload has no id', {}));
      },
      onError: (err) => {
        const status = (err as { originalResponse?: { getStatus(): number } }).originalResponse?.getStatus() ?? 0;
        if (status === 413) reject(new RequestError('too_large', 'The file is larger than the server accepts.', {}));
        else if (status >= 400 && status < 500 && status !== 408 && status !== 409 && status !== 423 && status !== 429) {
          reject(new RequestError('http_' + status, err.message, {}));
        } else reject(new RequestError('disconnected', err.message, {}));
      },
    });
    up.start();
  });
}

export async function download(mediaId: string, token: string): Promise<Uint8Array> {
  const r = await fetch('/v1/media/' + encodeURIComponent(mediaId), {
    headers: { Authorization: 'Bearer ' + token },
  });
  if (!r.ok) throw new RequestError('http_' + r.status, 'The file could not be downloaded.', {});
  return new Uint8Array(await r.arrayBuffer());
}

// The type a file is shown with: images the browser draws safely inline
// (never SVG: it is a document), anything else as a plain download. The
// CLI sends its files as application/octet-stream, so the name counts too.
const kImageTypes: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
};
export function imageType(name: string, contentType: string): string | undefined {
  if (Object.values(kImageTypes).includes(contentType)) return contentType;
  const ext = name.toLowerCase().split('.').pop() ?? '';
  return kImageTypes[ext];
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}
