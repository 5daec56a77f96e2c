import { render } from 'preact';
import { Client } from './client/client';
import { useWebCryptoX25519 } from './crypto/curve';
import { App } from './ui/App';
import './style.css';

const root = document.getElementById('app')!;

function start() {
  const client = new Client();
  // Faster key agreement where the browser has X25519 (checked against
  // the compiled curve first; crypto/curve.ts).
  useWebCryptoX25519().then((on) => {
    if (!on) console.info('X25519: WebCrypto has none; using the compiled curve');
  });
  client.init().then(
    () => render(<App client={client} />, root),
    (e) => {
      root.textContent = 'Parley could not open its local storage: ' + String(e);
    },
  );
  void navigator.storage?.persist?.();
}

// One tab per browser profile runs the device: two would interleave
// ratchet writes and replace each other's connection (4409). The Web Lock
// is held for the tab's life; another tab says so and waits for it.
if (navigator.locks) {
  void navigator.locks.request('parley-device', { ifAvailable: true }, async (lock) => {
    if (!lock) {
      root.innerHTML = '';
      const p = document.createElement('p');
      p.className = 'other-tab';
      p.setAttribute('role', 'alert');
      p.textContent =
        'Parley is open in another tab or window. Close it, then reload this one, to use Parley here.';
      root.append(p);
      return;
    }
    start();
    await new Promise(() => {}); // held until the tab closes
  });
} else {
  start();
}
