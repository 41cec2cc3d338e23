// Fills a demo bucket on a local hub using the independent @huggingface/hub client.
// Usage: node scripts/demo-upload.mjs HUB_URL TOKEN NAMESPACE/BUCKET
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../tests/conformance/package.json"));
const hub = await import(require.resolve("@huggingface/hub"));

const [hubUrl, accessToken, name] = process.argv.slice(2);
const repo = { type: "bucket", name };
const common = { hubUrl, accessToken };
await hub.createRepo({ ...common, repo });
const big = new Uint8Array(20 * 1024 * 1024);
for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
await hub.uploadFiles({
  ...common,
  repo,
  files: [
    { path: "README.txt", content: new Blob(["Hello from a local Hugging Face bucket!\n"]) },
    { path: "data/numbers.csv", content: new Blob(["id,value\n1,42\n2,7\n3,1999\n"]) },
    { path: "checkpoints/weights.bin", content: new Blob([big]) },
  ],
});
console.log(`uploaded 3 files to bucket ${name}`);
console.log(`sha256 checkpoints/weights.bin ${createHash("sha256").update(big).digest("hex")}`);
