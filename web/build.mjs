// Builds the chat page into dist/: the page's own files from src/, and the
// official Socket.IO client's ES module build from node_modules (installed
// by `npm ci` from package-lock.json; nothing third-party is committed).
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const client = join(here, "node_modules", "socket.io-client", "dist");

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "vendor"), { recursive: true });
cpSync(join(here, "src"), dist, { recursive: true });
for (const file of ["socket.io.esm.min.js", "socket.io.esm.min.js.map"]) {
  cpSync(join(client, file), join(dist, "vendor", file));
}
console.log(`built ${dist}`);
