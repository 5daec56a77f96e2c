import type { ComponentChildren } from 'preact';
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
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <Dialog label="New chat" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError('');
          try {
            await props.onStart(phone.trim());
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          } finally {
            setBusy(false);
          }
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
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <Dialog label="New group" onClose={props.onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError('');
          try {
            const phones = members.split(',').map((p) => p.trim()).filter(Boolean);
            await props.onCreate(name.trim(), phones);
          } catch (err) {
            setError(err instanceof Error ? err.message : String(err));
          } finally {
            setBusy(false);
          }
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
