// Write benchmark reference: uploads one local file to a bucket of a running hf-local-hub with
// @huggingface/hub (xet: chunk, dedup query, xorbs, shard, bucket batch) and prints one JSON
// line {seconds, bytes}. Only the upload is timed (the bucket is created before the clock
// starts). Usage: node write-upload.mjs HUB_URL TOKEN BUCKET FILE PATH_IN_BUCKET
import path from "node:path";
import { openAsBlob } from "node:fs";
import { stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const hub = await import(
	path.join(here, "..", "tests", "conformance", "node_modules", "@huggingface", "hub", "dist", "index.mjs")
);

const [hubUrl, accessToken, bucket, file, dest] = process.argv.slice(2);
if (!dest) {
	console.error("usage: node write-upload.mjs HUB_URL TOKEN BUCKET FILE PATH_IN_BUCKET");
	process.exit(2);
}
const common = { hubUrl, accessToken };
const repo = { type: "bucket", name: bucket };
await hub.createRepo({ ...common, repo });
const bytes = (await stat(file)).size;
const t0 = process.hrtime.bigint();
await hub.uploadFiles({ ...common, repo, files: [{ path: dest, content: await openAsBlob(file) }] });
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const info = await hub.pathsInfo({ ...common, repo, paths: [dest] });
if (info.length !== 1 || info[0].size !== bytes) {
	console.error(`upload check failed: ${JSON.stringify(info)}`);
	process.exit(1);
}
console.log(JSON.stringify({ seconds, bytes }));
