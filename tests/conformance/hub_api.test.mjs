// @huggingface/hub (an independent client) against hf-local-hub's Hub API: identity, bucket
// and repo lifecycle, regular-file commits, tree listing across `Link` pages, paths-info,
// downloads of regular files, branches pinning an older tree, commit history, and the error
// answers the client maps to its own errors. Xet uploads are covered by cas_*.test.mjs.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as hub from "@huggingface/hub";
import { USER, TOKEN, startLocalHub, makeDataDir, removeDir } from "./lib/localhub.mjs";

let server;
let dataDir;
const common = () => ({ hubUrl: server.url, accessToken: TOKEN });
const bucket = { type: "bucket", name: `${USER}/hub-bucket` };
const model = { type: "model", name: `${USER}/hub-model` };

async function collect(iter) {
	const out = [];
	for await (const x of iter) out.push(x);
	return out;
}

// A fetch that asks tree listings for small pages, counting the pages it saw.
function pagingFetch(pageSize, counter) {
	return (url, init) => {
		const u = new URL(url);
		if (u.pathname.includes("/tree")) {
			counter.pages += 1;
			if (!u.searchParams.has("limit")) u.searchParams.set("limit", String(pageSize));
		}
		return fetch(u.toString(), init);
	};
}

before(async () => {
	dataDir = await makeDataDir("hfm-hub-conf-");
	server = await startLocalHub({ dataDir });
});

after(async () => {
	await server?.stop();
	await removeDir(dataDir);
});

describe("identity", () => {
	it("whoAmI names the registered user", async () => {
		const me = await hub.whoAmI(common());
		assert.equal(me.name, USER);
		assert.equal(me.type, "user");
	});

	it("rejects an unknown token with 401", async () => {
		const res = await fetch(`${server.url}/api/whoami-v2`, {
			headers: { Authorization: "Bearer hf_not_registered" },
		});
		assert.equal(res.status, 401);
		await assert.rejects(hub.whoAmI({ hubUrl: server.url, accessToken: "hf_not_registered" }));
	});
});

describe("bucket lifecycle", () => {
	it("creates a bucket, refuses a second create", async () => {
		const created = await hub.createRepo({ ...common(), repo: bucket });
		assert.match(created.repoUrl, /\/buckets\/user\/hub-bucket$/);
		await assert.rejects(hub.createRepo({ ...common(), repo: bucket }), /already/);
	});

	it("lists and describes it", async () => {
		const list = await (await fetch(`${server.url}/api/buckets/${USER}`, {
			headers: { Authorization: `Bearer ${TOKEN}` },
		})).json();
		assert.ok(list.some((b) => b.id === bucket.name));
		const info = await (await fetch(`${server.url}/api/buckets/${bucket.name}`)).json();
		assert.equal(info.id, bucket.name);
		assert.equal(info.totalFiles, 0);
		assert.equal(info.private, false);
		assert.deepEqual(await collect(hub.listFiles({ ...common(), repo: bucket })), []);
	});

	it("refuses anonymous creation", async () => {
		const res = await fetch(`${server.url}/api/buckets/${USER}/anon`, { method: "POST", body: "{}" });
		assert.equal(res.status, 401);
	});

	it("deletes it", async () => {
		await hub.deleteRepo({ ...common(), repo: bucket });
		const res = await fetch(`${server.url}/api/buckets/${bucket.name}`, {
			headers: { Authorization: `Bearer ${TOKEN}` },
		});
		assert.equal(res.status, 404);
		assert.equal(res.headers.get("x-error-code"), "RepoNotFound");
	});
});

describe("model repo", () => {
	const enc = new TextEncoder();
	const files = {};
	for (let i = 0; i < 23; i++) files[`data/part-${String(i).padStart(2, "0")}.txt`] = `row ${i}\n`;
	files["data/sub/deep.txt"] = "deep\n";
	files["data2/x.txt"] = "not under data/\n";
	let firstCommit;

	it("creates the repo with a README", async () => {
		await hub.createRepo({
			...common(),
			repo: model,
			files: [{ path: "README.md", content: new Blob(["# hello\n"]) }],
		});
		assert.equal(await hub.repoExists({ ...common(), repo: model }), true);
		await assert.rejects(hub.createRepo({ ...common(), repo: model }));
	});

	it("commits regular files", async () => {
		const out = await hub.uploadFiles({
			...common(),
			repo: model,
			useXet: false,
			files: Object.entries(files).map(([path, text]) => ({ path, content: new Blob([text]) })),
		});
		assert.match(out.commit.oid, /^[0-9a-f]{40}$/);
		firstCommit = out.commit.oid;
	});

	it("lists the tree across several Link pages", async () => {
		const counter = { pages: 0 };
		const all = await collect(
			hub.listFiles({ ...common(), repo: model, recursive: true, fetch: pagingFetch(5, counter) }),
		);
		const paths = all.filter((e) => e.type === "file").map((e) => e.path).sort();
		assert.deepEqual(paths, [".gitattributes", "README.md", ...Object.keys(files)].sort());
		assert.ok(counter.pages >= 5, `expected several pages, got ${counter.pages}`);
		assert.ok(all.some((e) => e.type === "directory" && e.path === "data/sub"));
	});

	it("lists one directory level, on path boundaries", async () => {
		const entries = await collect(hub.listFiles({ ...common(), repo: model, path: "data" }));
		assert.equal(entries.length, 24);
		assert.ok(entries.every((e) => e.path.startsWith("data/")));
		assert.ok(entries.some((e) => e.type === "directory" && e.path === "data/sub"));
	});

	it("answers paths-info and downloads a regular file", async () => {
		const info = await hub.pathsInfo({ ...common(), repo: model, paths: ["data/part-03.txt", "nope.txt"] });
		assert.equal(info.length, 1);
		assert.equal(info[0].size, enc.encode(files["data/part-03.txt"]).length);
		const blob = await hub.downloadFile({ ...common(), repo: model, path: "data/part-03.txt" });
		assert.equal(await blob.text(), files["data/part-03.txt"]);
		assert.equal(await hub.fileExists({ ...common(), repo: model, path: "data/part-03.txt" }), true);
		assert.equal(await hub.fileExists({ ...common(), repo: model, path: "missing.txt" }), false);
		assert.equal(await hub.downloadFile({ ...common(), repo: model, path: "missing.txt" }), null);
	});

	it("pins an older tree with a branch", async () => {
		await hub.createBranch({ ...common(), repo: model, branch: "v1" });
		await hub.uploadFile({ ...common(), repo: model, useXet: false, file: { path: "later.txt", content: new Blob(["x"]) } });
		const atV1 = await collect(hub.listFiles({ ...common(), repo: model, revision: "v1" }));
		assert.ok(!atV1.some((e) => e.path === "later.txt"));
		const atSha = await collect(hub.listFiles({ ...common(), repo: model, revision: firstCommit }));
		assert.ok(!atSha.some((e) => e.path === "later.txt"));
		const atMain = await collect(hub.listFiles({ ...common(), repo: model }));
		assert.ok(atMain.some((e) => e.path === "later.txt"));
		const info = await hub.modelInfo({ ...common(), name: model.name, revision: "v1" });
		assert.equal(info.name, model.name);
		await hub.deleteBranch({ ...common(), repo: model, branch: "v1" });
		await assert.rejects(collect(hub.listFiles({ ...common(), repo: model, revision: "v1" })));
	});

	it("keeps the commit history", async () => {
		const commits = await collect(hub.listCommits({ ...common(), repo: model, batchSize: 2 }));
		assert.equal(commits.length, 3);
		assert.equal(commits[1].oid, firstCommit);
		assert.equal(await hub.countCommits({ ...common(), repo: model }), 3);
	});

	it("deletes a file, then the repo", async () => {
		await hub.deleteFile({ ...common(), repo: model, path: "later.txt" });
		assert.equal(await hub.fileExists({ ...common(), repo: model, path: "later.txt" }), false);
		await hub.deleteRepo({ ...common(), repo: model });
		assert.equal(await hub.repoExists({ ...common(), repo: model }), false);
	});
});
