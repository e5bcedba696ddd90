// The page's crypto worker: runs peluit-web (WebAssembly, or its wasm2js translation where
// WebAssembly is off), seals attachments chunk by chunk while uploading them, and computes
// the proof of work, all off the main thread. Secrets stay inside the module. It starts a
// second copy of itself that only hashes sealed bytes, so sealing and its SHA-256 (about
// as costly) run on two cores.
// Messages and operations: docs/web.md#worker.

const OP = {
  VerifyManifest: 1, NewReceipt: 2, OpenReceipt: 3, AttachmentBegin: 4,
  AttachmentPush: 5, AttachmentTail: 6, AttachmentEnd: 7, SealReport: 8, MintStamp: 9,
  AnswerChallenge: 10, OpenReply: 11, SealFollowUp: 12, Forget: 13, VerifyHistory: 14,
  DigestBegin: 15, DigestPush: 16, DigestEnd: 17,
};
// Sealed bytes per upload request; memory stays near this whatever the file size.
const UPLOAD_BATCH = 8 << 20;
// Room for one module answer past a full batch (AttachmentTail answers up to 1 MiB).
const OUTPUT_SLACK = 2 << 20;
// Plaintext handed to the module per call.
const PUSH_SIZE = 64 * 1024;
// Nonces tried per proof-of-work call between progress messages.
const POW_SLICE = 1 << 14;
const UPLOAD_RETRIES = 5;
// Sealed bytes per message to the hashing worker, and how many may wait there: hashing that
// falls behind holds sealing back instead of filling memory.
const HASH_SLICE = 512 << 10;
const HASH_AHEAD = 4;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let core = null;
let engine = "";
let allowWasmHere = true;
// The hashing worker's `ask`, once started; null where it could not start (then the module
// hashes as it seals).
let hashing;

class CoreError extends Error {
  constructor(answer) {
    super(answer.message || answer.code);
    this.code = answer.code;
    this.detail = answer.detail;
  }
}

async function loadCore(allowWasm) {
  if (allowWasm && typeof WebAssembly === "object") {
    try {
      const response = await fetch("/assets/peluit.wasm");
      const { instance } = await WebAssembly.instantiate(await response.arrayBuffer(), {});
      return [instance.exports, "wasm"];
    } catch (_) {
      // Fall back to the JavaScript translation of the same module.
    }
  }
  return [await import("/assets/peluit-nowasm.js"), "js"];
}

// One call into the module: 32 fresh random bytes, then the request's parts. Answers a view
// of the module's memory, valid only until the next call: copy what must be kept.
function callView(op, ...parts) {
  const length = parts.reduce((sum, part) => sum + part.length, 32);
  const ptr = core.peluit_input(length) >>> 0;
  const view = new Uint8Array(core.memory.buffer, ptr, length);
  crypto.getRandomValues(view.subarray(0, 32));
  let at = 32;
  for (const part of parts) {
    view.set(part, at);
    at += part.length;
  }
  const status = core.peluit_call(op);
  const out = new Uint8Array(
    core.memory.buffer, core.peluit_output() >>> 0, core.peluit_output_len() >>> 0,
  );
  if (status !== 0) throw new CoreError(JSON.parse(decoder.decode(out)));
  return out;
}

function callJson(op, request) {
  return JSON.parse(decoder.decode(callView(op, encoder.encode(JSON.stringify(request)))));
}

function handleBytes(handle) {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, handle, true);
  return bytes;
}

class HttpError extends Error {
  constructor(status, code) {
    super(`HTTP ${status} ${code}`);
    this.status = status;
    this.code = code;
  }
}

async function api(url, options) {
  const response = await fetch(url, { credentials: "omit", cache: "no-store", ...options });
  if (!response.ok) {
    let code = "internal";
    try { code = (await response.json()).code; } catch (_) { /* not JSON */ }
    throw new HttpError(response.status, code);
  }
  return response.json();
}

function postJson(url, body) {
  return api(url, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
}

// Sends the sealed bytes of `blob`, which start at `start`; after a dropped connection it
// asks the server how far it got and sends only the rest. Returns the acknowledged offset.
async function sendBatch(base, blob, start) {
  let offset = start;
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await api(`${base}?offset=${offset}`, {
        method: "PUT",
        headers: { "Content-Type": "application/octet-stream" },
        body: blob.slice(offset - start),
      });
      if (answer.offset !== start + blob.size) throw new HttpError(500, "short_append");
      return answer.offset;
    } catch (error) {
      if (error instanceof HttpError && error.status < 500 && error.status !== 408
          && error.status !== 409) throw error;
      if (attempt >= UPLOAD_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
      try {
        const status = await api(base, { method: "GET" });
        if (status.offset >= start && status.offset <= start + blob.size) {
          offset = status.offset;
          if (offset === start + blob.size) return offset;
        }
      } catch (_) { /* retry the same bytes */ }
    }
  }
}

// Starts the hashing worker, once: the same script, told to hash only. Answers its `ask`,
// or null if it cannot start (no nested workers, or its module failed to load).
function startHashing() {
  if (hashing !== undefined) return hashing;
  hashing = new Promise((resolve) => {
    if (typeof Worker !== "function") { resolve(null); return; }
    let worker;
    try {
      worker = new Worker("/assets/worker.js", { type: "module" });
    } catch (_) {
      resolve(null);
      return;
    }
    let next = 1;
    const waiting = new Map();
    const fail = (error) => {
      for (const { reject } of waiting.values()) reject(error);
      waiting.clear();
    };
    worker.onmessage = ({ data }) => {
      const entry = waiting.get(data.id);
      if (!entry) return;
      waiting.delete(data.id);
      if (data.error) entry.reject(new CoreError(data.error)); else entry.resolve(data.result);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      // Later attachments are hashed in the module; this one fails and can be sent again.
      hashing = null;
      worker.terminate();
      fail(new Error("hashing worker failed"));
    };
    const ask = (message, transfer = []) => new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...message, id }, transfer);
    });
    ask({ type: "load", allowWasm: allowWasmHere, hashOnly: true }).then(
      () => resolve(ask),
      () => { worker.terminate(); resolve(null); },
    );
  });
  return hashing;
}

// SHA-256 of one attachment's ciphertext in the hashing worker: each piece is copied out of
// the batch buffer into a buffer transferred there and back, so the same few buffers carry
// the whole attachment and no garbage piles up in either worker; at most HASH_AHEAD are in
// flight.
class RemoteDigest {
  static async begin(ask) {
    const { handle } = await ask({ type: "op", op: "DigestBegin", request: {} });
    return new RemoteDigest(ask, handle);
  }

  constructor(ask, handle) {
    this.ask = ask;
    this.handle = handle;
    this.inflight = [];
    this.spare = [];
  }

  async push(view) {
    let buffer = this.spare.pop();
    // A piece can exceed HASH_SLICE by up to one module answer.
    if (!buffer || buffer.byteLength < view.length) {
      buffer = new ArrayBuffer(Math.max(view.length, 2 * HASH_SLICE));
    }
    const bytes = new Uint8Array(buffer, 0, view.length);
    bytes.set(view);
    const done = this.ask({ type: "digest", handle: this.handle, bytes }, [buffer])
      .then((back) => { this.spare.push(back.buffer); });
    // Awaited below or in end(); until then a failure must not count as unhandled.
    done.catch(() => {});
    this.inflight.push(done);
    if (this.inflight.length >= HASH_AHEAD) await this.inflight.shift();
  }

  async end() {
    await Promise.all(this.inflight);
    this.inflight = [];
    const { sealed_sha256: sha } = await this.ask({
      type: "op", op: "DigestEnd", request: { handle: this.handle },
    });
    return sha;
  }
}

// Starts sealing an attachment: with its SHA-256 in the hashing worker where one runs,
// else in the module. Answers the sealer's handle, its sealed size and the remote digest.
async function beginAttachment(size, hashElsewhere) {
  const ask = hashElsewhere ? await startHashing() : null;
  const digest = ask ? await RemoteDigest.begin(ask) : null;
  const begun = callJson(OP.AttachmentBegin, { size, unhashed: digest !== null });
  return { handle: begun.handle, sealedSize: begun.sealed_size, digest };
}

// Seals `file` with sealer `handle`, 64 KiB of content per module call, and hands the sealed
// bytes on in order as Blobs of UPLOAD_BATCH bytes (the last one shorter), and to `digest`
// (a RemoteDigest, or null when the module hashes) in HASH_SLICE pieces. Sealed bytes
// gather in one buffer; a full batch becomes a Blob (a copy held by the browser, not the
// tab) and `onBatch` is awaited before sealing goes on, so the caller sets the pace. The
// buffer has room for one module answer beyond a batch, so every answer is copied out
// before anything else can call the module. Answers the sealed length and SHA-256.
async function sealFile(file, handle, digest, onBatch) {
  let pending = new Uint8Array(UPLOAD_BATCH + OUTPUT_SLACK);
  let filled = 0;
  // pending[0..hashed] has gone to the digest.
  let hashed = 0;
  const hashUpTo = async (end) => {
    if (!digest || end <= hashed) return;
    await digest.push(pending.subarray(hashed, end));
    hashed = end;
  };
  const ship = async (length) => {
    await hashUpTo(length);
    // A Blob body reaches Chromium's network process in one piece; a typed array is copied
    // through a small pipe and uploads about ten times slower.
    const blob = new Blob([pending.subarray(0, length)]);
    pending.copyWithin(0, length, filled);
    filled -= length;
    hashed = Math.max(0, hashed - length);
    await onBatch(blob);
  };
  const add = async (view) => {
    pending.set(view, filled);
    filled += view.length;
    if (filled - hashed >= HASH_SLICE) await hashUpTo(filled);
    if (filled >= UPLOAD_BATCH) await ship(UPLOAD_BATCH);
  };
  const handleInput = handleBytes(handle);
  const reader = file.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (let at = 0; at < value.length; at += PUSH_SIZE) {
      await add(callView(OP.AttachmentPush, handleInput, value.subarray(at, at + PUSH_SIZE)));
    }
  }
  for (;;) {
    const out = callView(OP.AttachmentTail, handleInput);
    const complete = out[0] === 1;
    await add(out.subarray(1));
    if (complete) break;
  }
  while (filled > 0) await ship(Math.min(filled, UPLOAD_BATCH));
  pending = null;
  const end = callJson(OP.AttachmentEnd, { handle });
  return {
    sealed_len: end.sealed_len,
    sealed_sha256: digest ? await digest.end() : end.sealed_sha256,
  };
}

async function sealAndUpload(id, file, institutionBase) {
  const { handle, sealedSize, digest: remote } = await beginAttachment(file.size, true);
  const created = await postJson(`${institutionBase}/uploads`, { version: 1, sealed_size: sealedSize });
  const base = `${institutionBase}/uploads/${created.upload}`;
  // Each batch uploads while the next one is sealed; the Blob is the only copy kept for a
  // resend.
  let acknowledged = 0;
  let sent = 0;
  let inflight = null;
  let failure = null;
  const progress = () => postMessage({ id, progress: { done: acknowledged, total: sealedSize } });
  const settle = async () => {
    if (inflight) await inflight;
    inflight = null;
    if (failure) throw failure;
  };
  const digest = await sealFile(file, handle, remote, async (blob) => {
    await settle();
    const start = sent;
    sent += blob.size;
    inflight = sendBatch(base, blob, start).then(
      (offset) => { acknowledged = offset; progress(); },
      (error) => { failure = error; },
    );
  });
  await settle();
  await postJson(`${base}/complete`, {});
  return {
    upload: created.upload,
    name: file.name,
    media_type: (file.type || "application/octet-stream").toLowerCase(),
    size: file.size,
    sealed_sha256: digest.sealed_sha256,
  };
}

// The page's sealing without the upload (web/bench/seal.sh times it): the same loop, the
// batches dropped; `oneCore` keeps the hashing in the module. Answers the sealed length
// and digest, and the milliseconds it took.
async function sealOnly(file, oneCore) {
  if (!oneCore) await startHashing();
  const started = performance.now();
  const { handle, digest } = await beginAttachment(file.size, !oneCore);
  const sealed = await sealFile(file, handle, digest, async () => {});
  return { ...sealed, ms: performance.now() - started };
}

function mintInModule(id, resource, bits) {
  const expected = 2 ** bits;
  for (let start = 0; ; start += POW_SLICE) {
    const { stamp } = callJson(OP.MintStamp, { resource, bits, start, count: POW_SLICE });
    if (stamp) return JSON.parse(stamp);
    postMessage({ id, progress: { done: start + POW_SLICE, total: expected } });
  }
}

function leadingZeroBits(digest) {
  let bits = 0;
  for (const byte of new Uint8Array(digest)) {
    if (byte === 0) { bits += 8; continue; }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

// Without WebAssembly the translated module hashes slowly, but the browser's own SHA-256
// does not depend on a JIT: the same stamp (docs/protocol.md#pow, 55 bytes hashed per
// nonce), searched with many digests in flight. The server verifies it with proto.
async function mintWithWebCrypto(id, resource, bits) {
  const prefix = encoder.encode("peluit/v1/pow\n");
  const base = new Uint8Array(55);
  base.set(prefix, 0);
  base.set(resource.match(/../g).map((h) => parseInt(h, 16)), 14);
  base[46] = bits;
  const expected = 2 ** bits;
  for (let start = 0; ; start += POW_SLICE) {
    const attempts = [];
    for (let nonce = start; nonce < start + POW_SLICE; nonce++) {
      const input = base.slice();
      new DataView(input.buffer).setBigUint64(47, BigInt(nonce));
      attempts.push(crypto.subtle.digest("SHA-256", input));
    }
    const digests = await Promise.all(attempts);
    const found = digests.findIndex((digest) => leadingZeroBits(digest) >= bits);
    if (found >= 0) return { version: 1, bits, nonce: start + found };
    postMessage({ id, progress: { done: start + POW_SLICE, total: expected } });
  }
}

function mint(id, resource, bits) {
  return engine === "wasm" ? mintInModule(id, resource, bits) : mintWithWebCrypto(id, resource, bits);
}

async function handle(message) {
  switch (message.type) {
    case "load": {
      [core, engine] = await loadCore(message.allowWasm);
      allowWasmHere = message.allowWasm;
      // The hashing worker never starts one of its own.
      if (message.hashOnly) hashing = null;
      return { engine };
    }
    case "digest":
      callView(OP.DigestPush, handleBytes(message.handle), message.bytes);
      // Sent back (transferred) for the next piece.
      return message.bytes;
    case "op":
      return callJson(OP[message.op], message.request);
    case "upload":
      return sealAndUpload(message.id, message.file, message.base);
    case "seal":
      return sealOnly(message.file, message.oneCore === true);
    case "pow":
      return mint(message.id, message.resource, message.bits);
    default:
      throw new Error("unknown message");
  }
}

self.onmessage = async (event) => {
  const message = event.data;
  try {
    const result = await handle(message);
    // Only a digest piece goes back transferred: its buffer is the sender's, never the
    // module's memory, which a transfer would detach.
    postMessage({ id: message.id, result }, message.type === "digest" ? [result.buffer] : []);
  } catch (error) {
    postMessage({
      id: message.id,
      error: {
        code: error.code || (error instanceof TypeError ? "network" : "internal"),
        detail: error.detail || null,
        status: error.status || null,
        message: String(error.message || error),
      },
    });
  }
};
