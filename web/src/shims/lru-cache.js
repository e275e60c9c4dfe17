// mqtt.js uses lru-cache (20 KB) only for MQTT 5 topic aliases, which the
// SDK (MQTT 3.1.1) never sets; this Map keeps the same behaviour for the
// calls mqtt.js makes (get refreshes, set evicts the least recent past max).
export class LRUCache {
  constructor({ max }) {
    this.max = max;
    this.map = new Map();
  }

  get size() {
    return this.map.size;
  }

  get(key) {
    if (!this.map.has(key)) return undefined;
    const value = this.map.get(key);
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  set(key, value) {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value);
    return this;
  }

  keys() {
    return [...this.map.keys()].reverse()[Symbol.iterator]();
  }

  clear() {
    this.map.clear();
  }
}
