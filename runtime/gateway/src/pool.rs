//! Keep-alive HTTP/1.1 connections to one upstream, owned by one gateway thread, and
//! the proxy's own HTTP/1.1 client on them.
//!
//! A request and its response are handled on the task that serves the client's
//! connection: the request is written to a pooled connection, and the response is
//! read from it as hyper's server asks for the body. No task runs per upstream
//! connection and no channel passes messages between tasks, so a proxied request
//! costs about a sixth fewer instructions than on hyper's client connections. The
//! connection goes back to the pool as the response's last byte is read.
//!
//! What is read follows RFC 9112: the response's length comes from `Content-Length`,
//! chunked coding (decoded here, trailer fields passed on; hyper's server frames the
//! body anew for the client) or the end of the connection; interim (1xx) responses
//! are skipped. What is written is framed by the pool: a request body is sent with
//! the `Content-Length` it really has (checked against the header it came with) or
//! chunked with its trailers, so the upstream never reads a request boundary other
//! than the gateway's.
//!
//! A request body and its response travel at once (full duplex). While the body is
//! written, the connection is watched for the response; one that starts before the
//! body has all been sent (an upstream that answers as it reads, or refuses early)
//! is passed on at once, and the rest of the body is written as the response's
//! body is asked for. An early error response stops the body there: the upstream
//! has said it does not want it. A response that ends while its request is still
//! being written ends the exchange too: the upstream has answered, and waiting on
//! one that stopped reading would hold the client forever. The rest of that body is
//! not sent, and the connection is closed. A connection goes back to the pool only
//! when both the request and its response were whole.
//!
//! A response's body waits for its upstream at most the upstream time limit at a
//! time (as nginx's `proxy_read_timeout`): past it, with nothing read from the
//! upstream and nothing of the request written to it, the response is cut off and
//! its connection closed, so the client is not held forever. The time runs only
//! while the gateway waits for the upstream: not while the client is slow to take
//! the response, and not while the request's body waits for the client.
//!
//! Part of the msgen runtime: the same in every msgen project, upgraded by
//! `msgen generate` (your edits to it are merged, not lost).

use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, Request, Response, StatusCode};
use bytes::{Buf, BytesMut};
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// Idle connections kept per upstream and thread; more are closed after use.
const MAX_IDLE: usize = 128;

/// An idle connection unused for this long is closed (when the pool is next used).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response head read, and the most header fields in it.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// Bytes asked of the socket at once.
const READ_SIZE: usize = 8 * 1024;

/// Request body bytes gathered before they are written.
const WRITE_SIZE: usize = 64 * 1024;

/// A handle to the pool; clones share it.
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

struct Inner {
    /// `host:port`.
    address: String,
    /// `Host` of every request sent: no user info, no default port.
    host: HeaderValue,
    connect_timeout: Duration,
    /// The longest a response's body waits for its upstream at a time.
    read_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One connection, and what has been read from it and not yet used.
struct Conn {
    stream: TcpStream,
    read: BytesMut,
    /// Scratch space of [`parse_head`], kept to be reused.
    fields: Vec<(HeaderName, usize, usize)>,
}

#[derive(Debug)]
pub enum Error {
    /// No connection could be made.
    Connect(io::Error),
    /// The connection failed while the request was sent or the response's head read.
    Io(io::Error),
    /// The upstream's response was not HTTP/1.1.
    Protocol(&'static str),
    /// The client's request body could not be read.
    Body(axum::Error),
    /// The request's body and its `Content-Length` disagree (or the header is not
    /// one number): sending it would leave the upstream reading a different
    /// request boundary than the gateway's, so it is not sent (or not finished).
    Length(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(err) => write!(f, "cannot connect: {err}"),
            Error::Io(err) => write!(f, "connection failed: {err}"),
            Error::Protocol(what) => write!(f, "bad response: {what}"),
            Error::Body(err) => write!(f, "request body: {err}"),
            Error::Length(what) => write!(f, "request framing: {what}"),
        }
    }
}

impl std::error::Error for Error {}

/// How a failed exchange ended.
enum Failed {
    /// Nothing of a response came before the connection failed or closed: on a pooled
    /// connection, the upstream had closed it while it sat idle.
    NoResponse(io::Error),
    Other(Error),
}

impl From<Error> for Failed {
    fn from(err: Error) -> Self {
        Failed::Other(err)
    }
}

impl Pool {
    /// A pool of connections to `host`, on `port`. A response whose body waits for
    /// its upstream for `read_timeout` at a time is cut off.
    pub fn new(
        host: &str,
        port: u16,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, InvalidHeaderValue> {
        let host_header = match port {
            80 => HeaderValue::from_str(host)?,
            _ => HeaderValue::from_str(&format!("{host}:{port}"))?,
        };
        Ok(Self(Arc::new(Inner {
            address: format!("{host}:{port}"),
            host: host_header,
            connect_timeout,
            // As far as tokio's timers reach (thirty years): a huge setting means no
            // limit, not a deadline past the end of time.
            read_timeout: read_timeout.min(Duration::from_secs(30 * 365 * 86_400)),
            idle: Mutex::new(Vec::new()),
        })))
    }

    /// Sends `request` (origin-form URI) to this upstream, with its `Host`, and
    /// returns the response, its body streamed.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, Error> {
        let (parts, body) = request.into_parts();
        let mut head = Vec::with_capacity(512);
        let sending = self.encode_head(&parts, &body, &mut head)?;
        // Sent again on a new connection if a pooled one turns out closed: safe only
        // when nothing of the body has been taken and the method is idempotent.
        let replayable = body.is_end_stream() && is_idempotent(&parts.method);
        let head_only = parts.method == Method::HEAD;
        let mut upload = Upload::new(head, body, sending);
        loop {
            let (mut conn, pooled) = match self.take_idle() {
                Some(conn) => (conn, true),
                None => (self.connect().await?, false),
            };
            // Bytes the upstream sent on an idle connection (a 408 before closing it,
            // say) would be taken for this request's response.
            if pooled && !conn.is_quiet().await {
                continue;
            }
            upload.rewind();
            match conn.exchange(&mut upload, head_only, replayable).await {
                Ok((head, broken)) => {
                    let status = head.response.status();
                    let refused = status.is_client_error() || status.is_server_error();
                    // The rest of the body goes with the response's, unless the
                    // upstream refused it or stopped reading it: the connection then
                    // serves no other request.
                    let (rest, reuse) = if upload.is_sent() {
                        (None, head.reuse)
                    } else if broken || refused {
                        (None, false)
                    } else {
                        (Some(upload), head.reuse)
                    };
                    let body = ResponseBody::new(conn, head.framing, reuse, rest, self.clone());
                    return Ok(head.response.map(|()| Body::new(body)));
                }
                Err(Failed::NoResponse(_)) if pooled && replayable => continue,
                Err(Failed::NoResponse(err)) => return Err(Error::Io(err)),
                Err(Failed::Other(err)) => return Err(err),
            }
        }
    }

    /// Writes the request line and header fields, and returns how the body follows.
    /// The framing is the pool's to decide: a `Content-Length` the request carries is
    /// checked against the body's own length and written anew, and
    /// `Transfer-Encoding` (hop-by-hop) is never passed on.
    fn encode_head(&self, parts: &Parts, body: &Body, out: &mut Vec<u8>) -> Result<Sending, Error> {
        out.extend_from_slice(parts.method.as_str().as_bytes());
        out.push(b' ');
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.0.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &parts.headers {
            // The client's `Expect: 100-continue` was answered by the gateway's server.
            if name == header::HOST
                || name == header::EXPECT
                || name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
            {
                continue;
            }
            push_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
        let declared = declared_length(&parts.headers)?;
        let sending = match (declared, body.size_hint().exact()) {
            (Some(declared), Some(exact)) if declared != exact => {
                return Err(Error::Length("the body's length is not its Content-Length"));
            }
            (None, _) if body.is_end_stream() => Sending::Length(0),
            (Some(length), _) | (None, Some(length)) => {
                push_field(out, b"content-length", length.to_string().as_bytes());
                Sending::Length(length)
            }
            (None, None) => {
                push_field(out, b"transfer-encoding", b"chunked");
                Sending::Chunked
            }
        };
        out.extend_from_slice(b"\r\n");
        Ok(sending)
    }

    /// The newest idle connection, after dropping those idle too long.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.0.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Oldest first: all the expired ones are at the front.
        let expired = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) >= IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
        // Newest first: the most likely to be still open.
        idle.pop().map(|i| i.conn)
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let connect = TcpStream::connect(self.0.address.as_str());
        let stream = tokio::time::timeout(self.0.connect_timeout, connect)
            .await
            .map_err(|_| Error::Connect(io::ErrorKind::TimedOut.into()))?
            .map_err(Error::Connect)?;
        stream.set_nodelay(true).map_err(Error::Connect)?;
        Ok(Conn {
            stream,
            read: BytesMut::with_capacity(READ_SIZE),
            fields: Vec::new(),
        })
    }

    fn put_back(&self, conn: Conn) {
        let mut idle = self.0.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            // The oldest goes: the least likely to be used again soon.
            idle.remove(0);
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

/// Whether a field may travel as a trailer: not one that frames, routes,
/// authenticates or controls the message (RFC 9110, 6.5.1), which a recipient
/// could otherwise take from the end of a body where no check saw it.
fn may_trail(name: &HeaderName) -> bool {
    ![
        header::AUTHORIZATION,
        header::CONNECTION,
        header::CONTENT_ENCODING,
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::CONTENT_TYPE,
        header::COOKIE,
        header::EXPECT,
        header::HOST,
        header::PROXY_AUTHORIZATION,
        header::SET_COOKIE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ]
    .contains(name)
}

/// How a request's body follows its head.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sending {
    /// Exactly this many bytes (no header when the request has no body).
    Length(u64),
    /// Chunked coding, ended by a last chunk that carries the body's trailers.
    Chunked,
}

/// The request's `Content-Length`, if it has one: one number, however many times
/// it is repeated. Anything else is refused rather than guessed at.
fn declared_length(headers: &axum::http::HeaderMap) -> Result<Option<u64>, Error> {
    let mut declared = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let length = digits(part.trim_ascii(), 10)
                .ok_or(Error::Length("Content-Length is not a number"))?;
            if declared.is_some_and(|d| d != length) {
                return Err(Error::Length("conflicting Content-Length values"));
            }
            declared = Some(length);
        }
    }
    Ok(declared)
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A request's head and body as they are written: what is gathered and not yet
/// written, and how the rest of the body is framed.
struct Upload {
    body: Body,
    out: Vec<u8>,
    /// How much of `out` is written.
    written: usize,
    /// Bytes written in all: what tells that the upstream is still reading.
    sent: u64,
    chunked: bool,
    /// Bytes of a body of known length still to come.
    left: u64,
    trailers: Option<HeaderMap>,
    /// The body's end (with a chunked body's last chunk) is in `out`.
    ended: bool,
}

impl Upload {
    fn new(head: Vec<u8>, body: Body, sending: Sending) -> Self {
        let (chunked, left) = match sending {
            Sending::Length(length) => (false, length),
            Sending::Chunked => (true, 0),
        };
        Upload {
            // A body that has ended gives no frame; only the head is written.
            ended: sending == Sending::Length(0) && body.is_end_stream(),
            body,
            out: head,
            written: 0,
            sent: 0,
            chunked,
            left,
            trailers: None,
        }
    }

    /// Starts the writing again, on a new connection. Only a request whose body had
    /// ended from the start is sent again, and its `out` is still its head.
    fn rewind(&mut self) {
        debug_assert!(self.written == 0 || self.ended, "a body was taken");
        self.written = 0;
    }

    /// Whether the writing waits for more of the client's body (not for the
    /// upstream to read what is written).
    fn waits_for_body(&self) -> bool {
        self.written == self.out.len() && !self.is_sent()
    }

    /// Whether the request is whole on the wire: its end written, or every byte of a
    /// body of known length (the body's own end may not have been seen yet).
    fn is_sent(&self) -> bool {
        self.written == self.out.len() && (self.ended || (!self.chunked && self.left == 0))
    }

    /// Writes what the body has ready, gathered into as few writes as it allows,
    /// until all is written (ready) or the body or the socket must be waited for
    /// (pending). A body longer than its `Content-Length` is cut off with an error
    /// before the excess is written (or, if the response has ended by then, never
    /// read), and one that ends short is an error too: the connection is then
    /// dropped, never pooled, so no byte of one request is read as part of the next.
    fn poll_write(
        &mut self,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Failed>> {
        loop {
            while !self.ended && self.out.len() < WRITE_SIZE {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Pending => break,
                    Poll::Ready(frame) => self.gather(frame)?,
                }
            }
            if self.written == self.out.len() {
                // Ended, or waiting for the body (which will wake this task).
                return if self.ended {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
            let unwritten = &self.out[self.written..];
            match ready!(Pin::new(&mut *stream).poll_write(cx, unwritten)) {
                Ok(0) => {
                    return Poll::Ready(Err(Failed::NoResponse(io::ErrorKind::WriteZero.into())))
                }
                Ok(n) => {
                    self.written += n;
                    self.sent += n as u64;
                }
                Err(err) => return Poll::Ready(Err(Failed::NoResponse(err))),
            }
            // Kept once ended: a request sent again writes its head again.
            if self.written == self.out.len() && !self.ended {
                self.out.clear();
                self.written = 0;
            }
        }
    }

    /// Adds a frame of the body (or its end) to `out`, framed.
    fn gather(&mut self, frame: Option<Result<Frame<Bytes>, axum::Error>>) -> Result<(), Failed> {
        let data = match frame {
            None => {
                if self.left > 0 {
                    return Err(Error::Length("the body ended before its Content-Length").into());
                }
                if self.chunked {
                    self.out.extend_from_slice(b"0\r\n");
                    for (name, value) in self.trailers.iter().flatten() {
                        push_field(&mut self.out, name.as_str().as_bytes(), value.as_bytes());
                    }
                    self.out.extend_from_slice(b"\r\n");
                }
                self.ended = true;
                return Ok(());
            }
            Some(Err(err)) => return Err(Error::Body(err).into()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Sent after the last chunk; a body of known length has no place for
                // them (RFC 9110, 6.5: a recipient may drop trailers).
                Err(frame) => {
                    if let (true, Ok(fields)) = (self.chunked, frame.into_trailers()) {
                        // By reference: a map's owning iterator names a repeated
                        // field only once, and every value of it is kept.
                        let kept = self.trailers.get_or_insert_with(HeaderMap::new);
                        for (name, value) in fields.iter().filter(|(n, _)| may_trail(n)) {
                            kept.append(name.clone(), value.clone());
                        }
                    }
                    return Ok(());
                }
            },
        };
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            self.out
                .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            self.out.extend_from_slice(&data);
            self.out.extend_from_slice(b"\r\n");
        } else {
            let length = data.len() as u64;
            if length > self.left {
                return Err(Error::Length("the body is longer than its Content-Length").into());
            }
            self.left -= length;
            self.out.extend_from_slice(&data);
        }
        Ok(())
    }
}

impl Conn {
    /// Whether the upstream has sent nothing on this idle connection, not even its
    /// end. Reads clear the socket's readiness once they find it drained (see
    /// [`Conn::poll_read`]), so it is set only if something came since: only then
    /// does this cost a system call.
    async fn is_quiet(&mut self) -> bool {
        let ready = poll_fn(|cx| Poll::Ready(self.stream.poll_read_ready(cx).is_ready())).await;
        let mut byte = [0; 1];
        !ready
            || matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes the request while watching for its response, and returns the
    /// response's head as soon as it is in, whether or not the request has all
    /// been written (how much was, `upload` says), and whether writing broke.
    async fn exchange(
        &mut self,
        upload: &mut Upload,
        head_only: bool,
        replayable: bool,
    ) -> Result<(Head, bool), Failed> {
        let mut writing = true;
        let mut broken = None;
        let mut responded = false;
        poll_fn(|cx| {
            if writing {
                match upload.poll_write(&mut self.stream, cx) {
                    Poll::Ready(Ok(())) => writing = false,
                    // Nothing was taken of the body: the caller may send it again.
                    Poll::Ready(Err(Failed::NoResponse(err))) if replayable => {
                        return Poll::Ready(Err(Failed::NoResponse(err)))
                    }
                    // An upstream that responded early (a 413, say) and stopped
                    // reading broke the write: its response, if it comes, is the
                    // one to pass on.
                    Poll::Ready(Err(Failed::NoResponse(err))) => {
                        writing = false;
                        broken = Some(err);
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {}
                }
            }
            match ready!(self.poll_head(&mut responded, head_only, cx)) {
                Ok(head) => Poll::Ready(Ok((head, broken.is_some()))),
                Err(Failed::NoResponse(err)) => {
                    Poll::Ready(Err(Failed::NoResponse(broken.take().unwrap_or(err))))
                }
                Err(err) => Poll::Ready(Err(err)),
            }
        })
        .await
    }

    /// Reads the response's head, past any interim (1xx) responses, and how its
    /// body is framed. `responded` says whether any of a response has come.
    fn poll_head(
        &mut self,
        responded: &mut bool,
        head_only: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Head, Failed>> {
        loop {
            if !self.read.is_empty() {
                *responded = true;
                if let Some(head) = parse_head(&mut self.read, &mut self.fields, head_only)? {
                    if head.response.status().is_informational() {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
                if self.read.len() >= MAX_HEAD_BYTES {
                    return Poll::Ready(Err(Error::Protocol("response head too large").into()));
                }
            }
            let failed = match ready!(self.poll_read(cx)) {
                Ok(0) if *responded => {
                    Error::Protocol("connection closed within the response's head").into()
                }
                Ok(0) => Failed::NoResponse(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => continue,
                Err(err) if *responded => Error::Io(err).into(),
                Err(err) => Failed::NoResponse(err),
            };
            return Poll::Ready(Err(failed));
        }
    }

    /// Reads what the socket has into `read`; 0 at the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_SIZE / 8 {
            self.read.reserve(READ_SIZE);
        }
        // Through `AsyncRead`, which clears the socket's readiness when a read comes
        // back short (the socket is drained): what [`Conn::is_quiet`] relies on.
        std::pin::pin!(self.stream.read_buf(&mut self.read)).poll(cx)
    }
}

/// A response's head: the response without its body, how much body follows, and
/// whether the connection serves another request after it.
struct Head {
    response: Response<()>,
    framing: Framing,
    reuse: bool,
}

/// How much body follows the head.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// The body ends with the connection.
    UntilClose,
}

/// Where the reading of a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    End,
}

/// What the bytes read so far give.
enum Step {
    Data(Bytes),
    /// A trailer field's line, without its CRLF.
    Trailer(Bytes),
    /// More must be read first.
    More,
    End,
}

/// Longest chunk-size line (with extensions) or trailer line read.
const MAX_LINE: usize = 8 * 1024;

impl Framing {
    fn ended(&self) -> bool {
        matches!(self, Framing::Length(0) | Framing::Chunked(Chunk::End))
    }

    /// Takes the next piece of the body from `read`.
    fn step(&mut self, read: &mut BytesMut) -> io::Result<Step> {
        match self {
            _ if self.ended() => Ok(Step::End),
            _ if read.is_empty() => Ok(Step::More),
            Framing::Length(left) => Ok(Step::Data(take(read, left))),
            Framing::UntilClose => Ok(Step::Data(read.split().freeze())),
            Framing::Chunked(at) => loop {
                match *at {
                    Chunk::Size => {
                        let Some(end) = line_end(read)? else {
                            return Ok(Step::More);
                        };
                        // The size, before any extension (whose bytes may be obs-text).
                        let size = read[..end].split(|&b| b == b';').next().unwrap_or_default();
                        let size = digits(size.trim_ascii(), 16).ok_or_else(bad_chunk)?;
                        read.advance(end + 2);
                        *at = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(mut left) => {
                        if read.is_empty() {
                            return Ok(Step::More);
                        }
                        let data = take(read, &mut left);
                        *at = if left == 0 {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left)
                        };
                        return Ok(Step::Data(data));
                    }
                    Chunk::DataEnd => {
                        if read.len() < 2 {
                            return Ok(Step::More);
                        }
                        if &read[..2] != b"\r\n" {
                            return Err(bad_chunk());
                        }
                        read.advance(2);
                        *at = Chunk::Size;
                    }
                    // Each trailer field is passed on; the empty line ends the body.
                    Chunk::Trailers => {
                        let Some(end) = line_end(read)? else {
                            return Ok(Step::More);
                        };
                        let line = read.split_to(end).freeze();
                        read.advance(2);
                        if end == 0 {
                            *at = Chunk::End;
                        } else {
                            return Ok(Step::Trailer(line));
                        }
                    }
                    Chunk::End => return Ok(Step::End),
                }
            },
        }
    }
}

/// Up to `left` bytes from the front of `read`.
fn take(read: &mut BytesMut, left: &mut u64) -> Bytes {
    let n = read.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
    *left -= n as u64;
    read.split_to(n).freeze()
}

/// The length of the line at the start of `read`, once all of it is there.
fn line_end(read: &[u8]) -> io::Result<Option<usize>> {
    match read.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some(end)),
        None if read.len() > MAX_LINE => Err(bad_chunk()),
        None => Ok(None),
    }
}

/// A number in `radix`, digits only: Rust's parsers also take a leading `+`, which
/// HTTP does not.
fn digits(bytes: &[u8], radix: u32) -> Option<u64> {
    let only_digits = !bytes.is_empty() && bytes.iter().all(|&b| char::from(b).is_digit(radix));
    let text = std::str::from_utf8(bytes).ok()?;
    only_digits
        .then(|| u64::from_str_radix(text, radix).ok())
        .flatten()
}

/// A trailer field's line as a name and a value (RFC 9112, 5: `name: OWS value OWS`).
fn trailer_field(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = HeaderName::from_bytes(&line[..colon]).ok()?;
    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
    Some((name, value))
}

fn bad_chunk() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "bad chunked coding")
}

/// The request id every service sends back (`common::server::REQUEST_ID`).
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A header name of a response. The request id every service sends back is a
/// custom name, which `HeaderName::from_bytes` would allocate anew each time.
fn header_name(name: &[u8]) -> Result<HeaderName, Error> {
    if name.eq_ignore_ascii_case(REQUEST_ID.as_str().as_bytes()) {
        return Ok(REQUEST_ID);
    }
    HeaderName::from_bytes(name).map_err(|_| Error::Protocol("bad header name"))
}

/// The head at the start of `read`, taken out of it; `None` while incomplete.
/// Header values are slices of the head as read, not copies; `fields` is scratch
/// space kept with the connection.
fn parse_head(
    read: &mut BytesMut,
    fields: &mut Vec<(HeaderName, usize, usize)>,
    head_only: bool,
) -> Result<Option<Head>, Error> {
    let mut uninit = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let length = match parser.parse_response_with_uninit_headers(&mut parsed, read, &mut uninit) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::Protocol("malformed head")),
    };
    let status = parsed
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(Error::Protocol("bad status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::Protocol("protocol upgrades are not proxied"));
    }
    let mut content_length = None;
    let mut chunked = None;
    let mut close = parsed.version != Some(1);
    fields.clear();
    for field in parsed.headers.iter() {
        let name = header_name(field.name.as_bytes())?;
        // Only the few values read here are checked as text.
        let value = || std::str::from_utf8(field.value).unwrap_or_default();
        if name == header::CONTENT_LENGTH {
            let length = digits(value().trim().as_bytes(), 10)
                .ok_or(Error::Protocol("bad content-length"))?;
            if content_length.is_some_and(|l| l != length) {
                return Err(Error::Protocol("conflicting content-length"));
            }
            content_length = Some(length);
        } else if name == header::TRANSFER_ENCODING {
            // Only the last coding decides whether the body is chunked.
            let last = value().rsplit(',').next().unwrap_or_default();
            chunked = Some(last.trim().eq_ignore_ascii_case("chunked"));
        } else if name == header::CONNECTION
            && value()
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
        {
            close = true;
        }
        let start = field.value.as_ptr() as usize - read.as_ptr() as usize;
        fields.push((name, start, start + field.value.len()));
    }
    let no_body = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (no_body, chunked, content_length) {
        (true, _, _) => Framing::Length(0),
        (false, Some(true), _) => Framing::Chunked(Chunk::Size),
        // Another coding last: the body ends with the connection (RFC 9112, 6.3).
        (false, Some(false), _) => Framing::UntilClose,
        (false, None, Some(left)) => Framing::Length(left),
        (false, None, None) => Framing::UntilClose,
    };
    let head = read.split_to(length).freeze();
    let mut response = Response::new(());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(fields.len());
    for (name, start, end) in fields.drain(..) {
        // hyper's server frames a body of unknown length anew, as chunks.
        if name == header::CONTENT_LENGTH && !matches!(framing, Framing::Length(_)) {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| Error::Protocol("bad header value"))?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        response,
        framing,
        reuse: !close && framing != Framing::UntilClose,
    }))
}

/// A response's body, read from its connection as it is asked for; the connection goes
/// back to the pool after the last byte, if its request was whole.
struct ResponseBody {
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    framing: Framing,
    reuse: bool,
    pool: Pool,
    /// The trailer fields of a chunked body, read so far.
    trailers: Option<HeaderMap>,
    /// The rest of the request, written as the response is read.
    upload: Option<Upload>,
    /// Runs out when a wait for the upstream has lasted the pool's `read_timeout`;
    /// made the first time the body waits for the upstream.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A wait for the upstream is on (`stall` runs); over when the upstream moves.
    waiting: bool,
}

impl ResponseBody {
    fn new(conn: Conn, framing: Framing, reuse: bool, upload: Option<Upload>, pool: Pool) -> Self {
        let mut body = ResponseBody {
            conn: Some(conn),
            framing,
            reuse,
            pool,
            trailers: None,
            upload,
            stall: None,
            waiting: false,
        };
        // No body at all (HEAD, 204, 304): hyper's server will not ask for one, so
        // the connection goes back now.
        if body.framing.ended() {
            body.end();
        }
        body
    }

    /// Ready when the body has waited for its upstream for longer than it may. A
    /// wait starts here, and ends when the upstream moves (`waiting` is cleared as
    /// it sends or reads).
    /// None runs while the request's body waits for the client: the upstream may be
    /// waiting for it too.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.upload.as_ref().is_some_and(Upload::waits_for_body) {
            self.waiting = false;
            return Poll::Pending;
        }
        let limit = self.pool.0.read_timeout;
        let stall = match &mut self.stall {
            Some(stall) if !self.waiting => {
                stall.as_mut().reset(tokio::time::Instant::now() + limit);
                stall
            }
            Some(stall) => stall,
            None => self.stall.insert(Box::pin(tokio::time::sleep(limit))),
        };
        self.waiting = true;
        stall.as_mut().poll(cx)
    }

    fn end(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Bytes past the response's end would be the start of no request's
            // response, and a request not all written would end in the next one.
            let sent = self.upload.as_ref().is_none_or(Upload::is_sent);
            if self.reuse && conn.read.is_empty() && sent {
                self.pool.put_back(conn);
            }
        }
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let (Some(upload), Some(conn)) = (this.upload.as_mut(), this.conn.as_mut()) {
            let sent = upload.sent;
            let written = upload.poll_write(&mut conn.stream, cx);
            // The upstream read more of the request: a wait is over.
            if upload.sent != sent {
                this.waiting = false;
            }
            match written {
                Poll::Ready(Ok(())) => this.upload = None,
                // The upstream stopped reading; what it responds may still be whole.
                Poll::Ready(Err(Failed::NoResponse(_))) => {
                    this.upload = None;
                    this.reuse = false;
                }
                // The client's body failed (or passed the gateway's limit) after the
                // response began: too late for a status, so the response is cut off.
                Poll::Ready(Err(Failed::Other(err))) => {
                    tracing::debug!(error = %err, "request body failed within the response");
                    this.conn = None;
                    return Poll::Ready(Some(Err(io::Error::other(err))));
                }
                Poll::Pending => {}
            }
        }
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let failed = match this.framing.step(&mut conn.read) {
                Ok(Step::Data(data)) => {
                    if this.framing.ended() {
                        // Back in the pool before hyper writes the last piece.
                        this.end();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::Trailer(line)) => {
                    let trailers = this.trailers.get_or_insert_with(HeaderMap::new);
                    if trailers.len() >= MAX_HEADERS {
                        bad_chunk()
                    } else {
                        // A field that cannot be one, or may not trail, is dropped
                        // (RFC 9110, 6.5): the body itself is whole.
                        if let Some((name, value)) = trailer_field(&line) {
                            if may_trail(&name) {
                                trailers.append(name, value);
                            }
                        }
                        continue;
                    }
                }
                Ok(Step::End) => {
                    this.end();
                    let trailers = this.trailers.take().filter(|t| !t.is_empty());
                    return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                }
                Ok(Step::More) => match conn.poll_read(cx) {
                    Poll::Pending => {
                        ready!(this.poll_stalled(cx));
                        tracing::warn!(
                            upstream = %this.pool.0.address,
                            "the upstream stopped sending within a response; it is cut off"
                        );
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the upstream sent nothing more of the response in time",
                        )
                    }
                    Poll::Ready(Ok(0)) if this.framing == Framing::UntilClose => {
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(0)) => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection within the body",
                    ),
                    // The upstream sent more: a wait is over.
                    Poll::Ready(Ok(_)) => {
                        this.waiting = false;
                        continue;
                    }
                    Poll::Ready(Err(err)) => err,
                },
                Err(err) => err,
            };
            this.conn = None;
            return Poll::Ready(Some(Err(failed)));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.framing.ended()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            _ if self.conn.is_none() => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing;
    use axum::Router;

    use super::*;

    const WITH_LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    const CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";

    /// How the stand-in upstream of [`upstream`] behaves.
    #[derive(Clone, Copy, Default)]
    struct Upstream {
        /// Closes a connection idle this long, as servers with an idle timeout do.
        idle_close: Option<Duration>,
        /// Closes the connection after each response.
        close_after: bool,
        /// Writes the response a byte at a time, this long apart.
        trickle: Option<Duration>,
        /// Writes all of the response but its last byte, then holds the connection.
        stall: bool,
        /// Writes this on the idle connection a little after each response, then
        /// closes it (a 408, as some servers send).
        unsolicited: Option<&'static [u8]>,
        /// Responds once the head is in, reads no body, and closes.
        early: bool,
        /// With `early`: reads on after responding, and responds to nothing more.
        drain: bool,
        /// With `early`: holds the connection after responding, reading nothing.
        hold: bool,
        /// With `early`: reads on slowly after responding, for this long, then ends
        /// its (chunked) response and holds the connection.
        sip: Option<Duration>,
    }

    /// A stand-in upstream that writes `raw` for every request of a connection.
    /// Returns its address and a count of its connections.
    fn upstream(raw: &'static [u8], how: Upstream) -> (String, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    stream.set_read_timeout(how.idle_close).unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut received = Vec::new();
                    let mut buf = [0; 1024];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(n) if n > 0 => received.extend_from_slice(&buf[..n]),
                            // End of stream, or idle too long: the connection closes.
                            _ => return,
                        }
                        if how.early && received.windows(4).any(|w| w == b"\r\n\r\n") {
                            // Closing with the body unread resets the connection.
                            let _ = stream.write_all(raw);
                            while how.drain && stream.read(&mut buf).is_ok_and(|n| n > 0) {}
                            if let Some(time) = how.sip {
                                // About 30 MB/s: the gateway's socket drains in
                                // well under the limit at a time.
                                let mut sip = vec![0; 64 * 1024];
                                let start = Instant::now();
                                while start.elapsed() < time && stream.read(&mut sip).is_ok() {
                                    std::thread::sleep(Duration::from_millis(2));
                                }
                                let _ = stream.write_all(b"0\r\n\r\n");
                            }
                            if how.hold || how.sip.is_some() {
                                std::thread::sleep(Duration::from_secs(10));
                            }
                            return;
                        }
                        while let Some(length) = request_length(&received) {
                            received.drain(..length);
                            let written = if let Some(pace) = how.trickle {
                                raw.chunks(1).try_for_each(|b| {
                                    std::thread::sleep(pace);
                                    stream.write_all(b)
                                })
                            } else if how.stall {
                                let written = stream.write_all(&raw[..raw.len() - 1]);
                                std::thread::sleep(Duration::from_secs(10));
                                written
                            } else {
                                stream.write_all(raw)
                            };
                            if written.is_err() || how.close_after {
                                return;
                            }
                            if let Some(unsolicited) = how.unsolicited {
                                std::thread::sleep(Duration::from_millis(50));
                                let _ = stream.write_all(unsolicited);
                                return;
                            }
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    /// The length of the whole request (head and `content-length` body) at the start
    /// of `bytes`, once all of it is there.
    fn request_length(bytes: &[u8]) -> Option<usize> {
        let head = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let text = String::from_utf8_lossy(&bytes[..head]).to_ascii_lowercase();
        let body = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |n| n.trim().parse().unwrap());
        (bytes.len() >= head + body).then_some(head + body)
    }

    /// The pools' wait for more of a response, in these tests.
    const READ_TIMEOUT: Duration = Duration::from_millis(300);

    fn get() -> Request<Body> {
        Request::get("/").body(Body::empty()).unwrap()
    }

    fn pool(address: &str) -> Pool {
        pool_with(address, READ_TIMEOUT)
    }

    /// A pool whose bodies wait for their upstream `limit` at a time.
    fn pool_with(address: &str, limit: Duration) -> Pool {
        let (host, port) = address.rsplit_once(':').unwrap();
        Pool::new(host, port.parse().unwrap(), Duration::from_secs(1), limit).unwrap()
    }

    async fn text(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_response_is_read() {
        for raw in [WITH_LENGTH, CHUNKED] {
            let (address, accepted) = upstream(raw, Upstream::default());
            let pool = pool(&address);
            for _ in 0..5 {
                assert_eq!(text(pool.send(get()).await.unwrap()).await, "ok");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 1);
        }
    }

    /// An upstream that closes a connection idle for 50 ms.
    fn closing_upstream() -> (String, Arc<AtomicUsize>) {
        let idle_close = Some(Duration::from_millis(50));
        let how = Upstream {
            idle_close,
            ..Default::default()
        };
        upstream(WITH_LENGTH, how)
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        let (address, accepted) = closing_upstream();
        let pool = pool(&address);
        assert_eq!(text(pool.send(get()).await.unwrap()).await, "ok");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(text(pool.send(get()).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_with_a_body_never_goes_on_a_connection_the_upstream_closed() {
        // It could not be sent again: the pool must see the close before sending.
        let (address, accepted) = closing_upstream();
        let pool = pool(&address);
        let post = || Request::post("/").body(Body::from("body")).unwrap();
        assert_eq!(text(pool.send(post()).await.unwrap()).await, "ok");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(text(pool.send(post()).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn what_comes_on_an_idle_connection_is_never_taken_for_a_response() {
        let unsolicited = Some(&b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n"[..]);
        let how = Upstream {
            unsolicited,
            ..Default::default()
        };
        let (address, accepted) = upstream(WITH_LENGTH, how);
        let pool = pool(&address);
        assert_eq!(text(pool.send(get()).await.unwrap()).await, "ok");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let response = pool.send(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// A pool to an upstream that refuses every request once its head is in, reads
    /// none of the body, and closes.
    fn refusing() -> Pool {
        let refused = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo long";
        let how = Upstream {
            early: true,
            ..Default::default()
        };
        pool(&upstream(refused, how).0)
    }

    #[tokio::test]
    async fn an_early_response_is_passed_on_though_the_body_could_not_be_sent() {
        let pool = refusing();
        // More than the sockets' buffers hold: the write breaks when the upstream resets.
        let request = Request::post("/")
            .body(Body::from(vec![b'x'; 64 << 20]))
            .unwrap();
        let response = pool.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(response).await, "too long");
    }

    #[tokio::test]
    async fn a_response_dropped_unread_does_not_give_its_connection_back() {
        let (address, accepted) = upstream(WITH_LENGTH, Upstream::default());
        let pool = pool(&address);
        drop(pool.send(get()).await.unwrap());
        assert_eq!(text(pool.send(get()).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_response_the_upstream_stops_sending_is_cut_off_in_time() {
        for raw in [WITH_LENGTH, CHUNKED] {
            let how = Upstream {
                stall: true,
                ..Default::default()
            };
            let pool = pool(&upstream(raw, how).0);
            given_up_on(pool.send(get()).await.unwrap()).await;
        }
    }

    /// Reads a body that the pool must give up on: an error, not before the limit
    /// (and well within 5 s).
    async fn given_up_on(response: Response<Body>) {
        let start = Instant::now();
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            axum::body::to_bytes(response.into_body(), usize::MAX),
        )
        .await
        .expect("the body is given up on");
        assert!(read.is_err());
        assert!(start.elapsed() >= READ_TIMEOUT, "{:?}", start.elapsed());
    }

    /// A pool (waiting `limit` at a time) to an upstream that answers each request
    /// once its head is in, with the start of a chunked response, then does what
    /// `how` says.
    fn answering_at_once(how: Upstream, limit: Duration) -> Pool {
        let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let how = Upstream { early: true, ..how };
        pool_with(&upstream(head, how).0, limit)
    }

    #[tokio::test]
    async fn an_upstream_that_stops_reading_and_sending_is_given_up_on() {
        // It answers at once and then takes no more of the body, which never ends.
        let how = Upstream {
            hold: true,
            ..Default::default()
        };
        let pool = answering_at_once(how, READ_TIMEOUT);
        let request = Request::post("/").body(Body::new(Endless)).unwrap();
        given_up_on(pool.send(request).await.unwrap()).await;
    }

    #[tokio::test]
    async fn an_upstream_that_reads_on_is_waited_for() {
        // It answers at once, reads the body slowly for longer than the limit
        // (sends nothing meanwhile), then ends its response. A limit of its own:
        // the gateway hears of the upstream's reading only as its socket drains,
        // which a busy machine can take a while to tell.
        const LIMIT: Duration = Duration::from_secs(1);
        let how = Upstream {
            sip: Some(LIMIT * 3),
            ..Default::default()
        };
        let pool = answering_at_once(how, LIMIT);
        let request = Request::post("/").body(Body::new(Endless)).unwrap();
        let response = pool.send(request).await.unwrap();
        assert_eq!(text(response).await, "");
    }

    #[tokio::test]
    async fn a_body_all_sent_but_not_yet_ended_does_not_stop_the_time() {
        // The upstream answers at once; the body's bytes come after that, and then
        // its end never does. The upstream has the whole request, and says no more.
        let how = Upstream {
            hold: true,
            ..Default::default()
        };
        let pool = answering_at_once(how, READ_TIMEOUT);
        let body = Unended(Some(Box::pin(tokio::time::sleep(READ_TIMEOUT / 3))));
        let request = Request::post("/").body(Body::new(body)).unwrap();
        given_up_on(pool.send(request).await.unwrap()).await;
    }

    /// A body of five bytes that gives them after a while and then never says it
    /// has ended.
    struct Unended(Option<Pin<Box<tokio::time::Sleep>>>);

    impl hyper::body::Body for Unended {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            let Some(wait) = &mut self.0 else {
                return Poll::Pending;
            };
            ready!(wait.as_mut().poll(cx));
            self.0 = None;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"hello")))))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(5)
        }
    }

    /// A request body that never ends, always ready.
    struct Endless;

    impl hyper::body::Body for Endless {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            static PART: [u8; 64 * 1024] = [b'x'; 64 * 1024];
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PART)))))
        }
    }

    #[tokio::test]
    async fn a_client_slow_to_take_a_response_does_not_use_up_its_upstreams_time() {
        // The body waits for its upstream once, gets its first part and is not asked
        // for more for longer than the limit; the upstream sends the rest soon after
        // the client is back. A limit of its own, for wide margins on a busy machine.
        const LIMIT: Duration = Duration::from_secs(1);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0; 1024];
            let _ = stream.read(&mut request).unwrap();
            let parts: [(&[u8], Duration); 3] = [
                (
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n",
                    Duration::ZERO,
                ),
                (b"late!", LIMIT / 3),
                (b"!", LIMIT * 2),
            ];
            for (part, after) in parts {
                std::thread::sleep(after);
                stream.write_all(part).unwrap();
            }
            std::thread::sleep(Duration::from_secs(1));
        });
        use http_body_util::BodyExt as _;
        let mut body = pool_with(&address, LIMIT)
            .send(get())
            .await
            .unwrap()
            .into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "late!");
        tokio::time::sleep(LIMIT * 3 / 2).await;
        let last = body.frame().await.expect("the rest comes").unwrap();
        assert_eq!(last.into_data().unwrap(), "!");
    }

    #[tokio::test]
    async fn a_slow_response_that_keeps_coming_is_read_whole() {
        // Each byte comes well within the limit; the body takes more than twice it.
        let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\nslow, but it goes on and on and on, stil";
        let how = Upstream {
            trickle: Some(READ_TIMEOUT / 15),
            ..Default::default()
        };
        let pool = pool(&upstream(raw, how).0);
        let response = pool.send(get()).await.unwrap();
        let start = Instant::now();
        assert_eq!(
            text(response).await,
            "slow, but it goes on and on and on, stil"
        );
        assert!(start.elapsed() > READ_TIMEOUT, "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn an_upstream_that_is_down_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = pool(&address);
        let err = pool.send(get()).await.unwrap_err();
        assert!(matches!(err, Error::Connect(_)), "{err}");
    }

    #[tokio::test]
    async fn every_framing_of_a_response_is_read() {
        // (response, body read, whether the connection serves again)
        let cases: [(&[u8], &str, bool); 6] = [
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                "ok",
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;name=value\r\nok\r\n1\r\n!\r\n0\r\nx-checksum: 1\r\n\r\n",
                "ok!",
                true,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", "", true),
            (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", "ok", false),
            (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", "ok", false),
            (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", "until the end", false),
        ];
        for (raw, body, reused) in cases {
            let close_after = !reused;
            for trickle in [None, Some(Duration::from_millis(1))] {
                let how = Upstream {
                    close_after,
                    trickle,
                    ..Default::default()
                };
                let (address, accepted) = upstream(raw, how);
                let pool = pool(&address);
                for _ in 0..2 {
                    let response = pool.send(get()).await.unwrap();
                    assert!(response
                        .headers()
                        .get(header::CONTENT_LENGTH)
                        .is_none_or(|l| l == "2"));
                    assert_eq!(
                        text(response).await,
                        body,
                        "{}",
                        String::from_utf8_lossy(raw)
                    );
                }
                let connections = if reused { 1 } else { 2 };
                assert_eq!(
                    accepted.load(Ordering::SeqCst),
                    connections,
                    "{}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
    }

    #[tokio::test]
    async fn the_response_to_head_has_no_body() {
        let (address, accepted) = upstream(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            Upstream::default(),
        );
        let pool = pool(&address);
        for _ in 0..2 {
            let head = Request::head("/").body(Body::empty()).unwrap();
            let response = pool.send(head).await.unwrap();
            assert_eq!(response.headers()[header::CONTENT_LENGTH], "5");
            // hyper's server never reads a body that says it has ended; nor does this.
            assert!(hyper::body::Body::is_end_stream(response.body()));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_malformed_response_is_an_error() {
        for raw in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: two\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok",
        ] {
            let (address, _) = upstream(raw, Upstream::default());
            let err = pool(&address).send(get()).await.unwrap_err();
            assert!(matches!(err, Error::Protocol(_)), "{err}");
        }
    }

    /// Bodies both ways, against hyper's server (as every generated service runs).
    #[tokio::test]
    async fn bodies_are_streamed_both_ways() {
        let app = Router::new()
            .route("/echo", routing::post(|body: Bytes| async move { body }))
            .route(
                "/stream",
                routing::get(|| async { slow(["one ", "two ", "three"]) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let pool = pool(&address);

        let big = "x".repeat(3 * WRITE_SIZE + 7);
        for sent in ["hello", big.as_str()] {
            // A length known up front, sent as such.
            let request = Request::post("/echo")
                .body(Body::from(sent.to_string()))
                .unwrap();
            assert_eq!(text(pool.send(request).await.unwrap()).await, sent);
            // A length unknown: sent in chunks.
            let parts = sent.as_bytes().chunks(1000).map(Bytes::copy_from_slice);
            let request = Request::post("/echo").body(slow(parts)).unwrap();
            assert_eq!(text(pool.send(request).await.unwrap()).await, sent);
        }
        let streamed = pool
            .send(Request::get("/stream").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(streamed.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(text(streamed).await, "one two three");
    }

    /// A request body the test feeds part by part; it ends when the feed is dropped.
    struct Fed(tokio::sync::mpsc::UnboundedReceiver<&'static str>);

    impl hyper::body::Body for Fed {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|part| part.map(|part| Ok(Frame::data(Bytes::from(part)))))
        }
    }

    fn fed() -> (tokio::sync::mpsc::UnboundedSender<&'static str>, Body) {
        let (feed, parts) = tokio::sync::mpsc::unbounded_channel();
        (feed, Body::new(Fed(parts)))
    }

    /// `f`, or a failure naming what it waited for.
    async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .unwrap_or_else(|_| panic!("waited in vain for {what}"))
    }

    /// The next `length` bytes of a response's body.
    async fn next_bytes(body: &mut Body, length: usize) -> Vec<u8> {
        let mut read = Vec::new();
        while read.len() < length {
            let frame = poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
            let data = frame.expect("the body ended early").unwrap().into_data();
            read.extend_from_slice(&data.unwrap_or_default());
        }
        read
    }

    /// An upstream that answers as it reads (hyper's server passing the request's
    /// body back as the response's) gets each part of the body, and its answer to
    /// it comes back, before the next part is even sent: with a body written whole
    /// first, this exchange could never start.
    #[tokio::test]
    async fn a_body_and_its_response_stream_at_once() {
        let app = Router::new().route("/echo", routing::post(|body: Body| async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let pool = pool(&address);

        let (feed, body) = fed();
        feed.send("ping 1").unwrap();
        let request = Request::post("/echo").body(body).unwrap();
        let response = within("the response's head", pool.send(request)).await;
        let mut body = response.unwrap().into_body();
        for part in ["ping 1", "ping 2", "ping three"] {
            if part != "ping 1" {
                feed.send(part).unwrap();
            }
            let echoed = within(part, next_bytes(&mut body, part.len())).await;
            assert_eq!(echoed, part.as_bytes());
        }
        drop(feed);
        let end = within("the end", poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))).await;
        assert!(end.is_none());
        let again = Request::post("/echo").body(Body::from("again")).unwrap();
        assert_eq!(text(pool.send(again).await.unwrap()).await, "again");
    }

    #[tokio::test]
    async fn an_early_refusal_is_passed_on_while_the_body_is_still_coming() {
        let pool = refusing();
        let (feed, body) = fed();
        let request = Request::post("/").body(body).unwrap();
        let response = within("the refusal", pool.send(request)).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // The rest of the body is not wanted: it is no longer read.
        assert!(feed.is_closed());
        assert_eq!(within("its body", text(response)).await, "too long");
    }

    #[tokio::test]
    async fn a_response_that_ends_before_its_request_does_not_give_its_connection_back() {
        let how = Upstream {
            early: true,
            drain: true,
            ..Default::default()
        };
        let (address, accepted) = upstream(WITH_LENGTH, how);
        let pool = pool(&address);
        let (feed, body) = fed();
        feed.send("the start").unwrap();
        let request = Request::post("/").body(body).unwrap();
        let response = within("the response", pool.send(request)).await.unwrap();
        assert_eq!(within("its body", text(response)).await, "ok");
        // On that connection, the next request would follow the rest of the body
        // the upstream is still reading, and never be answered.
        let again = within("a response on a new connection", pool.send(get())).await;
        assert_eq!(text(again.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        drop(feed);
    }

    /// A body of unknown length whose parts come one at a time, each after a turn of
    /// the runtime (so the pool writes what it gathered while it waits).
    struct Slow {
        parts: std::collections::VecDeque<Bytes>,
        waited: bool,
    }

    fn slow<T: Into<Bytes>>(parts: impl IntoIterator<Item = T>) -> Body {
        Body::new(Slow {
            parts: parts.into_iter().map(Into::into).collect(),
            waited: false,
        })
    }

    impl hyper::body::Body for Slow {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            if !std::mem::replace(&mut self.waited, true) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.waited = false;
            Poll::Ready(self.parts.pop_front().map(|part| Ok(Frame::data(part))))
        }
    }
}
