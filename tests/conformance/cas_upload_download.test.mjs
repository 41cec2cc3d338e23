// @huggingface/hub (an independent client) uploads through hf-local-hub's Xet CAS and reads
// everything back: buckets and a model repo, files of 0 B to 5 MB, identical files, dedup
// against an earlier upload, ranged downloads, append-edit, server-side copy by hash, delete.
// Every downloaded byte is compared with what was uploaded.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as hub from "@huggingface/hub";
import {
	USER,
	TOKEN,
	startLocalHub,
	makeDataDir,
	removeDir,
	randomBytes,
	storedXorbBytes,
	bytesOf,
	sameBytes,
} from "./lib/localhub.mjs";

let server;
let dataDir;
const common = () => ({ hubUrl: server.url, accessToken: TOKEN });
const bucket = { type: "bucket", name: `${USER}/cas-bucket` };
const model = { type: "model", name: `${USER}/cas-model` };

// The bucket's files, keyed by path.
const files = {
	"empty.bin": new Uint8Array(0),
	"one.bin": Uint8Array.of(0x2a),
	"medium.bin": randomBytes(300_000, 2),
	"big.bin": randomBytes(5_000_000, 3),
	"twin/a.bin": randomBytes(200_000, 4),
	"twin/b.bin": randomBytes(200_000, 4),
};

async function download(repo, path) {
	const blob = await hub.downloadFile({ ...common(), repo, path });
	assert.ok(blob, `${path}: downloadFile returned null`);
	return blob;
}

async function assertDownloads(repo, path, expected) {
	const blob = await download(repo, path);
	assert.equal(blob.size, expected.length, `${path}: size`);
	assert.equal(sameBytes(await bytesOf(blob), expected), "equal", `${path}: content`);
}

before(async () => {
	dataDir = await makeDataDir();
	server = await startLocalHub({ dataDir });
});

after(async () => {
	await server?.stop();
	await removeDir(dataDir);
});

describe("bucket over xet", () => {
	it("creates the bucket", async () => {
		await hub.createRepo({ ...common(), repo: bucket });
	});

	it("uploads 0 B, 1 B, 300 kB, 5 MB and two identical files", async () => {
		await hub.uploadFiles({
			...common(),
			repo: bucket,
			files: Object.entries(files).map(([path, data]) => ({ path, content: new Blob([data]) })),
		});
	});

	it("lists and describes them with xet hashes", async () => {
		const listed = [];
		for await (const entry of hub.listFiles({ ...common(), repo: bucket, recursive: true })) {
			if (entry.type === "file") listed.push(entry);
		}
		const byPath = Object.fromEntries(listed.map((e) => [e.path, e]));
		for (const [path, data] of Object.entries(files)) {
			assert.ok(byPath[path], `${path} listed`);
			assert.equal(byPath[path].size, data.length, `${path} size`);
			assert.match(byPath[path].xetHash ?? "", /^[0-9a-f]{64}$/, `${path} xetHash`);
		}
		assert.equal(byPath["twin/a.bin"].xetHash, byPath["twin/b.bin"].xetHash);
		assert.equal(byPath["empty.bin"].xetHash, "0".repeat(64));

		const info = await hub.pathsInfo({ ...common(), repo: bucket, paths: ["big.bin", "one.bin"] });
		const infoByPath = Object.fromEntries(info.map((e) => [e.path, e]));
		assert.equal(infoByPath["big.bin"].size, files["big.bin"].length);
		assert.equal(infoByPath["big.bin"].xetHash, byPath["big.bin"].xetHash);
		assert.equal(infoByPath["one.bin"].size, 1);
	});

	it("downloads every file whole", async () => {
		for (const [path, data] of Object.entries(files)) await assertDownloads(bucket, path, data);
	});

	it("downloads byte ranges", async () => {
		const big = await download(bucket, "big.bin");
		const expected = files["big.bin"];
		for (const [start, end] of [
			[0, 1],
			[1000, 250_000],
			[65_536, 65_537],
			[2_500_000, 4_000_000],
			[4_999_999, 5_000_000],
			[123_457, 5_000_000],
		]) {
			const got = await bytesOf(big.slice(start, end));
			assert.equal(sameBytes(got, expected.subarray(start, end)), "equal", `big.bin [${start}, ${end})`);
		}
		const medium = await download(bucket, "medium.bin");
		const got = await bytesOf(medium.slice(299_000, 300_000));
		assert.equal(sameBytes(got, files["medium.bin"].subarray(299_000)), "equal");
	});

	it("dedups a file that shares content with an earlier one", async () => {
		const before = await storedXorbBytes(dataDir);
		const extended = new Uint8Array(files["big.bin"].length + 100_000);
		extended.set(files["big.bin"]);
		extended.set(randomBytes(100_000, 5), files["big.bin"].length);
		await hub.uploadFile({ ...common(), repo: bucket, file: { path: "big-extended.bin", content: new Blob([extended]) } });
		const added = (await storedXorbBytes(dataDir)) - before;
		// Only the new tail (and the chunk around the seam) may be stored again.
		assert.ok(added < 1_000_000, `expected dedup against big.bin, but ${added} new xorb bytes were stored`);
		await assertDownloads(bucket, "big-extended.bin", extended);
		files["big-extended.bin"] = extended;
	});

	it("serves two ranges of one xorb as multipart/byteranges", async () => {
		// big[0, 1 MB) + new bytes + big[3 MB, 4 MB): the dedup answer for the first chunk lists
		// all of big.bin's xorb, so both slices reuse it and the file's terms name two separate
		// chunk ranges of that xorb — one signed URL with two ranges.
		const big = files["big.bin"];
		const spliced = new Uint8Array(2_200_000);
		spliced.set(big.subarray(0, 1_000_000));
		spliced.set(randomBytes(200_000, 9), 1_000_000);
		spliced.set(big.subarray(3_000_000, 4_000_000), 1_200_000);
		await hub.uploadFile({ ...common(), repo: bucket, file: { path: "spliced.bin", content: new Blob([spliced]) } });

		const seen = [];
		const recordingFetch = async (input, init) => {
			const resp = await fetch(input, init);
			const range = new Headers(init?.headers).get("range");
			if (String(input).includes("/v1/fetch/")) seen.push({ range, type: resp.headers.get("content-type"), status: resp.status });
			return resp;
		};
		const blob = await hub.downloadFile({ ...common(), repo: bucket, path: "spliced.bin", fetch: recordingFetch });
		assert.equal(sameBytes(await bytesOf(blob), spliced), "equal");
		const multi = seen.filter((s) => s.range?.includes(","));
		assert.ok(multi.length > 0, `expected a multi-range fetch, saw ${JSON.stringify(seen)}`);
		for (const s of multi) {
			assert.equal(s.status, 206);
			assert.match(s.type, /^multipart\/byteranges; boundary=/);
		}
		files["spliced.bin"] = spliced;
	});

	it("appends to a file (edit)", async () => {
		const original = await download(bucket, "medium.bin");
		const tail = randomBytes(50_000, 6);
		await hub.commit({
			...common(),
			repo: bucket,
			title: "append",
			operations: [
				{
					operation: "edit",
					path: "medium.bin",
					originalContent: original,
					edits: [{ start: original.size, end: original.size, content: new Blob([tail]) }],
				},
			],
		});
		const expected = new Uint8Array(files["medium.bin"].length + tail.length);
		expected.set(files["medium.bin"]);
		expected.set(tail, files["medium.bin"].length);
		await assertDownloads(bucket, "medium.bin", expected);
		files["medium.bin"] = expected;
	});

	it("copies a file server-side by hash", async () => {
		await hub.copyFile({
			...common(),
			source: { repo: bucket, path: "big.bin" },
			destination: { repo: bucket, path: "copies/big.bin" },
		});
		await assertDownloads(bucket, "copies/big.bin", files["big.bin"]);
	});

	it("deletes a file", async () => {
		await hub.deleteFile({ ...common(), repo: bucket, path: "twin/b.bin" });
		const gone = await hub.downloadFile({ ...common(), repo: bucket, path: "twin/b.bin" });
		assert.equal(gone, null);
		// Its identical twin shares the same xet file and is unaffected.
		await assertDownloads(bucket, "twin/a.bin", files["twin/a.bin"]);
	});
});

describe("model repo over xet", () => {
	const modelFiles = {
		"weights.bin": randomBytes(5_000_000, 7),
		"small.bin": randomBytes(300_000, 8),
		"README.md": new TextEncoder().encode("# cas conformance\n"),
	};

	it("creates the repo and uploads with xet", async () => {
		await hub.createRepo({ ...common(), repo: model });
		await hub.uploadFiles({
			...common(),
			repo: model,
			files: Object.entries(modelFiles).map(([path, data]) => ({ path, content: new Blob([data]) })),
		});
	});

	it("downloads whole files and ranges", async () => {
		for (const [path, data] of Object.entries(modelFiles)) await assertDownloads(model, path, data);
		const weights = await download(model, "weights.bin");
		const got = await bytesOf(weights.slice(3_000_001, 3_700_000));
		assert.equal(sameBytes(got, modelFiles["weights.bin"].subarray(3_000_001, 3_700_000)), "equal");
	});

	it("copies a model file into the bucket by hash", async () => {
		await hub.copyFile({
			...common(),
			source: { repo: model, path: "small.bin" },
			destination: { repo: bucket, path: "from-model/small.bin" },
		});
		await assertDownloads(bucket, "from-model/small.bin", modelFiles["small.bin"]);
	});
});

describe("cleanup", () => {
	it("deletes the bucket", async () => {
		await hub.deleteRepo({ ...common(), repo: bucket });
		const gone = await hub
			.downloadFile({ ...common(), repo: bucket, path: "big.bin" })
			.then((b) => b, (e) => e);
		assert.ok(gone === null || gone instanceof Error, "bucket content must be gone");
	});
});
