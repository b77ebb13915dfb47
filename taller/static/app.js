/* Taller chat page: one websocket to `taller serve`, plain JavaScript, no dependencies.
 *
 * The token comes from the URL fragment printed by `taller serve` (http://127.0.0.1:8765/#token=...):
 * fragments are never sent to a server, and the page removes it from the address bar at once and
 * keeps it in sessionStorage for this tab. The websocket offers it as the subprotocol
 * "taller.token.<TOKEN>" (browsers cannot set headers on a WebSocket); images are fetched with an
 * Authorization header and shown from blob: URLs, so the token never appears in a URL.
 * All text from the server is inserted with textContent, never as HTML.
 *
 * A database answer (query_database) also gets: its chart, drawn here as inline SVG from the
 * declarative spec in the result (built by the server's code from the rows, never by the model);
 * its suggested follow-up questions as buttons that send them as the next message; and a thumbs-up
 * that sends a "remember" frame, so the server stores the question and SQL as a confirmed example.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const logBox = $("log");
  const state = {
    ws: null,
    token: null,
    threadId: null,
    requests: new Map(),   // request_id -> {bubble, text, cards, done}
    running: [],           // request ids started by this page and not finished, newest last
    attempts: 0,
    opened: false,
    attachment: null,      // {name, media_type, data}
    runs: new Map(),       // run_id -> <li>
    remembering: new Map(), // request_id of a "remember" frame -> its thumbs-up button
  };

  // --- token and thread ----------------------------------------------------------------------
  function readToken() {
    const match = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
    if (match) {
      sessionStorage.setItem("taller.token", decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
    return sessionStorage.getItem("taller.token");
  }

  function newId(prefix) {
    const bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setThread(threadId) {
    state.threadId = threadId;
    localStorage.setItem("taller.thread", threadId);
    $("thread-label").textContent = "thread " + threadId;
  }

  // --- connection ----------------------------------------------------------------------------
  function setStatus(kind, text) {
    const el = $("status");
    el.dataset.state = kind;
    el.textContent = text;
  }

  function connect() {
    if (!state.token) {
      $("token-box").hidden = false;
      setStatus("closed", "no token");
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`, ["taller", "taller.token." + state.token]);
    state.ws = ws;
    setStatus("connecting", "connecting…");
    ws.onopen = () => {
      state.attempts = 0;
      state.opened = true;
      $("token-box").hidden = true;
      setStatus("open", "connected");
      send({ type: "runs" });
      if (!logBox.childElementCount) send({ type: "history", thread_id: state.threadId });
    };
    ws.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (err) { return; }
      handle(event);
    };
    ws.onclose = (close) => {
      state.ws = null;
      for (const id of state.running) finish(id);
      state.running = [];
      updateButtons();
      state.attempts += 1;
      // A handshake refused for a wrong token looks like a plain close (1006) to a page; after a
      // few failures without ever opening, ask for the token again.
      if (!state.opened && state.attempts >= 3) {
        $("token-box").hidden = false;
      }
      const wait = Math.min(15000, 500 * 2 ** Math.min(state.attempts, 5));
      setStatus("closed", `disconnected (${close.code}); retrying in ${Math.round(wait / 1000)} s`);
      setTimeout(connect, wait);
    };
  }

  function send(frame) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
      showError(null, "not connected to the server");
      return false;
    }
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  // --- rendering -----------------------------------------------------------------------------
  function add(element) {
    const nearBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 80;
    logBox.appendChild(element);
    if (nearBottom) logBox.scrollTop = logBox.scrollHeight;
    return element;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function request(id) {
    if (!state.requests.has(id)) state.requests.set(id, { bubble: null, text: "", cards: new Map(), done: false });
    return state.requests.get(id);
  }

  function bubble(id) {
    const req = request(id);
    if (!req.bubble) {
      req.bubble = add(el("div", "msg assistant streaming"));
      req.bubble.dataset.request = id;
    }
    return req.bubble;
  }

  function showUser(text, attachmentName) {
    const node = add(el("div", "msg user", text));
    if (attachmentName) node.appendChild(el("span", "meta", "attached: " + attachmentName));
  }

  function showError(requestId, message) {
    const node = add(el("div", "msg error", message));
    if (requestId) node.dataset.request = requestId;
  }

  function finish(id) {
    const req = request(id);
    req.done = true;
    if (req.bubble) req.bubble.classList.remove("streaming");
    state.running = state.running.filter((r) => r !== id);
    updateButtons();
  }

  function updateButtons() {
    $("cancel").disabled = state.running.length === 0;
  }

  async function showImage(event) {
    const figure = add(el("figure"));
    const img = el("img");
    img.alt = event.caption || "image from " + (event.tool || "a tool");
    figure.appendChild(img);
    figure.appendChild(el("figcaption", null, event.caption || event.path));
    if (!event.url) {
      figure.appendChild(el("span", "meta", "(this image is outside the served folders)"));
      return;
    }
    try {
      const response = await fetch(event.url, { headers: { Authorization: "Bearer " + state.token } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      img.src = URL.createObjectURL(await response.blob());
    } catch (err) {
      figure.appendChild(el("span", "meta", "could not load the image: " + err.message));
    }
  }

  function showProgress(event) {
    const key = event.run_id || event.source || "progress";
    let item = state.runs.get(key);
    if (!item) {
      item = el("li");
      item.dataset.run = key;
      item.appendChild(el("div", "name", key));
      item.appendChild(el("progress"));
      item.appendChild(el("div", "meta"));
      $("runs").prepend(item);
      state.runs.set(key, item);
    }
    const bar = item.querySelector("progress");
    const done = event.epochs ? (event.epoch || 0) / event.epochs : event.total ? (event.step || 0) / event.total : null;
    if (done === null) bar.removeAttribute("value"); else bar.value = Math.max(0, Math.min(1, done));
    const parts = [];
    if (event.message) parts.push(event.message);
    if (typeof event.loss === "number") parts.push("loss " + event.loss.toFixed(4));
    if (typeof event.metric === "number") parts.push((event.metric_name || "metric") + " " + event.metric.toFixed(4));
    if (typeof event.eta_s === "number") parts.push("eta " + Math.round(event.eta_s) + " s");
    if (event.status) parts.push(event.status);
    item.querySelector(".meta").textContent = parts.join(" · ");
  }

  function showRuns(event) {
    for (const run of event.runs || []) {
      showProgress({ run_id: run.run_id, message: [run.model, run.status].filter(Boolean).join(" "),
                     epoch: run.epoch, epochs: run.epochs });
    }
    for (const progress of event.latest_progress || []) showProgress(progress);
  }

  function showHistory(event) {
    if (event.thread_id !== state.threadId || logBox.childElementCount) return;
    for (const message of event.messages || []) {
      if (message.role === "user") add(el("div", "msg user", message.content));
      else if (message.role === "assistant") add(el("div", "msg assistant", message.content));
      else if (message.role === "tool") add(el("div", "card tool", "Tool " + (message.name || ""))).dataset.state = "done";
    }
    if (event.pending_interrupt) showInterrupt({ ...event.pending_interrupt, thread_id: event.thread_id, request_id: null });
  }

  function showInterrupt(event) {
    const card = add(el("div", "card interrupt"));
    card.appendChild(el("div", "title", "Approval needed: " + (event.tool || "")));
    card.appendChild(el("div", null, event.message || ""));
    const approve = el("button", "approve", "Approve");
    const reject = el("button", "reject", "Reject");
    approve.type = reject.type = "button";
    const answer = (yes) => {
      const requestId = event.request_id || newId("p-");
      const frame = { type: yes ? "approve" : "reject", thread_id: event.thread_id, request_id: requestId };
      if (send(frame)) {
        approve.disabled = reject.disabled = true;
        card.appendChild(el("div", "meta", yes ? "approved" : "rejected"));
        const req = request(requestId);
        req.done = false;
        state.running.push(requestId);
        updateButtons();
      }
    };
    approve.onclick = () => answer(true);
    reject.onclick = () => answer(false);
    card.appendChild(approve);
    card.appendChild(reject);
  }

  // --- a database answer: chart, suggested follow-ups, thumbs-up ------------------------------
  const SVG_NS = "http://www.w3.org/2000/svg";
  const CHART = { width: 560, height: 230, left: 64, right: 16, top: 14, bottom: 66, maxPoints: 50 };

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function shortNumber(value) {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  }

  function shortLabel(value, limit) {
    const text = value === null || value === undefined ? "NULL" : String(value);
    return text.length <= limit ? text : text.slice(0, limit - 1) + "…";
  }

  // The chart spec {type: "bar"|"line", x, y, points: [[x, y], ...]} as an <svg>; null when the
  // spec is not one this page can draw.
  function drawChart(spec) {
    if (!spec || (spec.type !== "bar" && spec.type !== "line") || !Array.isArray(spec.points)) return null;
    const points = spec.points
      .filter((p) => Array.isArray(p) && p.length === 2 && typeof p[1] === "number" && Number.isFinite(p[1]))
      .slice(0, CHART.maxPoints);
    if (points.length < 2) return null;
    const { width, height, left, right, top, bottom } = CHART;
    const values = points.map((p) => p[1]);
    // Bars grow from zero; a line spans its own range (a time series far from zero stays readable).
    let low = spec.type === "bar" ? Math.min(0, ...values) : Math.min(...values);
    let high = spec.type === "bar" ? Math.max(0, ...values) : Math.max(...values);
    if (high === low) { high += 1; low -= spec.type === "bar" ? 0 : 1; }
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const y = (v) => top + ((high - v) / (high - low)) * plotHeight;
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart " + spec.type, role: "img",
                              "aria-label": `${spec.y} by ${spec.x}` });
    root.appendChild(svg("title", {}, `${spec.y} by ${spec.x}`));
    // Axes: the value scale's ends, and the zero line (or the bottom for a line).
    root.appendChild(svg("line", { x1: left, x2: width - right, y1: y(Math.max(low, Math.min(0, high))),
                                   y2: y(Math.max(low, Math.min(0, high))), class: "axis" }));
    root.appendChild(svg("text", { x: left - 6, y: y(high) + 4, class: "tick end" }, shortNumber(high)));
    root.appendChild(svg("text", { x: left - 6, y: y(low) + 4, class: "tick end" }, shortNumber(low)));
    const slot = plotWidth / points.length;
    // Every label when they fit, else every k-th (the first and last always).
    const every = Math.max(1, Math.ceil(points.length / (spec.type === "bar" ? 15 : 8)));
    const xOf = (i) => left + slot * i + slot / 2;
    points.forEach(([label, value], i) => {
      const tip = `${shortLabel(label, 60)}: ${shortNumber(value)}`;
      if (spec.type === "bar") {
        const barTop = y(Math.max(value, 0));
        const barHeight = Math.max(1, Math.abs(y(value) - y(0)));
        const rect = svg("rect", { x: xOf(i) - slot * 0.35, y: barTop, width: slot * 0.7, height: barHeight,
                                   class: value < 0 ? "bar negative" : "bar" });
        rect.appendChild(svg("title", {}, tip));
        root.appendChild(rect);
      } else {
        const dot = svg("circle", { cx: xOf(i), cy: y(value), r: 3, class: "dot" });
        dot.appendChild(svg("title", {}, tip));
        root.appendChild(dot);
      }
      if (i % every === 0 || i === points.length - 1) {
        const tx = xOf(i);
        const ty = height - bottom + 14;
        root.appendChild(svg("text", { x: tx, y: ty, class: "tick label", transform: `rotate(-35 ${tx} ${ty})` },
                             shortLabel(label, 12)));
      }
    });
    if (spec.type === "line") {
      const path = points.map((p, i) => `${xOf(i).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
      root.insertBefore(svg("polyline", { points: path, class: "series" }), root.querySelector("circle"));
    }
    return root;
  }

  function showAnswerExtras(card, tool, result, args) {
    if (result.error) return;
    const chart = drawChart(result.chart);
    if (chart) {
      const figure = card.appendChild(el("figure", "chart"));
      figure.appendChild(chart);
      figure.appendChild(el("figcaption", null, `${result.chart.y} by ${result.chart.x}`));
    }
    if (tool === "query_database" && typeof result.question === "string" && typeof result.sql === "string" && result.sql) {
      const thumb = card.appendChild(el("button", "confirm", "👍 Correct — remember this query"));
      thumb.type = "button";
      thumb.title = "Store this question and its SQL as an example for similar questions";
      // The database as the tool was called (a URL stays a URL); else the name the result gives.
      const database = (args && typeof args.database === "string" && args.database) || result.database || null;
      thumb.onclick = () => {
        const requestId = newId("k-");
        const frame = { type: "remember", question: result.question, sql: result.sql, database,
                        thread_id: state.threadId, request_id: requestId };
        if (send(frame)) {
          thumb.disabled = true;
          thumb.textContent = "Remembering…";
          state.remembering.set(requestId, thumb);
        }
      };
    }
    const suggestions = Array.isArray(result.suggestions) ? result.suggestions.filter((t) => typeof t === "string" && t) : [];
    if (suggestions.length) {
      const row = card.appendChild(el("div", "suggestions"));
      for (const text of suggestions) {
        const chip = row.appendChild(el("button", "chip", text));
        chip.type = "button";
        chip.onclick = () => sendText(text);
      }
    }
  }

  function remembered(event) {
    const thumb = state.remembering.get(event.request_id);
    if (!thumb) return false;
    state.remembering.delete(event.request_id);
    if (event.type === "remembered") {
      thumb.textContent = "✓ Remembered for similar questions";
    } else {
      thumb.disabled = false;
      thumb.textContent = "👍 Correct — remember this query";
      thumb.parentNode.appendChild(el("div", "meta", event.message || "not remembered"));
    }
    return true;
  }

  function handle(event) {
    const id = event.request_id;
    if ((event.type === "remembered" || event.type === "error") && remembered(event)) return;
    switch (event.type) {
      case "hello": case "pong": case "subscribed": case "threads": case "remembered":
        return;
      case "runs":
        return showRuns(event);
      case "history":
        return showHistory(event);
      case "progress":
        return showProgress(event);
    }
    // Request events of another thread (another tab) are not this page's business.
    if (event.thread_id && event.thread_id !== state.threadId && event.type !== "error") return;
    switch (event.type) {
      case "token": {
        const node = bubble(id);
        request(id).text += event.text || "";
        node.textContent = request(id).text;
        break;
      }
      case "tool_start": {
        const card = add(el("div", "card tool"));
        card.dataset.state = "running";
        card.dataset.tool = event.tool;
        card.appendChild(el("div", "title", "Tool " + event.tool + ": running…"));
        if (event.args && Object.keys(event.args).length) card.appendChild(el("pre", null, JSON.stringify(event.args, null, 1)));
        card.toolArgs = event.args || null;
        request(id).cards.set(event.call_id, card);
        break;
      }
      case "tool_end": {
        let card = request(id).cards.get(event.call_id);
        if (!card) card = add(el("div", "card tool"));
        card.dataset.state = event.ok ? "done" : "failed";
        let title = card.querySelector(".title");
        if (!title) title = card.appendChild(el("div", "title"));
        title.textContent = "Tool " + event.tool + (event.ok ? ": done" : ": failed");
        const result = event.result || {};
        card.appendChild(el("div", "summary", result.error || result.summary || ""));
        showAnswerExtras(card, event.tool, result, card.toolArgs);
        break;
      }
      case "image":
        showImage(event);
        break;
      case "interrupt":
        finish(id);
        showInterrupt(event);
        break;
      case "final": {
        const req = request(id);
        if (!req.text && event.text) bubble(id).textContent = event.text;
        if (req.bubble || event.cancelled) {
          const node = bubble(id);
          const meta = [event.cancelled ? "cancelled" : null, event.backend && `${event.backend}/${event.model}`,
                        typeof event.elapsed_s === "number" ? event.elapsed_s.toFixed(1) + " s" : null];
          node.appendChild(el("span", "meta", meta.filter(Boolean).join(" · ")));
          if (event.cancelled) node.classList.add("cancelled");
        }
        finish(id);
        send({ type: "runs" });
        break;
      }
      case "error":
        showError(id, "Error: " + event.message);
        if (id) finish(id);
        break;
    }
  }

  // --- composer ------------------------------------------------------------------------------
  // Send a user message (typed, or a suggestion pressed); false when it could not be sent.
  function sendText(text, attachment) {
    const requestId = newId("p-");
    const frame = { type: "message", text, thread_id: state.threadId, request_id: requestId };
    if (attachment) frame.attachments = [attachment];
    if (!send(frame)) return false;
    showUser(text, attachment && attachment.name);
    request(requestId);
    state.running.push(requestId);
    updateButtons();
    return true;
  }

  function submit(domEvent) {
    domEvent.preventDefault();
    const input = $("input");
    const text = input.value.trim();
    if (!text) return;
    if (!sendText(text, state.attachment)) return;
    input.value = "";
    state.attachment = null;
    $("attachment-name").textContent = "";
    $("file").value = "";
  }

  function cancel() {
    const id = state.running[state.running.length - 1];
    if (id) send({ type: "cancel", request_id: id });
  }

  function attach() {
    const file = $("file").files[0];
    if (!file) return;
    if (file.size > 8 * 1024 * 1024) {
      showError(null, "that image is larger than 8 MB");
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      state.attachment = { name: file.name, media_type: file.type, data: reader.result };
      $("attachment-name").textContent = file.name;
    };
    reader.readAsDataURL(file);
  }

  function start() {
    state.token = readToken();
    setThread(localStorage.getItem("taller.thread") || newId("t-"));
    $("composer").addEventListener("submit", submit);
    $("input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) submit(event);
    });
    $("cancel").addEventListener("click", cancel);
    $("file").addEventListener("change", attach);
    $("new-thread").addEventListener("click", () => {
      setThread(newId("t-"));
      logBox.replaceChildren();
    });
    $("token-save").addEventListener("click", () => {
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem("taller.token", value);
      state.token = value;
      state.attempts = 0;
      if (!state.ws) connect();
    });
    connect();
  }

  start();
})();
