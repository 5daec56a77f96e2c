// The app's screens: sign-in, then the conversation list beside (desktop)
// or instead of (phone) the open chat. Accessible names follow PROTOCOL.md
// section 9; browser tests find elements by them.
import { useEffect, useState } from 'preact/hooks';
import type { Client } from '../client/client';
import { Chat } from './Chat';
import { DevicesDialog, NewChatDialog, NewGroupDialog } from './Dialogs';
import { SignIn } from './SignIn';

export function useClient(client: Client) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const on = () => setTick((t) => t + 1);
    client.addEventListener('change', on);
    return () => client.removeEventListener('change', on);
  }, [client]);
}

function time(ms: number) {
  if (!ms) return '';
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { day: 'numeric', month: 'short' });
}

const kConnText: Record<string, string> = {
  connecting: 'Connecting…',
  online: 'Online',
  offline: 'Offline',
  replaced: 'Opened in another tab or window',
  signed_out: 'Signed out',
};

export function App({ client }: { client: Client }) {
  useClient(client);
  const [newChat, setNewChat] = useState(false);
  const [newGroup, setNewGroup] = useState(false);
  const [devices, setDevices] = useState(false);
  if (!client.account) return <SignIn client={client} />;
  const convs = [...client.convs.values()].sort((a, b) => b.last_ts_ms - a.last_ts_ms);
  const open = client.openConv ? client.convs.get(client.openConv) : undefined;
  return (
    <div class={'app' + (open ? ' chat-open' : '')}>
      <aside class="sidebar" aria-label="Chats">
        <header class="me">
          <span class="phone">{client.account.phone}</span>
          <span class={'conn ' + client.conn} role="status">
            {kConnText[client.conn] ?? client.conn}
            {client.conn === 'offline' && client.connDetail ? `, ${client.connDetail}` : ''}
          </span>
        </header>
        <div class="actions">
          <button type="button" onClick={() => setNewChat(true)}>New chat</button>
          <button type="button" onClick={() => setNewGroup(true)}>New group</button>
          <button type="button" class="quiet" onClick={() => setDevices(true)}>Devices</button>
          <button type="button" class="quiet" onClick={() => void client.signOut()}>Sign out</button>
        </div>
        <ul class="convs" aria-label="Conversations">
          {convs.map((c) => (
            <li key={c.id} aria-label={c.title} class={c.id === client.openConv ? 'current' : ''}>
              <button type="button" class="conv" onClick={() => client.open(c.id)}
                aria-current={c.id === client.openConv ? 'true' : undefined}>
                <span class="title">{c.title}</span>
                <span class="time">{time(c.last_ts_ms)}</span>
                <span class="last">{client.typing.has(c.id) && client.typing.get(c.id)! > Date.now() ? 'typing…' : c.last_text}</span>
                {c.unread > 0 && <span class="unread" aria-label={`${c.unread} unread`}>{c.unread}</span>}
              </button>
            </li>
          ))}
        </ul>
        {convs.length === 0 && <p class="empty">No chats yet. Start one with “New chat”.</p>}
      </aside>
      <main class="main">
        {open ? (
          <Chat client={client} conv={open} onBack={() => client.open(undefined)} />
        ) : (
          <p class="placeholder">Choose a chat, or start a new one. Messages are end-to-end encrypted.</p>
        )}
      </main>
      {newGroup && (
        <NewGroupDialog
          onClose={() => setNewGroup(false)}
          onCreate={async (name, phones) => {
            const id = await client.createGroup(name, phones);
            setNewGroup(false);
            client.open(id);
          }}
        />
      )}
      {devices && <DevicesDialog client={client} onClose={() => setDevices(false)} />}
      {newChat && (
        <NewChatDialog
          onClose={() => setNewChat(false)}
          onStart={async (phone) => {
            const id = await client.startChat(phone);
            setNewChat(false);
            client.open(id);
          }}
        />
      )}
    </div>
  );
}
