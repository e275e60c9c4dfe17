"""paho-mqtt 2 in MQTTv5 mode, over TCP or WebSocket, with an identity token
signed by PyJWT.

Subscribes to its reply topic (below its own inbox), a conversation and a
filter it may not have, prints "SUBACK <reason codes>", sends `--content`
to the conversation as a command with a response topic and correlation
data, prints "REPLY <correlation data> <ok>" when the answer comes and
"MESSAGE <content>" when the message comes back on the conversation, and
exits; the Rust test checks the lines.
"""
import json
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import parse_args, signed_client


def main() -> int:
    args = parse_args("project", "conversation", "content", "transport")
    client = signed_client(args, "Paho Five", f"paho-v5-{args.sub}-{args.transport}",
                           protocol=mqtt.MQTTv5, transport=args.transport)
    replies = f"chat/{args.project}/user/{args.sub}/inbox/replies"
    conversation = f"chat/{args.project}/conv/{args.conversation}"
    seen = set()

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(f"CONNACK {reason_code}", flush=True)
            client.disconnect()
            return
        client.subscribe([(replies, 1), (conversation, 1), ("#", 1)])

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print("SUBACK " + " ".join(str(code.value) for code in reason_codes), flush=True)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = replies
        properties.CorrelationData = b"paho-1"
        command = {"id": "paho-send", "op": "message.send", "conversation_id": args.conversation,
                   "content": args.content}
        client.publish(f"chat/{args.project}/user/{args.sub}/outbox", json.dumps(command), qos=1,
                       properties=properties)

    def on_message(client, userdata, message):
        body = json.loads(message.payload)
        if message.topic == replies:
            correlation = message.properties.CorrelationData.decode()
            print(f"REPLY {correlation} {str(body['ok']).lower()}", flush=True)
            seen.add("reply")
        elif message.topic == conversation and body["type"] == "message.created":
            print(f"MESSAGE {body['data']['content']}", flush=True)
            seen.add("message")
        if seen == {"reply", "message"}:
            client.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=30)
    client.loop_forever(timeout=1.0)
    return 0 if seen == {"reply", "message"} else 1


if __name__ == "__main__":
    sys.exit(main())
