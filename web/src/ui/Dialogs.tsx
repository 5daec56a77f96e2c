import type { ComponentChildren } from 'preact';
import type { Client, Conversation } from '../client/client';
import { useAction } from './action';
import { useEffect, useRef, useState } from 'preact/hooks';

// A modal <dialog>: focus moves into it, Escape closes it.
export function Dialog(props: { label: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current!;
    if (!d.open) d.showModal();
    const onCancel = (e: Event) => {
      e.preventDefault();
      props.onClose();
    };
    d.addEventListener('cancel', onCancel);
    return () => d.removeEventListener('cancel', onCancel);
  }, []);
  return (
    <dialog ref={ref} aria-label={props.label}>
      <h2>{props.label}</h2>
      {props.children}
    </dialog>
  );
}

export function NewChatDialog(props: { onClose: () => void; onStart: (phone: string) => Promise<void> }) {
  const [phone, setPhone] = useState('');
  const { busy, error, run } = useAction();
  return (
    <Dialog label="New chat" onClose={props.onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(() => props.onStart(phone.trim()));
        }}
      >
        <label>
          Phone number
          <input type="tel" value={phone} placeholder="+15551234567" autoFocus
            onInput={(e) => setPhone(e.currentTarget.value)} required />
        </label>
        <div class="row">
          <button type="submit" disabled={busy}>Start chat</button>
          <button type="button" class="quiet" onClick={props.onClose}>Cancel</button>
        </div>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </Dialog>
  );
}

export function SafetyDialog(props: { load: () => Promise<string>; title: string; onClose: () => void }) {
  const [digits, setDigits] = useState('');
  const [error, setError] = useState('');
  useEffect(() => {
    props.load().then(setDigits, (e) => setError(e instanceof Error ? e.message : String(e)));
  }, []);
  return (
    <Dialog label="Safety number" onClose={props.onClose}>
      <p>
        Compare these numbers with {props.title} in person or on a call. If they match, nobody is
        in the middle of your chat.
      </p>
      {digits ? <p class="digits">{digits}</p> : !error && <p>Computing…</p>}
      {error && <p class="error" role="alert">{error}</p>}
      <button type="button" onClick={props.onClose} autoFocus>Close</button>
    </Dialog>
  );
}

export function NewGroupDialog(props: {
  onClose: () => void;
  onCreate: (name: string, phones: string[]) => Promise<void>;
}) {
  const [name, setName] = useState('');
  const [members, setMembers] = useState('');
  const { busy, error, run } = useAction();
  return (
    <Dialog label="New group" onClose={props.onClose}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const phones = members.split(',').map((p) => p.trim()).filter(Boolean);
          void run(() => props.onCreate(name.trim(), phones));
        }}
      >
        <label>
          Group name
          <input value={name} autoFocus onInput={(e) => setName(e.currentTarget.value)} required />
        </label>
        <label>
          Members
          <input value={members} placeholder="+15551234567, +15557654321"
            onInput={(e) => setMembers(e.currentTarget.value)} required />
        </label>
        <div class="row">
          <button type="submit" disabled={busy}>Create</button>
          <button type="button" class="quiet" onClick={props.onClose}>Cancel</button>
        </div>
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </Dialog>
  );
}


// A group's members and what this user may do to them (admins: add,
// remove, make admin, rename; everyone: leave).
export function GroupDialog({ client, conv, onClose }: { client: Client; conv: Conversation; onClose: () => void }) {
  const { busy, error, run } = useAction();
  const [name, setName] = useState(conv.title);
  const [add, setAdd] = useState('');
  useEffect(() => void run(() => client.groupInfo(conv.id)), [conv.id]);
  const me = client.account!.user_id;
  const admin = !!conv.admins?.includes(me);
  return (
    <Dialog label="Group info" onClose={onClose}>
      {conv.left ? (
        <p>You are no longer a member of this group.</p>
      ) : (
        <>
          {admin && (
            <form class="row" onSubmit={(e) => {
              e.preventDefault();
              void run(() => client.groupRename(conv.id, name.trim()));
            }}>
              <label class="grow">
                Group name
                <input value={name} onInput={(e) => setName(e.currentTarget.value)} required />
              </label>
              <button type="submit" disabled={busy}>Rename</button>
            </form>
          )}
          <h3 id="members-title">Members</h3>
          <ul class="members" aria-labelledby="members-title">
            {(conv.members ?? []).map((u) => {
              const isAdmin = !!conv.admins?.includes(u);
              const who = client.label(u);
              return (
                <li key={u} aria-label={who}>
                  <span class="who">{who}</span>
                  {isAdmin && <span class="role">admin</span>}
                  {admin && u !== me && (
                    <span class="row">
                      <button type="button" class="quiet" disabled={busy} aria-label={`${isAdmin ? 'Remove admin' : 'Make admin'} ${who}`}
                        onClick={() => void run(() => client.groupSetAdmin(conv.id, u, !isAdmin))}>
                        {isAdmin ? 'Remove admin' : 'Make admin'}
                      </button>
                      <button type="button" class="quiet" disabled={busy} aria-label={`Remove ${who}`}
                        onClick={() => void run(() => client.groupRemove(conv.id, u))}>
                        Remove
                      </button>
                    </span>
                  )}
                </li>
              );
            })}
          </ul>
          {admin && (
            <form class="row" onSubmit={(e) => {
              e.preventDefault();
              const phones = add.split(',').map((p) => p.trim()).filter(Boolean);
              void run(async () => {
                await client.groupAdd(conv.id, phones);
                setAdd('');
              });
            }}>
              <label class="grow">
                Add members
                <input value={add} placeholder="+15551234567, +15557654321" onInput={(e) => setAdd(e.currentTarget.value)} required />
              </label>
              <button type="submit" disabled={busy}>Add</button>
            </form>
          )}
        </>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      <div class="row">
        {!conv.left && (
          <button type="button" class="danger" disabled={busy}
            onClick={() => void run(async () => {
              await client.groupLeave(conv.id);
            })}>
            Leave group
          </button>
        )}
        <button type="button" class="quiet" onClick={onClose}>Close</button>
      </div>
    </Dialog>
  );
}

// This account's devices (the browser, phones, the CLI): remove one that is
// lost or no longer used. Its keys then leave the safety numbers.
export function DevicesDialog({ client, onClose }: { client: Client; onClose: () => void }) {
  const { busy, error, run } = useAction();
  const [devices, setDevices] = useState<Awaited<ReturnType<Client['listDevices']>>>();
  const load = () => run(async () => setDevices(await client.listDevices()));
  useEffect(() => void load(), []);
  return (
    <Dialog label="Devices" onClose={onClose}>
      {!devices && !error && <p>Loading…</p>}
      {devices && (
        <ul class="devices" aria-label="Linked devices">
          {devices.map((d) => {
            const label = `${d.name || 'Device ' + d.device_id} (${d.platform || 'unknown'})`;
            return (
              <li key={d.device_id} aria-label={label}>
                <span class="who">{label}</span>
                <span class="meta">
                  {d.current
                    ? 'this browser'
                    : d.last_active_ms
                      ? 'last active ' + new Date(d.last_active_ms).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })
                      : ''}
                </span>
                {!d.current && (
                  <button type="button" class="quiet" disabled={busy} aria-label={`Remove ${label}`}
                    onClick={() => void run(async () => {
                      await client.removeDevice(d.device_id);
                      setDevices(await client.listDevices());
                    })}>
                    Remove
                  </button>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      <div class="row">
        <button type="button" onClick={onClose}>Close</button>
      </div>
    </Dialog>
  );
}
