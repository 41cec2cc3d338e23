// Crash safety: everything hf-local-hub acknowledged survives a kill -9. Uploads through
// @huggingface/hub, kills the server without warning, restarts it on the same data dir and
// downloads the files again, comparing every byte.
import { it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, startLocalHub, makeDataDir, removeDir, randomBytes, bytesOf, sameBytes } from "./lib/localhub.mjs";

let server;
let dataDir;
const bucket = { type: "bucket", name: `${USER}/restart-bucket` };
const model = { type: "model", name: `${USER}/restart-model` };
const files = {
	"a.bin": randomBytes(1_500_000, 11),
	"b.bin": randomBytes(70_000, 12),
	"empty.bin": new Uint8Array(0),
};

before(async () => {
	dataDir = await makeDataDir("hfm-cas-restart-");
	server = await startLocalHub({ dataDir });
});

after(async () => {
	await server?.stop();
	await removeDir(dataDir);
});

async function checkAll(repo) {
	for (const [path, data] of Object.entries(files)) {
		const blob = await hub.downloadFile({ hubUrl: server.url, accessToken: TOKEN, repo, path });
		assert.ok(blob, `${path} missing after restart`);
		assert.equal(sameBytes(await bytesOf(blob), data), "equal", path);
	}
	const blob = await hub.downloadFile({ hubUrl: server.url, accessToken: TOKEN, repo, path: "a.bin" });
	const part = await bytesOf(blob.slice(700_000, 900_000));
	assert.equal(sameBytes(part, files["a.bin"].subarray(700_000, 900_000)), "equal");
}

it("serves uploads intact after kill -9 and restart", async () => {
	const common = { hubUrl: server.url, accessToken: TOKEN };
	const content = Object.entries(files).map(([path, data]) => ({ path, content: new Blob([data]) }));
	await hub.createRepo({ ...common, repo: bucket });
	await hub.uploadFiles({ ...common, repo: bucket, files: content });
	await hub.createRepo({ ...common, repo: model });
	await hub.uploadFiles({ ...common, repo: model, files: content });
	await checkAll(bucket);

	await server.kill9();
	server = await startLocalHub({ dataDir });
	await checkAll(bucket);
	await checkAll(model);

	// And the restarted server keeps accepting uploads that dedup against the old data.
	await hub.uploadFile({
		hubUrl: server.url,
		accessToken: TOKEN,
		repo: bucket,
		file: { path: "again.bin", content: new Blob([files["a.bin"]]) },
	});
	const again = await hub.downloadFile({ hubUrl: server.url, accessToken: TOKEN, repo: bucket, path: "again.bin" });
	assert.equal(sameBytes(await bytesOf(again), files["a.bin"]), "equal");
});
