// Types for bin/build.js, which stays plain JavaScript so it runs before anything is compiled; used by its tests.
export function isStale(root?: string): boolean;
export function build(root?: string, outDir?: string): void;
export function ensureBuilt(root?: string): void;
