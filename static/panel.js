/* The agent panel's own script: what htmx cannot express. Plain ES2020, no dependencies.
 *
 * 1. Keyboard shortcuts ([data-shortcut] is clicked, [data-shortcut-focus] is focused).
 * 2. Running timers ([data-since] shows m:ss or h:mm:ss, one interval for the page).
 * 3. Announcing the new state (data-announce of .workspace-inner) in the #announcer live region.
 * 4. Keeping keyboard focus on the page when htmx replaces the focused element.
 * 5. Copy buttons ([data-copy]).
 * 6. Disposition drafts (form[data-draft]) kept in sessionStorage until the form is sent.
 *
 * Event wiring uses addEventListener only (strict CSP: no inline handlers, no eval).
 * htmx 4 event names: htmx:after:swap (on the request's source element, or on the swap target
 * when the source was swapped away; it bubbles) and htmx:after:request (on the source element).
 */
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);

  /* ---- 1. Keyboard shortcuts ------------------------------------------------------------- */

  const TYPING = "input, textarea, select, [contenteditable]:not([contenteditable='false'])";
  let shortcutUsed = false; // a shortcut started the request now in flight
  let lastFired = null;
  let lastAction = "";
  let lastFiredAt = 0;

  const isVisible = (el) =>
    typeof el.checkVisibility === "function"
      ? el.checkVisibility({ visibilityProperty: true })
      : el.getClientRects().length > 0;

  const shortcutOf = (el) => (el.dataset.shortcut ?? el.dataset.shortcutFocus ?? "").toLowerCase();

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      const open = document.querySelector("details.shortcuts[open]");
      if (open) {
        open.open = false;
        open.querySelector("summary")?.focus();
      } else if (event.target instanceof Element && event.target.closest(TYPING)) {
        // Leave the field, so that the shortcut keys work again.
        $("workspace")?.focus({ preventScroll: true });
      }
      return;
    }
    if (event.repeat || event.isComposing || event.defaultPrevented) return;
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    if (typeof event.key !== "string" || event.key.length !== 1) return;
    const origin = event.target;
    if (origin instanceof Element && origin.closest(TYPING)) return;

    const key = event.key.toLowerCase();
    // The first visible element that answers to the key, in document order: the first call.
    const match = Array.from(
      document.querySelectorAll("[data-shortcut], [data-shortcut-focus]"),
    ).find((el) => shortcutOf(el) === key && isVisible(el));
    if (!match) return;
    event.preventDefault();

    if (match.dataset.shortcut === undefined) {
      match.focus();
      return;
    }
    // In flight (hx-disable sets disabled; htmx marks the form): never a second request. Only
    // the button's own form counts: the workspace keeps the class for a moment after a swap.
    if (match.disabled || match.closest("form")?.classList.contains("htmx-request")) return;
    const now = performance.now();
    // The same control twice within half a second is one intent pressed twice. A morph may keep
    // the element while turning it into another control (Hold into Take off hold): compare the
    // action it posts to as well.
    const action = match.closest("form")?.getAttribute("hx-post") ?? "";
    if (match === lastFired && action === lastAction && now - lastFiredAt < 500) return;
    lastFired = match;
    lastAction = action;
    lastFiredAt = now;
    shortcutUsed = true;
    clickWhenProcessed(match, now);
  });

  // Content swapped in a moment ago that htmx has not processed yet would be posted by the
  // browser itself, as a whole page without the CSRF header: wait (briefly) for htmx.
  // An answer that arrives meanwhile may redraw the workspace (a push showed the new call first,
  // then the dial's own answer replaced it): the same control, for the same call, is then
  // found again by its form's URL and key, and pressed there. It was never pressed before.
  const clickWhenProcessed = (button, since, action = null, key = null) => {
    const form = button.closest("form[hx-post]");
    action ??= form?.getAttribute("hx-post") ?? null;
    key ??= shortcutOf(button);
    if (!button.isConnected && action) {
      const again = Array.from(document.querySelectorAll("form[hx-post]"))
        .filter((f) => f.getAttribute("hx-post") === action)
        .flatMap((f) => Array.from(f.querySelectorAll("[data-shortcut]")))
        .find((el) => shortcutOf(el) === key);
      if (!again) return;
      button = again;
      if (button.disabled || button.closest("form")?.classList.contains("htmx-request")) return;
      return clickWhenProcessed(button, since, action, key);
    }
    if (!window.htmx || !form || form.hasAttribute("data-htmx-powered")) {
      if (button.isConnected && !button.disabled) button.click();
      return;
    }
    if (performance.now() - since < 1000) {
      setTimeout(() => clickWhenProcessed(button, since, action, key), 20);
    }
  };

  /* ---- 2. Running timers ----------------------------------------------------------------- */

  const starts = new WeakMap(); // element -> {since, start on this browser's clock (ms)}

  const formatClock = (seconds) => {
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  };

  const startOf = (el) => {
    // Keyed by the element *and* its data-since: a morph swap keeps the element but may give
    // it a new start (the agent's state changed).
    const known = starts.get(el);
    if (known && known.since === el.dataset.since) return known.start;
    const since = Date.parse(el.dataset.since || "");
    if (Number.isNaN(since)) return null;
    const start = since + clockSkew; // the server's moment on this browser's clock
    starts.set(el, { since: el.dataset.since, start });
    return start;
  };

  // This browser's clock minus the server's, measured once from the page as first drawn (pushed
  // workspaces may have been drawn a while ago, so they cannot tell).
  const clockSkew = (() => {
    const drawn = Date.parse(document.querySelector(".workspace-inner")?.dataset.rendered || "");
    const skew = Number.isNaN(drawn) ? 0 : Date.now() - drawn;
    return Math.abs(skew) < 3600000 ? skew : 0;
  })();

  const tick = () => {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-since]")) {
      const start = startOf(el);
      if (start === null) continue;
      const text = formatClock(Math.max(0, Math.floor((now - start) / 1000)));
      if (el.textContent !== text) el.textContent = text;
    }
  };

  /* ---- 3. Announcements ------------------------------------------------------------------ */

  const currentAnnouncement = () =>
    document.querySelector("#workspace .workspace-inner")?.dataset.announce ?? null;
  let announced = currentAnnouncement(); // the first load is not announced

  const say = (text) => {
    const region = $("announcer");
    if (region) region.textContent = text;
  };

  const announceWorkspace = () => {
    const text = currentAnnouncement();
    if (text === null || text === announced) return;
    announced = text;
    say(text);
  };

  /* ---- 4. Focus -------------------------------------------------------------------------- */

  let lastFocused = null;
  let lastRegion = null; // "dial" or "workspace": where the last focused element lived
  document.addEventListener("focusin", (event) => {
    const el = event.target;
    if (!(el instanceof HTMLElement)) return;
    lastFocused = el;
    lastRegion = el.closest("#dial") ? "dial" : el.closest("#workspace") ? "workspace" : null;
  });

  const focusable = (el) => Boolean(el?.isConnected && !el.disabled && isVisible(el));

  const keepFocus = () => {
    const byKey = shortcutUsed;
    shortcutUsed = false;
    const active = document.activeElement;
    if (active && active !== document.body) return; // focus survived the swap (htmx keeps ids)
    const previous = lastFocused;
    const removed = Boolean(previous && !previous.isConnected);
    if (!removed && !byKey) return;
    // The element htmx replaced: its successor with the same id, if the new content has one.
    let next = removed && previous.id ? document.getElementById(previous.id) : null;
    if (!focusable(next) && removed && lastRegion === "dial") {
      next = $("dial")?.querySelector("[aria-invalid='true']"); // the field to fix
    }
    if (!focusable(next)) next = $("workspace");
    next?.focus({ preventScroll: true });
  };

  /* ---- 5. Copy buttons ------------------------------------------------------------------- */

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
    if (!button || !navigator.clipboard?.writeText) return;
    navigator.clipboard.writeText(button.dataset.copy).then(
      () => {
        const done = button.dataset.copied || "Copied";
        if (!button.classList.contains("is-copied")) button.dataset.label = button.textContent;
        button.textContent = done;
        button.classList.add("is-copied");
        say(done);
        clearTimeout(button._copiedTimer);
        button._copiedTimer = setTimeout(() => {
          button.textContent = button.dataset.label;
          button.classList.remove("is-copied");
        }, 1500);
      },
      () => {}, // no clipboard here (e.g. an iframe without clipboard-write): nothing to do
    );
  });

  /* ---- 6. Disposition drafts ------------------------------------------------------------- */

  const DRAFT = "panel-draft:";
  const storage = (() => {
    try {
      return window.sessionStorage;
    } catch {
      return null; // storage blocked (e.g. some third-party iframes)
    }
  })();
  const draftFields = (form) => form.querySelectorAll("select[name], textarea[name]");

  const saveDraft = (form) => {
    const values = {};
    for (const field of draftFields(form)) values[field.name] = field.value;
    try {
      storage?.setItem(DRAFT + form.dataset.draft, JSON.stringify(values));
    } catch {
      /* full or blocked: the draft is a convenience */
    }
  };

  const restoreDrafts = (root) => {
    if (!storage) return;
    for (const form of root.querySelectorAll("form[data-draft]")) {
      let values = null;
      try {
        values = JSON.parse(storage.getItem(DRAFT + form.dataset.draft) || "null");
      } catch {
        values = null;
      }
      if (!values || typeof values !== "object") continue;
      for (const field of draftFields(form)) {
        const saved = values[field.name];
        if (typeof saved !== "string" || saved === "" || field.value !== "") continue;
        if (field instanceof HTMLSelectElement) {
          if (Array.from(field.options).some((option) => option.value === saved)) {
            field.value = saved;
          }
        } else {
          field.value = saved;
        }
      }
    }
  };

  const onDraftEdit = (event) => {
    const field = event.target;
    if (!(field instanceof HTMLSelectElement || field instanceof HTMLTextAreaElement)) return;
    const form = field.closest("form[data-draft]");
    if (form) saveDraft(form);
  };
  document.addEventListener("input", onDraftEdit);
  document.addEventListener("change", onDraftEdit);

  document.addEventListener("htmx:after:request", (event) => {
    const form = event.target instanceof Element ? event.target.closest("form[data-draft]") : null;
    const ctx = event.detail?.ctx;
    if (!form || !ctx?.response || !storage) return;
    const key = form.dataset.draft;
    const ok = ctx.response.status >= 200 && ctx.response.status < 300;
    // Sent and accepted: the answer no longer asks for this result.
    if (ok && typeof ctx.text === "string" && !ctx.text.includes(`data-draft="${key}"`)) {
      storage.removeItem(DRAFT + key);
    }
  });

  /* ---- 7. Live updates (SSE) and the fallback ------------------------------------------- */
  /* The htmx SSE extension keeps one stream open on #live; each message is the workspace with
   * its version as the message id. Older versions never replace newer ones. When nothing has
   * come through the stream for a while (a proxy that buffers, a browser that refuses), the
   * page refreshes the workspace itself every few seconds, says so, and stops as soon as the
   * stream delivers again. */

  const live = $("live");
  const HEARTBEAT_GRACE = 40000; // the server sends a heartbeat every 15 s
  const FALLBACK_EVERY = 5000;
  let mode = "connecting";
  let lastLife = Date.now();
  let fallbackTimer = null;
  let highestVersion = 0;

  // The version a workspace was published as; NaN when unknown (Redis was not answering).
  const versionOf = (root) => {
    const raw = root?.querySelector?.(".workspace-inner")?.dataset.version;
    return raw ? Number(raw) : Number.NaN;
  };
  let lastCatchUp = 0;
  const noteVersion = () => {
    const seen = versionOf(document);
    if (Number.isFinite(seen) && seen > highestVersion) highestVersion = seen;
  };

  const showMode = () => {
    const badge = $("live-status");
    if (!badge || !live) return;
    const text = live.dataset[`text${mode[0].toUpperCase()}${mode.slice(1)}`];
    badge.dataset.mode = mode;
    if (text && badge.textContent !== text) badge.textContent = text;
  };

  const setMode = (next) => {
    mode = next;
    if (mode === "fallback" && fallbackTimer === null) {
      fallbackTimer = setInterval(refreshWorkspace, FALLBACK_EVERY);
      refreshWorkspace();
    } else if (mode !== "fallback" && fallbackTimer !== null) {
      clearInterval(fallbackTimer);
      fallbackTimer = null;
    }
    showMode();
  };

  const refreshWorkspace = () => {
    if (!window.htmx || !live) return;
    if (!document.querySelector("#workspace .htmx-request")) {
      window.htmx
        .ajax("GET", live.dataset.refreshUrl, { target: "#workspace", swap: "innerMorph" })
        ?.catch?.(() => {}); // offline: the next tick tries again
    }
    reopenStream();
  };

  // The SSE extension reconnects a stream that was once open, but gives up on one whose very
  // first request failed: open it again ourselves, at most every 10 s, while it is not open.
  let lastReopen = 0;
  const reopenStream = () => {
    const open = live?._htmx?.sse;
    const url = live?.getAttribute("hx-sse:connect");
    if (open || !url || Date.now() - lastReopen < 10000) return;
    lastReopen = Date.now();
    window.htmx
      .ajax("GET", url, { source: live, target: "#workspace", swap: "innerMorph" })
      ?.catch?.(() => {});
  };

  const alive = () => {
    lastLife = Date.now();
    if (mode !== "live") setMode("live");
  };

  if (live) {
    live.addEventListener("htmx:sse:after:connection", alive);
    live.addEventListener("htmx:sse:before:message", (event) => {
      const message = event.detail?.message;
      alive();
      // Named events (heartbeat) carry the last id too: only workspaces are compared.
      if (message?.event) return;
      const incoming = message?.id ? Number(message.id) : Number.NaN;
      // An older state than the one shown (an action's answer overtook the stream): skip it.
      if (Number.isFinite(incoming) && incoming <= highestVersion) event.detail.cancelled = true;
    });
    live.addEventListener("heartbeat", (event) => {
      alive();
      let info = null;
      try {
        info = JSON.parse(event.detail?.data || "null");
      } catch {
        info = null;
      }
      if (info && info.redis === false) setMode("redis");
      const readAt = document.querySelector("[data-read-at]");
      if (info?.read_at && readAt) {
        readAt.textContent = new Date(info.read_at * 1000).toLocaleTimeString([], { hour12: false });
      }
    });
    const lost = () => {
      if (mode === "live") setMode("connecting");
    };
    live.addEventListener("htmx:sse:error", lost);
    live.addEventListener("htmx:sse:close", lost);
    setInterval(() => {
      if (mode !== "fallback" && Date.now() - lastLife > HEARTBEAT_GRACE) setMode("fallback");
    }, 5000);
    // Never connected within a few seconds: start refreshing while the stream keeps trying.
    setTimeout(() => {
      if (mode === "connecting") setMode("fallback");
    }, 10000);
  }

  document.addEventListener("htmx:after:swap", (event) => {
    const target = event.detail?.ctx?.target;
    const shown = versionOf(document);
    const stale = Number.isFinite(shown) && shown < highestVersion;
    if (target?.id === "workspace" && stale && Date.now() - lastCatchUp > 5000) {
      // An action's answer older than a push already shown: ask for the current state (once;
      // never in a loop, whatever the versions say).
      lastCatchUp = Date.now();
      queueMicrotask(refreshWorkspace);
    }
    noteVersion();
    showMode();
  });
  noteVersion();
  showMode();

  /* ---- Wiring ---------------------------------------------------------------------------- */

  document.addEventListener("htmx:after:swap", () => {
    restoreDrafts(document);
    tick();
    announceWorkspace();
    keepFocus();
  });

  document.addEventListener("htmx:finally:request", () => {
    // A request that swapped nothing (204, network error) must not leave the flag set.
    queueMicrotask(() => {
      if (!document.querySelector(".htmx-request")) shortcutUsed = false;
    });
  });

  restoreDrafts(document);
  tick();
  setInterval(tick, 1000);
  document.documentElement.dataset.panelReady = "true"; // for tests: shortcuts are wired
})();
