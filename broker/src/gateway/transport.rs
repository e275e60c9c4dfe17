//! Byte transports a client can use: plain or TLS TCP, and MQTT over
//! WebSocket (binary frames carry the MQTT byte stream, split anywhere).
use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Any byte stream: a TcpStream or a TLS stream over one.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(crate) type BoxedIo = Box<dyn Io>;
type Ws = WebSocketStream<BoxedIo>;

/// Smallest and largest spare room kept in a read buffer before a read.
const MIN_READ: usize = 1024;
const MAX_READ: usize = 64 * 1024;

pub(crate) enum ClientReader {
    /// With the size of the last read, to size the next one.
    Stream(tokio::io::ReadHalf<BoxedIo>, usize),
    WebSocket(SplitStream<Ws>),
}

pub(crate) enum ClientWriter {
    Stream(tokio::io::WriteHalf<BoxedIo>),
    WebSocket(SplitSink<Ws, Message>),
}

pub(crate) fn split_stream(io: BoxedIo) -> (ClientReader, ClientWriter) {
    let (read, write) = tokio::io::split(io);
    (ClientReader::Stream(read, 0), ClientWriter::Stream(write))
}

pub(crate) fn split_websocket(ws: Ws) -> (ClientReader, ClientWriter) {
    let (write, read) = ws.split();
    (ClientReader::WebSocket(read), ClientWriter::WebSocket(write))
}

/// Makes room for the next read: twice what the last read returned, within
/// bounds, so busy connections read large chunks (fewer syscalls) and idle
/// ones give their memory back.
fn reserve_for_read(buf: &mut BytesMut, last_read: usize) {
    let want = (last_read * 2).clamp(MIN_READ, MAX_READ);
    if buf.is_empty() && buf.capacity() > 4 * want {
        *buf = BytesMut::new();
    }
    if buf.capacity() - buf.len() < want {
        buf.reserve(want);
    }
}

impl ClientReader {
    /// Appends what arrives to `buf`; `Ok(0)` means the client closed.
    pub(crate) async fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ClientReader::Stream(read, last_read) => {
                reserve_for_read(buf, *last_read);
                let read = read.read_buf(buf).await?;
                *last_read = read;
                Ok(read)
            }
            ClientReader::WebSocket(read) => loop {
                match read.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "MQTT over WebSocket uses binary frames"))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => return Err(io::Error::other(error)),
                }
            },
        }
    }
}

impl ClientWriter {
    pub(crate) async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            ClientWriter::Stream(write) => write.write_all(data).await,
            ClientWriter::WebSocket(write) => {
                write.send(Message::Binary(Bytes::copy_from_slice(data))).await.map_err(io::Error::other)
            }
        }
    }

    pub(crate) async fn close(&mut self) {
        let _ = match self {
            ClientWriter::Stream(write) => write.shutdown().await,
            ClientWriter::WebSocket(write) => write.close().await.map_err(io::Error::other),
        };
    }
}
