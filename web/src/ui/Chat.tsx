import { useEffect, useRef, useState } from 'preact/hooks';
import type { Client, Conversation, Message } from '../client/client';
import { SafetyDialog } from './Dialogs';

const kTicks: Record<string, string> = { sending: '🕓', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };

function Bubble({ m }: { m: Message }) {
  const t = new Date(m.ts_ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return (
    <li class={(m.outgoing ? 'out' : 'in') + (m.error ? ' error' : '')}>
      {m.from_label && <span class="from">{m.from_label}</span>}
      <span class="text">{m.text}</span>
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
  const list = client.messages.get(conv.id) ?? [];
  const end = useRef<HTMLLIElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  useEffect(() => end.current?.scrollIntoView({ block: 'end' }), [list.length, conv.id]);
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
      </header>
      <ul class="messages" aria-label="Messages">
        {list.map((m) => <Bubble key={m.client_msg_id || m.msg_id} m={m} />)}
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
      </form>
      {safety && <SafetyDialog title={conv.title} load={() => client.safetyNumber(conv.id)} onClose={() => setSafety(false)} />}
    </section>
  );
}
