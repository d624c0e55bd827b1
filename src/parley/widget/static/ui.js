/* Parley chat UI: sessions, streaming replies, history, live events, safe markdown, feedback,
   handoff to a person (button, status, typing both ways, an email when nobody is there).
   Every piece of message text reaches the DOM through textContent; nothing is parsed as HTML. */
(() => {
  const P = window.Parley, c = P && P._c;
  if (!c || c.ui) return;
  c.ui = 1;
  const { key, base, root, button } = c;
  const d = document;
  // A thumb (drawn for Parley: a cuff and a hand); the "down" button shows it turned over.
  const thumb = () => {
    const ns = "http://www.w3.org/2000/svg", svg = d.createElementNS(ns, "svg"), path = d.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    path.setAttribute("d", "M2 10h4v11H2zM8 21h9.4a2 2 0 0 0 2-1.6l1.5-7.2A2 2 0 0 0 19 10h-5.4l.9-4.2a1.8 1.8 0 0 0-3.2-1.5L8 9.5z");
    svg.append(path);
    return svg;
  };
  const el = (tag, props, ...kids) => {
    const e = d.createElement(tag);
    for (const k in props || {}) {
      if (k === "class") e.className = props[k];
      else if (k === "text") e.textContent = props[k];
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), props[k]);
      else e.setAttribute(k, props[k]);
    }
    for (const kid of kids) if (kid != null) e.append(kid);
    return e;
  };
  const KEY = "parley:" + key;
  const saved = () => { try { return JSON.parse(localStorage.getItem(KEY)) || {}; } catch { return {}; } };
  const save = (v) => { try { localStorage.setItem(KEY, JSON.stringify({ ...saved(), ...v })); } catch {} };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random());

  root.appendChild(el("style", { text:
    ".p{position:fixed;bottom:88px;right:20px;width:370px;max-width:calc(100vw - 40px);height:560px;" +
    "max-height:calc(100vh - 110px);background:#fff;color:#1d2330;border-radius:14px;display:flex;" +
    "flex-direction:column;box-shadow:0 10px 40px rgba(0,0,0,.25);z-index:2147483000;overflow:hidden;" +
    "font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif}.left .p{left:20px;right:auto}" +
    ".p[hidden]{display:none}.h{background:var(--pc,#1f6feb);color:#fff;padding:12px 14px;display:flex;" +
    "align-items:center;gap:8px}.h h2{font-size:16px;margin:0;flex:1}.x{background:none;border:0;color:#fff;" +
    "font-size:22px;cursor:pointer;line-height:1}.g{flex:1;overflow-y:auto;overflow-x:hidden;padding:12px;" +
    "display:flex;flex-direction:column;gap:8px}.m{max-width:85%;padding:8px 12px;border-radius:12px;" +
    "background:#f1f3f7;overflow-wrap:anywhere;white-space:normal}.m p{margin:0 0 6px}.m p:last-child{margin:0}" +
    ".user{align-self:flex-end;background:var(--pc,#1f6feb);color:#fff}.user a{color:#fff}" +
    ".m pre{white-space:pre-wrap;background:#0001;padding:6px;border-radius:6px;margin:4px 0}" +
    ".m code{font-family:ui-monospace,monospace;font-size:13px}.m ul,.m ol{margin:4px 0;padding-left:20px}" +
    ".cit{font-size:12px;margin:6px 0 0;padding-left:18px;color:#555}.fb{display:flex;gap:4px;margin-top:4px}" +
    ".fb button{border:1px solid #ccd;background:#fff;border-radius:6px;cursor:pointer;padding:3px 6px;line-height:0;color:#667}" +
    ".fb svg{width:14px;height:14px;fill:currentColor}.fb .down svg{transform:rotate(180deg)}.fb button:hover{color:#223}" +
    ".fb [aria-pressed=true]{background:#dde6ff}.e{color:#a40000;font-size:13px;padding:0 12px}" +
    ".e button,.more{margin-left:6px;cursor:pointer}.more{align-self:center;border:0;background:none;" +
    "color:#1f6feb;font-size:13px}form{display:flex;gap:6px;border-top:1px solid #e4e6eb;padding:8px}" +
    "textarea{flex:1;resize:none;border:1px solid #ccd;border-radius:8px;padding:8px;font:inherit;" +
    "min-height:40px;max-height:120px}.s{border:0;border-radius:8px;background:var(--pc,#1f6feb);" +
    "color:#fff;padding:0 14px;cursor:pointer}.sr{position:absolute;width:1px;height:1px;overflow:hidden;" +
    "clip:rect(0 0 0 0)}:focus-visible{outline:3px solid #000;outline-offset:1px}" +
    ".v{border:1px solid #ccd;border-radius:8px;background:#fff;cursor:pointer;padding:0 10px}" +
    ".v[aria-pressed=true]{background:#ffd9d9;border-color:#a40000}.v[hidden]{display:none}" +
    ".hp{background:#fff3;border:0;color:#fff;border-radius:6px;cursor:pointer;font-size:12px;padding:3px 8px}" +
    ".t{font-size:12px;color:#555;padding:0 12px;min-height:16px}.t input{font:inherit;margin:0 4px}" +
    "@media (max-width:480px){.p{inset:0;width:100vw;max-width:100vw;height:100dvh;max-height:100dvh;" +
    "border-radius:0}}" }));

  const title = el("h2", { text: "Chat" });
  const log = el("div", { class: "g", role: "log", "aria-live": "polite", "aria-label": "Messages" });
  const more = el("button", { class: "more", type: "button", text: "Load earlier messages", hidden: "" });
  const err = el("div", { class: "e", role: "alert" });
  const st = el("div", { class: "t", "aria-live": "polite" });
  const hp = el("button", { class: "hp", type: "button", text: "Talk to a person", hidden: "" });
  const box = el("textarea", { id: "pm", rows: "1", maxlength: "4000", placeholder: "Type a message…" });
  // Push to talk (SPEC C12): shown when the channel turns voice on; voice.js loads on first press.
  const mic = el("button", { class: "v", type: "button", "aria-label": "Talk (press to start, press again to send)", "aria-pressed": "false", hidden: "" });
  mic.innerHTML = "<svg viewBox='0 0 24 24' width=18 height=18 fill=currentColor aria-hidden=true><path d='M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1A7 7 0 0 0 19 11z'/></svg>";
  const form = el("form", {},
    el("label", { class: "sr", for: "pm", text: "Message" }), box, mic,
    el("button", { class: "s", type: "submit", "aria-label": "Send", text: "Send" }));
  const panel = el("div", { class: "p", role: "dialog", "aria-label": "Chat", hidden: "" },
    el("div", { class: "h" }, title, hp,
      el("button", { class: "x", type: "button", "aria-label": "Close chat", text: "×", onclick: () => api.close() })),
    log, st, err, form);
  log.before(more);
  root.querySelector(".w").appendChild(panel);

  let session = null, starting = null, cursor = null, greeted = false, listening = false;
  let human = "bot", typedAt = 0, typingOff = 0;
  const SAY = { waiting: "Waiting for a person…", assigned: "You're talking to a person." };
  const status = (h, askEmail) => {
    human = h || "bot";
    st.replaceChildren(SAY[human] || "");
    if (askEmail) {
      const inp = el("input", { type: "email", placeholder: "Your email", "aria-label": "Your email" });
      st.replaceChildren("Leave your email:", inp, el("button", { type: "button", text: "Send", onclick: async () => {
        try { await call("POST", "/v1/widget/contact", { email: inp.value }, null, true); st.replaceChildren("Thanks — we'll be in touch."); } catch {}
      } }));
    }
  };
  const typing = () => {
    st.textContent = "Someone is typing…";
    clearTimeout(typingOff);
    typingOff = setTimeout(() => status(human), 4000);
  };
  const onEvent = (ev) => {
    if (ev.event === "typing") typing();
    else if (ev.event === "conversation.status") status(ev.data.handoff_status, ev.data.ask_email);
  };
  const shown = new Map();

  // --- markdown subset, DOM only ---------------------------------------------------------
  const safeUrl = (u) => { try { const x = new URL(u); return /^https?:$/.test(x.protocol) ? x.href : null; } catch { return null; } };
  const inline = (text, parent) => {
    const re = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*)|(!?\[([^\]\n]*)\]\(([^)\s]+)\))/g;
    let last = 0, m;
    while ((m = re.exec(text))) {
      parent.append(text.slice(last, m.index));
      if (m[1]) parent.append(el("code", { text: m[1].slice(1, -1) }));
      else if (m[2]) parent.append(el("strong", { text: m[2].slice(2, -2) }));
      else if (m[3]) parent.append(el("em", { text: m[3].slice(1, -1) }));
      else {
        const href = safeUrl(m[6]);
        parent.append(href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: m[5] || href }) : m[0]);
      }
      last = re.lastIndex;
    }
    parent.append(text.slice(last));
  };
  const md = (text) => {
    const frag = d.createDocumentFragment();
    text.split(/```/).forEach((chunk, i) => {
      if (i % 2) { frag.append(el("pre", {}, el("code", { text: chunk.replace(/^\w*\n/, "") }))); return; }
      for (const block of chunk.split(/\n{2,}/)) {
        const lines = block.split("\n").filter((l) => l.trim());
        if (!lines.length) continue;
        const bullet = lines.every((l) => /^\s*[-*] /.test(l)), num = lines.every((l) => /^\s*\d+[.)] /.test(l));
        if (bullet || num) {
          const list = el(num ? "ol" : "ul");
          for (const l of lines) { const li = el("li"); inline(l.replace(/^\s*([-*]|\d+[.)]) /, ""), li); list.append(li); }
          frag.append(list);
        } else {
          const p = el("p");
          lines.forEach((l, j) => { if (j) p.append(el("br")); inline(l, p); });
          frag.append(p);
        }
      }
    });
    return frag;
  };

  // --- rendering -------------------------------------------------------------------------
  const bubble = (role) => el("div", { class: "m " + role });
  const fill = (node, m) => {
    node.replaceChildren(md(m.content || ""));
    if (m.citations && m.citations.length) {
      const ol = el("ol", { class: "cit", "aria-label": "Sources" });
      for (const ct of m.citations) {
        const href = ct.url && safeUrl(ct.url);
        ol.append(el("li", { title: ct.snippet || "" },
          href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", text: ct.title }) : ct.title));
      }
      node.append(ol);
    }
    if (m.role === "assistant" && m.id) {
      const fb = el("div", { class: "fb" });
      for (const r of ["up", "down"]) {
        const label = r === "up" ? "Helpful" : "Not helpful";
        const b = el("button", { type: "button", class: r, "aria-label": label, title: label, "aria-pressed": "false" }, thumb());
        b.onclick = async () => {
          fb.querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
          try { await call("POST", "/v1/widget/messages/" + m.id + "/feedback", { rating: r }); } catch {}
        };
        fb.append(b);
      }
      node.append(fb);
    }
  };
  const pend = new Map(); // text of a message being sent -> its optimistic bubble
  // While the visitor's own reply streams in, assistant messages from the events stream wait:
  // the stored reply can arrive there before the reply's own stream ends, and would show twice
  // for a moment. When the reply ends they show, unless it was one of them.
  let own = 0;
  const held = new Map();
  const hold = () => { own++; };
  const release = () => {
    if (--own) return;
    const waiting = [...held.values()];
    held.clear();
    waiting.forEach((m) => add(m));
  };
  const add = (m, where) => {
    if (m.id && shown.has(m.id)) return shown.get(m.id);
    if (where === "live" && m.id && m.role === "assistant" && own) { held.set(m.id, m); return null; }
    if (m.id && m.role === "user" && pend.has(m.content)) {
      const n = pend.get(m.content);
      pend.delete(m.content);
      shown.set(m.id, n);
      return n;
    }
    const node = bubble(m.role === "user" ? "user" : "bot");
    fill(node, m);
    if (m.id) shown.set(m.id, node);
    where === "top" ? more.after(node) : log.append(node);
    if (where !== "top") log.scrollTop = log.scrollHeight;
    return node;
  };
  const showError = (text, retry) => {
    err.replaceChildren(text);
    if (retry) err.append(el("button", { type: "button", text: "Retry", onclick: () => { err.replaceChildren(); retry(); } }));
  };
  // Over a plan limit or the visitor's daily budget: the workspace's own message, said by the
  // assistant, not an error (docs/plans.md).
  const LIMITED = ["quota_exceeded", "visitor_budget_exceeded"];
  const limited = (p) => p && LIMITED.includes(p.code);
  const notice = (p) => {
    const m = el("div", { class: "m bot notice", role: "status", text: p.message || "We can't take more messages right now. Please try again later." });
    log.append(m);
    log.scrollTop = log.scrollHeight;
  };

  // --- API -------------------------------------------------------------------------------
  const theme = (t) => {
    if (t.color && /^#[0-9a-fA-F]{6}$/.test(t.color)) c.host.style.setProperty("--pc", t.color);
    root.querySelector(".w").classList.toggle("left", t.position === "left");
    title.textContent = t.title || title.textContent;
    panel.setAttribute("aria-label", title.textContent);
  };
  const start = async () => {
    const s = saved();
    const r = await fetch(base + "/v1/widget/session", {
      method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ widget_key: key, visitor_token: s.visitor_token, conversation_id: s.conversation_id, page_url: location.href.slice(0, 2000) }),
    });
    if (!r.ok) {
      const p = await r.json().catch(() => ({}));
      throw Object.assign(new Error(p.detail || "unavailable"), { status: r.status, problem: p, retryAfter: Number(r.headers.get("Retry-After")) || 0 });
    }
    const b = await r.json();
    session = { token: b.token, exp: Date.parse(b.expires_at), conv: b.conversation_id };
    save({ visitor_token: b.visitor_token, conversation_id: b.conversation_id });
    title.textContent = b.bot.name;
    theme(b.bot.theme || {});
    b.bot.voice ? mic.removeAttribute("hidden") : mic.setAttribute("hidden", "");
    b.bot.theme && b.bot.theme.handoff_button === false ? hp.setAttribute("hidden", "") : hp.removeAttribute("hidden");
    status(b.handoff_status);
    if (!greeted && b.bot.greeting) { greeted = true; log.prepend(el("div", { class: "m bot", text: b.bot.greeting })); }
    return session;
  };
  const ensure = () => {
    if (session && session.exp - Date.now() > 60000) return Promise.resolve(session);
    return (starting = starting || start().finally(() => { starting = null; }));
  };
  const call = async (method, path, body, extra, raw) => {
    for (let i = 0; ; i++) {
      const s = await ensure();
      const r = await fetch(base + path, {
        method, credentials: "omit",
        headers: { Authorization: "Bearer " + s.token, "Content-Type": "application/json", ...(extra || {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
      if (r.status === 401 && !i) { session = null; continue; }
      if (raw) return r;
      if (!r.ok) throw Object.assign(new Error("HTTP " + r.status), { status: r.status });
      return r.json();
    }
  };
  async function* sse(r) {
    const reader = r.body.getReader(), dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = { event: "message", data: "", id: null };
        for (const line of buf.slice(0, i).split("\n")) {
          if (line.startsWith("event: ")) ev.event = line.slice(7);
          else if (line.startsWith("data: ")) ev.data += line.slice(6);
          else if (line.startsWith("id: ")) ev.id = line.slice(4);
        }
        buf = buf.slice(i + 2);
        if (ev.data) { ev.data = JSON.parse(ev.data); yield ev; }
      }
    }
  }
  const history = async (before) => {
    const s = await ensure();
    const page = await call("GET", "/v1/widget/conversations/" + s.conv + "/messages?limit=50" + (before ? "&before=" + before : ""));
    const items = page.items;
    if (before) for (let i = items.length - 1; i >= 0; i--) add(items[i], "top");
    else items.forEach((m) => add(m));
    cursor = page.next_cursor;
    cursor ? more.removeAttribute("hidden") : more.setAttribute("hidden", "");
  };
  more.onclick = () => history(cursor).catch(() => {});
  const listen = async () => {
    if (listening) return;
    listening = true;
    let last = null, wait = 1000;
    while (listening) {
      try {
        const s = await ensure();
        const r = await call("GET", "/v1/widget/conversations/" + s.conv + "/events", null,
          { Accept: "text/event-stream", ...(last ? { "Last-Event-ID": last } : {}) }, true);
        if (r.ok && r.body) {
          wait = 1000;
          for await (const ev of sse(r)) if (ev.event === "message.created") { last = ev.id || last; add(ev.data, "live"); } else onEvent(ev);
        }
      } catch {}
      await sleep(wait);
      wait = Math.min(wait * 2, 30000);
    }
  };
  const send = async (text) => {
    hold();
    try { return await sendOnce(text); } finally { release(); }
  };
  const sendOnce = async (text) => {
    text = String(text || "").trim().slice(0, 4000);
    if (!text) return;
    err.replaceChildren();
    if (c.preview) { add({ role: "user", content: text }); return showError("A preview: nothing is sent.", null); }
    const pending = add({ role: "user", content: text });
    pend.set(text, pending);
    const idem = uuid();
    let reply = null, acc = "";
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        const r = await call("POST", "/v1/widget/messages", { content: text }, { Accept: "text/event-stream", "Idempotency-Key": idem }, true);
        if (r.status === 409) { await sleep(1000); attempt--; continue; }
        if (!r.ok) {
          const p = await r.json().catch(() => ({}));
          if (limited(p)) return notice(p);
          return showError(r.status === 429 ? "You're sending messages too quickly. Please wait a moment." : p.detail || "Something went wrong.", () => { pending.remove(); send(text); });
        }
        acc = "";
        for await (const ev of sse(r)) {
          if (ev.event === "message.created") { shown.set(ev.data.id, pending); pend.delete(text); }
          else if (ev.event === "reply.delta") {
            if (!reply) { reply = bubble("bot"); log.append(reply); }
            acc += ev.data.text;
            reply.textContent = acc;
            log.scrollTop = log.scrollHeight;
          } else if (ev.event === "reply.completed") {
            const m = ev.data;
            if (shown.has(m.id)) { if (reply) reply.remove(); return; }
            if (!reply) { reply = bubble("bot"); log.append(reply); }
            fill(reply, m);
            shown.set(m.id, reply);
            return;
          } else if (ev.event === "conversation.status") {
            if (reply) reply.remove();
            return onEvent(ev);
          } else if (ev.event === "error") {
            if (reply) reply.remove();
            return showError(ev.data.detail || "The assistant could not answer.", () => { pending.remove(); send(text); });
          }
        }
        throw new Error("stream ended early");
      } catch (e) {
        if (limited(e.problem)) return notice(e.problem);
        if (e.status) return showError("The chat is unavailable here.", null);
        await sleep(1000 * 2 ** attempt);
      }
    }
    if (reply) reply.remove();
    showError("Network problem — your message was not lost.", () => { pending.remove(); send(text); });
  };

  let voiceLoading = null;
  mic.onclick = async () => {
    if (!c.voice) {
      voiceLoading = voiceLoading || new Promise((ok, no) => {
        c.k = { ensure, sse, add, bubble, fill, showError, shown, log, uuid, base, root, mic, err, hold, release };
        const e = d.createElement("script");
        e.src = base + "/widget/v1/voice.js";
        e.onload = ok; e.onerror = no;
        d.head.appendChild(e);
      });
      try { await voiceLoading; } catch { voiceLoading = null; return showError("Voice is unavailable right now."); }
    }
    c.voice.press();
  };
  hp.onclick = async () => {
    try {
      const o = await call("POST", "/v1/widget/handoff");
      if (o.message) add(o.message);
      status(o.handoff_status, o.ask_email);
    } catch { showError("Could not reach the team right now.", null); }
  };
  box.oninput = () => {
    if (human === "bot" || Date.now() - typedAt < 3000) return;
    typedAt = Date.now();
    call("POST", "/v1/widget/typing", null, null, true).catch(() => {});
  };
  form.onsubmit = (e) => { e.preventDefault(); const t = box.value; box.value = ""; send(t); };
  box.onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } };
  panel.onkeydown = (e) => { if (e.key === "Escape") api.close(); };
  let loaded = false;
  const boot = () => {
    if (loaded || c.preview) return;
    loaded = true;
    ensure().then(() => history()).then(listen).catch((e) => {
      loaded = false;
      if (limited(e.problem)) return notice(e.problem);
      if (e.status === 429) {
        // Too many chats started from this network just now: say so, and try again by itself.
        const wait = Math.min(Math.max(e.retryAfter || 5, 1), 60);
        showError("The chat is busy right now. Trying again in a moment…", boot);
        setTimeout(() => { if (!loaded && !panel.hasAttribute("hidden")) { err.replaceChildren(); boot(); } }, wait * 1000);
        return;
      }
      showError(e.status === 403 ? "The chat is not available on this website." : "The chat is unavailable right now.", e.status === 403 ? null : boot);
    });
  };
  const api = {
    open() { panel.removeAttribute("hidden"); button.setAttribute("aria-expanded", "true"); boot(); box.focus(); },
    close() { panel.setAttribute("hidden", ""); button.setAttribute("aria-expanded", "false"); button.focus(); },
    toggle() { panel.hasAttribute("hidden") ? api.open() : api.close(); },
    send(t) { api.open(); send(t); },
  };
  if (c.preview) {
    // The console's theme preview (data-preview: the theme as JSON): drawn open, no network.
    let t = {};
    try { t = JSON.parse(c.preview) || {}; } catch {}
    title.textContent = t.title || t.name || "Chat";
    theme(t);
    t.handoff_button === false ? hp.setAttribute("hidden", "") : hp.removeAttribute("hidden");
    if (t.greeting) log.append(el("div", { class: "m bot", text: t.greeting }));
    panel.removeAttribute("hidden");
    button.setAttribute("aria-expanded", "true");
  } else if (saved().visitor_token) ensure().then(() => history()).then(() => { loaded = true; listen(); }).catch(() => {});
  P._ui(api);
  if (c.open) api.open();
})();
