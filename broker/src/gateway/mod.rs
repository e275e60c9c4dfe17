//! The gateway: accepts clients over TCP, TLS and WebSocket and runs one
//! session per connection between the client and an in-process link into
//! rumqttd's router.
mod acks;
mod aliases;
mod connect;
mod downstream;
mod frames;
mod refusals;
mod screen;
mod session;
mod transport;
mod wills;
pub use mqchat_access::typing::TYPING_EVENT;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::authorizer::Authorizer;
use crate::embedded::{PlatformPublisher, RouterHandle};
use crate::plain::PlainRealm;
use crate::persistence::PlainState;
use crate::registry::Registry;
use crate::settings::GatewaySettings;
pub use screen::{screen_client_bytes, Closed};
use transport::BoxedIo;

/// Time a client has to finish its TLS or WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sockets the gateway serves, bound by the caller (port 0 works).
pub struct Listeners {
    /// MQTT over TCP (over TLS when `tls` is set).
    pub mqtt: TcpListener,
    /// MQTT over WebSocket (wss when `tls` is set).
    pub websocket: Option<TcpListener>,
    pub tls: Option<TlsAcceptor>,
}

pub(crate) struct Context {
    pub(crate) settings: GatewaySettings,
    pub(crate) authorizer: Arc<dyn Authorizer>,
    pub(crate) registry: Arc<Registry>,
    /// Where each session opens its link into rumqttd.
    pub(crate) router: RouterHandle,
    /// Publishes MQTT 5 wills after their delay (the connection's link is
    /// closed by then).
    pub(crate) publisher: PlatformPublisher,
    pub(crate) wills: Arc<wills::PendingWills>,
    /// Plain-MQTT clients: Mosquitto's password and ACL files.
    pub(crate) plain: Arc<PlainRealm>,
    /// Where plain clients' retained messages and sessions are kept.
    pub(crate) state: Option<Arc<dyn PlainState>>,
    /// One permit per live client connection.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// What the gateway asks and reaches besides its clients.
pub struct GatewayServices {
    /// Who a chat client is, and its memberships.
    pub authorizer: Arc<dyn Authorizer>,
    pub registry: Arc<Registry>,
    /// Where each session opens its link into rumqttd.
    pub router: RouterHandle,
    /// The platform's own link (delayed wills go out through it).
    pub publisher: PlatformPublisher,
    /// Plain-MQTT clients (an empty realm: none).
    pub plain: Arc<PlainRealm>,
    /// Keeps plain clients' retained messages and persistent sessions
    /// across restarts (`None`: in rumqttd's memory only).
    pub state: Option<Arc<dyn PlainState>>,
}

pub struct Gateway {
    context: Arc<Context>,
    listeners: Listeners,
}

#[derive(Clone, Copy)]
enum Transport {
    Mqtt,
    WebSocket,
}

impl Gateway {
    pub fn new(settings: GatewaySettings, services: GatewayServices, listeners: Listeners, shutdown: watch::Receiver<bool>) -> Gateway {
        let GatewayServices { authorizer, registry, router, publisher, plain, state } = services;
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        let context = Arc::new(Context {
            settings,
            authorizer,
            registry,
            router,
            publisher,
            wills: Arc::default(),
            plain,
            state,
            slots,
            shutdown,
        });
        Gateway { context, listeners }
    }

    /// Accepts clients until shutdown is signalled; live sessions end then too.
    pub async fn run(self) {
        let Gateway { context, listeners } = self;
        let tls = listeners.tls.clone();
        let mqtt = tokio::spawn(accept_loop(Arc::clone(&context), listeners.mqtt, tls.clone(), Transport::Mqtt));
        let websocket = listeners
            .websocket
            .map(|listener| tokio::spawn(accept_loop(Arc::clone(&context), listener, tls, Transport::WebSocket)));
        let _ = mqtt.await;
        if let Some(websocket) = websocket {
            let _ = websocket.await;
        }
    }
}

async fn accept_loop(context: Arc<Context>, listener: TcpListener, tls: Option<TlsAcceptor>, transport: Transport) {
    let mut shutdown = context.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let context = Arc::clone(&context);
                let tls = tls.clone();
                tokio::spawn(async move { serve(context, stream, peer, tls, transport).await });
            }
            Err(error) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(context: Arc<Context>, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, transport: Transport) {
    let _ = stream.set_nodelay(true);
    let io: BoxedIo = match tls {
        None => Box::new(stream),
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => Box::new(tls_stream),
            Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
        },
    };
    let (reader, writer, origin) = match transport {
        Transport::Mqtt => {
            let (reader, writer) = transport::split_stream(io);
            (reader, writer, None)
        }
        Transport::WebSocket => {
            let config = WebSocketConfig::default()
                .max_message_size(Some(context.settings.max_packet_size + 16))
                .max_frame_size(Some(context.settings.max_packet_size + 16));
            // The page's origin, judged against the project at CONNECT
            // (the handshake does not yet say which project).
            let mut origin = None;
            #[allow(clippy::result_large_err)] // the signature is tungstenite's callback
            let callback = |request: &Request, response: Response| {
                origin = request.headers().get("origin").and_then(|value| value.to_str().ok()).map(str::to_owned);
                negotiate_mqtt_subprotocol(request, response)
            };
            let handshake = tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(config));
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(ws)) => {
                    let (reader, writer) = transport::split_websocket(ws);
                    (reader, writer, origin)
                }
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "WebSocket handshake failed"),
                Err(_) => return tracing::debug!(%peer, "WebSocket handshake timed out"),
            }
        }
    };
    session::run(context, reader, writer, peer, origin).await;
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Answers the `mqtt` subprotocol when the client offers it (browsers'
/// MQTT clients require the echo); any path is accepted.
#[allow(clippy::result_large_err)] // the signature is tungstenite's callback
fn negotiate_mqtt_subprotocol(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find(|protocol| protocol.eq_ignore_ascii_case("mqtt") || protocol.eq_ignore_ascii_case("mqttv3.1"));
    if let Some(protocol) = offered.and_then(|p| HeaderValue::from_str(p).ok()) {
        response.headers_mut().insert("sec-websocket-protocol", protocol);
    }
    Ok(response)
}
