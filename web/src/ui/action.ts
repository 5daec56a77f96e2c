import { useState } from 'preact/hooks';

// Runs a user's action: `busy` while it runs, its error (as `explain` puts
// it) shown after.
export function useAction(explain: (e: unknown) => string = (e) => (e instanceof Error ? e.message : String(e))) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const run = async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError('');
    try {
      await fn();
    } catch (err) {
      setError(explain(err));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}
