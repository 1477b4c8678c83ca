// Copies the SVG icons next to the compiled nodes and credentials (tsc copies
// only .ts), keeping their folders: n8n resolves "file:wahaq.svg" from the
// compiled file's folder.
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
for (const dir of ['nodes', 'credentials', 'icons']) {
  const walk = (rel) => {
    const from = path.join(root, rel);
    if (!fs.existsSync(from)) return;
    for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
      const r = path.join(rel, entry.name);
      if (entry.isDirectory()) walk(r);
      else if (entry.name.endsWith('.svg')) {
        fs.mkdirSync(path.join(root, 'dist', rel), { recursive: true });
        fs.copyFileSync(path.join(root, r), path.join(root, 'dist', r));
      }
    }
  };
  walk(dir);
}
