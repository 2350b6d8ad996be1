/**
 * The fixed development token used in emulator mode (SPEC section 3), like Azurite's well-known key:
 * not a secret, and accepted only by the partner billing emulator.
 */
export const EMULATOR_DEV_TOKEN = 'csp-unbilled-export-emulator-development-token';
