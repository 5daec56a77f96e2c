import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Client, Conversation, Message } from '../client/client';
import { formatBytes, imageType } from '../client/media';
import { GroupDialog, SafetyDialog } from './Dialogs';

const kTicks: Record<string, string> = { sending: '🕓', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };

// Images up to this size are downloaded and decrypted as soon as they are
// shown; other files (and larger images) when "Download" is pressed.
const kInlineImageBytes = 16 << 20;
const kPage = 50;

function Attachment({ client, m }: { client: Client; m: Message }) {
  const f = m.file!;
  const [url, setUrl] = useState<string>();
  const [error, setError] = useState('');
  const image = imageType(f.name, f.content_type);
  const ready = !!f.media_id && m.status !== 'sending';
  useEffect(() => {
    if (!ready || !image || f.size > kInlineImageBytes) return;
    let live = true;
    client.fileUrl(m).then(
      (u) => live && setUrl(u),
      (e) => live && setError(String(e instanceof Error ? e.message : e)),
    );
    return () => {
      live = false;
    };
  }, [ready, f.media_id]);
  const save = async () => {
    try {
      const a = document.createElement('a');
      a.href = await client.fileUrl(m);
      a.download = f.name;
      a.click();
    } catch (e) {
      setError(String(e instanceof Error ? e.message : e));
    }
  };
  return (
    <div class="file">
      {url && <img src={url} alt={f.name} />}
      <span class="text">
        {f.name} <span class="size">({formatBytes(f.size)})</span>
      </span>
      {m.status === 'sending' && m.progress !== undefined && (
        <progress aria-label="Upload progress" max={1} value={m.progress} />
      )}
      {ready && (
        <button type="button" class="quiet" aria-label={`Download ${f.name}`} onClick={() => void save()}>
          Download
        </button>
      )}
      {error && <span class="error" role="alert">{error}</span>}
    </div>
  );
}

function Bubble({ client, m }: { client: Client; m: Message }) {
  const t = new Date(m.ts_ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return (
    <li class={(m.outgoing ? 'out' : 'in') + (m.error ? ' error' : '')}>
      {m.from_label && <span class="from">{m.from_label}</span>}
      {m.file ? <Attachment client={client} m={m} /> : <span class="text">{m.text}</span>}
      <span class="meta">
        <time>{t}</time>
        {m.outgoing && (
          <span class={'state ' + m.status} title={m.status}>
            <span aria-hidden="true">{kTicks[m.status ?? 'sending']}</span>
            <span class="sr">{m.status}</span>
          </span>
        )}
      </span>
    </li>
  );
}

export function Chat({ client, conv, onBack }: { client: Client; conv: Conversation; onBack: () => void }) {
  const [draft, setDraft] = useState('');
  const [safety, setSafety] = useState(false);
  const [fileError, setFileError] = useState('');
  const [groupInfo, setGroupInfo] = useState(false);
  const all = client.messages.get(conv.id) ?? [];
  // Scroll-back: the newest kPage messages first; scrolling to the top (or
  // "Load older messages") shows kPage more, from this browser's store,
  // then from the server's history. The message at the top stays put.
  const [shown, setShown] = useState(kPage);
  const [loading, setLoading] = useState(false);
  const list = all.slice(-shown);
  const older = all.length > shown || !client.historyDone(conv.id);
  const box = useRef<HTMLUListElement>(null);
  const fromBottom = useRef<number | undefined>(undefined);
  const end = useRef<HTMLLIElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const newest = all.length ? all[all.length - 1].client_msg_id || all[all.length - 1].msg_id : '';
  useEffect(() => setShown(kPage), [conv.id]);
  useEffect(() => end.current?.scrollIntoView({ block: 'end' }), [newest, conv.id]);
  useLayoutEffect(() => {
    const el = box.current;
    if (el && fromBottom.current !== undefined) {
      el.scrollTop = el.scrollHeight - fromBottom.current;
      fromBottom.current = undefined;
    }
  }, [list.length]);
  const loadOlder = async () => {
    if (loading || !older) return;
    const el = box.current;
    if (el) fromBottom.current = el.scrollHeight - el.scrollTop;
    if (all.length > shown) return setShown(shown + kPage);
    setLoading(true);
    try {
      const added = await client.loadHistory(conv.id, kPage);
      setShown((n) => n + added);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => input.current?.focus(), [conv.id]);
  useEffect(() => {
    const on = () => document.visibilityState === 'visible' && void client.markRead(conv.id);
    document.addEventListener('visibilitychange', on);
    return () => document.removeEventListener('visibilitychange', on);
  }, [conv.id]);
  const typing = (client.typing.get(conv.id) ?? 0) > Date.now();
  const seen = conv.peer ? client.presence.get(conv.peer) : undefined;
  const status = conv.left
    ? 'you are no longer a member'
    : typing
    ? 'typing'
    : seen?.online
      ? 'online'
      : seen?.last_seen_ms
        ? 'last seen ' + new Date(seen.last_seen_ms).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })
        : '';
  const limit = client.maxUpload ? `Files up to ${formatBytes(client.maxUpload)}, end-to-end encrypted.` : '';
  const send = () => {
    const text = draft.trim();
    if (!text) return;
    setDraft('');
    void client.sendText(conv.id, text);
  };
  return (
    <section class="chat" aria-label={`Chat with ${conv.title}`}>
      <header>
        <button type="button" class="back" onClick={onBack} aria-label="Back to chats">←</button>
        <div class="who">
          <h2>{conv.title}</h2>
          <span class={typing ? 'typing' : 'presence'} aria-live="polite">{status}</span>
        </div>
        {conv.peer && <button type="button" onClick={() => setSafety(true)}>Safety number</button>}
        {!conv.peer && <button type="button" onClick={() => setGroupInfo(true)}>Group info</button>}
      </header>
      {older && (
        <p class="older">
          <button type="button" class="quiet" disabled={loading} onClick={() => void loadOlder()}>
            {loading ? 'Loading…' : 'Load older messages'}
          </button>
        </p>
      )}
      {!older && client.unreadableHistory(conv.id) > 0 && (
        <p class="older">
          {client.unreadableHistory(conv.id)} older messages were encrypted for your other devices (or before this
          browser was linked); they cannot be shown here.
        </p>
      )}
      {/* Focusable: a keyboard scrolls it, also when no message holds a link. */}
      <ul class="messages" aria-label="Messages" ref={box} tabIndex={0}
        onScroll={(e) => e.currentTarget.scrollTop < 60 && void loadOlder()}>
        {list.map((m) => <Bubble key={m.client_msg_id || m.msg_id} client={client} m={m} />)}
        <li ref={end} class="end" aria-hidden="true" />
      </ul>
      <form
        class="composer"
        onSubmit={(e) => {
          e.preventDefault();
          send();
        }}
      >
        <textarea ref={input} aria-label="Message" rows={1} value={draft} placeholder="Message"
          onInput={(e) => {
            setDraft(e.currentTarget.value);
            client.typingNow(conv.id, e.currentTarget.value.length > 0);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !e.shiftKey) {
              e.preventDefault();
              send();
            }
          }}
        />
        <button type="submit">Send</button>
        <label class="attach" title={limit}>
          <svg aria-hidden="true" viewBox="0 0 24 24" width="22" height="22">
            <path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"
              d="M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l8.6-8.6a3.7 3.7 0 0 1 5.2 5.2l-8.6 8.6a1.8 1.8 0 0 1-2.6-2.6L15 7" />
          </svg>
          <input type="file" class="sr" aria-label="Attach file" aria-describedby="attach-limit"
            onChange={(e) => {
              const files = [...(e.currentTarget.files ?? [])];
              e.currentTarget.value = '';
              setFileError('');
              for (const f of files) {
                client.sendFile(conv.id, f).catch((err) => setFileError(err instanceof Error ? err.message : String(err)));
              }
            }}
          />
        </label>
      </form>
      <p id="attach-limit" class="limit">{limit}</p>
      {fileError && <p class="error composer-error" role="alert">{fileError}</p>}
      {groupInfo && <GroupDialog client={client} conv={conv} onClose={() => setGroupInfo(false)} />}
      {safety && <SafetyDialog title={conv.title} load={() => client.safetyNumber(conv.id)} onClose={() => setSafety(false)} />}
    </section>
  );
}
