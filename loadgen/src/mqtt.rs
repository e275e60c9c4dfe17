//! rumqttc's MQTT 3.1.1 and MQTT 5 clients behind one face, so a scenario
//! runs with either (`--mqtt-version`) and the two are measured alike.
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as v5_packets;

use crate::Target;

pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

pub enum Events {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

/// What a scenario looks at in what the broker sends.
pub enum Incoming {
    Publish(Bytes),
    SubAck { granted: bool },
    Other,
}

/// The MQTT 5 client's name for a QoS (`crate::qos` checked the level).
fn qos5(qos: rumqttc::QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        rumqttc::QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        rumqttc::QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        rumqttc::QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

/// Connects client `index` in `role` and waits for a successful CONNACK.
pub async fn connect(target: &Target, index: usize, role: &str, capacity: usize) -> anyhow::Result<(Client, Events)> {
    if target.mqtt_version == 4 {
        let (client, eventloop) = crate::connect(target.options(index, role)?, capacity).await?;
        return Ok((Client::V4(client), Events::V4(Box::new(eventloop))));
    }
    anyhow::ensure!(target.mqtt_version == 5, "--mqtt-version is 4 or 5");
    let mut options = rumqttc::v5::MqttOptions::new(format!("{role}-{index}-{}", std::process::id()), target.host.clone(), target.port);
    options.set_keep_alive(Duration::from_secs(60));
    options.set_max_packet_size(Some(1 << 20));
    options.set_outgoing_inflight_upper_limit(100);
    // Measure the broker, not the client's Nagle delays.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    options.set_network_options(network);
    if let Some((username, password)) = target.credentials(index)? {
        options.set_credentials(username, password);
    }
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, capacity);
    loop {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await.context("CONNACK timed out")?? {
            rumqttc::v5::Event::Incoming(v5_packets::Packet::ConnAck(ack)) if ack.code == v5_packets::ConnectReturnCode::Success => {
                return Ok((Client::V5(client), Events::V5(Box::new(eventloop))))
            }
            rumqttc::v5::Event::Incoming(v5_packets::Packet::ConnAck(ack)) => anyhow::bail!("refused: {:?}", ack.code),
            _ => {}
        }
    }
}

impl Client {
    pub async fn publish(&self, topic: &str, qos: rumqttc::QoS, payload: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Client::V4(client) => client.publish(topic, qos, false, payload).await?,
            Client::V5(client) => client.publish(topic, qos5(qos), false, payload).await?,
        }
        Ok(())
    }

    pub async fn subscribe(&self, filter: &str, qos: rumqttc::QoS) -> anyhow::Result<()> {
        match self {
            Client::V4(client) => client.subscribe(filter, qos).await?,
            Client::V5(client) => client.subscribe(filter, qos5(qos)).await?,
        }
        Ok(())
    }

    pub async fn disconnect(&self) {
        let _ = match self {
            Client::V4(client) => client.disconnect().await.map_err(|_| ()),
            Client::V5(client) => client.disconnect().await.map_err(|_| ()),
        };
    }
}

impl Events {
    pub async fn next(&mut self) -> anyhow::Result<Incoming> {
        Ok(match self {
            Events::V4(eventloop) => match eventloop.poll().await? {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish)) => Incoming::Publish(publish.payload),
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack)) => Incoming::SubAck {
                    granted: ack.return_codes.iter().all(|code| matches!(code, rumqttc::SubscribeReasonCode::Success(_))),
                },
                _ => Incoming::Other,
            },
            Events::V5(eventloop) => match eventloop.poll().await? {
                rumqttc::v5::Event::Incoming(v5_packets::Packet::Publish(publish)) => Incoming::Publish(publish.payload),
                rumqttc::v5::Event::Incoming(v5_packets::Packet::SubAck(ack)) => Incoming::SubAck {
                    granted: ack.return_codes.iter().all(|code| matches!(code, v5_packets::SubscribeReasonCode::Success(_))),
                },
                _ => Incoming::Other,
            },
        })
    }
}
