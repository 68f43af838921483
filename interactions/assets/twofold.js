// Progressive enhancements for the interaction pages; every page works without them.
document.addEventListener('click', (event) => {
  const target = event.target;
  if (target instanceof HTMLElement && target.matches('[data-print]')) window.print();
});

// A step that waits for an answer from elsewhere (a phone's approval): ask the server now and then, and go on
// when it is decided. Asking costs the person nothing; without script the page's "Check again" does the same.
const waiting = document.querySelector('form[data-wait]');
if (waiting instanceof HTMLFormElement) {
  const url = waiting.getAttribute('data-wait');
  let delay = 2000;
  const poll = async () => {
    const target = new URL(url, window.location.href);
    const trust = waiting.querySelector('input[name="trust"]');
    if (trust instanceof HTMLInputElement && trust.checked) target.searchParams.set('trust', 'yes');
    let answer;
    try {
      const res = await fetch(target, { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
      // Anything but an answer (the sign-in expired, an error page): the page itself says what happened.
      if (!res.ok || !(res.headers.get('content-type') ?? '').includes('json')) return window.location.reload();
      answer = await res.json();
    } catch {
      // Offline for a moment: ask again, less often.
      delay = Math.min(delay * 2, 30000);
      return window.setTimeout(poll, delay);
    }
    if (answer.status === 'pending') return window.setTimeout(poll, delay);
    window.location.assign(answer.next);
  };
  window.setTimeout(poll, delay);
}
