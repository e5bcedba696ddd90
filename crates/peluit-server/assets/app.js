// The reporter page: screens, translations and the calls to the crypto worker. Nothing here
// touches keys or plaintext beyond what the reporter typed; sealing happens in worker.js.
// Nothing is stored in the browser and the address bar never changes.

const API = "/api/v1/institutions";
// How long a downloaded receipt stays reachable at its object URL (some browsers read it
// after the click returns).
const DOWNLOAD_URL_LIFETIME_MS = 40_000;
const $ = (id) => document.getElementById(id);

const state = {
  lang: "id",
  catalog: {},
  institution: null,
  summary: null,
  files: [],
  receiptWords: null,
  mailboxSession: null,
  worker: null,
  engine: "",
};

// ---- the worker -------------------------------------------------------------------------

let nextId = 1;
const pending = new Map();

function startWorker() {
  const worker = new Worker("/assets/worker.js", { type: "module" });
  worker.onmessage = (event) => {
    const { id, result, error, progress } = event.data;
    const entry = pending.get(id);
    if (!entry) return;
    if (progress) { if (entry.onProgress) entry.onProgress(progress); return; }
    pending.delete(id);
    if (error) entry.reject(error); else entry.resolve(result);
  };
  return worker;
}

function ask(message, onProgress) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onProgress });
    state.worker.postMessage({ ...message, id });
  });
}

const op = (name, request) => ask({ type: "op", op: name, request });

// ---- translations -----------------------------------------------------------------------

function t(key, values = {}) {
  const text = state.catalog[key] || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in values ? String(values[name]) : ""));
}

function tr(translations) {
  return translations[state.lang] || translations.id || Object.values(translations)[0] || "";
}

async function setLanguage(lang) {
  const response = await fetch(`/assets/i18n-${lang}.json`, { cache: "no-store" });
  state.catalog = await response.json();
  state.lang = lang;
  document.documentElement.lang = lang;
  document.title = t("title");
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  $("lang-toggle").textContent = t("lang_other");
  $("lang-toggle").lang = lang === "id" ? "en" : "id";
  if (state.summary) renderLocalized();
}

// ---- screens ----------------------------------------------------------------------------

function show(name) {
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== `screen-${name}`;
  }
  const heading = document.querySelector(`#screen-${name} h1`);
  if (heading) { heading.tabIndex = -1; heading.focus(); }
  window.scrollTo(0, 0);
}

function fail(text) {
  $("error-text").textContent = text;
  show("error");
}

function problem(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

function describeError(error) {
  if (error && error.code === "network") return t("net_error");
  if (error && error.status) return t("server_error", { code: error.code });
  return error && error.message ? error.message : String(error);
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1 << 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1 << 30) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${(bytes / (1 << 30)).toFixed(2)} GiB`;
}

function today() {
  return new Date().toISOString().slice(0, 10);
}

// ---- start: load the worker, verify the manifest ----------------------------------------

async function boot() {
  const params = new URLSearchParams(location.search);
  await setLanguage(params.get("lang") === "en" ? "en" : "id");
  $("lang-toggle").hidden = false;
  state.worker = startWorker();
  try {
    state.engine = (await ask({ type: "load", allowWasm: true })).engine;
  } catch (error) {
    fail(`${t("engine_failed")} ${describeError(error)}`);
    return;
  }
  $("engine-note").hidden = state.engine === "wasm";
  let list;
  try {
    list = await (await fetch(API, { cache: "no-store" })).json();
  } catch (_) {
    fail(t("net_error"));
    return;
  }
  // An institution's own address is /i/ID; /?institution=ID also names one.
  const wanted = location.pathname.match(/^\/i\/([a-z0-9-]+)\/?$/)?.[1] ?? params.get("institution");
  const institution = list.institutions.find((i) => !wanted || i.id === wanted);
  if (!institution || institution.manifest_serial === null) {
    fail(t("manifest_missing"));
    return;
  }
  state.institution = institution;
  let manifest;
  try {
    const response = await fetch(`${API}/${institution.id}/manifest`, { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    manifest = await response.text();
  } catch (_) {
    fail(t("net_error"));
    return;
  }
  try {
    state.summary = await op("VerifyManifest", {
      manifest_key: institution.manifest_key,
      origin: location.origin,
      today: today(),
      manifest,
    });
  } catch (error) {
    const key = error.detail === "origin-not-listed" ? "manifest_origin" : "manifest_bad";
    fail(t(key, { detail: error.detail || error.code }));
    return;
  }
  renderLocalized();
  buildForm();
  show("start");
}

function renderLocalized() {
  $("institution-name").textContent = state.summary.name;
  $("fingerprint").textContent = state.summary.fingerprint[state.lang].join(" ");
  if ($("questions").childElementCount) relabelForm();
}

// ---- the report form ---------------------------------------------------------------------

function buildForm() {
  const container = $("questions");
  container.textContent = "";
  for (const question of state.summary.form.questions) {
    const wrap = document.createElement("div");
    wrap.className = "question";
    const label = document.createElement("label");
    label.htmlFor = `q-${question.id}`;
    const help = document.createElement("p");
    help.className = "small help";
    help.id = `q-${question.id}-help`;
    let input;
    if (question.kind === "long-text") {
      input = document.createElement("textarea");
      input.rows = 6;
    } else if (question.kind === "choice") {
      input = document.createElement("select");
      input.append(document.createElement("option"));
      for (const choice of question.choices) {
        const option = document.createElement("option");
        option.value = choice.id;
        input.append(option);
      }
    } else {
      input = document.createElement("input");
      input.type = question.kind === "date" ? "date" : "text";
      if (question.kind === "money") input.inputMode = "numeric";
    }
    input.id = `q-${question.id}`;
    input.setAttribute("aria-describedby", help.id);
    if (question.required) input.setAttribute("aria-required", "true");
    if (question.kind !== "choice" && question.kind !== "date") input.maxLength = question.max_len;
    input.autocomplete = "off";
    // A browser's enhanced (cloud) spell check would send what the reporter types away.
    input.spellcheck = false;
    wrap.append(label, help, input);
    container.append(wrap);
  }
  relabelForm();
}

function relabelForm() {
  for (const question of state.summary.form.questions) {
    const label = document.querySelector(`label[for="q-${question.id}"]`);
    label.textContent = tr(question.label) + (question.required ? " *" : "");
    $(`q-${question.id}-help`).textContent = tr(question.help);
    if (question.kind === "choice") {
      const options = $(`q-${question.id}`).options;
      question.choices.forEach((choice, i) => { options[i + 1].textContent = tr(choice.label); });
    }
  }
  renderFiles();
}

function renderFiles() {
  const list = $("file-list");
  list.textContent = "";
  state.files.forEach((file, index) => {
    const item = document.createElement("li");
    item.textContent = t("file_line", { name: file.name, size: formatSize(file.size) });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "link";
    remove.textContent = t("attachments_remove");
    remove.addEventListener("click", () => { state.files.splice(index, 1); renderFiles(); });
    item.append(" ", remove);
    list.append(item);
  });
}

function collectAnswers() {
  const answers = [];
  const encoder = new TextEncoder();
  for (const question of state.summary.form.questions) {
    const value = $(`q-${question.id}`).value.trim();
    const label = tr(question.label);
    if (!value) {
      if (question.required) return { problem: t("problem_required", { label }), id: question.id };
      continue;
    }
    if (encoder.encode(value).length > question.max_len) {
      return { problem: t("problem_too_long", { label }), id: question.id };
    }
    if (question.kind === "money" && !/^[0-9]+$/.test(value)) {
      return { problem: t("problem_digits", { label }), id: question.id };
    }
    if (question.kind === "date" && !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
      return { problem: t("problem_date", { label }), id: question.id };
    }
    answers.push({ question: question.id, value });
  }
  return { answers };
}

function review(event) {
  event.preventDefault();
  const { answers, problem: text, id } = collectAnswers();
  if (text) {
    problem($("form-problem"), text);
    $(`q-${id}`).focus();
    return;
  }
  if (state.files.length > 20) {
    problem($("form-problem"), t("problem_too_many_files", { n: 20 }));
    return;
  }
  problem($("form-problem"), "");
  state.answers = answers;
  const summary = $("summary");
  summary.textContent = "";
  for (const answer of answers) {
    const question = state.summary.form.questions.find((q) => q.id === answer.question);
    const dt = document.createElement("dt");
    dt.textContent = tr(question.label);
    const dd = document.createElement("dd");
    const choice = question.choices.find((c) => c.id === answer.value);
    dd.textContent = choice ? tr(choice.label) : answer.value;
    summary.append(dt, dd);
  }
  const dt = document.createElement("dt");
  dt.textContent = t("attachments_title");
  const dd = document.createElement("dd");
  dd.textContent = state.files.length
    ? state.files.map((f) => t("file_line", { name: f.name, size: formatSize(f.size) })).join(", ")
    : t("attachments_none");
  summary.append(dt, dd);
  show("review");
}

// ---- sending -----------------------------------------------------------------------------

function progressBar(labelText) {
  const wrap = document.createElement("div");
  wrap.className = "progress";
  const label = document.createElement("label");
  const bar = document.createElement("progress");
  bar.max = 1;
  bar.value = 0;
  const id = `p-${nextId++}`;
  bar.id = id;
  label.htmlFor = id;
  label.textContent = labelText;
  wrap.append(label, bar);
  $("progress").append(wrap);
  return (done, total) => { bar.max = total || 1; bar.value = Math.min(done, total); };
}

async function send() {
  show("sending");
  problem($("send-problem"), "");
  $("send-retry").hidden = true;
  $("progress").textContent = "";
  const base = `${API}/${state.institution.id}`;
  try {
    $("send-step").textContent = t("step_keys");
    if (!state.receiptWords) {
      state.receiptWords = (await op("NewReceipt", { language: state.lang })).words;
    }
    state.sealed = state.sealed || new Map();
    const attachments = [];
    for (const file of state.files) {
      let sealed = state.sealed.get(file);
      if (!sealed) {
        $("send-step").textContent = t("step_attachment", { name: file.name });
        const update = progressBar(file.name);
        sealed = await ask({ type: "upload", file, base }, (p) => update(p.done, p.total));
        update(1, 1);
        state.sealed.set(file, sealed);
      }
      attachments.push(sealed);
    }
    $("send-step").textContent = t("step_envelope");
    const envelope = await op("SealReport", {
      language: state.lang, date: today(), answers: state.answers, attachments,
    });
    $("send-step").textContent = t("step_pow");
    const powBar = progressBar(t("step_pow"));
    const stamp = await ask(
      { type: "pow", resource: envelope.envelope_sha256, bits: state.institution.pow_bits },
      (p) => powBar(p.done, p.total),
    );
    powBar(1, 1);
    $("send-step").textContent = t("step_submit");
    const response = await fetch(`${base}/reports`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "omit",
      body: JSON.stringify({
        version: 1,
        envelope: envelope.envelope,
        attachments: attachments.map((a) => a.upload),
        mailbox_key: envelope.mailbox_key,
        stamp,
      }),
    });
    if (!response.ok) {
      let code = "internal";
      try { code = (await response.json()).code; } catch (_) { /* not JSON */ }
      throw { status: response.status, code };
    }
    const { case: caseId } = await response.json();
    showReceipt(caseId);
  } catch (error) {
    problem($("send-problem"), describeError(error.code === undefined && error.message ? { code: "network" } : error));
    $("send-retry").hidden = false;
  }
}

// ---- the receipt ---------------------------------------------------------------------------

function showReceipt(caseId) {
  const words = state.receiptWords.split(" ");
  const list = $("receipt-words");
  list.textContent = "";
  for (const word of words) {
    const item = document.createElement("li");
    item.textContent = word;
    list.append(item);
  }
  $("case-line").textContent = t("case_line", { case: caseId });
  const a = 1 + Math.floor(Math.random() * 5);
  const b = 6 + Math.floor(Math.random() * 5);
  state.check = [a, b];
  $("check-a-label").textContent = t("word_n", { n: a });
  $("check-b-label").textContent = t("word_n", { n: b });
  $("check-a").value = "";
  $("check-b").value = "";
  $("receipt-check").hidden = false;
  $("receipt-kept").hidden = true;
  state.files = [];
  state.sealed = null;
  for (const input of document.querySelectorAll("#questions input, #questions textarea, #questions select")) {
    input.value = "";
  }
  show("receipt");
}

function receiptText() {
  return `${t("receipt_title")}\n\n${state.receiptWords}\n\n${t("receipt_help")}\n${location.origin}/\n`;
}

function checkReceipt(event) {
  event.preventDefault();
  const words = state.receiptWords.split(" ");
  const [a, b] = state.check;
  const ok = $("check-a").value.trim().toLowerCase() === words[a - 1]
    && $("check-b").value.trim().toLowerCase() === words[b - 1];
  $("check-problem").hidden = ok;
  if (!ok) return;
  $("receipt-check").hidden = true;
  $("receipt-kept").hidden = false;
  state.receiptWords = null;
  op("Forget", {});
}

// ---- follow-up ---------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  problem($("login-problem"), "");
  const words = $("receipt-input").value.trim().toLowerCase().split(/\s+/).join(" ");
  try {
    await op("OpenReceipt", { words });
  } catch (error) {
    problem($("login-problem"), state.lang === "en" && error.message ? error.message : t("receipt_bad"));
    return;
  }
  $("receipt-input").value = "";
  try {
    await openMailbox();
  } catch (error) {
    problem($("login-problem"), error.status === 401 ? t("receipt_unknown") : describeError(error));
  }
}

async function mailboxFetch(path, options = {}) {
  const response = await fetch(`${API}/${state.institution.id}/mailbox/${path}`, {
    credentials: "omit",
    cache: "no-store",
    ...options,
    headers: { ...(options.headers || {}), Authorization: `Mailbox ${state.mailboxSession}` },
  });
  if (!response.ok) {
    let code = "internal";
    try { code = (await response.json()).code; } catch (_) { /* not JSON */ }
    throw { status: response.status, code };
  }
  return response;
}

async function openMailbox() {
  const base = `${API}/${state.institution.id}/mailbox`;
  const challenge = await fetch(`${base}/challenges`, { method: "POST", credentials: "omit" });
  if (!challenge.ok) throw { status: challenge.status, code: "challenge" };
  const { response } = await op("AnswerChallenge", { challenge: await challenge.text() });
  const session = await fetch(`${base}/sessions`, {
    method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" }, body: response,
  });
  if (!session.ok) throw { status: session.status, code: "session" };
  state.mailboxSession = (await session.json()).session;
  await verifyHistory();
  await renderMailbox();
  show("mailbox");
}

// Replies are checked against the manifest that was in force on their day, so the module
// needs every published manifest (docs/protocol.md#reply-manifest). A history that cannot
// be fetched or does not verify leaves the module without one: no reply verifies, and the
// warning takes their place.
async function verifyHistory() {
  try {
    const response = await fetch(`${API}/${state.institution.id}/manifests`, {
      credentials: "omit", cache: "no-store",
    });
    if (!response.ok) return;
    await op("VerifyHistory", { manifests: await response.text() });
  } catch (_) { /* replies will not verify; the warning says so */ }
}

async function renderMailbox() {
  const list = await (await mailboxFetch("messages")).json();
  const container = $("messages");
  container.textContent = "";
  let status = null;
  let warned = false;
  for (const entry of list.messages) {
    const card = document.createElement("article");
    card.className = "card message";
    if (entry.kind === "follow-up") {
      card.classList.add("mine");
      card.textContent = t("followup_mine", { date: entry.day });
      container.append(card);
      continue;
    }
    let reply;
    try {
      const text = await (await mailboxFetch(`messages/${entry.seq}`)).text();
      reply = await op("OpenReply", { reply: text });
    } catch (_) {
      if (!warned) {
        card.classList.add("warn");
        card.setAttribute("role", "alert");
        card.textContent = t("reply_unverified");
        container.append(card);
        warned = true;
      }
      continue;
    }
    const heading = document.createElement("h2");
    heading.textContent = reply.kind === "status"
      ? t("status_change", { date: reply.date })
      : t("reply_from", { signer: reply.signer, date: reply.date });
    card.append(heading);
    if (reply.kind === "status") {
      status = reply.status;
      const line = document.createElement("p");
      line.className = "status";
      line.textContent = t(`status_${reply.status}`);
      card.append(line);
    }
    if (reply.text) {
      const body = document.createElement("p");
      body.className = "reply-text";
      body.textContent = reply.text;
      card.append(body);
    }
    for (const file of reply.attachments) {
      const link = document.createElement("a");
      const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
      link.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
      link.download = file.name;
      link.textContent = t("reply_file", { name: file.name });
      card.append(link);
    }
    container.append(card);
  }
  if (!container.childElementCount) {
    const empty = document.createElement("p");
    empty.textContent = t("no_messages");
    container.append(empty);
  }
  $("status-line").textContent = status ? t(`status_${status}`) : t("status_none");
}

async function sendFollowUp(event) {
  event.preventDefault();
  problem($("followup-problem"), "");
  $("followup-done").hidden = true;
  const text = $("followup-text").value.trim();
  if (!text) return;
  try {
    const sealed = await op("SealFollowUp", { date: today(), text, attachments: [] });
    await mailboxFetch("follow-ups", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ version: 1, message: sealed.message, signature: sealed.signature }),
    });
    $("followup-text").value = "";
    $("followup-done").hidden = false;
    await renderMailbox();
  } catch (error) {
    problem($("followup-problem"), describeError(error));
  }
}

// ---- wiring --------------------------------------------------------------------------------

// Saves `text` as a file. The object URL holding it is revoked once the browser has had
// time to start the download, so the receipt is not reachable by that URL for the rest of
// the visit.
function download(name, text) {
  const link = document.createElement("a");
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_LIFETIME_MS);
}

$("lang-toggle").addEventListener("click", () => setLanguage(state.lang === "id" ? "en" : "id"));
$("start-report").addEventListener("click", () => show("form"));
$("start-followup").addEventListener("click", () => show("login"));
for (const back of document.querySelectorAll("button.back")) {
  back.addEventListener("click", () => show("start"));
}
$("files").addEventListener("change", (event) => {
  state.files.push(...event.target.files);
  event.target.value = "";
  renderFiles();
});
$("report-form").addEventListener("submit", review);
$("edit").addEventListener("click", () => show("form"));
$("send").addEventListener("click", send);
$("send-retry").addEventListener("click", send);
$("receipt-copy").addEventListener("click", async () => {
  await navigator.clipboard.writeText(state.receiptWords);
  $("copy-done").hidden = false;
});
$("receipt-download").addEventListener("click", () => download("peluit-receipt.txt", receiptText()));
$("receipt-print").addEventListener("click", () => window.print());
$("receipt-check").addEventListener("submit", checkReceipt);
$("login-form").addEventListener("submit", login);
$("followup-form").addEventListener("submit", sendFollowUp);

boot();
