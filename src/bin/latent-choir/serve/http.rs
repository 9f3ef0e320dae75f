//! A small HTTP/1.1 server side over `std::net`: one request at a time per connection
//! (keep-alive), bodies by `Content-Length` only, every size and wait bounded. What a client
//! sends is never trusted: a bad request line, header or length is an error value, not a
//! panic.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The limits a connection is read under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The request line and headers together.
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    /// A whole request (headers and body) must arrive within this.
    pub read_timeout: Duration,
    /// How long a kept-alive connection may sit idle before its next request.
    pub idle_timeout: Duration,
    /// A response (or one SSE event) the client does not take within this ends the connection.
    pub write_timeout: Duration,
}

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    pub body: Vec<u8>,
    /// Does the client want the connection kept open after the response?
    pub keep_alive: bool,
}

/// Why no request could be read. `status` is what to answer (`None`: just close).
#[derive(Debug)]
pub struct ReadError {
    pub status: Option<u16>,
    pub message: String,
}

impl ReadError {
    fn answer(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: Some(status),
            message: message.into(),
        }
    }

    fn close() -> Self {
        Self {
            status: None,
            message: String::new(),
        }
    }
}

/// Reads one request from `stream`. `first` says whether this is the connection's first
/// request (a later one may wait `idle_timeout` for its first byte).
pub fn read_request(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    limits: &Limits,
    first: bool,
) -> Result<Request, ReadError> {
    let started = Instant::now();
    let wait_first = if first {
        limits.read_timeout
    } else {
        limits.idle_timeout
    };
    // Headers: up to the blank line, `buffer` may already hold bytes of this request.
    let header_end = loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > limits.max_header_bytes {
            return Err(ReadError::answer(431, "request headers too large"));
        }
        let deadline = if buffer.is_empty() {
            wait_first
        } else {
            limits.read_timeout
        };
        match read_some(stream, buffer, started, deadline) {
            Ok(0) if buffer.is_empty() => return Err(ReadError::close()),
            Ok(0) => return Err(ReadError::answer(400, "connection closed mid-request")),
            Ok(_) => {}
            Err(e) if is_timeout(&e) && buffer.is_empty() => return Err(ReadError::close()),
            Err(e) if is_timeout(&e) => {
                return Err(ReadError::answer(408, "timed out reading the request"));
            }
            Err(_) => return Err(ReadError::close()),
        }
    };
    if header_end > limits.max_header_bytes {
        return Err(ReadError::answer(431, "request headers too large"));
    }
    let head = std::str::from_utf8(&buffer[..header_end])
        .map_err(|_| ReadError::answer(400, "request headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::answer(400, "malformed request line"));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(ReadError::answer(
                505,
                "only HTTP/1.0 and HTTP/1.1 are served",
            ));
        }
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::answer(400, "malformed request method"));
    }
    let mut content_length: Option<usize> = None;
    let mut keep_alive = !http10;
    let mut expect_continue = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::answer(400, "malformed header line"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let length = value
                    .parse::<usize>()
                    .map_err(|_| ReadError::answer(400, "malformed Content-Length"))?;
                if content_length.is_some_and(|l| l != length) {
                    return Err(ReadError::answer(400, "conflicting Content-Length headers"));
                }
                content_length = Some(length);
            }
            "transfer-encoding" if !value.eq_ignore_ascii_case("identity") => {
                return Err(ReadError::answer(
                    411,
                    "chunked request bodies are not supported: send Content-Length",
                ));
            }
            "connection" => {
                let value = value.to_ascii_lowercase();
                if value.contains("close") {
                    keep_alive = false;
                } else if value.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            "expect" => expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    let length = content_length.unwrap_or(0);
    if length > limits.max_body_bytes {
        return Err(ReadError::answer(
            413,
            format!(
                "request body of {length} bytes is over the limit of {} bytes",
                limits.max_body_bytes
            ),
        ));
    }
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    buffer.drain(..header_end + 4);
    if expect_continue && buffer.len() < length {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while buffer.len() < length {
        match read_some(stream, buffer, started, limits.read_timeout) {
            Ok(0) => return Err(ReadError::answer(400, "connection closed mid-body")),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                return Err(ReadError::answer(408, "timed out reading the request body"));
            }
            Err(_) => return Err(ReadError::close()),
        }
    }
    let body: Vec<u8> = buffer.drain(..length).collect();
    Ok(Request {
        method,
        path,
        body,
        keep_alive,
    })
}

/// One read into `buffer`, waiting no longer than what is left of `deadline` since `started`.
fn read_some(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    started: Instant,
    deadline: Duration,
) -> io::Result<usize> {
    let left = deadline
        .checked_sub(started.elapsed())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
    stream.set_read_timeout(Some(left))?;
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk)?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A complete response with a JSON body.
pub fn write_json(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    keep_alive: bool,
    extra_headers: &[(&str, String)],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in extra_headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out)?;
    stream.flush()
}

/// Server-Sent Events on a connection that closes after the last one.
pub struct EventStream<'a> {
    stream: &'a mut TcpStream,
}

impl<'a> EventStream<'a> {
    /// Sends the response head; events follow.
    pub fn start(stream: &'a mut TcpStream) -> io::Result<Self> {
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        )?;
        stream.flush()?;
        Ok(Self { stream })
    }

    /// `data: {data}\n\n`; an error means the client is gone.
    pub fn send(&mut self, data: &str) -> io::Result<()> {
        let mut event = Vec::with_capacity(data.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(data.as_bytes());
        event.extend_from_slice(b"\n\n");
        self.stream.write_all(&event)?;
        self.stream.flush()
    }
}
