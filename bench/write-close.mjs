// Write benchmark: close latency of a freshly written 1 MiB file in a bucket mount, in ms and
// in hub round trips. For each sample it creates MOUNT/close-N.bin, writes 1 MiB of random
// bytes, then times close() alone and counts the requests hf-local-hub logged meanwhile (its
// HF_MOUNT_LOG=debug request lines "http: METHOD PATH -> STATUS"); the hub logs a request
// before answering it, so every request of this close is in the log when close returns.
// With staged writes close() may return before the commit, so it then also waits (up to 60 s)
// for the bucket batch that commits the file and reports the time from close() to that batch
// and the requests in between.
// Prints one JSON line per sample: {ms, closeRequests, fileRequests, commitMs, commitRequests,
// requests:[...]} (requests: those of close() and, if later, up to the commit).
// Usage: node write-close.mjs MOUNTPOINT HUB_LOG SAMPLES
import { randomBytes } from "node:crypto";
import { open, readFile } from "node:fs/promises";
import path from "node:path";

const [mountpoint, hubLog, samplesArg] = process.argv.slice(2);
if (!hubLog) {
	console.error("usage: node write-close.mjs MOUNTPOINT HUB_LOG [SAMPLES]");
	process.exit(2);
}
const samples = Number(samplesArg ?? 5);
const requestLines = async () =>
	(await readFile(hubLog, "utf8"))
		.split("\n")
		.filter((l) => /http: [A-Z]+ \S+ -> \d+/.test(l))
		.map((l) => l.replace(/^.*http: /, "").replace(/ \[.*$/, ""));

for (let i = 0; i < samples; i++) {
	const data = randomBytes(1 << 20);
	const start = (await requestLines()).length;
	const fh = await open(path.join(mountpoint, `close-${i}.bin`), "w");
	await fh.write(data);
	const beforeClose = (await requestLines()).length;
	const t0 = process.hrtime.bigint();
	await fh.close();
	const ms = Number(process.hrtime.bigint() - t0) / 1e6;
	const lines = await requestLines();
	const isBatch = (l) => /^POST \/api\/buckets\/\S+\/batch -> 2/.test(l);
	let after = lines;
	let commitMs = null;
	for (const deadline = Date.now() + 60000; Date.now() < deadline; ) {
		after = await requestLines();
		if (after.slice(beforeClose).some(isBatch)) {
			commitMs = Number(process.hrtime.bigint() - t0) / 1e6;
			break;
		}
		await new Promise((r) => setTimeout(r, 5));
	}
	const upToCommit = after.slice(beforeClose, beforeClose + after.slice(beforeClose).findIndex(isBatch) + 1);
	console.log(
		JSON.stringify({
			ms,
			closeRequests: lines.length - beforeClose,
			fileRequests: lines.length - start,
			commitMs,
			commitRequests: commitMs === null ? null : upToCommit.length,
			requests: commitMs === null ? lines.slice(beforeClose) : upToCommit,
		}),
	);
}
