// Conformance of `hf-mount hash` with xet-core itself: the oracle is xet-core's chunker and
// hasher compiled to wasm (hf_xet_thin_wasm, vendored by @huggingface/hub under
// src/vendor/xet-chunk as a wasm-bindgen module plus its bytes in base64). For random and
// adversarial inputs, chunk boundaries, chunk hashes and the file hash must be identical.
//
// Env: HFM_BIN_DIR (directory holding hf-mount), HFM_CONFORMANCE_SEED (optional, to replay).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const binDir = process.env.HFM_BIN_DIR;
const hfMount = binDir ? join(binDir, "hf-mount") : undefined;
const seed = Number(process.env.HFM_CONFORMANCE_SEED ?? (Date.now() % 0x7fffffff));

let work;
let wasm;

// Loads the vendored xet-core wasm. The glue is plain ESM JavaScript; it is copied to an .mjs
// file so that node treats it as a module whatever the package's "type" says.
async function loadOracle(dir) {
  // The package exports no ./package.json: walk up from its main entry to its root.
  let root = dirname(createRequire(import.meta.url).resolve("@huggingface/hub"));
  while (!existsSync(join(root, "package.json")) && dirname(root) !== root) root = dirname(root);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  assert.equal(pkg.name, "@huggingface/hub");
  const vendor = join(root, "src/vendor/xet-chunk");
  const source = readFileSync(join(vendor, "chunker_wasm_bg.wasm.base64.ts"), "utf8");
  const match = source.match(/const wasmBase64 = `([^`]*)`/);
  assert.ok(match, "cannot find the wasm bytes in chunker_wasm_bg.wasm.base64.ts");
  const commit = source.match(/XET_CORE_COMMIT = "([0-9a-f]+)"/)?.[1];
  const glue = join(dir, "xet_core_chunker_glue.mjs");
  copyFileSync(join(vendor, "chunker_wasm_bg.js"), glue);
  const mod = await import(pathToFileURL(glue).href);
  mod.initSync({ module: Buffer.from(match[1].replace(/\s+/g, ""), "base64") });
  return { mod, commit };
}

// Deterministic PRNG (mulberry32) so a failure can be replayed with HFM_CONFORMANCE_SEED.
function rng(s) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function randomBytes(n, next) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = next();
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = v >>> 24;
  }
  return out;
}

// xet-core chunking.rs `get_triggering_base_data`: a 128-byte pattern that makes the gear hash
// match, followed by `pad` zero bytes, repeated.
const TRIGGER = Uint8Array.from([
  154, 52, 42, 34, 159, 75, 126, 224, 70, 236, 12, 196, 79, 236, 178, 124, 127, 50, 99, 178, 44, 176,
  174, 126, 250, 235, 205, 174, 252, 122, 35, 10, 20, 101, 214, 69, 193, 8, 115, 105, 158, 228, 120,
  111, 136, 162, 198, 251, 211, 183, 253, 252, 164, 147, 63, 16, 186, 162, 117, 23, 170, 36, 205, 187,
  174, 76, 210, 174, 211, 175, 12, 173, 145, 59, 2, 70, 222, 181, 159, 227, 182, 156, 189, 51, 226,
  106, 24, 50, 183, 157, 140, 10, 8, 23, 212, 70, 10, 234, 23, 33, 219, 254, 39, 236, 70, 49, 191, 116,
  9, 115, 15, 101, 26, 159, 165, 220, 15, 170, 56, 125, 92, 163, 94, 235, 38, 40, 49, 81,
]);

function triggering(n, pad) {
  const unit = new Uint8Array(TRIGGER.length + pad);
  unit.set(TRIGGER);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = unit[i % unit.length];
  return out;
}

function inputs() {
  const next = rng(seed);
  const list = [];
  const add = (name, data) => list.push({ name, data });
  add("empty", new Uint8Array(0));
  for (const n of [1, 63, 64, 65, 8127, 8128, 8191, 8192, 8193, 65536, 131071, 131072, 131073,
    262149, 1000000, 3 * 1048576 + 17, 6 * 1048576]) {
    add(`random-${n}`, randomBytes(n, next));
  }
  for (let k = 0; k < 4; k++) add(`random-size-${k}`, randomBytes(next() % (2 << 20), next));
  for (const [byte, n] of [[0, 1 << 20], [59, 1000000], [255, 300000], [1, 131073]]) {
    add(`const-${byte}-${n}`, new Uint8Array(n).fill(byte));
  }
  for (const pad of [0, 1, 2, 63, 64, 100, 126, 127]) add(`trigger-pad-${pad}`, triggering(262144, pad));
  // The trigger pattern planted in random data so its match lands around the minimum and
  // maximum chunk sizes (8192, 131072) and the skip-ahead edge (8127).
  for (const at of [8000, 8063, 8064, 8065, 8127, 130944, 130945, 131072 - 200]) {
    const data = randomBytes(400000, next);
    data.set(TRIGGER, at);
    add(`planted-${at}`, data);
  }
  // Low entropy: two-symbol data, short text, one random block repeated, random/zero mixes.
  add("binary-symbols", randomBytes(700000, next).map((b) => b & 1));
  const text = new TextEncoder().encode(
    Array.from({ length: 40000 }, (_, i) => `line ${i} of some repetitive log output\n`).join(""),
  );
  add("text", text);
  const block = randomBytes(4096, next);
  const repeated = new Uint8Array(2 << 20);
  for (let i = 0; i < repeated.length; i += block.length) repeated.set(block, i);
  add("repeated-4k-block", repeated);
  const mixed = randomBytes(1500000, next);
  mixed.fill(0, 300000, 700000);
  add("random-zeros-random", mixed);
  return list;
}

function oracle(data) {
  const chunker = new wasm.mod.Chunker(65536);
  const chunks = [];
  try {
    // Feed in uneven pieces: the oracle's own streaming path.
    const piece = 1048576 + 4099;
    for (let pos = 0; pos < data.length; pos += piece) {
      chunks.push(...chunker.add_data(data.subarray(pos, Math.min(pos + piece, data.length))));
    }
    chunks.push(...chunker.finish());
  } finally {
    chunker.free();
  }
  let offset = 0;
  const out = chunks.map(({ hash, length }) => {
    const c = { offset, length, hash };
    offset += length;
    return c;
  });
  const fileHash = wasm.mod.compute_file_hash(chunks.map(({ hash, length }) => ({ hash, length })));
  return { size: data.length, chunks: out, fileHash };
}

function runHash(args, options = {}) {
  const r = spawnSync(hfMount, ["hash", ...args], {
    encoding: "utf8",
    maxBuffer: 256 << 20,
    timeout: 120000,
    ...options,
  });
  assert.equal(r.error, undefined, `running ${hfMount}: ${r.error}`);
  return r;
}

function compare(name, line, expected) {
  const got = JSON.parse(line);
  assert.equal(got.size, expected.size, `${name}: size`);
  assert.equal(got.chunks.length, expected.chunks.length, `${name}: chunk count`);
  for (let i = 0; i < expected.chunks.length; i++) {
    assert.deepEqual(got.chunks[i], expected.chunks[i], `${name}: chunk ${i}`);
  }
  assert.equal(got.file_hash, expected.fileHash, `${name}: file hash`);
}

before(async () => {
  assert.ok(hfMount && existsSync(hfMount), `hf-mount not found (HFM_BIN_DIR=${binDir})`);
  work = mkdtempSync(join(tmpdir(), "hfm-xet-hash-"));
  wasm = await loadOracle(work);
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the oracle is xet-core and agrees with the published vectors", () => {
  assert.match(wasm.commit ?? "", /^[0-9a-f]{40}$/);
  // hf.js "Hash functions (verified against Rust thin-wasm)": byte i = (i*7 + 13) & 0xff.
  const data = Uint8Array.from({ length: 200000 }, (_, i) => (i * 7 + 13) & 0xff);
  const r = oracle(data);
  assert.deepEqual(r.chunks.map((c) => c.offset + c.length), [131072, 200000]);
  assert.equal(r.fileHash, "d88d9e0b760f32c90b7c6592b4cb85251c01bb797371e3c637087b96ac578723");
  assert.equal(oracle(new Uint8Array(0)).fileHash, "0".repeat(64));
});

test(`hf-mount hash matches xet-core on random and adversarial files (seed ${seed})`, () => {
  const list = inputs();
  const paths = list.map(({ name, data }) => {
    const path = join(work, `${name}.bin`);
    writeFileSync(path, data);
    return path;
  });
  const r = runHash(["--json", "--chunks", ...paths]);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.equal(lines.length, list.length);
  for (let i = 0; i < list.length; i++) {
    assert.equal(JSON.parse(lines[i]).path, paths[i]);
    compare(list[i].name, lines[i], oracle(list[i].data));
  }
  // The plain output carries the same file hashes, sha256sum style.
  const plain = runHash(paths);
  assert.equal(plain.status, 0, plain.stderr);
  assert.deepEqual(
    plain.stdout.trimEnd().split("\n"),
    lines.map((l) => `${JSON.parse(l).file_hash}  ${JSON.parse(l).path}`),
  );
});

test("standard input is hashed like a file", () => {
  const data = triggering(300000, 126);
  const r = runHash(["--json", "--chunks"], { input: Buffer.from(data) });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).path, "-");
  compare("stdin", r.stdout.trimEnd(), oracle(data));
});

test("a missing file fails with exit code 1 and the others are still hashed", () => {
  const data = randomBytes(50000, rng(seed + 1));
  const good = join(work, "good.bin");
  writeFileSync(good, data);
  const missing = join(work, "does-not-exist.bin");
  const r = runHash(["--json", missing, good]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /does-not-exist\.bin/);
  assert.equal(JSON.parse(r.stdout).file_hash, oracle(data).fileHash);
});
