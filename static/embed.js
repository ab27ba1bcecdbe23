/* The embedded panel's side of the CRM channel (docs/embedding.md). Plain ES2020.
 *
 * Loaded only on /embed/<tenant>/ pages. Three jobs:
 * 1. Session: keep the launch-link token for a reload of the frame, and say so plainly when
 *    the browser refuses the panel's cookie here (never a login loop).
 * 2. In: messages from the parent CRM (hello, dial, ready, hangup), accepted only from
 *    window.parent and only from an origin on the tenant's list, compared exactly. Commands
 *    submit the panel's own forms, so they pass the same views, validation and double-dial
 *    guard as a click.
 * 3. Out: call and agent events, derived from the state each workspace fragment carries
 *    (data-crm-state), posted to the parent's exact origin, never "*". One embedded tab per
 *    agent owns the channel (the server elects it on the live stream), and the state shown at
 *    load is the baseline: a reload replays nothing.
 */
(() => {
  "use strict";

  let config = null;
  try {
    config = JSON.parse(document.body.dataset.embed || "null");
  } catch {
    config = null;
  }
  if (!config) return;

  const SOURCE = "maxcontact-panel";
  const VERSION = config.version;
  const TOKEN_KEY = `maxcontact-panel-token:${config.tenant}`;
  const store = (() => {
    try {
      return window.sessionStorage;
    } catch {
      return null; // storage blocked: the token then lives as long as the page
    }
  })();
  const html = document.documentElement;

  /* ---- 1. Session -------------------------------------------------------------------------- */

  if (config.token) {
    store?.setItem(TOKEN_KEY, config.token);
  }
  // The launch link is used up: a reload of the frame must not ask for it again.
  if (location.pathname + location.search !== config.url && document.querySelector("#workspace")) {
    history.replaceState(null, "", config.url);
  }

  const loginForm = document.getElementById("login-form");
  if (loginForm) {
    const resume = document.getElementById("resume-form");
    const kept = store?.getItem(TOKEN_KEY);
    if (resume && kept) {
      store.removeItem(TOKEN_KEY); // the panel stores it again; a lapsed one cannot loop
      resume.elements.token.value = kept;
      resume.submit();
      return;
    }
    const hasCookie = document.cookie
      .split(";")
      .some((part) => part.trim().startsWith(`${config.csrfCookie}=`));
    if (!hasCookie) {
      loginForm.hidden = true;
      const refused = document.getElementById("cookies-refused");
      if (refused) refused.hidden = false;
    }
  }

  const askStorage = document.querySelector("[data-storage-access]");
  if (askStorage && typeof document.requestStorageAccess === "function") {
    askStorage.hidden = false;
    askStorage.querySelector("button")?.addEventListener("click", () => {
      document.requestStorageAccess().then(
        () => location.replace(config.url),
        () => {}, // refused: the other two ways remain on the page
      );
    });
  }

  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest("[data-forget-token]")) {
      store?.removeItem(TOKEN_KEY);
    }
  });
  document.querySelector("form[data-logout]")?.addEventListener("submit", (event) => {
    store?.removeItem(TOKEN_KEY);
    if (config.token) {
      // Opened by a launch link: there may be no cookie session to end. Forget the token.
      event.preventDefault();
      location.replace(config.url);
    }
  });

  /* ---- The channel --------------------------------------------------------------------------- */

  if (window.parent === window || !document.querySelector("#workspace")) return;

  const allowed = new Set(config.origins || []);
  let parentOrigin = null;
  let owner = false; // the server says, on the stream, which of her embedded tabs owns it
  let ignored = 0;

  const ignore = () => {
    ignored += 1;
    html.dataset.crmIgnored = String(ignored);
  };

  const newId = () =>
    typeof crypto.randomUUID === "function"
      ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

  const post = (type, body) => {
    if (!parentOrigin) return false;
    window.parent.postMessage(
      { source: SOURCE, version: VERSION, type, id: newId(), at: new Date().toISOString(), ...body },
      parentOrigin,
    );
    return true;
  };

  /* ---- 3. State and events ----------------------------------------------------------------- */

  const readState = () => {
    const inner = document.querySelector("#workspace .workspace-inner");
    if (!inner) return null;
    try {
      const state = JSON.parse(inner.dataset.crmState || "null");
      const version = Number(inner.dataset.version);
      return state ? { state, version } : null;
    } catch {
      return null;
    }
  };

  const keyOf = (call) => `${call.callId}@${call.firstSeen}`;
  const connected = (call) => ["talking", "held", "unknown"].includes(call.phase);
  const callOf = (call, extra = {}) => ({
    callId: call.callId,
    firstSeen: call.firstSeen,
    phone: call.phone ?? null,
    leadId: call.leadId ?? null,
    direction: call.direction ?? null,
    ...extra,
  });

  let known = null; // what the CRM has been told (or, for the baseline, what it can ask for)
  let highestVersion = -Infinity;
  const emit = (type, body) => {
    if (owner) post(type, body);
  };

  const absorb = () => {
    const read = readState();
    if (!read) return;
    const { state, version } = read;
    // An older state than one already seen (an action's answer overtaken by the stream).
    if (Number.isFinite(version)) {
      if (version < highestVersion) return;
      highestVersion = version;
    }
    const calls = new Map(state.calls.map((call) => [keyOf(call), call]));
    const disposed = new Set(state.disposed.map((entry) => entry.disposalId));
    if (known === null) {
      known = { agent: state.agent, calls, disposed, state };
      return;
    }
    if (state.agent.state !== known.agent.state) emit("agent.state", { agent: state.agent });
    for (const [key, call] of calls) {
      const before = known.calls.get(key);
      if (!before) {
        emit("call.offered", { call: callOf(call) });
        if (connected(call)) emit("call.started", { call: callOf(call) });
        if (call.held) emit("call.held", { call: callOf(call) });
        if (call.recording === "stopped") {
          emit("call.recording", { call: callOf(call, { recording: call.recording }) });
        }
        if (call.phase === "ended") emit("call.ended", { call: callOf(call) });
        continue;
      }
      if (!connected(before) && connected(call)) emit("call.started", { call: callOf(call) });
      if (!before.held && call.held) emit("call.held", { call: callOf(call) });
      if (before.held && !call.held && call.phase !== "ended") {
        emit("call.retrieved", { call: callOf(call) });
      }
      // The CRM hears of a pause (PCI) and of the resume after it; not of a recording state
      // that merely became known.
      const paused = (c) => c.recording === "stopped";
      if (paused(before) !== paused(call)) {
        emit("call.recording", { call: callOf(call, { recording: call.recording }) });
      }
      if (before.phase !== "ended" && call.phase === "ended") {
        emit("call.ended", { call: callOf(call) });
      }
    }
    for (const [key, before] of known.calls) {
      if (!calls.has(key) && before.phase !== "ended") emit("call.ended", { call: callOf(before) });
    }
    for (const entry of state.disposed) {
      if (!known.disposed.has(entry.disposalId)) {
        emit("call.disposed", {
          call: callOf(entry, { resultCode: entry.resultCode, notes: entry.notes, disposedAt: entry.at }),
        });
      }
    }
    for (const id of known.disposed) disposed.add(id); // a disposal leaves the list, not our memory
    known = { agent: state.agent, calls, disposed, state };
  };

  const snapshot = () => {
    const state = known?.state ?? readState()?.state;
    return {
      apiVersion: VERSION,
      owner,
      agent: state?.agent ?? null,
      calls: (state?.calls ?? []).map((call) =>
        callOf(call, { phase: call.phase, held: call.held, recording: call.recording }),
      ),
    };
  };

  absorb(); // the state shown at load is the baseline: nothing is replayed
  document.addEventListener("htmx:after:swap", () => queueMicrotask(absorb));

  /* ---- 2. Messages in ------------------------------------------------------------------------ */

  const reply = (message, ok, text) =>
    post("result", { command: message.type, requestId: message.requestId ?? null, ok, message: text });

  // What the panel now says about the request a command made: the field error, or the notice.
  const outcomeText = () => {
    const error = document.querySelector("#dial .field-error, #notice .notice-error");
    const notice = document.querySelector("#notice .notice");
    return { ok: !error, text: (error ?? notice)?.textContent.trim().replace(/\s+/g, " ") ?? "" };
  };

  const busy = new WeakSet();
  const submit = (form, message) => {
    if (!form) {
      reply(message, false, "That control is not on the panel right now.");
      return;
    }
    if (busy.has(form) || form.matches(".htmx-request") || form.querySelector("[disabled]")) {
      reply(message, false, "The same request is still being sent.");
      return;
    }
    const invalid = Array.from(form.elements).find((field) => field.willValidate && !field.checkValidity());
    if (invalid) {
      reply(message, false, invalid.validationMessage || "The request is incomplete.");
      return;
    }
    busy.add(form); // two quick dial messages never make two requests
    // The request is known by its context object: htmx may point its sourceElement elsewhere
    // while swapping the answer (the dial form's section is replaced), and may then fire the
    // last event on the document.
    let ctx = null;
    let done = false;
    const started = (event) => {
      ctx = event.detail?.ctx ?? null;
    };
    const finished = (event) => {
      if (done || !ctx || event.detail?.ctx !== ctx) return;
      done = true;
      busy.delete(form);
      document.removeEventListener("htmx:finally:request", finished);
      form.removeEventListener("htmx:finally:request", finished);
      const status = event.detail.ctx.response?.status ?? 0;
      // Read the answer once it is on the page.
      setTimeout(() => {
        const { ok, text } = outcomeText();
        reply(message, ok && status >= 200 && status < 300, text);
      }, 0);
    };
    form.addEventListener("htmx:before:request", started, { once: true });
    document.addEventListener("htmx:finally:request", finished);
    form.addEventListener("htmx:finally:request", finished);
    form.requestSubmit();
  };

  const commands = {
    hello: () => {
      post("ready", snapshot());
    },
    dial: (message) => {
      const form = document.querySelector("#dial form");
      if (form) {
        form.elements.phone.value = typeof message.number === "string" ? message.number : "";
        const lead = message.leadId;
        form.elements.lead_id.value =
          typeof lead === "number" || typeof lead === "string" ? String(lead) : "";
      }
      submit(form, message);
    },
    ready: (message) => {
      const form = document.querySelector("form[data-command='ready']");
      if (!form && readState()?.state.agent.state === "ready") {
        reply(message, true, "Already ready.");
        return;
      }
      submit(form, message);
    },
    hangup: (message) => {
      const scope =
        message.callId == null
          ? document
          : document.getElementById(`call-${Number(message.callId)}`);
      submit(scope?.querySelector("form[data-command='hangup']") ?? null, message);
    },
  };

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent || !allowed.has(event.origin)) {
      ignore();
      return;
    }
    const message = event.data;
    if (!message || typeof message !== "object" || !Object.hasOwn(commands, message.type)) {
      ignore();
      return;
    }
    parentOrigin = event.origin;
    commands[message.type](message);
  });

  // Without waiting for a hello: tell an allowed parent we are here (it may have said hello
  // before this page loaded). Chromium and Safari name the parent's origin.
  const ancestor = location.ancestorOrigins?.[0];
  if (ancestor && allowed.has(ancestor)) {
    parentOrigin = ancestor;
    post("ready", snapshot());
  }

  // One tab per agent owns the channel. Browsers deny Web Locks and storage to a third-party
  // frame that blocks cookies, so the server decides, on the live stream ("crm" events). A
  // page whose stream never opens (a buffering proxy) sends the events itself after a while:
  // better twice, in that rare case, than never.
  const becomeOwner = (next) => {
    if (next === owner) return;
    owner = next;
    html.dataset.crmOwner = String(owner);
    if (owner) post("ready", snapshot());
  };
  const live = document.getElementById("live");
  let told = false;
  live?.addEventListener("crm", (event) => {
    try {
      const data = JSON.parse(event.detail?.data || "null");
      told = true;
      becomeOwner(Boolean(data?.owner));
    } catch {
      // a garbled event changes nothing
    }
  });
  setTimeout(() => {
    if (!told) becomeOwner(true);
  }, 15000);
  html.dataset.crmOwner = "false";
})();
