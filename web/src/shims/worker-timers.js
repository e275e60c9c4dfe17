// mqtt.js imports worker-timers for keep-alives in background tabs; the
// SDK runs with `timerVariant: "native"` and leaves that package (about
// 30 KB, and a blob: worker a strict CSP refuses) out of the bundle. Its
// keep-alive of 60 s is cut by the server after 90 s of silence, beyond
// the once-a-minute timers of a throttled background tab; a connection
// lost anyway is resumed with history.sync, losing nothing.
export const { setInterval, clearInterval, setTimeout, clearTimeout } = globalThis;
