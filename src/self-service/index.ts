/**
 * Self-service: what a person may do to their own account, each operation one
 * function with a zod-validated input and an audit event naming the actor.
 * The account center's routes (src/account/) are thin over these; an admin
 * API or the CLI can call the same with an administrator as actor.
 */
export { actingSchema, type Acting } from './acting.ts';
export { accountOverview, type AccountOverview } from './overview.ts';
export { listMethods, renameMethod, checkMethodRemoval, removeMethod, recordRemovalRefused, type MethodView, type RemovalCheck } from './methods.ts';
export { backupCodesStatus, regenerateBackupCodes, recoveryFactor, LOW_CODES, type BackupCodesStatus } from './backup-codes.ts';
export { listTrustedDevices, revokeTrustedDevice, type DeviceView } from './devices.ts';
export { listSessions, endSession, endAllSessions, type SessionView } from './sessions.ts';
export { listApps, revokeApp, type AppView } from './apps.ts';
