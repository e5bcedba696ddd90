// Drives the reporter page in Debian's headless Chromium for the browser stories in
// tests/tests/browser_story.rs: one scenario per run, given as JSON on argv[2]; prints one
// JSON line with what the page showed and what the browser observed (requests, CSP
// violations, cookies, axe-core results). Exits non-zero only when the page could not be
// driven at all; the Rust test makes the assertions.
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const scenario = JSON.parse(process.argv[2]);
const TIMEOUT = scenario.timeout_ms || 120000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ...(scenario.jitless ? ["--js-flags=--jitless"] : []),
  ],
});
const context = await browser.newContext({
  viewport: scenario.viewport || { width: 360, height: 740 },
  acceptDownloads: true,
});
await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: scenario.url });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

const observed = { requests: [], console: [], violations: [], page_errors: [], axe: {}, screenshots: [] };
page.on("console", (message) => observed.console.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => observed.page_errors.push(String(error)));
context.on("request", (request) => observed.requests.push(request.url()));
await page.exposeFunction("__peluitViolation", (text) => observed.violations.push(text));
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (event) => {
    window.__peluitViolation(`${event.violatedDirective} ${event.blockedURI}`);
  });
});

// Requests matching `fail_once` (a regular expression) are cut off the first time, as a
// dropped connection would be; workers' requests included.
if (scenario.fail_once) {
  const pattern = new RegExp(scenario.fail_once);
  let failed = false;
  await context.route(pattern, (route) => {
    if (failed) return route.continue();
    failed = true;
    observed.failed_once = route.request().url();
    return route.abort("connectionreset");
  });
}

for (const route of scenario.routes || []) {
  await page.route(route.url, (r) => r.fulfill({
    status: route.status || 200,
    contentType: route.content_type || "application/json",
    body: route.body,
  }));
}

async function shoot(name) {
  if (!scenario.screenshots) return;
  mkdirSync(scenario.screenshots, { recursive: true });
  for (const [label, size] of [["360", { width: 360, height: 740 }], ["1280", { width: 1280, height: 800 }]]) {
    await page.setViewportSize(size);
    const path = `${scenario.screenshots}/${scenario.name || "story"}-${name}-${label}.png`;
    await page.screenshot({ path, fullPage: true });
    observed.screenshots.push(path);
  }
  await page.setViewportSize(scenario.viewport || { width: 360, height: 740 });
}

async function axe(name) {
  // Evaluated through the DevTools protocol, so the page's CSP neither blocks nor reports it.
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    if (!window.axe) return { error: "axe-core could not be injected" };
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  observed.axe[name] = result;
}

const visible = (id) => page.locator(`#${id}`).waitFor({ state: "visible" });
const text = (selector) => page.locator(selector).innerText();

async function startOrError() {
  await page.goto(scenario.url);
  await page.locator("#screen-start:not([hidden]), #screen-error:not([hidden])").waitFor();
  if (await page.locator("#screen-error").isVisible()) {
    observed.error = await text("#error-text");
    return false;
  }
  return true;
}

async function report() {
  if (!(await startOrError())) return;
  observed.engine_note_visible = await page.locator("#engine-note").isVisible();
  // English first, then back to Indonesian: both catalogues load and apply.
  await page.click("#lang-toggle");
  await page.locator("html[lang=en]").waitFor();
  observed.english_button = await text("#start-report");
  await page.click("#lang-toggle");
  await page.locator("html[lang=id]").waitFor();
  observed.fingerprint = await text("#fingerprint");
  await shoot("start");
  await page.click("#start-report");
  await visible("screen-form");
  for (const [question, value] of Object.entries(scenario.answers)) {
    const field = page.locator(`#q-${question}`);
    if ((await field.evaluate((e) => e.tagName)) === "SELECT") await field.selectOption(value);
    else await field.fill(value);
  }
  if (scenario.files && scenario.files.length) {
    await page.setInputFiles("#files", scenario.files);
  }
  await axe("form");
  await shoot("form");
  await page.click("#report-form button[type=submit]");
  await visible("screen-review");
  observed.summary = await text("#summary");
  await shoot("review");
  const started = Date.now();
  await page.click("#send");
  await page.locator("#screen-receipt:not([hidden]), #send-problem:not([hidden])").waitFor({ timeout: TIMEOUT });
  observed.send_ms = Date.now() - started;
  if (await page.locator("#send-problem").isVisible()) {
    observed.error = await text("#send-problem");
    return;
  }
  const words = await page.locator("#receipt-words li").allInnerTexts();
  observed.receipt = words.join(" ");
  observed.case_line = await text("#case-line");
  await axe("receipt");
  await shoot("receipt");
  const download = page.waitForEvent("download");
  await page.click("#receipt-download");
  observed.download_name = (await download).suggestedFilename();
  await page.click("#receipt-copy");
  observed.clipboard = await page.evaluate(() => navigator.clipboard.readText());
  const a = Number((await text("#check-a-label")).match(/\d+/)[0]);
  const b = Number((await text("#check-b-label")).match(/\d+/)[0]);
  await page.fill("#check-a", "salah");
  await page.fill("#check-b", words[b - 1]);
  await page.click("#receipt-check button[type=submit]");
  observed.wrong_check_refused = await page.locator("#check-problem").isVisible();
  await page.fill("#check-a", words[a - 1]);
  await page.click("#receipt-check button[type=submit]");
  await visible("receipt-kept");
}

async function followUp() {
  if (!(await startOrError())) return;
  await page.click("#start-followup");
  await visible("screen-login");
  await page.fill("#receipt-input", scenario.receipt);
  await page.click("#login-form button[type=submit]");
  await page.locator("#screen-mailbox:not([hidden]), #login-problem:not([hidden])").waitFor();
  if (await page.locator("#login-problem").isVisible()) {
    observed.error = await text("#login-problem");
    return;
  }
  observed.status = await text("#status-line");
  observed.messages = await page.locator("#messages > *").allInnerTexts();
  observed.warnings = await page.locator("#messages .warn").allInnerTexts();
  await axe("mailbox");
  await shoot("mailbox");
  if (scenario.follow_up) {
    await page.fill("#followup-text", scenario.follow_up);
    await page.click("#followup-form button[type=submit]");
    await page.locator("#followup-done:not([hidden]), #followup-problem:not([hidden])").waitFor();
    observed.follow_up_sent = await page.locator("#followup-done").isVisible();
    observed.messages_after = await page.locator("#messages > *").allInnerTexts();
  }
}

try {
  if (scenario.kind === "report") await report();
  else if (scenario.kind === "follow-up") await followUp();
  else if (scenario.kind === "start") await startOrError();
  observed.cookies = await context.cookies();
  observed.storage = await page.evaluate(() => ({
    local: localStorage.length, session: sessionStorage.length,
  }));
  observed.final_url = page.url();
} catch (error) {
  observed.driver_error = String(error && error.stack || error);
}
await browser.close();
console.log(JSON.stringify(observed));
