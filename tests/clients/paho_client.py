"""A stock paho-mqtt client, with an identity token signed by PyJWT.

Subscribes to one conversation it belongs to and one it does not, prints
"SUBACK <codes>", then the first message it receives as
"MESSAGE <topic> <content>", and exits; the Rust test drives the server.
"""
import argparse
import json
import sys
import time

import jwt
import paho.mqtt.client as mqtt


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("host", "public-key", "secret-key", "sub", "allowed", "denied"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    now = int(time.time())
    token = jwt.encode({"sub": args.sub, "name": "Alice", "iat": now, "exp": now + 600},
                       args.secret_key, algorithm="HS256")

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{args.sub}",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(args.public_key, token)
    done = {"code": 1}

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(f"CONNACK {reason_code}", flush=True)
            client.disconnect()
            return
        client.subscribe([(args.allowed, 1), (args.denied, 1)])

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print("SUBACK " + " ".join(str(code.value) for code in reason_codes), flush=True)

    def on_message(client, userdata, message):
        content = json.loads(message.payload)["data"]["content"]
        print(f"MESSAGE {message.topic} {content}", flush=True)
        done["code"] = 0
        client.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=30)
    client.loop_forever(timeout=1.0)
    return done["code"]


if __name__ == "__main__":
    sys.exit(main())
