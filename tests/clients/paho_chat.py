"""Chats through mqchat with stock paho-mqtt and a PyJWT-signed token.

As `--sub`, sends a message to `--conversation`, edits it, deletes it, and
checks each reply on its inbox and each event on the conversation topic.
Prints "SENT <message id>" after the send and "DONE" at the end; exits 1
on anything unexpected.
"""
import json
import queue
import sys
import time

from common import parse_args, signed_client


def main() -> int:
    args = parse_args("project", "conversation")
    inbox = f"chat/{args.project}/user/{args.sub}/inbox"
    outbox = f"chat/{args.project}/user/{args.sub}/outbox"
    conversation = f"chat/{args.project}/conv/{args.conversation}"
    received = queue.Queue()
    subscribed = queue.Queue()

    client = signed_client(args, "Paho", f"paho-chat-{args.sub}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(inbox, 1), (conversation, 1)])
    client.on_subscribe = lambda c, u, mid, codes, p: subscribed.put([code.value for code in codes])
    client.on_message = lambda c, u, m: received.put((m.topic, json.loads(m.payload)))
    client.connect(args.host, args.port, keepalive=30)
    client.loop_start()

    # Everything received, in order: the event of a send arrives before its
    # reply, so nothing may be dropped while waiting for something else.
    seen = []

    def expect(topic, check):
        deadline = time.time() + 10
        index = 0
        while True:
            while index < len(seen):
                got_topic, body = seen[index]
                index += 1
                if got_topic == topic and check(body):
                    seen.remove((got_topic, body))
                    return body
            try:
                seen.append(received.get(timeout=max(0.0, deadline - time.time())))
            except queue.Empty:
                print(f"nothing matching on {topic}: {seen}", file=sys.stderr)
                sys.exit(1)

    def command(request_id, body):
        client.publish(outbox, json.dumps({"id": request_id, **body}), qos=1)
        reply = expect(inbox, lambda r: r.get("reply_to") == request_id)
        if not reply["ok"]:
            print(f"{request_id} failed: {reply}", file=sys.stderr)
            sys.exit(1)
        return reply["data"]

    if subscribed.get(timeout=10) != [1, 1]:
        return 1
    sent = command("1", {"op": "message.send", "conversation_id": args.conversation,
                         "content": "hello from paho", "client_msg_id": "paho-1"})["message"]
    print(f"SENT {sent['id']}", flush=True)
    expect(conversation, lambda e: e["type"] == "message.created" and e["data"]["id"] == sent["id"])
    edited = command("2", {"op": "message.edit", "message_id": sent["id"], "content": "edited by paho"})["message"]
    assert edited["edited"] and edited["content"] == "edited by paho"
    expect(conversation, lambda e: e["type"] == "message.updated" and e["data"]["content"] == "edited by paho")
    deleted = command("3", {"op": "message.delete", "message_id": sent["id"]})["message"]
    assert deleted["is_deleted"] and deleted["content"] == ""
    expect(conversation, lambda e: e["type"] == "message.deleted" and e["data"]["id"] == sent["id"])
    client.disconnect()
    client.loop_stop()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
