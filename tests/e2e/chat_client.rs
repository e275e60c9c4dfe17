//! A chat user's MQTT client for the tests: commands on its outbox, replies
//! and per-user events on its inbox.
use rumqttc::QoS;
use serde_json::{json, Value};

use crate::helpers::{granted, payload_json, TestApp, TestClient};

/// A user's client, subscribed to its own inbox.
pub struct ChatClient {
    pub client: TestClient,
    pub inbox: String,
    pub outbox: String,
    next_id: u64,
}

impl ChatClient {
    pub async fn connect(app: &TestApp, user: &str) -> ChatClient {
        let mut client = app.client(user).await;
        let inbox = format!("chat/{}/user/{user}/inbox", app.project_id());
        assert!(granted(&client.subscribe(&inbox).await));
        ChatClient { client, inbox, outbox: format!("chat/{}/user/{user}/outbox", app.project_id()), next_id: 0 }
    }

    /// Publishes `command` (given an `id`) and returns its reply.
    pub async fn command(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = format!("req-{}", self.next_id);
        command["id"] = json!(id);
        self.client.client.publish(self.outbox.clone(), QoS::AtLeastOnce, false, command.to_string()).await.unwrap();
        self.reply(&id).await
    }

    pub async fn reply(&mut self, id: &str) -> Value {
        loop {
            let reply = payload_json(&self.client.publish_on(&self.inbox).await);
            if reply["reply_to"] == id {
                return reply;
            }
        }
    }

    /// The next event of type `kind` on the inbox, skipping everything else.
    pub async fn inbox_event(&mut self, kind: &str) -> Value {
        loop {
            let event = payload_json(&self.client.publish_on(&self.inbox).await);
            if event["type"] == kind {
                return event["data"].clone();
            }
        }
    }

    pub async fn raw(&mut self, payload: &str) -> Value {
        self.client.client.publish(self.outbox.clone(), QoS::AtLeastOnce, false, payload.to_owned()).await.unwrap();
        payload_json(&self.client.publish_on(&self.inbox).await)
    }
}

pub fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "{reply}");
    reply["error"]["code"].as_str().unwrap()
}

