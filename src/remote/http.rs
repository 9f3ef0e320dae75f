//! A small blocking HTTP/1.1 client for the worker thread: one base URL, one kept-alive
//! connection, plain TCP or rustls. Written here rather than taken from a crate so the thread
//! that owns it can always give up: sockets wait at most [`SLICE`] at a time, and between
//! waits the client asks the caller's `cancel` and checks the deadline. Everything the server
//! sends is bounded ([`Limits`]) and untrusted: a bad response is an error value, never a panic.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv6Addr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// The longest a socket call blocks before the client asks `cancel` again.
const SLICE: Duration = Duration::from_millis(50);
const USER_AGENT: &str = concat!("latent-choir/", env!("CARGO_PKG_VERSION"));
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// A chunk-size line (size and extensions) longer than this is not a real server's.
const MAX_CHUNK_LINE: usize = 4096;

/// What one request may cost: in time and in bytes taken from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Resolving, connecting and the TLS handshake together.
    pub connect: Duration,
    /// From starting to send the request to the last byte of the response.
    pub response: Duration,
    /// The status line and headers (and any 1xx responses before them); also the trailers.
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(30),
            max_header_bytes: 32 * 1024,
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A complete response, whatever its status: the caller decides what a 4xx or 5xx means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In the order received. Chunked trailers are read but not kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no response came back. No message ever holds the bearer token.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The base URL, the request path or the bearer token cannot make a request.
    #[error("{0}")]
    BadUrl(String),
    /// No TCP connection: the name did not resolve, nothing listens, or none within `connect`.
    #[error("could not connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("no complete answer within {after:?}")]
    Timeout { after: Duration },
    #[error("cancelled")]
    Cancelled,
    #[error("the {what} are larger than the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    /// The server sent something that is not an HTTP/1 response.
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("the server closed the connection before the response was complete")]
    Closed,
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
}

/// A client for one server: it keeps at most one connection open between requests.
pub struct HttpClient {
    target: Target,
    limits: Limits,
    /// Built once, so reconnects reuse its session cache; with the name the certificate must
    /// carry (and SNI sends).
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    conn: Option<Conn>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("base_url", &self.target.base)
            .field("limits", &self.limits)
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl HttpClient {
    /// `base_url` is `http://host[:port][/prefix]` or `https://…`; request paths go after the
    /// prefix. HTTPS trusts the Mozilla roots (`webpki-roots`).
    pub fn new(base_url: &str, limits: Limits) -> Result<Self, HttpError> {
        Self::build(base_url, limits, || RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
    }

    /// As [`HttpClient::new`], trusting only `roots` (a test CA, a private one).
    pub fn with_roots(
        base_url: &str,
        limits: Limits,
        roots: RootCertStore,
    ) -> Result<Self, HttpError> {
        Self::build(base_url, limits, || roots)
    }

    fn build(
        base_url: &str,
        limits: Limits,
        roots: impl FnOnce() -> RootCertStore,
    ) -> Result<Self, HttpError> {
        let target = Target::parse(base_url)?;
        let tls = if target.tls {
            // ring (the brief's choice: no cmake or NASM to build) has no post-quantum key
            // exchange, which rustls 0.23.48 marks by deprecating its constructor.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| HttpError::Tls(format!("cannot set up TLS: {e}")))?
                .with_root_certificates(roots())
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(target.host.as_str())
                .map_err(|_| {
                    HttpError::BadUrl(format!(
                        "base URL: `{}` is not a host name a certificate can be checked against",
                        target.host
                    ))
                })?
                .to_owned();
            Some((Arc::new(config), name))
        } else {
            None
        };
        Ok(Self {
            target,
            limits,
            tls,
            conn: None,
        })
    }

    /// The base URL as understood: scheme and host lowercased, default port and trailing `/`
    /// dropped.
    pub fn base_url(&self) -> &str {
        &self.target.base
    }

    /// POSTs `body` as JSON to the prefix + `path`.
    pub fn post_json(
        &mut self,
        path: &str,
        body: &[u8],
        bearer: Option<&str>,
        cancel: &mut dyn FnMut() -> bool,
    ) -> Result<Response, HttpError> {
        self.request("POST", path, Some(body), bearer, cancel)
    }

    /// GETs the prefix + `path` (`/models`, say).
    pub fn get(
        &mut self,
        path: &str,
        bearer: Option<&str>,
        cancel: &mut dyn FnMut() -> bool,
    ) -> Result<Response, HttpError> {
        self.request("GET", path, None, bearer, cancel)
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        bearer: Option<&str>,
        cancel: &mut dyn FnMut() -> bool,
    ) -> Result<Response, HttpError> {
        let message = self.target.message(method, path, body, bearer)?;
        let mut deadline = None;
        if let Some(conn) = self.conn.take() {
            // A second try shares this deadline: one request never waits more than
            // `connect` + `response` for its answer.
            let at = *deadline.insert(Instant::now() + self.limits.response);
            match self.exchange(conn, &message, at, cancel) {
                Ok(response) => return Ok(response),
                // The server dropped the idle connection before reading this request: nothing
                // came back, so sending it again on a new connection cannot answer it twice.
                Err((HttpError::Closed | HttpError::Io(_), true)) => {}
                Err((error, _)) => return Err(error),
            }
        }
        let conn = self.connect(cancel)?;
        let at = deadline.unwrap_or_else(|| Instant::now() + self.limits.response);
        self.exchange(conn, &message, at, cancel)
            .map_err(|(error, _)| error)
    }

    /// Sends `message` and reads the response, keeping `conn` if it can carry another. The
    /// error comes with whether not a byte of the response arrived.
    fn exchange(
        &mut self,
        mut conn: Conn,
        message: &[u8],
        deadline: Instant,
        cancel: &mut dyn FnMut() -> bool,
    ) -> Result<Response, (HttpError, bool)> {
        let mut wait = Waiter {
            cancel,
            deadline,
            after: self.limits.response,
        };
        conn.received = 0;
        conn.send(message, &mut wait).map_err(|e| (e, true))?;
        match read_response(&mut conn, &self.limits, &mut wait) {
            Ok((response, reusable)) => {
                // Bytes past the response would be read as the next one's start.
                if reusable && conn.pos == conn.buf.len() {
                    self.conn = Some(conn);
                }
                Ok(response)
            }
            Err(error) => Err((error, conn.received == 0)),
        }
    }

    fn connect(&self, cancel: &mut dyn FnMut() -> bool) -> Result<Conn, HttpError> {
        let mut wait = Waiter {
            cancel,
            deadline: Instant::now() + self.limits.connect,
            after: self.limits.connect,
        };
        let target = &self.target;
        let sock = connect_tcp(&target.host, target.port, &target.host_port, &mut wait)?;
        let tls = match &self.tls {
            None => None,
            Some((config, name)) => Some(Box::new(
                ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| HttpError::Tls(e.to_string()))?,
            )),
        };
        let mut conn = Conn::new(sock, tls)?;
        conn.handshake(&mut wait)?;
        Ok(conn)
    }
}

/// The parts of the base URL a request needs.
#[derive(Debug, Clone)]
struct Target {
    tls: bool,
    /// For resolving and SNI: no brackets around an IPv6 address.
    host: String,
    port: u16,
    /// The `Host` header: the port only when not the scheme's default.
    authority: String,
    /// `host:port` for messages (`[v6]:port`).
    host_port: String,
    /// Empty or `/v1`-like, without a trailing `/`.
    prefix: String,
    base: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, HttpError> {
        // Never echo the whole URL: it may hold a password or a key.
        let bad = |why: &str| HttpError::BadUrl(format!("base URL: {why}"));
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("expected http://host[:port][/path] or https://…"));
        };
        let tls = if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.eq_ignore_ascii_case("https") {
            true
        } else {
            return Err(bad("only http:// and https:// are supported"));
        };
        if rest.contains('#') {
            return Err(bad("a fragment (#…) has no meaning here"));
        }
        if rest.contains('?') {
            return Err(bad("a query (?…) cannot take a path after it"));
        }
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(bad(
                "a user name or password in the URL is not supported (give the key as the API key)",
            ));
        }
        let (host, port, v6) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, tail) = inner
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address without its closing `]`"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address between `[` and `]`"));
            }
            let port = match tail {
                "" => None,
                _ => Some(
                    tail.strip_prefix(':')
                        .ok_or_else(|| bad("text after the IPv6 address"))?,
                ),
            };
            (host, port, true)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
            if !host.bytes().all(name_byte) {
                return Err(bad(
                    "the host may hold letters, digits, `-`, `.` and `_` (IPv6 goes in brackets)",
                ));
            }
            (host, port, false)
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = match port {
            None | Some("") => default_port,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        if !path.bytes().all(path_byte) {
            return Err(bad(
                "the path may hold only visible ASCII (percent-encode the rest)",
            ));
        }
        let host = host.to_ascii_lowercase();
        let bracketed = if v6 {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_port = format!("{bracketed}:{port}");
        let authority = if port == default_port {
            bracketed
        } else {
            host_port.clone()
        };
        let prefix = path.trim_end_matches('/').to_owned();
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://{authority}{prefix}");
        Ok(Self {
            tls,
            host,
            port,
            authority,
            host_port,
            prefix,
            base,
        })
    }

    /// The request's bytes, head and body, ready for one write.
    fn message(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        bearer: Option<&str>,
    ) -> Result<Vec<u8>, HttpError> {
        if !path.bytes().all(|b| path_byte(b) && b != b'#') {
            return Err(HttpError::BadUrl(
                "request path: only visible ASCII, no fragment".into(),
            ));
        }
        // A line break in the token would let it write headers of its own.
        if bearer.is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(HttpError::BadUrl(
                "API key: empty, or with a space, line break or non-ASCII character".into(),
            ));
        }
        let slash = if path.starts_with('/') { "" } else { "/" };
        let mut head = format!(
            "{method} {}{slash}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n\
             Accept: application/json\r\n",
            self.prefix, self.authority
        );
        if let Some(body) = body {
            head.push_str("Content-Type: application/json\r\nContent-Length: ");
            head.push_str(&body.len().to_string());
            head.push_str("\r\n");
        }
        if let Some(token) = bearer {
            head.push_str("Authorization: Bearer ");
            head.push_str(token);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut message = head.into_bytes();
        message.extend_from_slice(body.unwrap_or_default());
        Ok(message)
    }
}

fn path_byte(b: u8) -> bool {
    b.is_ascii_graphic()
}

/// The caller's way out and the deadline, checked before every wait of at most [`SLICE`].
struct Waiter<'a> {
    cancel: &'a mut dyn FnMut() -> bool,
    deadline: Instant,
    after: Duration,
}

impl Waiter<'_> {
    fn check(&mut self) -> Result<(), HttpError> {
        if (self.cancel)() {
            return Err(HttpError::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(HttpError::Timeout { after: self.after });
        }
        Ok(())
    }
}

/// A socket call that ran out of its slice (or was interrupted): try again.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A reset or abort while reading means the same to the caller as a close.
fn read_error(e: io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => HttpError::Closed,
        _ => HttpError::Io(e),
    }
}

/// Resolves and connects on a helper thread, so that neither a slow resolver nor a silent
/// address keeps the caller from cancelling. The helper, if abandoned, ends on its own within
/// `Limits::connect` (its resolver call may take longer; it holds nothing of ours).
fn connect_tcp(
    host: &str,
    port: u16,
    addr: &str,
    wait: &mut Waiter,
) -> Result<TcpStream, HttpError> {
    let connect_error = |source| HttpError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let abandoned = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (name, flag, deadline) = (host.to_owned(), abandoned.clone(), wait.deadline);
    let spawned = thread::Builder::new()
        .name("latent-choir-connect".into())
        .spawn(move || {
            let _ = tx.send(dial(&name, port, deadline, &flag));
        });
    if spawned.is_err() {
        return dial(host, port, deadline, &abandoned).map_err(connect_error);
    }
    loop {
        if let Err(error) = wait.check() {
            abandoned.store(true, Ordering::Relaxed);
            return Err(match error {
                HttpError::Timeout { after } => connect_error(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {after:?}"),
                )),
                other => other,
            });
        }
        match rx.recv_timeout(SLICE) {
            Ok(result) => return result.map_err(connect_error),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(connect_error(io::Error::other(
                    "the connecting thread stopped",
                )));
            }
        }
    }
}

/// Tries each address the name resolves to until one answers or the deadline passes.
fn dial(host: &str, port: u16, deadline: Instant, abandoned: &AtomicBool) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        if abandoned.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "abandoned"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(sock) => return Ok(sock),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        if Instant::now() >= deadline {
            io::Error::new(io::ErrorKind::TimedOut, "no connection in time")
        } else {
            io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
        }
    }))
}

/// One connection and what has been read from it but not yet used.
struct Conn {
    sock: TcpStream,
    tls: Option<Box<ClientConnection>>,
    buf: Vec<u8>,
    /// `buf[pos..]` is unread.
    pos: usize,
    /// Response bytes received during the current exchange.
    received: usize,
}

impl Conn {
    fn new(sock: TcpStream, tls: Option<Box<ClientConnection>>) -> Result<Self, HttpError> {
        // One token per request: Nagle's delay would be most of the round trip.
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(SLICE))?;
        sock.set_write_timeout(Some(SLICE))?;
        Ok(Self {
            sock,
            tls,
            buf: Vec::new(),
            pos: 0,
            received: 0,
        })
    }

    fn handshake(&mut self, wait: &mut Waiter) -> Result<(), HttpError> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Ok(());
        };
        let sock = &mut self.sock;
        while tls.is_handshaking() {
            flush_tls(tls, sock, wait)?;
            if !tls.is_handshaking() {
                break;
            }
            wait.check()?;
            match tls.read_tls(sock) {
                Ok(0) => {
                    return Err(HttpError::Tls(
                        "the server closed the connection during the handshake".into(),
                    ));
                }
                Ok(_) => process_tls(tls, sock)?,
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(HttpError::Io(e)),
            }
        }
        flush_tls(tls, sock, wait)
    }

    fn send(&mut self, data: &[u8], wait: &mut Waiter) -> Result<(), HttpError> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return write_plain(&mut self.sock, data, wait);
        };
        let mut rest = data;
        while !rest.is_empty() {
            let n = tls.writer().write(rest)?;
            rest = &rest[n..];
            if n == 0 && !tls.wants_write() {
                return Err(HttpError::Io(io::ErrorKind::WriteZero.into()));
            }
            flush_tls(tls, &mut self.sock, wait)?;
        }
        Ok(())
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads what has arrived onto the end of the buffer; `Ok(0)` when the stream has ended.
    fn fill(&mut self, wait: &mut Waiter) -> Result<usize, HttpError> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= READ_CHUNK {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let result = read_some(
            &mut self.sock,
            self.tls.as_deref_mut(),
            &mut self.buf[old..],
            wait,
        );
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        self.received += n;
        result
    }

    /// Moves buffered bytes into `out` until it holds `len`, reading more first if none are
    /// buffered.
    fn take(&mut self, out: &mut Vec<u8>, len: usize, wait: &mut Waiter) -> Result<(), HttpError> {
        if self.pos == self.buf.len() && self.fill(wait)? == 0 {
            return Err(HttpError::Closed);
        }
        let n = len.saturating_sub(out.len()).min(self.buf.len() - self.pos);
        out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(())
    }

    /// One line without its CRLF (or bare LF); longer than `max` → `TooLarge { what }`.
    fn line(
        &mut self,
        max: usize,
        what: &'static str,
        wait: &mut Waiter,
    ) -> Result<Vec<u8>, HttpError> {
        let mut scanned = 0;
        loop {
            let data = self.available();
            if let Some(at) = data[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + at;
                let line = &data[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.pos += end + 1;
                return Ok(line);
            }
            scanned = data.len();
            if scanned > max {
                return Err(HttpError::TooLarge { what, limit: max });
            }
            if self.fill(wait)? == 0 {
                return Err(HttpError::Closed);
            }
        }
    }
}

fn write_plain(sock: &mut TcpStream, mut data: &[u8], wait: &mut Waiter) -> Result<(), HttpError> {
    while !data.is_empty() {
        wait.check()?;
        match sock.write(data) {
            Ok(0) => return Err(HttpError::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => data = &data[n..],
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(HttpError::Io(e)),
        }
    }
    Ok(())
}

fn flush_tls(
    tls: &mut ClientConnection,
    sock: &mut TcpStream,
    wait: &mut Waiter,
) -> Result<(), HttpError> {
    while tls.wants_write() {
        wait.check()?;
        match tls.write_tls(sock) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(HttpError::Io(e)),
        }
    }
    Ok(())
}

/// Decrypts what `read_tls` took in; on failure tries to tell the server why.
fn process_tls(tls: &mut ClientConnection, sock: &mut TcpStream) -> Result<(), HttpError> {
    match tls.process_new_packets() {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = tls.write_tls(sock);
            Err(HttpError::Tls(describe_tls(e)))
        }
    }
}

fn describe_tls(e: rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(why) => {
            format!("the server's certificate is not trusted ({why})")
        }
        rustls::Error::InvalidMessage(_) => {
            format!("{e} (is the server speaking plain HTTP? try http://)")
        }
        other => other.to_string(),
    }
}

/// Reads some response bytes into `out`, waiting at most [`SLICE`] per socket call; `Ok(0)`
/// at the end of the stream. A TLS record cut by a timeout stays in rustls's buffer and is
/// completed by the next read.
fn read_some(
    sock: &mut TcpStream,
    tls: Option<&mut ClientConnection>,
    out: &mut [u8],
    wait: &mut Waiter,
) -> Result<usize, HttpError> {
    let Some(tls) = tls else {
        loop {
            wait.check()?;
            match sock.read(out) {
                Ok(n) => return Ok(n),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(read_error(e)),
            }
        }
    };
    loop {
        match tls.reader().read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // A TCP close without close_notify: as over plain TCP, the framing decides
            // whether the response was complete.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(read_error(e)),
        }
        wait.check()?;
        match tls.read_tls(sock) {
            Ok(_) => {
                process_tls(tls, sock)?;
                flush_tls(tls, sock, wait)?;
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(read_error(e)),
        }
    }
}

/// A status line and headers.
struct Head {
    /// The `x` of `HTTP/1.x`.
    minor: u8,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    /// Whether a `Connection` header lists `token`.
    fn connection(&self, token: &str) -> bool {
        self.values("connection")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        if self.minor == 0 {
            self.connection("keep-alive") && !self.connection("close")
        } else {
            !self.connection("close")
        }
    }
}

/// How the body's end is known.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    ToClose,
}

/// The response and whether the connection can carry the next request.
fn read_response(
    conn: &mut Conn,
    limits: &Limits,
    wait: &mut Waiter,
) -> Result<(Response, bool), HttpError> {
    let mut budget = limits.max_header_bytes;
    let head = loop {
        let head = read_head(conn, &mut budget, limits.max_header_bytes, wait)?;
        match head.status {
            101 => {
                return Err(HttpError::Malformed(
                    "101 Switching Protocols to a request that asked for none".into(),
                ));
            }
            100..=199 => {}
            _ => break head,
        }
    };
    let (framing, mut reusable) = framing(&head, limits)?;
    let body = match framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) => {
            let mut body = Vec::with_capacity(n);
            while body.len() < n {
                conn.take(&mut body, n, wait)?;
            }
            body
        }
        Framing::Chunked => read_chunked(conn, limits, wait)?,
        Framing::ToClose => {
            reusable = false;
            let mut body = Vec::new();
            loop {
                let available = conn.available().len();
                if body.len() + available > limits.max_body_bytes {
                    return Err(too_large_body(limits));
                }
                body.extend_from_slice(conn.available());
                conn.pos += available;
                if conn.fill(wait)? == 0 {
                    break body;
                }
            }
        }
    };
    let reusable = reusable && head.keep_alive();
    let response = Response {
        status: head.status,
        headers: head.headers,
        body,
    };
    Ok((response, reusable))
}

fn too_large_body(limits: &Limits) -> HttpError {
    HttpError::TooLarge {
        what: "response body",
        limit: limits.max_body_bytes,
    }
}

/// The body's framing (RFC 9112 §6.3) and whether it leaves the connection usable.
fn framing(head: &Head, limits: &Limits) -> Result<(Framing, bool), HttpError> {
    if matches!(head.status, 100..=199 | 204 | 304) {
        return Ok((Framing::Empty, true));
    }
    let has_length = head.values("content-length").next().is_some();
    let codings: Vec<&str> = head
        .values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if !codings.is_empty() {
        if codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked") {
            // Both framings at once is how requests get smuggled: use this one, then close.
            return Ok((Framing::Chunked, !has_length));
        }
        return Err(HttpError::Malformed(format!(
            "unsupported Transfer-Encoding `{}`",
            snippet(codings.join(", ").as_bytes())
        )));
    }
    if !has_length {
        return Ok((Framing::ToClose, false));
    }
    let mut length = None;
    for text in head.values("content-length").flat_map(|v| v.split(',')) {
        let text = text.trim();
        let n = text
            .parse::<u64>()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                HttpError::Malformed(format!("bad Content-Length `{}`", snippet(text.as_bytes())))
            })?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::Malformed(
                "conflicting Content-Length values".into(),
            ));
        }
        length = Some(n);
    }
    let n = length.unwrap_or(0);
    match usize::try_from(n) {
        Ok(n) if n <= limits.max_body_bytes => Ok((Framing::Length(n), true)),
        _ => Err(too_large_body(limits)),
    }
}

fn read_chunked(conn: &mut Conn, limits: &Limits, wait: &mut Waiter) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = conn.line(MAX_CHUNK_LINE, "chunk size line", wait)?;
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = size_text.trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|t| u64::from_str_radix(t, 16).ok())
            .ok_or_else(|| {
                HttpError::Malformed(format!("bad chunk size line `{}`", snippet(&line)))
            })?;
        if size == 0 {
            break;
        }
        let end = u64::try_from(body.len())
            .ok()
            .and_then(|len| len.checked_add(size))
            .and_then(|end| usize::try_from(end).ok())
            .filter(|&end| end <= limits.max_body_bytes)
            .ok_or_else(|| too_large_body(limits))?;
        body.reserve(end - body.len());
        while body.len() < end {
            conn.take(&mut body, end, wait)?;
        }
        if !conn
            .line(MAX_CHUNK_LINE, "chunk size line", wait)?
            .is_empty()
        {
            return Err(HttpError::Malformed("a chunk longer than its size".into()));
        }
    }
    // Trailers: read to keep the connection in step, not kept.
    let mut left = limits.max_header_bytes;
    loop {
        let line = conn.line(left, "response trailers", wait)?;
        if line.is_empty() {
            return Ok(body);
        }
        left = left
            .checked_sub(line.len() + 2)
            .ok_or(HttpError::TooLarge {
                what: "response trailers",
                limit: limits.max_header_bytes,
            })?;
    }
}

/// Reads one status line and its headers, taking at most `budget` bytes off it.
fn read_head(
    conn: &mut Conn,
    budget: &mut usize,
    limit: usize,
    wait: &mut Waiter,
) -> Result<Head, HttpError> {
    let too_large = HttpError::TooLarge {
        what: "response headers",
        limit,
    };
    // Offsets into `conn.available()`: the status line (past stray empty lines), the line
    // being looked at, how far a line break has been looked for.
    let (mut start, mut line, mut scanned) = (0, 0, 0);
    loop {
        let data = conn.available();
        while let Some(at) = data[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + at + 1;
            let text = &data[line..end - 1];
            if text.strip_suffix(b"\r").unwrap_or(text).is_empty() {
                if line == start {
                    start = end;
                } else {
                    if end > *budget {
                        return Err(too_large);
                    }
                    let head = parse_head(&data[start..end])?;
                    conn.pos += end;
                    *budget -= end;
                    return Ok(head);
                }
            }
            line = end;
            scanned = end;
        }
        scanned = data.len();
        if scanned > *budget {
            return Err(too_large);
        }
        if conn.fill(wait)? == 0 {
            return Err(HttpError::Closed);
        }
    }
}

fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let (minor, status) = parse_status_line(status_line).ok_or_else(|| {
        HttpError::Malformed(format!(
            "not an HTTP/1 status line: `{}`",
            snippet(status_line)
        ))
    })?;
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let bad = |why: &str| HttpError::Malformed(format!("{why}: `{}`", snippet(line)));
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(bad("a folded header line"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("a header line without `:`"))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(bad("a bad header name"));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad("a control character in a header value"));
        }
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Ok(Head {
        minor,
        status,
        headers,
    })
}

/// `HTTP/1.x NNN[ reason]` → (x, NNN).
fn parse_status_line(line: &[u8]) -> Option<(u8, u16)> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(b" ")?;
    let (code, reason) = rest.split_at_checked(3)?;
    if !minor.is_ascii_digit()
        || !code.iter().all(u8::is_ascii_digit)
        || !(reason.is_empty() || reason[0] == b' ')
    {
        return None;
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    (status >= 100).then_some((minor - b'0', status))
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The start of something the server sent, printable in a message.
fn snippet(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(80)];
    let mut text = cut.escape_ascii().to_string();
    if cut.len() < bytes.len() {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    use rustls::{ServerConfig, ServerConnection, StreamOwned};

    type Handler = dyn Fn(usize, TcpStream) + Send + Sync;

    /// A server on 127.0.0.1 that runs `handler` for each connection on a thread of its own
    /// (with the connection's index) and counts the connections.
    fn server(
        handler: impl Fn(usize, TcpStream) + Send + Sync + 'static,
    ) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let accepts = Arc::new(AtomicUsize::new(0));
        let counted = accepts.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let index = counted.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                thread::spawn(move || handler(index, stream));
            }
        });
        (port, accepts)
    }

    fn base(port: u16) -> String {
        format!("http://127.0.0.1:{port}/v1")
    }

    /// One request's head (as text) and body (by its Content-Length); `None` at EOF.
    fn read_request(stream: &mut impl Read) -> Option<(String, Vec<u8>)> {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        let head = String::from_utf8(head).ok()?;
        let length = head
            .lines()
            .find_map(|l| {
                let l = l.to_ascii_lowercase();
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        stream.read_exact(&mut body).ok()?;
        Some((head, body))
    }

    /// Answers every request on a connection with `reply`.
    fn answer_all(reply: &'static [u8]) -> impl Fn(usize, TcpStream) + Send + Sync {
        move |_, mut stream| {
            while read_request(&mut stream).is_some() {
                if stream.write_all(reply).is_err() {
                    break;
                }
            }
        }
    }

    fn client(port: u16) -> HttpClient {
        HttpClient::new(&base(port), Limits::default()).expect("client")
    }

    fn post(client: &mut HttpClient) -> Result<Response, HttpError> {
        client.post_json("/completions", b"{\"prompt\":\"hi\"}", None, &mut || false)
    }

    #[test]
    fn post_sends_the_request_and_reads_a_content_length_body() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (port, _) = server(move |_, mut stream| {
            while let Some(request) = read_request(&mut stream) {
                record.lock().expect("lock").push(request);
                let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"text\":1}\n";
                if stream.write_all(reply).is_err() {
                    break;
                }
            }
        });
        let mut client = client(port);
        let response = post(&mut client).expect("response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{\"text\":1}\n");
        assert_eq!(response.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(response.header("x-missing"), None);
        let seen = seen.lock().expect("lock");
        let (head, body) = &seen[0];
        assert!(
            head.starts_with("POST /v1/completions HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{head}"
        );
        assert!(
            head.contains("\r\nContent-Type: application/json\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nContent-Length: 15\r\n"), "{head}");
        assert!(head.contains("\r\nAccept: application/json\r\n"), "{head}");
        let agent = format!(
            "\r\nUser-Agent: latent-choir/{}\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(head.contains(&agent), "{head}");
        assert_eq!(body, b"{\"prompt\":\"hi\"}");
    }

    #[test]
    fn get_sends_no_body_headers() {
        let seen = Arc::new(Mutex::new(String::new()));
        let record = seen.clone();
        let (port, _) = server(move |_, mut stream| {
            if let Some((head, _)) = read_request(&mut stream) {
                *record.lock().expect("lock") = head;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]");
            }
        });
        let response = client(port)
            .get("models", None, &mut || false)
            .expect("response");
        assert_eq!(response.body, b"[]");
        let head = seen.lock().expect("lock").clone();
        assert!(head.starts_with("GET /v1/models HTTP/1.1\r\n"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("content-length"),
            "{head}"
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let (port, accepts) = server(answer_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value\r\nhello\r\n7 ; other\r\n, world\r\nA\r\n and more!\r\n0\r\n\
              X-Trailer: yes\r\nX-Other: 2\r\n\r\n",
        ));
        let mut client = client(port);
        for _ in 0..2 {
            let response = post(&mut client).expect("response");
            assert_eq!(response.body, b"hello, world and more!");
            assert_eq!(response.header("x-trailer"), None);
        }
        // The trailers were read to their end: the connection carried the second request.
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn body_read_to_close_when_no_length_is_given() {
        let (port, accepts) = server(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it, ");
                thread::sleep(Duration::from_millis(120));
                let _ = stream.write_all(b"until the end");
            }
        });
        let mut client = client(port);
        for _ in 0..2 {
            let response = post(&mut client).expect("response");
            assert_eq!(response.body, b"all of it, until the end");
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn keep_alive_reuses_one_connection() {
        let (port, accepts) = server(answer_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntext",
        ));
        let mut client = client(port);
        for _ in 0..3 {
            assert_eq!(post(&mut client).expect("response").body, b"text");
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn connection_close_and_http_1_0_are_respected() {
        for (reply, connections) in [
            (
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"[..],
                3,
            ),
            (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 3),
            (
                b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                1,
            ),
        ] {
            let (port, accepts) = server(answer_all(reply));
            let mut client = client(port);
            for _ in 0..3 {
                assert_eq!(post(&mut client).expect("response").body, b"ok");
            }
            assert_eq!(accepts.load(Ordering::SeqCst), connections);
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_204_has_no_body() {
        let (port, accepts) = server(|_, mut stream| {
            let replies: [&[u8]; 3] = [
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                b"HTTP/1.1 204 No Content\r\nContent-Type: application/json\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext",
            ];
            for reply in replies {
                if read_request(&mut stream).is_none() || stream.write_all(reply).is_err() {
                    return;
                }
            }
        });
        let mut client = client(port);
        let first = post(&mut client).expect("response");
        assert_eq!((first.status, &first.body[..]), (200, &b"ok"[..]));
        let second = post(&mut client).expect("response");
        assert_eq!((second.status, second.body.len()), (204, 0));
        assert_eq!(post(&mut client).expect("response").body, b"next");
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_idle_connection_the_server_closed_is_replaced_transparently() {
        let (port, accepts) = server(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            }
            // Then closes, as a server does with an idle keep-alive connection.
        });
        let mut client = client(port);
        assert_eq!(post(&mut client).expect("first").body, b"first");
        thread::sleep(Duration::from_millis(100));
        assert_eq!(post(&mut client).expect("second").body, b"first");
        assert_eq!(post(&mut client).expect("third").body, b"first");
        assert_eq!(accepts.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_response_cut_short_on_a_reused_connection_is_not_resent() {
        let (port, accepts) = server(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            if read_request(&mut stream).is_some() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-");
            }
        });
        let mut client = client(port);
        assert_eq!(post(&mut client).expect("first").body, b"ok");
        assert!(matches!(post(&mut client), Err(HttpError::Closed)));
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_close_mid_body_is_closed() {
        let (port, _) = server(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
            }
        });
        let result = post(&mut client(port));
        assert!(matches!(result, Err(HttpError::Closed)), "{result:?}");
        let (port, _) = server(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
            }
        });
        let result = post(&mut client(port));
        assert!(matches!(result, Err(HttpError::Closed)), "{result:?}");
    }

    /// Holds each connection open without answering.
    fn stall(_: usize, mut stream: TcpStream) {
        let _ = read_request(&mut stream);
        thread::sleep(Duration::from_secs(5));
    }

    #[test]
    fn a_stalled_server_times_out_at_the_deadline() {
        let (port, _) = server(stall);
        let limits = Limits {
            response: Duration::from_millis(500),
            ..Limits::default()
        };
        let mut client = HttpClient::new(&base(port), limits).expect("client");
        let start = Instant::now();
        let result = post(&mut client);
        let elapsed = start.elapsed();
        assert!(
            matches!(result, Err(HttpError::Timeout { after }) if after == limits.response),
            "{result:?}"
        );
        assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(1000), "{elapsed:?}");
    }

    #[test]
    fn a_server_that_never_stops_dribbling_times_out_too() {
        let (port, _) = server(|_, mut stream| {
            if read_request(&mut stream).is_some() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
                for _ in 0..300 {
                    if stream.write_all(b"x").is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
            }
        });
        let limits = Limits {
            response: Duration::from_millis(500),
            ..Limits::default()
        };
        let start = Instant::now();
        let result = post(&mut HttpClient::new(&base(port), limits).expect("client"));
        assert!(
            matches!(result, Err(HttpError::Timeout { .. })),
            "{result:?}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(1000),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn cancel_is_prompt_and_asked_often() {
        let (port, _) = server(stall);
        let mut client = client(port);
        let start = Instant::now();
        let mut calls = Vec::new();
        let mut cancel = || {
            calls.push(start.elapsed());
            start.elapsed() > Duration::from_millis(200)
        };
        let result = client.post_json("/completions", b"{}", None, &mut cancel);
        let elapsed = start.elapsed();
        assert!(matches!(result, Err(HttpError::Cancelled)), "{result:?}");
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");
        let longest = calls
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        assert!(
            longest < Duration::from_millis(200),
            "{longest:?} between calls"
        );
        // The cancelled connection is not kept.
        assert!(client.conn.is_none());
    }

    #[test]
    fn oversized_headers_and_bodies_are_too_large() {
        let big_header = format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 2\r\n\r\nok",
            "a".repeat(40 * 1024)
        );
        let big_header: &'static [u8] = Box::leak(big_header.into_bytes().into_boxed_slice());
        let (port, _) = server(answer_all(big_header));
        let result = post(&mut client(port));
        assert!(
            matches!(
                result,
                Err(HttpError::TooLarge {
                    what: "response headers",
                    limit: 32768
                })
            ),
            "{result:?}"
        );

        // A declared length over the limit fails before any of the body is read.
        let (port, _) = server(answer_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9000000\r\n\r\n",
        ));
        let result = post(&mut client(port));
        assert!(
            matches!(
                result,
                Err(HttpError::TooLarge {
                    what: "response body",
                    limit: 8388608
                })
            ),
            "{result:?}"
        );

        let small = Limits {
            max_body_bytes: 10,
            ..Limits::default()
        };
        for reply in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\nhello, world",
        ] {
            let (port, _) = server(answer_all(reply));
            let mut client = HttpClient::new(&base(port), small).expect("client");
            let result = post(&mut client);
            assert!(
                matches!(result, Err(HttpError::TooLarge { what: "response body", limit: 10 })),
                "{result:?}"
            );
            assert!(client.conn.is_none());
        }
        // Exactly at the limit is fine.
        let (port, _) = server(answer_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        ));
        let response = post(&mut HttpClient::new(&base(port), small).expect("client"));
        assert_eq!(response.expect("response").body, b"0123456789");
    }

    #[test]
    fn malformed_responses_are_malformed() {
        for reply in [
            &b"HTTP/1.1 OK\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            let (port, _) = server(answer_all(reply));
            let result = post(&mut client(port));
            assert!(
                matches!(result, Err(HttpError::Malformed(_))),
                "{} → {result:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn an_error_status_is_still_a_response() {
        let (port, _) = server(answer_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"error\":\"no such model\"}\r\n",
        ));
        let response = post(&mut client(port)).expect("a 404 is a response");
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"{\"error\":\"no such model\"}\r\n");
    }

    #[test]
    fn authorization_is_sent_exactly_when_a_bearer_is_given() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let (port, _) = server(move |_, mut stream| {
            while let Some((head, _)) = read_request(&mut stream) {
                record.lock().expect("lock").push(head);
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut client = client(port);
        let secret = "sk-test-0123456789";
        client
            .post_json("/completions", b"{}", Some(secret), &mut || false)
            .expect("with");
        client
            .post_json("/completions", b"{}", None, &mut || false)
            .expect("without");
        let seen = seen.lock().expect("lock");
        assert!(
            seen[0].contains(&format!("\r\nAuthorization: Bearer {secret}\r\n")),
            "{}",
            seen[0]
        );
        assert!(
            !seen[1].to_ascii_lowercase().contains("authorization"),
            "{}",
            seen[1]
        );
        assert!(!format!("{client:?}").contains(secret));

        // A token that would break the header is refused, and not repeated in the error.
        let bad = "sk-1\r\nX-Injected: yes";
        let result = client.post_json("/completions", b"{}", Some(bad), &mut || false);
        let error = result.expect_err("refused");
        assert!(matches!(error, HttpError::BadUrl(_)));
        assert!(!format!("{error} {error:?}").contains("sk-1"));
        // Nor does a failure to connect mention it.
        let closed = closed_port();
        let mut client = HttpClient::new(&base(closed), Limits::default()).expect("client");
        let error = client
            .post_json("/c", b"{}", Some(secret), &mut || false)
            .expect_err("no server");
        assert!(!format!("{error} {error:?}").contains(secret));
    }

    #[test]
    fn the_client_can_move_to_the_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<HttpClient>();
        is_send::<HttpError>();
    }

    fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local address").port()
    }

    #[test]
    fn a_closed_port_is_a_quick_connect_error() {
        let port = closed_port();
        let start = Instant::now();
        let result = post(&mut client(port));
        match result {
            Err(HttpError::Connect { addr, source }) => {
                assert_eq!(addr, format!("127.0.0.1:{port}"));
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn base_urls_are_checked_and_normalised() {
        let limits = Limits::default();
        for (url, base) in [
            ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
            ("HTTPS://Example.com/v1/", "https://example.com/v1"),
            ("http://example.com:80", "http://example.com"),
            (
                "https://example.com:443/api/v1",
                "https://example.com/api/v1",
            ),
            ("https://example.com:8443/", "https://example.com:8443"),
            ("http://[::1]:11434/v1", "http://[::1]:11434/v1"),
            ("http://localhost:/v1", "http://localhost/v1"),
        ] {
            let client = HttpClient::new(url, limits).expect(url);
            assert_eq!(client.base_url(), base);
        }
        for url in [
            "ftp://example.com/v1",
            "example.com:8080/v1",
            "http://user:hunter2@example.com/v1",
            "http://example.com/v1#part",
            "http://example.com/v1?key=abc",
            "http:///v1",
            "http://:8080/v1",
            "http://example.com:99999/v1",
            "http://example.com:0/v1",
            "http://example.com:+80/v1",
            "http://exa mple.com/v1",
            "http://example.com/v 1",
            "http://::1:8080/v1",
            "http://[::1/v1",
            "http://[not-v6]/v1",
        ] {
            let result = HttpClient::new(url, limits);
            match result {
                // Never the URL itself: it may hold a password or a key.
                Err(HttpError::BadUrl(why)) => {
                    assert!(!why.contains("hunter2") && !why.contains("abc"), "{why}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    /// A test CA and a server configuration with a certificate for `localhost` it signed.
    fn test_pki() -> (CertificateDer<'static>, Arc<ServerConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Latent Choir test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().expect("server key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("server certificate");
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone()],
                PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
            )
            .expect("server config");
        (ca_cert.der().clone(), Arc::new(config))
    }

    const TLS_BODY: &str = "{\"choices\":[{\"text\":\"a token that came over TLS, slowly or not, and is long enough to span many pieces of the dribble\"}]}";

    /// An HTTPS server answering every request with [`TLS_BODY`]; `dribble` sends the
    /// encrypted bytes in small pieces with pauses longer than the client's read slice.
    fn tls_server(config: Arc<ServerConfig>, dribble: bool) -> (u16, Arc<AtomicUsize>) {
        server(move |_, stream| {
            let Ok(conn) = ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = StreamOwned::new(conn, stream);
            while read_request(&mut tls).is_some() {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{TLS_BODY}",
                    TLS_BODY.len()
                );
                if !dribble {
                    if tls
                        .write_all(reply.as_bytes())
                        .and_then(|()| tls.flush())
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
                let mut wire = Vec::new();
                if tls.conn.writer().write_all(reply.as_bytes()).is_err() {
                    return;
                }
                while tls.conn.wants_write() {
                    if tls.conn.write_tls(&mut wire).is_err() {
                        return;
                    }
                }
                for piece in wire.chunks(24) {
                    if tls.sock.write_all(piece).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_millis(70));
                }
            }
        })
    }

    fn roots(ca: CertificateDer<'static>) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(ca).expect("CA as a root");
        roots
    }

    #[test]
    fn https_with_a_trusted_ca_keeps_its_connection() {
        let (ca, config) = test_pki();
        let (port, accepts) = tls_server(config, false);
        let url = format!("https://localhost:{port}/v1");
        let mut client =
            HttpClient::with_roots(&url, Limits::default(), roots(ca)).expect("client");
        for _ in 0..3 {
            let response = post(&mut client).expect("response");
            assert_eq!(response.status, 200);
            assert_eq!(response.body, TLS_BODY.as_bytes());
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn https_reconnects_when_the_server_closes_an_idle_connection() {
        let (ca, config) = test_pki();
        let (port, accepts) = server(move |_, stream| {
            let Ok(conn) = ServerConnection::new(config.clone()) else {
                return;
            };
            let mut tls = StreamOwned::new(conn, stream);
            if read_request(&mut tls).is_some() {
                let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce";
                let _ = tls.write_all(reply);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        let url = format!("https://localhost:{port}/v1");
        let mut client =
            HttpClient::with_roots(&url, Limits::default(), roots(ca)).expect("client");
        for _ in 0..3 {
            assert_eq!(post(&mut client).expect("response").body, b"once");
            thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(accepts.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn https_survives_records_cut_by_read_timeouts() {
        let (ca, config) = test_pki();
        let (port, _) = tls_server(config, true);
        let url = format!("https://localhost:{port}/v1");
        let mut client =
            HttpClient::with_roots(&url, Limits::default(), roots(ca)).expect("client");
        let start = Instant::now();
        for _ in 0..2 {
            let response = post(&mut client).expect("response");
            assert_eq!(response.body, TLS_BODY.as_bytes());
        }
        // Pieces of 24 bytes 70 ms apart: the reads did time out inside records.
        assert!(
            start.elapsed() > Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn https_with_an_untrusted_certificate_says_so() {
        let (_, config) = test_pki();
        let (port, _) = tls_server(config, false);
        let url = format!("https://localhost:{port}/v1");
        let mut client = HttpClient::new(&url, Limits::default()).expect("client");
        match post(&mut client) {
            Err(HttpError::Tls(why)) => assert!(why.contains("not trusted"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_silent_tls_handshake_can_be_cancelled_or_time_out() {
        let (ca, _) = test_pki();
        let (port, _) = server(|_, _stream| thread::sleep(Duration::from_secs(5)));
        let url = format!("https://localhost:{port}/v1");
        let mut client =
            HttpClient::with_roots(&url, Limits::default(), roots(ca.clone())).expect("client");
        let start = Instant::now();
        let mut cancel = || start.elapsed() > Duration::from_millis(200);
        let result = client.post_json("/completions", b"{}", None, &mut cancel);
        assert!(matches!(result, Err(HttpError::Cancelled)), "{result:?}");
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );

        let limits = Limits {
            connect: Duration::from_millis(300),
            ..Limits::default()
        };
        let mut client = HttpClient::with_roots(&url, limits, roots(ca)).expect("client");
        let start = Instant::now();
        let result = post(&mut client);
        assert!(
            matches!(result, Err(HttpError::Timeout { after }) if after == limits.connect),
            "{result:?}"
        );
        assert!(
            start.elapsed() < Duration::from_millis(800),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn plain_http_to_a_tls_port_and_back_are_errors_not_hangs() {
        let (ca, config) = test_pki();
        let (port, _) = tls_server(config, false);
        // http:// to a TLS server: it waits for a ClientHello, gets garbage, and closes.
        let limits = Limits {
            response: Duration::from_secs(2),
            ..Limits::default()
        };
        let result = post(&mut HttpClient::new(&base(port), limits).expect("client"));
        assert!(result.is_err(), "{result:?}");
        // https:// to a plain server: it answers the ClientHello with a 400.
        let (port, _) = server(|_, mut stream| {
            let mut hello = [0u8; 512];
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        });
        let url = format!("https://localhost:{port}/v1");
        let result = post(&mut HttpClient::with_roots(&url, limits, roots(ca)).expect("client"));
        match result {
            Err(HttpError::Tls(why)) => assert!(why.contains("plain HTTP"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
