"""What both paho-mqtt test clients share: the command line and a client
that logs in as `--sub` with an identity token signed by PyJWT, exactly as
a site backend would sign it."""
import argparse
import time

import jwt
import paho.mqtt.client as mqtt


def parse_args(*names: str) -> argparse.Namespace:
    """`--host --port --public-key --secret-key --sub` plus `names`, all required."""
    parser = argparse.ArgumentParser()
    for name in ("host", "public-key", "secret-key", "sub", *names):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args()


def signed_client(args: argparse.Namespace, display_name: str, client_id: str,
                  protocol: int = mqtt.MQTTv311, transport: str = "tcp") -> mqtt.Client:
    """A client (MQTT 3.1.1 unless `protocol` says otherwise) whose password
    is a fresh 10-minute identity token."""
    now = int(time.time())
    token = jwt.encode({"sub": args.sub, "name": display_name, "iat": now, "exp": now + 600},
                       args.secret_key, algorithm="HS256")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                         transport=transport)
    client.username_pw_set(args.public_key, token)
    return client
