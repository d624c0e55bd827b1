/* Parley voice (SPEC C12), loaded by ui.js on the first press of the talk button: records with
   MediaRecorder (the microphone permission is asked on that first press, never before), sends
   the recording to POST /v1/widget/voice and plays the reply's speech as it streams in, one
   WAV per sentence, while the captions show the transcript and the reply text.
   Pressing again while the reply plays interrupts it (barge-in): the stream is closed, the rest
   is dropped, and a new recording starts. */
(() => {
  const c = window.Parley && window.Parley._c;
  if (!c || c.voice || !c.k) return;
  const { ensure, sse, add, bubble, fill, showError, shown, log, uuid, base, root, mic, err, hold, release } = c.k;
  const d = document;
  const player = d.createElement("audio");
  player.className = "pa";
  player.setAttribute("aria-hidden", "true");
  const status = d.createElement("div");
  status.className = "sr";
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "assertive");
  root.querySelector(".p").append(player, status);

  let stream = null, rec = null, chunks = [], aborter = null, queue = [], urls = [];
  const say = (t) => { status.textContent = t; };
  const label = (on) => {
    mic.setAttribute("aria-pressed", String(on));
    mic.setAttribute("aria-label", on ? "Stop and send" : "Talk (press to start, press again to send)");
  };

  // --- playback: a queue of WAV blobs through one <audio> element ------------------------
  const next = () => {
    const u = queue.shift();
    if (!u) { player.dataset.state = "idle"; return; }
    player.src = u;
    player.dataset.state = "playing";
    player.play().catch(() => { player.dataset.state = "blocked"; });
  };
  player.onended = next;
  const enqueue = (b64) => {
    const bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const u = URL.createObjectURL(new Blob([bytes], { type: "audio/wav" }));
    urls.push(u);
    queue.push(u);
    if (player.dataset.state !== "playing") next();
  };
  const silence = () => {
    if (aborter) { aborter.abort(); aborter = null; }
    queue = [];
    player.pause();
    player.removeAttribute("src");
    player.dataset.state = "stopped";
    urls.forEach((u) => URL.revokeObjectURL(u));
    urls = [];
  };

  // --- recording -------------------------------------------------------------------------
  const type = () => ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"]
    .find((t) => window.MediaRecorder && MediaRecorder.isTypeSupported(t)) || "";
  const startRec = async () => {
    silence(); // barge-in: whatever was still playing or streaming is dropped
    err.replaceChildren();
    try {
      stream = stream || await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      return showError("The microphone is not available. Check the browser's permission.");
    }
    chunks = [];
    rec = new MediaRecorder(stream, type() ? { mimeType: type() } : undefined);
    rec.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    rec.onstop = () => {
      const blob = new Blob(chunks, { type: (rec.mimeType || "audio/webm").split(";")[0] });
      rec = null;
      turn(blob);
    };
    rec.start(250);
    label(true);
    say("Listening. Press the talk button again to send.");
  };
  const stopRec = () => {
    if (rec && rec.state !== "inactive") rec.stop();
    label(false);
    say("Sending…");
  };

  // --- the voice turn --------------------------------------------------------------------
  const turn = async (blob) => {
    if (!blob.size) return say("Nothing was recorded.");
    const idem = uuid();
    const ab = (aborter = new AbortController());
    let reply = null, acc = "";
    hold(); // the events stream's copy of this reply waits for it (see ui.js)
    try {
      for (let i = 0; ; i++) {
        const s = await ensure();
        const r = await fetch(base + "/v1/widget/voice", {
          method: "POST", credentials: "omit", body: blob, signal: ab.signal,
          headers: { Authorization: "Bearer " + s.token, "Content-Type": blob.type || "audio/webm", Accept: "text/event-stream", "Idempotency-Key": idem },
        });
        if (r.status === 401 && !i) { s.exp = 0; continue; }
        if (!r.ok) {
          const p = await r.json().catch(() => ({}));
          say(p.title || "");
          return showError(p.detail || "Your message could not be heard.");
        }
        for await (const ev of sse(r)) {
          const m = ev.data;
          if (ev.event === "transcript") {
            const node = add(m.message);
            node.classList.add("spoken");
            say("You said: " + m.text);
          } else if (ev.event === "reply.delta") {
            if (!reply) { reply = bubble("bot"); log.append(reply); }
            acc += m.text;
            reply.textContent = acc;
            log.scrollTop = log.scrollHeight;
          } else if (ev.event === "audio") {
            enqueue(m.data);
          } else if (ev.event === "reply.completed") {
            if (shown.has(m.id)) { if (reply) reply.remove(); continue; }
            if (!reply) { reply = bubble("bot"); log.append(reply); }
            fill(reply, m);
            shown.set(m.id, reply);
          } else if (ev.event === "error") {
            return showError(m.detail || "The assistant could not answer.");
          }
        }
        say("");
        return;
      }
    } catch (e) {
      if (e.name !== "AbortError") showError("Network problem — please try again.");
    } finally {
      if (aborter === ab) aborter = null;
      release();
    }
  };

  c.voice = {
    press() { rec ? stopRec() : startRec(); },
    stop: silence,
  };
})();
