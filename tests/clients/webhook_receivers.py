"""Two webhook receivers as sites deploy them, in one Flask app:

- /webhooks/projectm: seed 000's Python (Flask) receiver, unchanged in
  substance. It reads the secret from PROJECT_M_WEBHOOK_SECRET, recomputes
  "sha256=" + HMAC-SHA256 of the raw body and compares in constant time,
  answering 401 on a mismatch.
- /webhooks/standard: the Standard Webhooks reference library
  (`standardwebhooks`) verifying webhook-id / webhook-timestamp /
  webhook-signature with the same secret, 401 on failure.

Listens on 127.0.0.1 on a free port, prints "listening <port>", then one
line per verified event ("Received: <type> <id>" / "Standard: <type> <id>").
"""
import hashlib
import hmac
import os
import threading

from flask import Flask, abort, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server

app = Flask(__name__)
SECRET = os.environ["PROJECT_M_WEBHOOK_SECRET"].encode()
# Requests are served on threads; print() writes a line and its newline
# separately, so two receivers printing at once could interleave.
PRINT_LOCK = threading.Lock()


def say(line):
    with PRINT_LOCK:
        print(line, flush=True)


@app.route("/webhooks/projectm", methods=["POST"])
def webhook():
    signature = request.headers.get("X-Signature", "")
    body = request.get_data()  # raw bytes
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        abort(401)
    event = request.get_json()
    say(f"Received: {event['type']} {event['id']}")
    # Process async / enqueue a job, then return 200 fast
    return "OK", 200


@app.route("/webhooks/standard", methods=["POST"])
def standard():
    try:
        event = Webhook(SECRET.decode()).verify(request.get_data(), dict(request.headers))
    except WebhookVerificationError:
        abort(401)
    say(f"Standard: {event['type']} {event['id']}")
    return "OK", 200


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()
