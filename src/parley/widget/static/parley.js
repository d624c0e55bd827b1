/* Parley widget loader: defines window.Parley, draws the launcher in a Shadow DOM, and loads
   the chat UI (ui.js) on first interaction or when the browser is idle. Keep it tiny. */
(() => {
  const d = document, w = window;
  if (w.Parley && w.Parley._c) return;
  const s = d.currentScript || d.querySelector("script[data-widget-key]");
  if (!s) return;
  const base = new URL(s.src, location.href).origin;
  const queue = [];
  let ui = null, loading = false;
  const load = () => {
    if (loading) return;
    loading = true;
    const e = d.createElement("script");
    e.src = base + "/widget/v1/ui.js";
    e.async = true;
    if (s.nonce) e.nonce = s.nonce;
    if (s.crossOrigin) e.crossOrigin = s.crossOrigin;
    d.head.appendChild(e);
  };
  const call = (m, a) => { if (ui) ui[m](...a); else { queue.push([m, a]); load(); } };
  const host = d.createElement("div");
  host.id = "parley-widget";
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    "<style>:host{all:initial}.l{position:fixed;bottom:20px;right:20px;width:56px;height:56px;" +
    "border-radius:50%;border:0;background:var(--pc,#1f6feb);color:#fff;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000;display:grid;place-items:center}" +
    ".l:focus-visible{outline:3px solid #000;outline-offset:2px}.l svg{width:26px;height:26px}" +
    ".left .l{left:20px;right:auto}</style><div class=w><button class=l type=button " +
    "aria-label='Open chat' aria-expanded=false><svg viewBox='0 0 24 24' fill=currentColor " +
    "aria-hidden=true><path d='M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z'/>" +
    "</svg></button></div>";
  const button = root.querySelector("button");
  button.addEventListener("click", () => call("toggle", []));
  ["focus", "pointerenter", "touchstart"].forEach((t) => button.addEventListener(t, load, { passive: true }));
  w.Parley = {
    _c: { key: s.dataset.widgetKey, base, host, root, button, open: s.dataset.open === "true", preview: s.dataset.preview },
    open: () => call("open", []),
    close: () => call("close", []),
    send: (t) => call("send", [t]),
    _ui(api) { ui = api; queue.splice(0).forEach(([m, a]) => api[m](...a)); },
  };
  const mount = () => d.body.appendChild(host);
  d.body ? mount() : d.addEventListener("DOMContentLoaded", mount);
  (w.requestIdleCallback || ((f) => setTimeout(f, 3000)))(load);
})();
