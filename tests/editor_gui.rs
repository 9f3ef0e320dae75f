//! The editor in a real window: the standalone app (dummy audio backend) on a virtual X display,
//! screenshotted and checked for drawn content. The screenshot is kept in
//! `target/test-artifacts/editor.png` for a person to look at.
#![cfg(feature = "standalone")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, ImageFormat, MapState, Window};

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
            "1024x768x24",
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

#[test]
fn editor_window_renders_its_content() {
    let (_xvfb, display) = start_xvfb();
    let mut app = Reaped(
        Command::new(env!("CARGO_BIN_EXE_latent_choir"))
            .args(["--backend", "dummy"])
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the standalone app"),
    );

    let (conn, screen) = x11rb::connect(Some(&display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (window, width, height) = loop {
        if let Some(status) = app.0.try_wait().expect("poll the app") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(app.0.stderr.as_mut().expect("stderr"), &mut stderr).ok();
            panic!("the standalone app exited early ({status}):\n{stderr}");
        }
        if let Some(found) = find_window(&conn, root) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no editor window appeared within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Let egui lay out and paint a few frames.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        app.0.try_wait().expect("poll the app").is_none(),
        "the app died after opening"
    );

    let image = conn
        .get_image(ImageFormat::Z_PIXMAP, window, 0, 0, width, height, !0)
        .expect("request the window's pixels")
        .reply()
        .expect("the window's pixels");
    // 24-bit depth comes as 32 bits per pixel, little-endian BGRX.
    let rgb: Vec<u8> = image
        .data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let path = common::paths::artifacts_dir().join("editor.png");
    save_png(&path, u32::from(width), u32::from(height), &rgb);

    let pixels = rgb.len() / 3;
    let luma = |p: &[u8]| (u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10;
    let lumas: Vec<u32> = rgb.chunks_exact(3).map(luma).collect();
    let background = median(&lumas);
    let bright = lumas.iter().filter(|&&l| l > background + 60).count();
    let colours: std::collections::HashSet<&[u8]> = rgb.chunks_exact(3).collect();
    println!(
        "editor {width}x{height}: background luma {background}, {bright} bright pixels, {} colours, saved {}",
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

fn median(values: &[u32]) -> u32 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn save_png(path: &std::path::Path, width: u32, height: u32, rgb: &[u8]) {
    let file = std::fs::File::create(path).expect("create the screenshot file");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("png header");
    writer.write_image_data(rgb).expect("png data");
}
