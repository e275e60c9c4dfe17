// mqtt.js is written for Node: the browser build gets `Buffer` and
// `process` from their npm ports.
export { Buffer } from 'buffer';
import process from 'process';
export { process };
