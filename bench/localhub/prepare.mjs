// Prepares the localhub fetch benchmark: uploads a random file to a bucket of a running
// hf-local-hub through @huggingface/hub, then asks the CAS for v2 reconstructions of one byte
// (one chunk), of a ~1 MB range and of the whole file, and prints (one JSON line each) the
// signed xorb URL, the exact Range header it was signed for, and the stored xorb's path
// relative to <data>/cas/xorbs.
// Usage: node prepare.mjs HUB_URL TOKEN [FILE_BYTES]
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const hub = await import(
	path.join(here, "..", "..", "tests", "conformance", "node_modules", "@huggingface", "hub", "dist", "index.mjs")
);

const [hubUrl, token, sizeArg] = process.argv.slice(2);
if (!hubUrl || !token) {
	console.error("usage: node prepare.mjs HUB_URL TOKEN [FILE_BYTES]");
	process.exit(2);
}
const size = Number(sizeArg ?? 16_000_000);

// Seeded xorshift32 bytes: incompressible, and the same chunk boundaries on every run, so the
// "one-chunk" target has the same size from run to run.
function seededBytes(n) {
	const out = new Uint8Array(n);
	let x = 0x9e3779b9;
	for (let i = 0; i < n; i += 4) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		for (let b = 0; b < 4 && i + b < n; b++) out[i + b] = (x >>> (8 * b)) & 0xff;
	}
	return out;
}
const repo = { type: "bucket", name: "user/bench" };
const common = { hubUrl, accessToken: token };

await hub.createRepo({ ...common, repo });
await hub.uploadFile({ ...common, repo, file: { path: "data.bin", content: new Blob([seededBytes(size)]) } });
const [info] = await hub.pathsInfo({ ...common, repo, paths: ["data.bin"] });
if (!info?.xetHash) throw new Error("uploaded file has no xetHash");

const tokenResp = await fetch(`${hubUrl}/api/buckets/user/bench/xet-read-token`, {
	headers: { Authorization: `Bearer ${token}` },
});
if (!tokenResp.ok) throw new Error(`xet-read-token: ${tokenResp.status}`);
const { accessToken, casUrl } = await tokenResp.json();

async function target(label, fileRange) {
	const headers = { Authorization: `Bearer ${accessToken}` };
	if (fileRange) headers.Range = fileRange;
	const resp = await fetch(`${casUrl}/v2/reconstructions/${info.xetHash}`, { headers });
	if (!resp.ok) throw new Error(`reconstruction: ${resp.status} ${await resp.text()}`);
	const plan = await resp.json();
	const [xorb, entries] = Object.entries(plan.xorbs)[0];
	const entry = entries[0];
	const range = `bytes=${entry.ranges.map((r) => `${r.bytes.start}-${r.bytes.end}`).join(",")}`;
	const bytes = entry.ranges.reduce((n, r) => n + r.bytes.end - r.bytes.start + 1, 0);
	console.log(JSON.stringify({ label, url: entry.url, range, bytes, xorbPath: `${xorb.slice(0, 2)}/${xorb}.xorb` }));
}

await target("one-chunk", "bytes=0-0");
await target("1MB-range", "bytes=4000000-4999999");
await target("whole-xorb", undefined);
