// Times the page's own sealing in headless Chromium, without upload (web/bench/seal.sh runs
// it): for each variant (a worker.js and a peluit.wasm, served in place of the demo server's
// through request interception), a module worker seals a file from an <input type=file>
// with the worker's "seal" message, to the demo institution's verified manifest. Variants
// take turns run by run, so the machine's load falls on all of them alike. Then the bench
// kernels (web/bench/kernels) time SHA-256 and ChaCha20-Poly1305 alone. Prints one JSON
// line: milliseconds per run for each variant and kernel.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const plan = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const result = { variants: {}, kernels: {}, profiles: {}, sealed_len: null };

async function openVariant(variant) {
  const context = await browser.newContext();
  for (const [asset, path, type] of [["worker.js", variant.worker, "text/javascript"],
    ["peluit.wasm", variant.wasm, "application/wasm"]]) {
    if (path) await context.route(`**/assets/${asset}`, (route) => route.fulfill({ path, contentType: type }));
  }
  const page = await context.newPage();
  page.setDefaultTimeout(plan.timeout_ms || 600000);
  await page.goto(plan.url);
  await page.evaluate(() => {
    const input = document.createElement("input");
    input.type = "file";
    input.id = "bench-file";
    document.body.append(input);
  });
  await page.setInputFiles("#bench-file", plan.file);
  const engine = await page.evaluate(async () => {
    const worker = new Worker("/assets/worker.js", { type: "module" });
    let next = 1;
    const waiting = new Map();
    worker.onmessage = ({ data }) => {
      if (data.progress || !waiting.has(data.id)) return;
      const { resolve, reject } = waiting.get(data.id);
      waiting.delete(data.id);
      if (data.error) reject(new Error(JSON.stringify(data.error))); else resolve(data.result);
    };
    window.benchAsk = (message) => new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...message, id });
    });
    const { engine } = await window.benchAsk({ type: "load", allowWasm: true });
    const api = "/api/v1/institutions";
    const institution = (await (await fetch(api)).json()).institutions[0];
    const manifest = await (await fetch(`${api}/${institution.id}/manifest`)).text();
    await window.benchAsk({
      type: "op", op: "VerifyManifest",
      request: { manifest_key: institution.manifest_key, origin: location.origin,
        today: new Date().toISOString().slice(0, 10), manifest },
    });
    return engine;
  });
  if (engine !== "wasm") throw new Error(`variant ${variant.name} loaded ${engine}, not wasm`);
  return page;
}

const seal = (page, oneCore) => page.evaluate(async (oneCore) => {
  const file = document.getElementById("bench-file").files[0];
  return window.benchAsk({ type: "seal", file, oneCore });
}, oneCore);

const pages = [];
for (const variant of plan.variants) {
  pages.push([variant.name, await openVariant(variant), variant.one_core === true]);
  result.variants[variant.name] = [];
}
for (const [, page, oneCore] of pages) await seal(page, oneCore);
for (let run = 0; run < plan.runs; run++) {
  for (const [name, page, oneCore] of pages) {
    const answer = await seal(page, oneCore);
    result.variants[name].push(Math.round(answer.ms * 10) / 10);
    result.sealed_len = answer.sealed_len;
    if (answer.profile) (result.profiles[name] ||= []).push(answer.profile);
  }
}

// The kernels run on the first page's main thread, each build on the same random buffer.
const kernelPage = pages[0][1];
for (const kernels of plan.kernels || []) {
  const bytes = readFileSync(kernels.wasm).toString("base64");
  const times = await kernelPage.evaluate(async ({ bytes, mib, runs }) => {
    const binary = Uint8Array.from(atob(bytes), (c) => c.charCodeAt(0));
    const { instance } = await WebAssembly.instantiate(binary, {});
    const k = instance.exports;
    const len = mib << 20;
    const ptr = k.kernel_buffer(len) >>> 0;
    const view = new Uint8Array(k.memory.buffer, ptr, len);
    for (let at = 0; at < len; at += 65536) crypto.getRandomValues(view.subarray(at, at + 65536));
    const names = Object.keys(k).filter((n) => n.startsWith("kernel_") && n !== "kernel_buffer");
    const times = Object.fromEntries(names.map((n) => [n.slice(7), []]));
    for (let run = -1; run < runs; run++) {
      for (const name of names) {
        const started = performance.now();
        k[name](len);
        if (run >= 0) times[name.slice(7)].push(Math.round((performance.now() - started) * 10) / 10);
      }
    }
    return times;
  }, { bytes, mib: plan.kernel_mib, runs: plan.runs });
  for (const [name, list] of Object.entries(times)) result.kernels[`${kernels.name} ${name}`] = list;
}
await browser.close();
console.log(JSON.stringify(result));
