/**
 * The interaction policy: which prompts a request may need, as data.
 * `login` (who are you) and `consent` (third-party apps only, since
 * first-party grants are created in loadExistingGrant) come from the library.
 */
import { interactionPolicy as library } from 'oidc-provider';

export function interactionPolicy() {
  return library.base();
}
