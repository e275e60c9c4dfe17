// mqtt.js and mqtt-packet log through `debug` (`require('debug')(name)`);
// the SDK ships without their logging.
module.exports = function debug() {
  const log = () => {};
  log.enabled = false;
  return log;
};
