"""The Python (Flask) webhook receiver of seed 000, as a site would deploy it.

The route is the seed's code unchanged in substance: it reads the secret from
PROJECT_M_WEBHOOK_SECRET, recomputes "sha256=" + HMAC-SHA256 of the raw body
and compares in constant time, answering 401 on a mismatch. It listens on
127.0.0.1 on a free port, prints "listening <port>", then one line per
verified event ("Received: <type> <id>").
"""
import hashlib
import hmac
import os
import sys

from flask import Flask, abort, request
from werkzeug.serving import make_server

app = Flask(__name__)
SECRET = os.environ["PROJECT_M_WEBHOOK_SECRET"].encode()


@app.route("/webhooks/projectm", methods=["POST"])
def webhook():
    signature = request.headers.get("X-Signature", "")
    body = request.get_data()  # raw bytes
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        abort(401)
    event = request.get_json()
    print(f"Received: {event['type']} {event['id']}", flush=True)
    # Process async / enqueue a job, then return 200 fast
    return "OK", 200


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"listening {server.server_port}", flush=True)
    sys.stdout.flush()
    server.serve_forever()
