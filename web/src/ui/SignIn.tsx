import { useState } from 'preact/hooks';
import type { Client } from '../client/client';
import { useAction } from './action';

function explain(e: unknown): string {
  const code = (e as { code?: string }).code;
  switch (code) {
    case 'invalid_phone':
      return 'Enter the number in international form, e.g. +15551234567.';
    case 'invalid_code':
      return 'That code is not right. Check the SMS and try again.';
    case 'code_expired':
      return 'That code has expired. Ask for a new one.';
    case 'too_many_attempts':
      return 'Too many wrong codes. Ask for a new one.';
    case 'rate_limited':
      return 'Too many codes asked for. Wait a little and try again.';
    case 'device_limit':
      return 'This account already has 5 devices. Remove one first.';
    default:
      return e instanceof Error && e.message ? e.message : 'Something went wrong. Try again.';
  }
}

export function SignIn({ client }: { client: Client }) {
  const [phone, setPhone] = useState('');
  const [code, setCode] = useState('');
  const [sent, setSent] = useState(false);
  const { busy, error, run } = useAction(explain);
  return (
    <main class="signin">
      <h1>Parley</h1>
      <p>Private messaging. Sign in with your phone number.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            if (!sent) {
              await client.requestCode(phone.trim());
              setSent(true);
            } else {
              await client.signIn(phone.trim(), code.trim());
            }
          });
        }}
      >
        <label>
          Phone number
          <input type="tel" autocomplete="tel" value={phone} placeholder="+15551234567"
            onInput={(e) => setPhone(e.currentTarget.value)} disabled={sent} required />
        </label>
        {!sent && <button type="submit" disabled={busy}>Send code</button>}
        {sent && (
          <>
            <label>
              Code
              <input inputMode="numeric" autocomplete="one-time-code" value={code}
                onInput={(e) => setCode(e.currentTarget.value)} required />
            </label>
            <button type="submit" disabled={busy}>Sign in</button>
            <button type="button" class="quiet" onClick={() => { setSent(false); setCode(''); }}>
              Use another number
            </button>
          </>
        )}
        {error && <p class="error" role="alert">{error}</p>}
      </form>
    </main>
  );
}
