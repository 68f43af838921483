import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The account center's views, registered as `account/<name>` beside the sign-in pages (same layout and stylesheet). */
export const ACCOUNT_VIEWS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'views');
