/* The example CRM's side of the panel's postMessage API (docs/embedding.md). */
(() => {
  "use strict";
  const panelOrigin = document.body.dataset.panelOrigin;
  const frame = document.getElementById("panel");
  const $ = (id) => document.getElementById(id);
  let requests = 0;

  const send = (message) => frame.contentWindow.postMessage(message, panelOrigin);
  const command = (type, extra = {}) => {
    requests += 1;
    send({ type, requestId: `crm-${requests}`, ...extra });
  };

  const contactFor = (phone) => {
    const digits = (phone || "").replace(/\D/g, "");
    return Array.from(document.querySelectorAll("tr[data-phone]")).find(
      (row) => digits && row.dataset.phone.replace(/\D/g, "") === digits,
    );
  };
  const nameOf = (row) => row?.cells[0].textContent ?? "Unknown caller";

  const line = (list, text) => {
    const item = document.createElement("li");
    item.textContent = text;
    $(list).prepend(item);
    return item;
  };

  // Panel -> CRM: accept only the panel's origin, from the panel's own frame.
  window.addEventListener("message", (event) => {
    if (event.origin !== panelOrigin || event.source !== frame.contentWindow) return;
    const message = event.data;
    if (!message || message.source !== "maxcontact-panel") return;
    line("events", `${message.type} ${JSON.stringify(message.call ?? message.agent ?? message.ok ?? "")}`)
      .dataset.type = message.type;
    const call = message.call;
    switch (message.type) {
      case "ready":
        $("channel").textContent = `panel: connected (API v${message.apiVersion}${message.owner ? "" : ", another tab owns the events"})`;
        break;
      case "call.offered": {
        const row = contactFor(call.phone);
        const pop = $("screen-pop");
        pop.replaceChildren();
        const title = document.createElement("p");
        title.className = "pop-name";
        title.textContent = nameOf(row);
        const detail = document.createElement("p");
        detail.textContent = `${call.direction ?? "call"} · ${call.phone ?? "no number"}${call.leadId ? ` · lead ${call.leadId}` : ""}`;
        pop.append(title, detail);
        pop.dataset.call = String(call.callId);
        break;
      }
      case "call.disposed": {
        const when = new Date(call.disposedAt ?? message.at).toLocaleTimeString([], { hour12: false });
        const notes = call.notes ? ` · “${call.notes}”` : "";
        line("call-log", `${when} ${nameOf(contactFor(call.phone))} ${call.phone ?? ""}: ${call.resultCode ?? "no result"}${notes}`);
        break;
      }
      case "result":
        if (!message.ok) line("events", `refused: ${message.message}`).className = "refused";
        break;
      default:
        break;
    }
  });

  // CRM -> panel.
  frame.addEventListener("load", () => send({ type: "hello", version: 1 }));
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) return;
    if (button.classList.contains("dial")) {
      const row = button.closest("tr");
      const lead = row.dataset.lead ? Number(row.dataset.lead) : undefined;
      command("dial", { number: row.dataset.phone, leadId: lead });
    } else if (button.id === "go-ready") {
      command("ready");
    } else if (button.id === "hang-up") {
      command("hangup");
    }
  });
})();
