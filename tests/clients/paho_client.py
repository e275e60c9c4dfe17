"""A stock paho-mqtt client, with an identity token signed by PyJWT.

Subscribes to one conversation it belongs to and one it does not, prints
"SUBACK <codes>", then the first message it receives as
"MESSAGE <topic> <content>", and exits; the Rust test drives the server.
"""
import json
import sys

from common import parse_args, signed_client


def main() -> int:
    args = parse_args("allowed", "denied")
    client = signed_client(args, "Alice", f"paho-{args.sub}")
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
