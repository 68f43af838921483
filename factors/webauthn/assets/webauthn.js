// WebAuthn on Twofold's pages, with @simplewebauthn/browser (served from /assets, no CDN).
//
// A form holding <input type="hidden" name="response" data-webauthn="register|authenticate"
// data-options="{…}"> runs the ceremony when it is submitted, puts the authenticator's answer
// (JSON) in that field and then submits for real. The server checks everything again; this
// script only carries the answer. On the login page, a field marked data-autofill also offers
// passkeys in the username field's autofill (conditional mediation) where the browser can.
// What the person is told comes from the page, in their language: the error box's data-msg-*
// attributes (cancelled, invalid-state, insecure, failed, unsupported).
(() => {
  'use strict';
  const lib = window.SimpleWebAuthnBrowser;

  function errorBox(form) {
    return form.querySelector('[data-webauthn-error]');
  }

  function show(form, message) {
    const box = errorBox(form);
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  function said(form, name) {
    const box = errorBox(form);
    return (box && (box.dataset[name] || box.dataset.msgFailed)) || '';
  }

  function describe(form, err) {
    switch (err && err.name) {
      case 'NotAllowedError':
      case 'AbortError':
        return said(form, 'msgCancelled');
      case 'InvalidStateError':
        return said(form, 'msgInvalidState');
      case 'SecurityError':
        return said(form, 'msgInsecure');
      default:
        return said(form, 'msgFailed');
    }
  }

  async function run(field, extra) {
    const optionsJSON = JSON.parse(field.dataset.options);
    const register = field.dataset.webauthn === 'register';
    const answer = register ? await lib.startRegistration({ optionsJSON }) : await lib.startAuthentication({ optionsJSON, ...extra });
    field.value = JSON.stringify(answer);
  }

  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const field = form.querySelector('input[data-webauthn]');
    if (!field || field.value) return;
    event.preventDefault();
    if (!lib || !lib.browserSupportsWebAuthn()) {
      show(form, said(form, 'msgUnsupported'));
      return;
    }
    const buttons = form.querySelectorAll('button');
    buttons.forEach((b) => (b.disabled = true));
    try {
      await run(field);
      form.submit();
    } catch (err) {
      show(form, describe(form, err));
      buttons.forEach((b) => (b.disabled = false));
    }
  });

  // Passkey autofill: the browser lists passkeys in the username field's suggestions.
  const autofill = document.querySelector('input[data-webauthn="authenticate"][data-autofill]');
  if (autofill && lib && document.querySelector('input[autocomplete~="webauthn"]')) {
    lib.browserSupportsWebAuthnAutofill().then(async (supported) => {
      if (!supported) return;
      try {
        await run(autofill, { useBrowserAutofill: true });
        autofill.form.submit();
      } catch (err) {
        // The autofill request is cancelled by pressing "Sign in with a passkey" (AbortError) or by the browser
        // when the person dismisses the suggestions or the request times out (NotAllowedError). Nobody asked for
        // a passkey yet, so neither is an error to show on the login page.
        if (err && (err.name === 'AbortError' || err.name === 'NotAllowedError')) return;
        show(autofill.form, describe(autofill.form, err));
      }
    });
  }
})();
