/* Taller chat page: one websocket to `taller serve`, plain JavaScript, no dependencies.
 *
 * The token comes from the URL fragment printed by `taller serve` (http://127.0.0.1:8765/#token=...):
 * fragments are never sent to a server, and the page removes it from the address bar at once and
 * keeps it in sessionStorage for this tab. The websocket offers it as the subprotocol
 * "taller.token.<TOKEN>" (browsers cannot set headers on a WebSocket); images are fetched with an
 * Authorization header and shown from blob: URLs, so the token never appears in a URL.
 * All text from the server is inserted with textContent, never as HTML.
 *
 * The page is a full client of the protocol (docs/protocol.md):
 * - a thread sidebar: the thread list (open, rename, delete) and a search over every thread whose
 *   results open their thread at the message;
 * - the conversation: streamed answers (code blocks set apart), a card per tool call rendering its
 *   whole result (tables as HTML tables, images inline, SQL, charts as inline SVG), copy buttons on
 *   answers, code blocks, SQL and tables, regenerate on the last answer, edit on user messages, a
 *   branch switcher ("◀ 2/3 ▶") where the thread forked, and suggested next steps as buttons that
 *   put their text in the input (never send it);
 * - export (Markdown, JSON, Python, notebook) as downloads and import of a JSON export;
 * - the training runs panel: every run with its state and loss curve, and live progress.
 *
 * The thread's message indexes (what "edit" and the branch switcher need) come from the server's
 * history: after each answer the page asks for it and numbers the messages it shows; a thread with
 * branches is drawn again from that history so the switchers sit where the thread forked.
 */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const logBox = $("log");
  const state = {
    ws: null,
    token: null,
    threadId: null,
    requests: new Map(),   // request_id -> {bubble, text, cards, done, kind}
    running: [],           // request ids started by this page and not finished, newest last
    attempts: 0,
    opened: false,
    attachment: null,      // {name, media_type, data}
    runs: new Map(),       // run_id -> <li>
    remembering: new Map(), // request_id of a "remember" frame -> its thumbs-up button
    threads: [],           // the last thread list from the server
    branches: [],          // the current thread's branches, from the last history
    pendingJump: null,     // message index to show once the thread's history is drawn
    historyWanted: null,   // request_id of the history reply that redraws the log
    threadsPending: false, // a thread list arrived while a title was being typed
    pendingError: null,    // why a regenerate or edit failed, shown under the redrawn thread
    carrySuggestions: null, // the next steps of a regenerated or edited answer, kept across its redraw
  };
  const MAX_TABLE_ROWS = 200;   // rows drawn per table (all rows are copied)
  const MAX_TABLE_COLUMNS = 24;
  const MAX_JSON_CHARS = 20000; // of a result shown raw under "Result"

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
    const known = state.threads.find((t) => t.thread_id === threadId);
    $("thread-label").textContent = known ? known.title : "thread " + threadId;
    for (const item of $("threads").children) item.classList.toggle("current", item.dataset.thread === threadId);
  }

  // Show another thread (or a new one): the log is drawn again from the server's history.
  function openThread(threadId, jumpIndex) {
    setThread(threadId);
    state.pendingJump = typeof jumpIndex === "number" ? jumpIndex : null;
    state.branches = [];
    logBox.replaceChildren();
    askHistory(true);
  }

  function askHistory(redraw) {
    const requestId = newId("h-");
    if (redraw) state.historyWanted = requestId;
    send({ type: "history", thread_id: state.threadId, request_id: requestId });
  }

  // --- connection ----------------------------------------------------------------------------
  function setStatus(kind, text) {
    const node = $("status");
    node.dataset.state = kind;
    node.textContent = text;
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
      send({ type: "threads" });
      askHistory(!logBox.childElementCount);
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

  // --- small helpers -------------------------------------------------------------------------
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

  function button(className, text, title) {
    const node = el("button", className, text);
    node.type = "button";
    if (title) { node.title = title; node.setAttribute("aria-label", title); }
    return node;
  }

  function clip(text, limit) {
    return text.length <= limit ? text : text.slice(0, limit) + `… [${text.length.toLocaleString("en-US")} characters in all]`;
  }

  function cellText(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return clip(JSON.stringify(value), 200);
    return String(value);
  }

  // --- copy: the clipboard, or a selection the user copies when the browser refuses ----------
  function selectContents(node) {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function flash(control, text) {
    const before = control.dataset.label || control.textContent;
    control.dataset.label = before;
    control.textContent = text;
    clearTimeout(control.flashTimer);
    control.flashTimer = setTimeout(() => { control.textContent = before; }, 2500);
  }

  // A copy button for `getText()`; `source` is the node selected when the clipboard is refused.
  function copyButton(what, getText, source) {
    const control = button("copy", "Copy", "Copy " + what);
    control.dataset.copy = what;
    control.onclick = async () => {
      const text = getText();
      try {
        if (!navigator.clipboard || !navigator.clipboard.writeText) throw new Error("no clipboard API");
        await navigator.clipboard.writeText(text);
        control.dataset.copied = "true";
        flash(control, "Copied");
      } catch (err) {
        // Permission refused or an insecure page: select the text so Ctrl+C copies it.
        selectContents(source);
        control.dataset.copied = "selected";
        flash(control, "Selected: press Ctrl+C");
      }
    };
    return control;
  }

  // --- answers -------------------------------------------------------------------------------
  // An answer's text with its ``` code blocks set apart (each with a copy button); plain text
  // elsewhere (white-space is kept by the style).
  function renderAnswer(node, text) {
    const body = el("div", "body");
    const fence = /```([A-Za-z0-9_+.-]*)[ \t]*\n?([\s\S]*?)(?:```|$)/g;
    let last = 0;
    let match;
    while ((match = fence.exec(text)) !== null) {
      if (match.index > last) body.appendChild(document.createTextNode(text.slice(last, match.index)));
      const block = body.appendChild(el("div", "code-block"));
      if (match[1]) block.dataset.language = match[1];
      const pre = block.appendChild(el("pre"));
      const code = pre.appendChild(el("code", null, match[2].replace(/\n$/, "")));
      block.appendChild(copyButton("code", () => code.textContent, code));
      last = fence.lastIndex;
      if (text[last] === "\n") last += 1;  // the block ends its line; no empty line after it
      if (match[0].length === 0) break;
    }
    if (last < text.length) body.appendChild(document.createTextNode(text.slice(last)));
    node.replaceChildren(body);
    const tools = node.appendChild(el("div", "actions"));
    tools.appendChild(copyButton("answer", () => text, body));
    node.dataset.text = text;
    return tools;
  }

  // Suggested next steps ({label, text} or plain strings): buttons that put the text in the input.
  function suggestionRow(items) {
    const row = el("div", "suggestions");
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Suggested next messages");
    for (const item of items) {
      const text = typeof item === "string" ? item : item && item.text;
      if (typeof text !== "string" || !text) continue;
      const label = typeof item === "object" && item.label ? item.label : text;
      const chip = row.appendChild(button("chip", label, "Put in the message box: " + text));
      chip.dataset.text = text;
      chip.onclick = () => {
        const input = $("input");
        input.value = text;
        input.focus();
        input.setSelectionRange(text.length, text.length);
      };
    }
    return row.childElementCount ? row : null;
  }

  // Only the last answer of the thread can be regenerated; the button moves with it.
  function placeRegenerate() {
    for (const old of logBox.querySelectorAll("button.regenerate")) old.remove();
    if (state.running.length) return;
    const answers = logBox.querySelectorAll(".msg.assistant:not(.streaming)");
    const lastAnswer = answers[answers.length - 1];
    const users = logBox.querySelectorAll(".msg.user");
    if (!lastAnswer || !users.length) return;
    const actions = lastAnswer.querySelector(".actions") || lastAnswer.appendChild(el("div", "actions"));
    const control = actions.appendChild(button("regenerate", "↻ Regenerate", "Answer the last message again (the old answer is kept as a branch)"));
    control.onclick = regenerate;
  }

  // --- user messages: edit and rerun ---------------------------------------------------------
  function showUser(text, attachmentName, index) {
    const node = add(el("div", "msg user"));
    node.appendChild(el("div", "body", text));
    node.dataset.text = text;
    if (attachmentName) node.appendChild(el("span", "meta", "attached: " + attachmentName));
    if (typeof index === "number") setUserIndex(node, index);
    return node;
  }

  function setUserIndex(node, index) {
    node.dataset.index = String(index);
    if (node.querySelector("button.edit")) return;
    const actions = node.appendChild(el("div", "actions"));
    const control = actions.appendChild(button("edit", "✎ Edit", "Edit this message and answer again from here"));
    control.onclick = () => startEdit(node);
  }

  function startEdit(node) {
    if (node.querySelector(".editor")) return;
    const editor = node.appendChild(el("div", "editor"));
    const area = editor.appendChild(el("textarea"));
    area.value = node.dataset.text || "";
    area.rows = Math.min(10, Math.max(2, area.value.split("\n").length));
    area.setAttribute("aria-label", "Edited message");
    const save = editor.appendChild(button("save", "Save and rerun", "Send the edited message; the old continuation is kept as a branch"));
    const cancelEdit = editor.appendChild(button("cancel-edit", "Cancel"));
    const close = () => editor.remove();
    cancelEdit.onclick = close;
    save.onclick = () => {
      const text = area.value.trim();
      if (!text) return;
      if (sendEdit(node, text)) close();
    };
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); save.click(); }
      else if (event.key === "Escape") { event.preventDefault(); close(); node.querySelector("button.edit").focus(); }
    });
    area.focus();
  }

  function sendEdit(node, text) {
    if (state.running.length) { showError(null, "wait for the running answer to end (or cancel it) before editing"); return false; }
    const requestId = newId("e-");
    const frame = { type: "edit", thread_id: state.threadId, message_index: Number(node.dataset.index), text,
                    request_id: requestId };
    if (!send(frame)) return false;
    // From the edited message on, the log shows the new branch as it streams.
    while (node.nextSibling) node.nextSibling.remove();
    node.remove();
    showUser(text);
    startRequest(requestId, "edit");
    return true;
  }

  function regenerate() {
    if (state.running.length) return;
    const requestId = newId("g-");
    if (!send({ type: "regenerate", thread_id: state.threadId, request_id: requestId })) return;
    const users = logBox.querySelectorAll(".msg.user");
    const lastUser = users[users.length - 1];
    // The old answer (with its tool cards) leaves the log; it stays in the thread as a branch.
    while (lastUser && lastUser.nextSibling) lastUser.nextSibling.remove();
    startRequest(requestId, "regenerate");
  }

  // --- branches ------------------------------------------------------------------------------
  // A thread with branches shows "◀ k/n ▶" on the current branch's first message of its own (the
  // edited message, or the regenerated answer): branches are listed oldest first, and the arrows
  // show the one before or after.
  function placeBranchSwitchers(branches) {
    for (const old of logBox.querySelectorAll(".branch-switch")) old.remove();
    if (!Array.isArray(branches) || branches.length < 2) return;
    const position = branches.findIndex((b) => b.current);
    if (position < 0) return;
    const fork = Number(branches[position].fork_index) || 0;
    const nodes = [...logBox.querySelectorAll("[data-index]")];
    const target = nodes.find((node) => Number(node.dataset.index) >= fork) || nodes[nodes.length - 1];
    if (!target) return;
    const box = el("div", "branch-switch");
    box.setAttribute("role", "group");
    box.setAttribute("aria-label", "Branches of this conversation");
    const previous = box.appendChild(button("branch-previous", "◀", "Previous branch"));
    box.appendChild(el("span", "branch-position", `${position + 1}/${branches.length}`));
    const next = box.appendChild(button("branch-next", "▶", "Next branch"));
    previous.disabled = position <= 0;
    next.disabled = position >= branches.length - 1;
    previous.onclick = () => switchBranch(branches[position - 1]);
    next.onclick = () => switchBranch(branches[position + 1]);
    target.insertBefore(box, target.firstChild);
  }

  function switchBranch(branch) {
    if (!branch || state.running.length) return;
    send({ type: "switch_branch", thread_id: state.threadId, branch_id: branch.branch_id, request_id: newId("b-") });
  }

  // --- tool results --------------------------------------------------------------------------
  function tableFrom(columns, rows) {
    const shown = rows.slice(0, MAX_TABLE_ROWS);
    const wrap = el("div", "table-wrap");
    const table = wrap.appendChild(el("table", "result"));
    const head = table.appendChild(el("thead")).appendChild(el("tr"));
    for (const column of columns) head.appendChild(el("th", null, cellText(column)));
    const body = table.appendChild(el("tbody"));
    for (const row of shown) {
      const tr = body.appendChild(el("tr"));
      for (const value of row) tr.appendChild(el("td", null, cellText(value)));
    }
    const tsv = () => [columns, ...rows].map((row) => row.map((v) => cellText(v).replace(/[\t\n]/g, " ")).join("\t")).join("\n");
    const actions = wrap.appendChild(el("div", "actions"));
    actions.appendChild(copyButton("table", tsv, table));
    if (rows.length > shown.length) actions.appendChild(el("span", "meta", `${shown.length} of ${rows.length} rows shown; Copy copies them all`));
    return wrap;
  }

  function isPlain(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  // Every table a result holds: its columns/rows, or any list of objects (runs, faces, …).
  function resultTables(result) {
    const tables = [];
    if (Array.isArray(result.columns) && Array.isArray(result.rows)) {
      const rows = result.rows.filter(Array.isArray);
      tables.push(tableFrom(result.columns.slice(0, MAX_TABLE_COLUMNS), rows.map((r) => r.slice(0, MAX_TABLE_COLUMNS))));
    }
    for (const [key, value] of Object.entries(result)) {
      if (key === "rows" || !Array.isArray(value) || !value.length || !value.every(isPlain)) continue;
      const columns = [];
      for (const item of value.slice(0, MAX_TABLE_ROWS)) {
        for (const name of Object.keys(item)) if (!columns.includes(name) && columns.length < MAX_TABLE_COLUMNS) columns.push(name);
      }
      const table = tableFrom(columns, value.map((item) => columns.map((name) => item[name])));
      table.insertBefore(el("div", "table-title", key), table.firstChild);
      tables.push(table);
    }
    return tables;
  }

  function renderResult(card, tool, result, args, imageUrls) {
    card.appendChild(el("div", "summary", result.error || result.summary || ""));
    if (typeof result.sql === "string" && result.sql) {
      const box = card.appendChild(el("div", "sql"));
      const pre = box.appendChild(el("pre", "sql"));
      pre.appendChild(el("code", null, result.sql));
      box.appendChild(copyButton("SQL", () => result.sql, pre));
    }
    for (const table of resultTables(result)) card.appendChild(table);
    for (const [path, url] of Object.entries(imageUrls || {})) card.appendChild(imageFigure({ path, url, tool }));
    showAnswerExtras(card, tool, result, args);
    const raw = card.appendChild(el("details", "raw"));
    raw.appendChild(el("summary", null, "Result"));
    raw.appendChild(el("pre", null, clip(JSON.stringify(result, null, 1), MAX_JSON_CHARS)));
  }

  function toolCard(tool, args) {
    const card = el("div", "card tool");
    card.dataset.state = "running";
    card.dataset.tool = tool || "";
    card.appendChild(el("div", "title", "Tool " + (tool || "") + ": running…"));
    if (args && Object.keys(args).length) card.appendChild(el("pre", "args", JSON.stringify(args, null, 1)));
    card.toolArgs = args || null;
    return card;
  }

  function finishCard(card, tool, ok, result, imageUrls) {
    card.dataset.state = ok ? "done" : "failed";
    let title = card.querySelector(".title");
    if (!title) title = card.appendChild(el("div", "title"));
    title.textContent = "Tool " + tool + (ok ? ": done" : ": failed");
    renderResult(card, tool, result || {}, card.toolArgs, imageUrls);
  }

  // --- images --------------------------------------------------------------------------------
  function imageFigure(event) {
    const figure = el("figure");
    const img = el("img");
    img.alt = event.caption || "image from " + (event.tool || "a tool");
    figure.appendChild(img);
    figure.appendChild(el("figcaption", null, event.caption || event.path));
    if (!event.url) {
      figure.appendChild(el("span", "meta", "(this image is outside the served folders)"));
      return figure;
    }
    fetch(event.url, { headers: { Authorization: "Bearer " + state.token } })
      .then((response) => {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.blob();
      })
      .then((blob) => { img.src = URL.createObjectURL(blob); })
      .catch((err) => figure.appendChild(el("span", "meta", "could not load the image: " + err.message)));
    return figure;
  }

  // --- requests in flight --------------------------------------------------------------------
  function request(id) {
    if (!state.requests.has(id)) state.requests.set(id, { bubble: null, text: "", cards: new Map(), done: false, kind: "message" });
    return state.requests.get(id);
  }

  function startRequest(requestId, kind) {
    request(requestId).kind = kind;
    state.running.push(requestId);
    updateButtons();
  }

  function bubble(id) {
    const req = request(id);
    if (!req.bubble) {
      req.bubble = add(el("div", "msg assistant streaming"));
      req.bubble.dataset.request = id;
    }
    return req.bubble;
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
    if (!state.running.length) placeRegenerate();
    else for (const old of logBox.querySelectorAll("button.regenerate")) old.remove();
  }

  // --- history: the thread as the server keeps it ----------------------------------------------
  function drawHistory(event) {
    logBox.replaceChildren();
    for (const message of event.messages || []) {
      const index = typeof message.index === "number" ? message.index : null;
      let node = null;
      if (message.role === "user") {
        node = showUser(message.content || "", null, index);
      } else if (message.role === "assistant") {
        node = add(el("div", "msg assistant"));
        renderAnswer(node, message.content || "");
      } else if (message.role === "tool") {
        node = add(toolCard(message.name, message.args));
        let result = message.result;
        if (!isPlain(result)) {
          try { result = JSON.parse(message.content); } catch (err) { result = null; }
        }
        if (!isPlain(result)) result = { summary: message.content || "" };
        finishCard(node, message.name || "", !result.error, result, message.image_urls);
      }
      if (node && index !== null) node.dataset.index = String(index);
    }
    if (event.pending_interrupt) showInterrupt({ ...event.pending_interrupt, thread_id: event.thread_id, request_id: null });
    placeBranchSwitchers(event.branches);
    placeRegenerate();
    const answers = logBox.querySelectorAll(".msg.assistant");
    const row = state.carrySuggestions && answers.length ? suggestionRow(state.carrySuggestions) : null;
    if (row) {
      // As when it streamed: the answer's next steps replace its tool cards' follow-up buttons.
      const users = logBox.querySelectorAll(".msg.user");
      for (let node = users.length ? users[users.length - 1] : null; node; node = node.nextElementSibling) {
        if (node.classList.contains("tool")) for (const old of node.querySelectorAll(".suggestions")) old.remove();
      }
      answers[answers.length - 1].appendChild(row);
    }
    state.carrySuggestions = null;
    if (state.pendingError) {
      showError(null, state.pendingError);
      state.pendingError = null;
    }
  }

  // Number the user messages the page streamed itself (their indexes come from the history).
  function numberMessages(event) {
    const entries = (event.messages || []).filter((m) => m.role === "user" && typeof m.index === "number");
    let at = 0;
    for (const node of logBox.querySelectorAll(".msg.user")) {
      const text = node.dataset.text || "";
      while (at < entries.length && !(entries[at].content || "").startsWith(text)) at += 1;
      if (at >= entries.length) break;
      setUserIndex(node, entries[at].index);
      at += 1;
    }
  }

  function showHistory(event) {
    if (event.thread_id !== state.threadId) return;
    state.branches = event.branches || [];
    const redraw = event.request_id && event.request_id === state.historyWanted;
    if (redraw) state.historyWanted = null;
    if (redraw) drawHistory(event);
    else if (state.running.length) return;  // an answer is streaming: its final asks again
    else if (state.branches.length > 1) drawHistory(event);
    else numberMessages(event);
    if (state.pendingJump !== null) {
      jumpTo(state.pendingJump);
      state.pendingJump = null;
    }
  }

  function jumpTo(index) {
    const node = logBox.querySelector(`[data-index="${index}"]`);
    if (!node) return;
    for (const old of logBox.querySelectorAll(".hit")) old.classList.remove("hit");
    node.classList.add("hit");
    node.scrollIntoView({ block: "center" });
    node.tabIndex = -1;
    node.focus({ preventScroll: true });
  }

  // --- approvals -----------------------------------------------------------------------------
  function showInterrupt(event) {
    const card = add(el("div", "card interrupt"));
    card.appendChild(el("div", "title", "Approval needed: " + (event.tool || "")));
    card.appendChild(el("div", null, event.message || ""));
    const approve = button("approve", "Approve");
    const reject = button("reject", "Reject");
    const answer = (yes) => {
      const requestId = event.request_id || newId("p-");
      const frame = { type: yes ? "approve" : "reject", thread_id: event.thread_id, request_id: requestId };
      if (send(frame)) {
        approve.disabled = reject.disabled = true;
        card.appendChild(el("div", "meta", yes ? "approved" : "rejected"));
        const req = request(requestId);
        req.done = false;
        startRequest(requestId, "resume");
      }
    };
    approve.onclick = () => answer(true);
    reject.onclick = () => answer(false);
    card.appendChild(approve);
    card.appendChild(reject);
    approve.focus({ preventScroll: true });
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
      const thumb = card.appendChild(button("confirm", "👍 Correct — remember this query",
                                            "Store this question and its SQL as an example for similar questions"));
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
    if (Array.isArray(result.suggestions)) {
      const row = suggestionRow(result.suggestions);
      if (row) card.appendChild(row);
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

  // --- the thread list and search --------------------------------------------------------------
  function drawThreads(threads) {
    state.threads = Array.isArray(threads) ? threads : [];
    const list = $("threads");
    // A title being typed is not swept away by a list that arrived meanwhile; drawn after it.
    if (list.querySelector(".rename-input")) { state.threadsPending = true; return; }
    state.threadsPending = false;
    const focused = document.activeElement && list.contains(document.activeElement)
      ? [document.activeElement.closest("li") && document.activeElement.closest("li").dataset.thread, document.activeElement.className] : null;
    list.replaceChildren();
    for (const thread of state.threads) {
      const item = list.appendChild(el("li"));
      item.dataset.thread = thread.thread_id;
      item.classList.toggle("current", thread.thread_id === state.threadId);
      const open = item.appendChild(button("open", thread.title || thread.thread_id));
      open.title = "Open: " + (thread.title || thread.thread_id);
      if (thread.thread_id === state.threadId) open.setAttribute("aria-current", "true");
      open.onclick = () => openThread(thread.thread_id);
      const rename = item.appendChild(button("rename", "✎", "Rename " + (thread.title || "this thread")));
      rename.onclick = () => startRename(item, thread);
      const remove = item.appendChild(button("delete", "✕", "Delete " + (thread.title || "this thread")));
      remove.onclick = () => {
        if (remove.dataset.confirm !== "true") {
          remove.dataset.confirm = "true";
          remove.textContent = "Delete?";
          remove.title = "Press again to delete this thread for good";
          return;
        }
        send({ type: "delete", thread_id: thread.thread_id, request_id: newId("d-") });
      };
      remove.onblur = () => { remove.dataset.confirm = "false"; remove.textContent = "✕"; };
      if (focused && focused[0] === thread.thread_id) {
        const again = item.querySelector("button." + focused[1].split(" ")[0]);
        if (again) again.focus();
      }
    }
    const current = state.threads.find((t) => t.thread_id === state.threadId);
    if (current) $("thread-label").textContent = current.title;
  }

  function startRename(item, thread) {
    if (item.querySelector("input")) return;
    const input = el("input", "rename-input");
    input.value = thread.title || "";
    input.maxLength = 120;
    input.setAttribute("aria-label", "New title");
    item.insertBefore(input, item.firstChild);
    item.querySelector("button.open").hidden = true;
    input.focus();
    input.select();
    let finished = false;
    const done = (save) => {
      // Removing the focused input fires its blur, which must not finish the rename twice.
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      if (save && title && title !== thread.title) send({ type: "rename", thread_id: thread.thread_id, title, request_id: newId("n-") });
      input.remove();
      item.querySelector("button.open").hidden = false;
      if (!save) item.querySelector("button.rename").focus();
      if (state.threadsPending) drawThreads(state.threads);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); done(true); }
      else if (event.key === "Escape") { event.preventDefault(); done(false); }
    });
    input.addEventListener("blur", () => done(false));
  }

  function search(event) {
    event.preventDefault();
    const query = $("search").value.trim();
    if (!query) { $("search-box").hidden = true; return; }
    send({ type: "search", query, limit: 50, request_id: newId("s-") });
  }

  function showSearchResults(event) {
    const list = $("search-results");
    list.replaceChildren();
    $("search-box").hidden = false;
    if (!(event.results || []).length) {
      list.appendChild(el("li", "meta", "Nothing found for “" + event.query + "”"));
      return;
    }
    for (const hit of event.results) {
      const item = list.appendChild(el("li"));
      const open = item.appendChild(button("search-hit"));
      open.dataset.thread = hit.thread_id;
      open.dataset.index = String(hit.message_index);
      open.appendChild(el("span", "title", hit.title || hit.thread_id));
      open.appendChild(el("span", "snippet", (hit.role ? hit.role + ": " : "") + (hit.snippet || "")));
      open.onclick = () => openThread(hit.thread_id, hit.message_index);
    }
  }

  // --- export and import -----------------------------------------------------------------------
  function exportThread(format) {
    send({ type: "export", thread_id: state.threadId, format, request_id: newId("x-") });
  }

  function offerDownload(event) {
    const blob = new Blob([event.text], { type: event.media_type || "text/plain" });
    const link = el("a", "download", "⬇ " + event.filename);
    link.href = URL.createObjectURL(blob);
    link.download = event.filename;
    $("downloads").replaceChildren(link);
    link.click();
  }

  function importFile() {
    const file = $("import-file").files[0];
    if (!file) return;
    const limit = 4 * 1024 * 1024;
    if (file.size > limit) {
      showError(null, `${file.name} is larger than 4 MB; import it with \`taller import\``);
      $("import-file").value = "";
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      send({ type: "import", data: String(reader.result), request_id: newId("i-") });
      $("import-file").value = "";
    };
    reader.readAsText(file);
  }

  // --- training runs -------------------------------------------------------------------------
  function runItem(key) {
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
    return item;
  }

  function showProgress(event) {
    const item = runItem(event.run_id || event.source || "progress");
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

  // The loss curve of a run's past epochs (the first loss-like metric its records carry).
  function lossCurve(history) {
    if (!Array.isArray(history) || history.length < 2) return null;
    const key = Object.keys(history[0]).find((name) => /loss|mse|l1/i.test(name) && name !== "epoch");
    if (!key) return null;
    const values = history.map((record) => record[key]).filter((v) => typeof v === "number" && Number.isFinite(v));
    if (values.length < 2) return null;
    const low = Math.min(...values);
    const high = Math.max(...values) === low ? low + 1 : Math.max(...values);
    const width = 200, height = 36;
    const points = values.map((v, i) => `${((i / (values.length - 1)) * width).toFixed(1)},${(height - 2 - ((v - low) / (high - low)) * (height - 4)).toFixed(1)}`);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "loss-curve", role: "img",
                              "aria-label": `${key} over ${values.length} epochs: ${shortNumber(values[0])} to ${shortNumber(values[values.length - 1])}` });
    root.appendChild(svg("title", {}, `${key}: ${values.map(shortNumber).join(", ")}`));
    root.appendChild(svg("polyline", { points: points.join(" "), class: "series" }));
    return root;
  }

  function showRuns(event) {
    for (const run of (event.runs || []).slice().reverse()) {
      const item = runItem(run.run_id);
      item.dataset.state = run.state || "";
      showProgress({ run_id: run.run_id, message: [run.model, run.state].filter(Boolean).join(" "),
                     epoch: run.epoch, epochs: run.epochs });
      const metrics = isPlain(run.metrics) ? Object.entries(run.metrics).filter(([, v]) => typeof v === "number") : [];
      const facts = [];
      if (run.epochs) facts.push(`epoch ${run.epoch || 0}/${run.epochs}`);
      for (const [name, value] of metrics.slice(0, 3)) if (name !== "epoch") facts.push(`${name} ${shortNumber(value)}`);
      if (run.created) facts.push(new Date(run.created * 1000 || run.created).toLocaleString());
      let detail = item.querySelector(".facts");
      if (!detail) detail = item.appendChild(el("div", "facts"));
      detail.textContent = facts.join(" · ");
      const old = item.querySelector("svg.loss-curve");
      if (old) old.remove();
      const curve = lossCurve(run.history);
      if (curve) item.appendChild(curve);
    }
    for (const problem of event.bad_runs || []) {
      const item = runItem(problem.path);
      item.dataset.state = "unreadable";
      item.querySelector(".meta").textContent = problem.problem;
    }
    for (const progress of event.latest_progress || []) showProgress(progress);
  }

  // --- events --------------------------------------------------------------------------------
  function handle(event) {
    const id = event.request_id;
    if ((event.type === "remembered" || event.type === "error") && remembered(event)) return;
    switch (event.type) {
      case "hello": case "pong": case "subscribed": case "remembered":
        return;
      case "threads":
        return drawThreads(event.threads);
      case "runs":
        return showRuns(event);
      case "history":
        return showHistory(event);
      case "progress":
        return showProgress(event);
      case "search_results":
        return showSearchResults(event);
      case "renamed":
        send({ type: "threads" });
        if (event.thread_id === state.threadId) $("thread-label").textContent = event.title;
        return;
      case "deleted":
        send({ type: "threads" });
        if (event.thread_id === state.threadId) openThread(newId("t-"));
        return;
      case "imported":
        send({ type: "threads" });
        openThread(event.thread_id);
        return;
      case "export":
        return offerDownload(event);
      case "branch_switched":
        if (event.thread_id === state.threadId) askHistory(true);
        return;
      case "branches":
        if (event.thread_id === state.threadId) placeBranchSwitchers(event.branches);
        return;
    }
    // Request events of another thread (another tab, or the thread this page left) are not shown;
    // the end of a request this page started still frees the Cancel button.
    if (event.thread_id && event.thread_id !== state.threadId && event.type !== "error") {
      if (["final", "interrupt"].includes(event.type) && state.running.includes(id)) finish(id);
      return;
    }
    switch (event.type) {
      case "token": {
        const node = bubble(id);
        request(id).text += event.text || "";
        node.textContent = request(id).text;
        break;
      }
      case "tool_start": {
        const card = add(toolCard(event.tool, event.args));
        request(id).cards.set(event.call_id, card);
        break;
      }
      case "tool_end": {
        let card = request(id).cards.get(event.call_id);
        if (!card) card = add(toolCard(event.tool, null));
        // Images arrive as their own events, right after this one.
        finishCard(card, event.tool, event.ok, event.result || {}, null);
        break;
      }
      case "image":
        add(imageFigure(event));
        break;
      case "interrupt":
        finish(id);
        showInterrupt(event);
        break;
      case "final": {
        const req = request(id);
        const text = req.text || event.text || "";
        if (req.bubble || text || event.cancelled) {
          const node = bubble(id);
          const actions = renderAnswer(node, text);
          const meta = [event.cancelled ? "cancelled" : null, event.backend && `${event.backend}/${event.model}`,
                        typeof event.elapsed_s === "number" ? event.elapsed_s.toFixed(1) + " s" : null];
          node.insertBefore(el("span", "meta", meta.filter(Boolean).join(" · ")), actions);
          if (event.cancelled) node.classList.add("cancelled");
          if (Array.isArray(event.suggestions) && event.suggestions.length && !event.cancelled) {
            // The next steps of the whole answer replace the card's own follow-up buttons.
            for (const card of req.cards.values()) for (const row of card.querySelectorAll(".suggestions")) row.remove();
            const row = suggestionRow(event.suggestions);
            if (row) node.appendChild(row);
          }
        }
        finish(id);
        send({ type: "runs" });
        send({ type: "threads" });
        // Number the messages (edit, branches); a regenerated or edited answer is drawn again
        // from the history, with its branch switcher (and the suggestions it came with).
        if (!event.cancelled) {
          const redraw = req.kind === "regenerate" || req.kind === "edit";
          if (redraw && Array.isArray(event.suggestions)) state.carrySuggestions = event.suggestions;
          askHistory(redraw);
        }
        break;
      }
      case "error": {
        const kind = id && state.requests.has(id) ? request(id).kind : null;
        if (id) finish(id);
        // A failed regenerate or edit left the thread as it was: show it again as the server has it.
        if (kind === "regenerate" || kind === "edit") {
          state.pendingError = "Error: " + event.message;
          askHistory(true);
        } else {
          showError(id, "Error: " + event.message);
        }
        break;
      }
    }
  }

  // --- composer ------------------------------------------------------------------------------
  // Send a user message; false when it could not be sent.
  function sendText(text, attachment) {
    const requestId = newId("p-");
    const frame = { type: "message", text, thread_id: state.threadId, request_id: requestId };
    if (attachment) frame.attachments = [attachment];
    if (!send(frame)) return false;
    showUser(text, attachment && attachment.name);
    startRequest(requestId, "message");
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
    $("attach").addEventListener("click", () => $("file").click());
    $("file").addEventListener("change", attach);
    $("import-button").addEventListener("click", () => $("import-file").click());
    $("import-file").addEventListener("change", importFile);
    for (const control of document.querySelectorAll(".export-button")) {
      control.addEventListener("click", () => exportThread(control.dataset.format));
    }
    $("search-form").addEventListener("submit", search);
    $("search").addEventListener("keydown", (event) => {
      if (event.key === "Escape") { $("search").value = ""; $("search-box").hidden = true; }
    });
    document.addEventListener("keydown", (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
        event.preventDefault();
        $("search").focus();
      }
    });
    $("new-thread").addEventListener("click", () => {
      openThread(newId("t-"));
      $("input").focus();
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
