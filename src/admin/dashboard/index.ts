import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpError, type Route } from '../server.js';

/**
 * The dashboard (docs/operations.md): static HTML, CSS and JavaScript modules from `assets/` (copied beside the
 * compiled code by scripts/build.mjs), served open because they hold no data. The page asks for credentials and
 * reads everything through the REST API with them, so the API's scopes, bans and audit apply as to any client.
 */

/** The assets folder beside this module: src/admin/dashboard/assets in the sources, dist/src/... once built. */
const ASSETS = fileURLToPath(new URL('./assets/', import.meta.url));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Nothing but this origin's own files, no inline script or style, no framing (clickjacking a Kick button), no
 * plugins, no <base> and no form posting elsewhere. The API is fetched from the same origin.
 */
export const DASHBOARD_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
  + "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HEADERS = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

interface Asset { text: string; contentType: string }

/** Every file under `folder`, by its path relative to it ("views/overview.js"); empty when the folder is missing. */
function readAssets(folder: string, prefix = '', into = new Map<string, Asset>()): Map<string, Asset> {
  let entries;
  try {
    entries = readdirSync(folder, { withFileTypes: true });
  } catch {
    return into;
  }
  for (const entry of entries) {
    const name = `${prefix}${entry.name}`;
    if (entry.isDirectory()) readAssets(path.join(folder, entry.name), `${name}/`, into);
    else {
      const contentType = CONTENT_TYPES[path.extname(entry.name)];
      if (contentType) into.set(name, { text: readFileSync(path.join(folder, entry.name), 'utf8'), contentType });
    }
  }
  return into;
}

/** `/` (the page) and `/dashboard/{file}` (its assets): only the files read at start-up are served, by exact name. */
export function dashboardRoutes(folder = ASSETS): Route[] {
  const assets = readAssets(folder);
  const serve = (name: string): { text: string; contentType: string; headers: Record<string, string> } => {
    const asset = assets.get(name);
    if (!asset) throw new HttpError(404, assets.size === 0 ? 'the dashboard is not installed (no assets beside the code; run npm run build)' : `no such file: ${name}`);
    return { ...asset, headers: HEADERS };
  };
  return [
    { method: 'GET', path: '/', access: 'open', handle: () => serve('index.html') },
    // Assets are not audited: a page load fetches a dozen, and they hold no data; opening `/` is.
    { method: 'GET', path: '/dashboard/{file*}', access: 'open', audited: false, handle: ({ params }) => serve(params.file!) },
  ];
}
