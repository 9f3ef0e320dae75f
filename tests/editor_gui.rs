//! The editor in a real window: the standalone app (dummy audio backend) on a virtual X display,
//! driven with synthetic key presses (XTEST) and screenshotted. Screenshots are kept in
//! `target/test-artifacts/` for a person to look at:
//!
//! * `editor.png`: the editor as it opens;
//! * `editor-before.png`, `editor-generating.png`: before and after typing a prompt and
//!   pressing Enter with the default model — the live text with the sounding token highlighted,
//!   the heat map and the plots drawn.
#![cfg(feature = "standalone")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt, ImageFormat, InputFocus, KEY_PRESS_EVENT, KEY_RELEASE_EVENT,
    MOTION_NOTIFY_EVENT, MapState, Window,
};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

/// Kills the child when dropped, so a failed assertion never leaves a process behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start Xvfb on a display it picks itself; returns the process and the `DISPLAY` value.
fn start_xvfb() -> (Reaped, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x1024x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb is needed for the GUI test (Debian xvfb); `cargo xtask test` installs it");
    let stdout = child.stdout.take().expect("Xvfb stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("Xvfb prints its display number");
    (Reaped(child), format!(":{}", line.trim()))
}

/// The first mapped top-level window with a real size, and its geometry.
fn find_window(conn: &impl Connection, root: Window) -> Option<(Window, u16, u16)> {
    let tree = conn.query_tree(root).ok()?.reply().ok()?;
    tree.children.into_iter().find_map(|window| {
        let attributes = conn.get_window_attributes(window).ok()?.reply().ok()?;
        let geometry = conn.get_geometry(window).ok()?.reply().ok()?;
        (attributes.map_state == MapState::VIEWABLE
            && geometry.width > 100
            && geometry.height > 100)
            .then_some((window, geometry.width, geometry.height))
    })
}

/// The standalone app on `display` and its window, once it is mapped.
struct App {
    process: Reaped,
    conn: RustConnection,
    root: Window,
    window: Window,
    width: u16,
    height: u16,
}

impl App {
    fn open(display: &str) -> Self {
        let mut process = Reaped(
            Command::new(env!("CARGO_BIN_EXE_latent_choir"))
                .args(["--backend", "dummy"])
                .env("DISPLAY", display)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the standalone app"),
        );
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to Xvfb");
        let root = conn.setup().roots[screen].root;
        let deadline = Instant::now() + Duration::from_secs(30);
        let (window, width, height) = loop {
            process.assert_alive();
            if let Some(found) = find_window(&conn, root) {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "no editor window appeared within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Self {
            process,
            conn,
            root,
            window,
            width,
            height,
        }
    }

    /// The window's pixels as RGB.
    fn screenshot(&mut self) -> Image {
        self.process.assert_alive();
        let image = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.window,
                0,
                0,
                self.width,
                self.height,
                !0,
            )
            .expect("request the window's pixels")
            .reply()
            .expect("the window's pixels");
        // 24-bit depth comes as 32 bits per pixel, little-endian BGRX.
        let rgb = image
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect();
        Image {
            width: usize::from(self.width),
            height: usize::from(self.height),
            rgb,
        }
    }

    /// Keyboard focus to the window, the pointer inside it.
    fn focus(&self) {
        let conn = &self.conn;
        conn.set_input_focus(InputFocus::PARENT, self.window, x11rb::CURRENT_TIME)
            .expect("focus");
        let (x, y) = (self.width as i16 / 2, self.height as i16 - 10);
        conn.xtest_fake_input(MOTION_NOTIFY_EVENT, 0, 0, self.root, x, y, 0)
            .expect("move the pointer");
        conn.flush().expect("flush");
    }

    /// Presses and releases `keysym` (with Control held when `control`).
    fn key(&self, keysym: u32, control: bool) {
        let conn = &self.conn;
        let control_code = self.keycode(0xffe3);
        let code = self.keycode(keysym);
        let fake = |kind, code| {
            conn.xtest_fake_input(kind, code, 0, self.root, 0, 0, 0)
                .expect("fake key event");
        };
        if control {
            fake(KEY_PRESS_EVENT, control_code);
        }
        fake(KEY_PRESS_EVENT, code);
        fake(KEY_RELEASE_EVENT, code);
        if control {
            fake(KEY_RELEASE_EVENT, control_code);
        }
        conn.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(40));
    }

    fn type_text(&self, text: &str) {
        for c in text.chars() {
            // Latin-1 characters are their own keysyms.
            self.key(u32::from(c), false);
        }
    }

    /// The keycode the server maps `keysym` to (unshifted).
    fn keycode(&self, keysym: u32) -> u8 {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let mapping = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .expect("keyboard mapping")
            .reply()
            .expect("keyboard mapping reply");
        let per = usize::from(mapping.keysyms_per_keycode);
        mapping
            .keysyms
            .chunks(per)
            .position(|syms| syms.first() == Some(&keysym))
            .map(|i| min + i as u8)
            .unwrap_or_else(|| panic!("no keycode for keysym {keysym:#x}"))
    }
}

trait Alive {
    fn assert_alive(&mut self);
}

impl Alive for Reaped {
    fn assert_alive(&mut self) {
        if let Some(status) = self.0.try_wait().expect("poll the app") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(self.0.stderr.as_mut().expect("stderr"), &mut stderr)
                .ok();
            panic!("the standalone app exited ({status}):\n{stderr}");
        }
    }
}

struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn save(&self, name: &str) -> std::path::PathBuf {
        let path = common::paths::artifacts_dir().join(name);
        let file = std::fs::File::create(&path).expect("create the screenshot file");
        let mut encoder = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("png header");
        writer.write_image_data(&self.rgb).expect("png data");
        path
    }

    /// Pixels of the region `x`, `y` (fractions of the window) that satisfy `test`.
    fn count(&self, x: (f32, f32), y: (f32, f32), test: impl Fn([u8; 3]) -> bool) -> usize {
        let cols = (self.width as f32 * x.0) as usize..(self.width as f32 * x.1) as usize;
        let rows = (self.height as f32 * y.0) as usize..(self.height as f32 * y.1) as usize;
        rows.flat_map(|r| cols.clone().map(move |c| (r, c)))
            .filter(|&(r, c)| {
                let i = (r * self.width + c) * 3;
                test([self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]])
            })
            .count()
    }
}

fn near(target: [u8; 3], tolerance: i32) -> impl Fn([u8; 3]) -> bool {
    move |p| {
        p.iter()
            .zip(target)
            .all(|(&a, b)| (i32::from(a) - i32::from(b)).abs() <= tolerance)
    }
}

fn luma(p: [u8; 3]) -> u32 {
    (u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10
}

#[test]
fn editor_window_renders_its_content() {
    let (_xvfb, display) = start_xvfb();
    let mut app = App::open(&display);
    // Let egui lay out and paint a few frames.
    std::thread::sleep(Duration::from_secs(3));
    let image = app.screenshot();
    let path = image.save("editor.png");

    let pixels = image.width * image.height;
    let mut lumas: Vec<u32> = image
        .rgb
        .chunks_exact(3)
        .map(|p| luma([p[0], p[1], p[2]]))
        .collect();
    lumas.sort_unstable();
    let background = lumas[lumas.len() / 2];
    let bright = image.count((0.0, 1.0), (0.0, 1.0), |p| luma(p) > background + 60);
    let colours: std::collections::HashSet<&[u8]> = image.rgb.chunks_exact(3).collect();
    println!(
        "editor {}x{}: background luma {background}, {bright} bright pixels, {} colours, saved {}",
        image.width,
        image.height,
        colours.len(),
        path.display()
    );
    // Text and widgets: anti-aliased glyphs give many colours, and labels cover a visible share
    // of the window. A blank, black or single-colour window fails both.
    assert!(
        colours.len() > 20,
        "only {} colours: the window looks blank",
        colours.len()
    );
    assert!(
        bright * 1000 > pixels * 5,
        "only {bright} of {pixels} pixels stand out from the background: no text drawn"
    );
}

/// Where the layout puts things (fractions of the window): the parameters take the left
/// ~40%, the live text the upper part of the rest, the heat map below it, then the plots.
const CENTRE: (f32, f32) = (0.45, 0.97);
const TEXT_ROWS: (f32, f32) = (0.18, 0.42);
const HEAT_ROWS: (f32, f32) = (0.47, 0.55);
const PLOT_ROWS: (f32, f32) = (0.60, 0.90);

/// Pixels that show data: the played text, the highlighted token, heat-map cells, plotted
/// series.
#[derive(Debug)]
struct Evidence {
    text: usize,
    highlight: usize,
    heat: usize,
    plotted: usize,
}

fn evidence(image: &Image) -> Evidence {
    let highlight_colour = near([250, 200, 70], 12);
    // Glyphs of the played text; the placeholder line before it is dimmer (luma < 100).
    let text = image.count(CENTRE, TEXT_ROWS, |p| {
        luma(p) > 100 && !near([250, 200, 70], 60)(p)
    });
    let highlight = image.count(CENTRE, TEXT_ROWS, highlight_colour);
    // Heat-map cells are saturated blues and oranges; the panel around them is grey.
    let heat = image.count(CENTRE, HEAT_ROWS, |[r, g, b]| {
        let (max, min) = (r.max(g).max(b), r.min(g).min(b));
        max - min > 60
    });
    // The voices' colours and the history series' colours.
    let colours = [
        [90, 170, 255],
        [120, 220, 120],
        [255, 130, 90],
        [120, 200, 255],
        [200, 160, 255],
        [255, 170, 80],
    ];
    let plotted = image.count(CENTRE, PLOT_ROWS, |p| {
        colours.iter().any(|&c| near(c, 30)(p))
    });
    Evidence {
        text,
        highlight,
        heat,
        plotted,
    }
}

#[test]
fn typing_a_prompt_and_pressing_enter_plays_text_and_plots() {
    let model = latent_choir::llm::discovery::default_model_path().expect("a data dir");
    assert!(
        model.exists(),
        "{} is missing: run `cargo xtask fetch-model` (cargo xtask test does it)",
        model.display()
    );
    let (_xvfb, display) = start_xvfb();
    let mut app = App::open(&display);
    std::thread::sleep(Duration::from_secs(3));
    let before = app.screenshot();
    before.save("editor-before.png");
    let quiet = evidence(&before);
    assert_eq!(
        (quiet.text, quiet.highlight, quiet.heat, quiet.plotted),
        (0, 0, 0, 0),
        "text, a highlighted token, heat-map cells or plotted data before anything was generated"
    );

    // The prompt box has the keyboard when the editor opens: replace its text, press Enter.
    app.focus();
    std::thread::sleep(Duration::from_millis(300));
    app.key(u32::from('a'), true);
    app.type_text("the river sang at night");
    app.key(0xff0d, false);

    // Loading takes seconds (minutes if the map has to be fitted first); the first notes
    // follow a few tokens later. Wait until a few lines of text and several tokens of plot
    // are on screen.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let image = app.screenshot();
        let seen = evidence(&image);
        let done = seen.text > 800 && seen.highlight > 20 && seen.heat > 2000 && seen.plotted > 800;
        if done || Instant::now() > deadline {
            let path = image.save("editor-generating.png");
            println!("generating: {seen:?}; saved {}", path.display());
            assert!(
                done,
                "within 300 s the editor did not show the played text, the highlighted token, the \
                 heat map and plotted data: {seen:?}; see {}",
                path.display()
            );
            break;
        }
    }
}
