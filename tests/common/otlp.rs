//! A stand-in OpenTelemetry collector for the end-to-end tests: it accepts OTLP/HTTP
//! protobuf exports on a loopback port and decodes the few fields of each span the
//! tests check (service, ids, name, kind). The decoder reads the protobuf wire format
//! directly, so the tests need no generated OTLP types.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One exported span; ids in lower-case hex, `parent` empty for a root span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    /// OTLP `SpanKind`: 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: u64,
}

pub struct Collector {
    pub port: u16,
    exports: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Collector {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&exports);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Self { port, exports }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        let exports = self.exports.lock().unwrap();
        exports.iter().flat_map(|body| decode(body)).collect()
    }
}

/// Answers each `POST /v1/traces` of one keep-alive connection with 200.
fn serve(stream: TcpStream, sink: &Mutex<Vec<Vec<u8>>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if request_line.starts_with("POST /v1/traces ") {
            sink.lock().unwrap().push(body);
        }
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The spans of one `ExportTraceServiceRequest`.
pub fn decode(body: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    for (_, resource_spans) in fields(body).into_iter().filter(|(f, _)| *f == 1) {
        let resource_spans = fields(resource_spans.bytes());
        let service = resource_spans
            .iter()
            .filter(|(f, _)| *f == 1)
            .flat_map(|(_, resource)| fields(resource.bytes()))
            .filter(|(f, _)| *f == 1)
            .find_map(|(_, kv)| {
                let kv = fields(kv.bytes());
                let key = text(&kv, 1);
                let value = kv.iter().find(|(f, _)| *f == 2)?;
                (key == "service.name").then(|| text(&fields(value.1.bytes()), 1))
            })
            .unwrap_or_default();
        for (_, scope_spans) in resource_spans.iter().filter(|(f, _)| *f == 2) {
            for (_, span) in fields(scope_spans.bytes())
                .into_iter()
                .filter(|(f, _)| *f == 2)
            {
                let span = fields(span.bytes());
                let kind = span
                    .iter()
                    .find_map(|(f, v)| match (f, v) {
                        (6, Value::Varint(k)) => Some(*k),
                        _ => None,
                    })
                    .unwrap_or(0);
                spans.push(Span {
                    service: service.clone(),
                    trace_id: hex(&span, 1),
                    span_id: hex(&span, 2),
                    parent: hex(&span, 4),
                    name: text(&span, 5),
                    kind,
                });
            }
        }
    }
    spans
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Value<'a> {
    fn bytes(&self) -> &'a [u8] {
        match self {
            Value::Bytes(b) => b,
            _ => &[],
        }
    }
}

/// The fields of one message, in order; a malformed tail is dropped.
fn fields(mut buf: &[u8]) -> Vec<(u64, Value<'_>)> {
    let mut out = Vec::new();
    while let Some(tag) = varint(&mut buf) {
        let value = match tag & 7 {
            0 => match varint(&mut buf) {
                Some(v) => Value::Varint(v),
                None => break,
            },
            1 | 5 => {
                let n = if tag & 7 == 1 { 8 } else { 4 };
                if buf.len() < n {
                    break;
                }
                buf = &buf[n..];
                Value::Fixed
            }
            2 => {
                let Some(len) = varint(&mut buf).and_then(|l| usize::try_from(l).ok()) else {
                    break;
                };
                if buf.len() < len {
                    break;
                }
                let (bytes, rest) = buf.split_at(len);
                buf = rest;
                Value::Bytes(bytes)
            }
            _ => break,
        };
        out.push((tag >> 3, value));
    }
    out
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn text(fields: &[(u64, Value<'_>)], field: u64) -> String {
    fields
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| String::from_utf8_lossy(v.bytes()).into_owned())
        .unwrap_or_default()
}

fn hex(fields: &[(u64, Value<'_>)], field: u64) -> String {
    fields
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, v)| v.bytes().iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}
