/**
 * The fixed development token used in emulator mode (SPEC section 3), like Azurite's well-known key:
 * not a secret, and accepted only by the partner billing emulator.
 */
export const EMULATOR_DEV_TOKEN = 'csp-unbilled-export-emulator-development-token';

/**
 * The fixed development token for the Partner Center API in emulator mode. Distinct from the Graph one, so
 * the emulator can prove that a Graph token never reaches Partner Center and the other way round.
 */
export const EMULATOR_PARTNER_CENTER_DEV_TOKEN = 'csp-unbilled-export-emulator-partner-center-development-token';
