// Times the page's own sealing in headless Chromium, without upload (web/bench/seal.sh
// runs it): for each variant (a worker.js and a peluit.wasm, served in place of the demo
// server's through request interception), a module worker seals a file from an <input
// type=file> with the worker's "seal" message, to the demo institution's verified
// manifest. Variants take turns run by run, in a rotating order, so the machine's load
// falls on all of them alike. Then the bench kernels (web/bench/kernels) time SHA-256 and
// ChaCha20-Poly1305 alone, and the same without WebAssembly in a jitless Chromium. Prints
// one JSON line: milliseconds per run for each variant and kernel.
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
// The order rotates run by run: the first variant of a round tends to be the slowest.
for (let run = 0; run < plan.runs; run++) {
  const order = pages.map((_, i) => pages[(run + i) % pages.length]);
  for (const [name, page, oneCore] of order) {
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

// Without WebAssembly: a second Chromium with V8's --jitless (as Tor Browser at "Safer" runs
// script) times, over 1 MiB, the bench kernels as wasm2js translates them (what the page's
// peluit-nowasm.js runs) and noble's SHA-256 and ChaCha20-Poly1305, written for plain
// JavaScript. The page is served by request interception, with no CSP.
if (plan.nowasm) {
  const jitless = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--js-flags=--jitless"],
  });
  const context = await jitless.newContext();
  const origin = new URL(plan.url).origin;
  await context.route(`${origin}/bench/**`, (route) => {
    const path = new URL(route.request().url()).pathname.slice("/bench/".length);
    if (path === "index.html") return route.fulfill({ body: "<!doctype html><title>bench</title>", contentType: "text/html" });
    const file = path === "kernels.mjs" ? plan.nowasm.kernels : `${plan.nowasm.noble}/${path.slice("noble/".length)}`;
    return route.fulfill({ path: file, contentType: "text/javascript" });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(plan.timeout_ms || 600000);
  await page.goto(`${origin}/bench/index.html`);
  result.nowasm = await page.evaluate(async (runs) => {
    if (typeof WebAssembly === "object") throw new Error("WebAssembly is on: not a jitless browser");
    const kernels = await import("/bench/kernels.mjs");
    const { sha256 } = await import("/bench/noble/hashes/sha2.js");
    const { chacha20poly1305 } = await import("/bench/noble/ciphers/chacha.js");
    const len = 1 << 20;
    const chunk = 64 << 10;
    const data = new Uint8Array(len);
    for (let at = 0; at < len; at += chunk) crypto.getRandomValues(data.subarray(at, at + chunk));
    kernels.kernel_buffer(len);
    const key = new Uint8Array(32);
    const work = {
      "wasm2js sha256_v10": () => kernels.kernel_sha256_v10(len),
      "wasm2js chacha20poly1305": () => kernels.kernel_chacha20poly1305(len),
      "wasm2js stream_sealer": () => kernels.kernel_stream_sealer(len),
      "noble sha256": () => {
        const hash = sha256.create();
        for (let at = 0; at < len; at += chunk) hash.update(data.subarray(at, at + chunk));
        return hash.digest()[0];
      },
      "noble chacha20poly1305": () => {
        const nonce = new Uint8Array(12);
        let last = 0;
        for (let at = 0, i = 0; at < len; at += chunk, i++) {
          new DataView(nonce.buffer).setUint32(7, i);
          last = chacha20poly1305(key, nonce).encrypt(data.subarray(at, at + chunk))[0];
        }
        return last;
      },
    };
    const times = Object.fromEntries(Object.keys(work).map((name) => [name, []]));
    for (let run = 0; run < runs; run++) {
      for (const [name, fn] of Object.entries(work)) {
        const started = performance.now();
        fn();
        times[name].push(Math.round(performance.now() - started));
      }
    }
    return times;
  }, plan.nowasm.runs);
  await jitless.close();
}
console.log(JSON.stringify(result));
