//! `latent-choir serve`: an OpenAI-compatible HTTP/1.1 server over the engine (README,
//! "Serving"). One thread per connection (bounded), a fixed number of engines — model
//! instances with their own KV cache — and a small queue in front of them.
//!
//! * `http` — reading requests under limits, writing responses and Server-Sent Events.
//! * `openai` — the request shapes, checked field by field; the error body.
//! * `routes` — the endpoints and the response shapes.
//! * `engine` — the engines, the pool, generation with prefix reuse.
//! * `stop` — stop strings over streamed text.

mod engine;
mod http;
mod openai;
mod routes;
mod stop;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use latent_choir::activation::ProjectionMap;
use latent_choir::activation::cache::{self, Found, MapCache};
use latent_choir::llm::discovery;
use latent_choir::llm::loader::{self, LoadedModel};

use engine::{Engine, Pool};
use http::Limits;
use openai::ApiError;
use routes::Server;

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file, a Hugging Face folder, or the name of a model `latent-choir models` lists
    /// (file or folder name); the default model if omitted.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The model's id in the API; by default the file or folder name without extension.
    #[arg(long)]
    model_id: Option<String>,
    /// Address to listen on. Anything but loopback exposes the model to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port; 0 takes any free one (the line `listening on http://HOST:PORT` says which).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Engines (model instances, each with its own KV cache) generating at the same time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    max_concurrency: u16,
    /// Requests that may wait for an engine; more get 429.
    #[arg(long, default_value_t = 4)]
    queue: usize,
    /// Seconds a queued request waits for an engine before it gets 503.
    #[arg(long, default_value_t = 60)]
    queue_timeout: u64,
    /// Open connections at most; more are answered 503 and closed.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = 1 << 20)]
    max_request_bytes: usize,
    /// Largest request line plus headers in bytes (431 above).
    #[arg(long, default_value_t = 16 << 10)]
    max_header_bytes: usize,
    /// Seconds a request may take to arrive, and a response to be taken.
    #[arg(long, default_value_t = 30)]
    read_timeout: u64,
    /// Seconds a kept-alive connection may idle between requests.
    #[arg(long, default_value_t = 10)]
    idle_timeout: u64,
    /// The PCA map for the `latent_choir` extension (refused unless fitted for this model);
    /// by default the model's map from the user's map cache.
    #[arg(long)]
    map: Option<PathBuf>,
    /// Fit the model's map now if the cache has none (as `render` does), before listening.
    #[arg(long)]
    fit_map: bool,
    /// Run every prompt the same way whatever the KV cache holds (in aligned chunks of 16), so
    /// the same request and seed give the same bits after any other request; without it a
    /// reused prefix can move the logits by ~1e-6. Costs time on growing prompts.
    #[arg(long)]
    exact_prefill: bool,
}

pub fn run(args: Args) -> Result<(), String> {
    let path = resolve_model(args.model.as_deref())?;
    let mut loaded = loader::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let map = find_map(&mut loaded, &args);
    if let Err(reason) = &map {
        eprintln!("the latent_choir extension will have no coordinates: {reason}");
    }
    let model_id = args.model_id.clone().unwrap_or_else(|| model_name(&path));
    let tokenizer = loaded.tokenizer.clone();
    let info = loaded.model.info().clone();
    let mut engines = vec![Engine::new(loaded, args.exact_prefill)];
    for _ in 1..args.max_concurrency {
        let more = loader::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        engines.push(Engine::new(more, args.exact_prefill));
    }
    let pool = Pool::new(
        engines,
        args.queue,
        Duration::from_secs(args.queue_timeout),
        path.clone(),
        args.exact_prefill,
    );
    let server = Arc::new(Server {
        model_id,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        tokenizer,
        context_length: info.context_length,
        n_states: info.n_layers + 1,
        pool,
        map: map.map(Arc::new),
        counter: AtomicU64::new(0),
    });
    let limits = Limits {
        max_header_bytes: args.max_header_bytes,
        max_body_bytes: args.max_request_bytes,
        read_timeout: Duration::from_secs(args.read_timeout.max(1)),
        idle_timeout: Duration::from_secs(args.idle_timeout.max(1)),
        write_timeout: Duration::from_secs(args.read_timeout.max(1)),
    };
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{address}");
        let _ = out.flush();
    }
    eprintln!(
        "serving {} as '{}': {} engine(s), queue {}, context {} tokens",
        path.display(),
        server.model_id,
        args.max_concurrency,
        args.queue,
        info.context_length
    );
    let open = Arc::new(AtomicUsize::new(0));
    for connection in listener.incoming() {
        let Ok(mut stream) = connection else {
            // Out of file descriptors, say: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if open.load(Ordering::Acquire) >= args.max_connections {
            let error = ApiError::new(503, "server_busy", "Too many open connections.")
                .code("too_many_connections");
            let _ = stream.set_write_timeout(Some(limits.write_timeout));
            let _ = routes::write_error(&mut stream, &error, false);
            continue;
        }
        open.fetch_add(1, Ordering::AcqRel);
        let (server, open) = (Arc::clone(&server), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name("serve-connection".into())
            .spawn(move || {
                serve_connection(&server, stream, &limits);
                open.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            eprintln!("cannot start a connection thread: {e}");
        }
    }
    Ok(())
}

fn serve_connection(server: &Server, mut stream: TcpStream, limits: &Limits) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let mut buffer = Vec::new();
    let mut first = true;
    loop {
        match http::read_request(&mut stream, &mut buffer, limits, first) {
            Ok(request) => {
                first = false;
                if !routes::handle(server, request, &mut stream) {
                    break;
                }
            }
            Err(error) => {
                if let Some(status) = error.status {
                    let kind = match status {
                        413 => "invalid_request_error",
                        408 => "timeout",
                        _ => "invalid_request_error",
                    };
                    let code = match status {
                        413 => "request_too_large",
                        431 => "headers_too_large",
                        408 => "request_timeout",
                        _ => "bad_request",
                    };
                    let error = ApiError::new(status, kind, error.message).code(code);
                    let _ = routes::write_error(&mut stream, &error, false);
                    linger(&mut stream, limits);
                }
                break;
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// After an error answer to a request whose body was not read: stop writing and take what
/// the client still sends for a moment, so closing does not reset the connection before the
/// client has read the answer.
fn linger(stream: &mut TcpStream, limits: &Limits) {
    use std::io::Read;
    let _ = stream.shutdown(Shutdown::Write);
    let started = Instant::now();
    let budget = Duration::from_secs(2);
    let mut sink = [0u8; 16384];
    let mut total = 0usize;
    while started.elapsed() < budget && total < 4 * limits.max_body_bytes + (1 << 20) {
        let _ = stream.set_read_timeout(Some(
            budget
                .saturating_sub(started.elapsed())
                .max(Duration::from_millis(10)),
        ));
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// `explicit` as a path, else as the name of a model discovery finds.
fn resolve_model(explicit: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if let Some(name) = explicit.filter(|p| !p.exists())
        && let Some(found) = discovery::discover_all().into_iter().find(|m| {
            let file = m.path.file_name().map(|f| f.to_string_lossy().into_owned());
            let stem = m.path.file_stem().map(|f| f.to_string_lossy().into_owned());
            let wanted = name.to_string_lossy();
            file.as_deref() == Some(&*wanted) || stem.as_deref() == Some(&*wanted)
        })
    {
        return Ok(found.path);
    }
    discovery::resolve(explicit).map_err(|e| {
        format!("{e}. Run `cargo xtask fetch-model` for the default model, or pass --model PATH")
    })
}

/// The id a model goes by: its file name without `.gguf`, or its folder's name.
fn model_name(path: &std::path::Path) -> String {
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.map_or_else(
        || "latent-choir".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The map for the extension: `--map`, the cached one, or (with `--fit-map`) one fitted now.
fn find_map(loaded: &mut LoadedModel, args: &Args) -> Result<ProjectionMap, String> {
    if args.map.is_some() || args.fit_map {
        return crate::generate::projection_map(loaded, args.map.as_deref());
    }
    let cache = MapCache::user().map_err(|e| e.to_string())?;
    let entry = cache::lookup(loaded, &cache).map_err(|e| e.to_string())?;
    match entry.found {
        Found::Valid(map) => Ok(map),
        Found::Missing => Err(format!(
            "no PCA map for this model in {} (run `latent-choir fit-pca` for it, or start serve with --fit-map)",
            cache.dir.display()
        )),
        Found::Refused(reason) => Err(format!(
            "the cached map cannot be used ({reason}); start serve with --fit-map to fit it again"
        )),
    }
}
