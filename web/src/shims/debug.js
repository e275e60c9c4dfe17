// mqtt.js logs through `debug`; the SDK ships without its logging.
export default function debug() {
  const log = () => {};
  log.enabled = false;
  return log;
}
