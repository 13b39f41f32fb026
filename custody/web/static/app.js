// The approver app's only script: WebAuthn ceremonies (enrol, sign in, approve/reject).
// Served from /app/static so the Content-Security-Policy can forbid inline scripts.
"use strict";

(function () {
  function fromB64url(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
  }

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(text, kind) {
    const box = document.getElementById("message");
    if (box) {
      box.textContent = text;
      box.className = "message " + (kind || "");
    }
  }

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || data.title || "refused (" + response.status + ")");
    return data;
  }

  function creationOptions(o) {
    const pk = Object.assign({}, o);
    pk.challenge = fromB64url(o.challenge);
    pk.user = Object.assign({}, o.user, { id: fromB64url(o.user.id) });
    pk.excludeCredentials = (o.excludeCredentials || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    return pk;
  }

  function requestOptions(o) {
    const pk = Object.assign({}, o);
    pk.challenge = fromB64url(o.challenge);
    pk.allowCredentials = (o.allowCredentials || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    return pk;
  }

  function registrationJSON(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        attestationObject: toB64url(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [],
      },
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  function assertionJSON(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  async function enrol(button) {
    const base = "/app/api/enrol/" + encodeURIComponent(button.dataset.token);
    const start = await post(base + "/options");
    const cred = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
    const done = await post(base + "/verify", { challenge_id: start.challenge_id, credential: registrationJSON(cred) });
    window.location.assign(done.redirect);
  }

  async function login() {
    const start = await post("/app/api/login/options");
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
    const done = await post("/app/api/login/verify", { challenge_id: start.challenge_id, credential: assertionJSON(cred) });
    window.location.assign(done.redirect);
  }

  async function decide(button) {
    const decision = button.dataset.decision;
    const base = "/app/api/requests/" + encodeURIComponent(button.dataset.request) + "/" + decision;
    const start = await post(base + "/options");
    say("Confirm with your passkey to " + decision + "…");
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
    const done = await post(base + "/verify", { challenge_id: start.challenge_id, credential: assertionJSON(cred) });
    say("Recorded: request is now " + done.status.replace(/_/g, " ") + ".", "ok");
    window.setTimeout(() => window.location.reload(), 600);
  }

  function guard(action) {
    return async function (event) {
      const button = event.currentTarget;
      button.disabled = true;
      document.body.classList.add("busy");
      try {
        await action(button);
      } catch (error) {
        say(error && error.message ? error.message : String(error), "error");
        button.disabled = false;
      } finally {
        document.body.classList.remove("busy");
      }
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    const enrolButton = document.querySelector('[data-ceremony="enrol"]');
    if (enrolButton) enrolButton.addEventListener("click", guard(enrol));
    const loginButton = document.querySelector('[data-ceremony="login"]');
    if (loginButton) loginButton.addEventListener("click", guard(login));
    document.querySelectorAll("[data-decision]").forEach(function (button) {
      button.addEventListener("click", guard(decide));
    });
    const wallet = document.querySelector('select[name="wallet"]');
    const nonce = document.querySelector('input[name="nonce"]');
    if (wallet && nonce) {
      wallet.addEventListener("change", function () {
        nonce.value = wallet.selectedOptions[0].dataset.nonce;
      });
    }
    document.body.classList.add("ready");
  });
})();
