//! `latent-choir map-plot` as a user runs it, on the tiny llama fixture with its own map
//! cache: the PNG decodes and shows a picture, the SVG holds the corpus, the path and the
//! token labels, `--layer all` draws one panel per hidden state, t-SNE and UMAP are the same
//! bytes for a seed and differ for another, and bad arguments are clear errors.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use common::cli;
use common::paths::fixture;
use common::temp::TempDir;
use latent_choir::activation::file;

const PROMPT: &str = "The old choir sang.";

fn plot(dir: &TempDir, args: &[&str]) -> Command {
    let mut command = cli::command();
    command
        .arg("map-plot")
        .arg("--model")
        .arg(fixture("tiny-llama"))
        .args(args)
        .env("XDG_CACHE_HOME", dir.join("cache"));
    command
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn succeed(dir: &TempDir, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli::succeed(&mut plot(dir, args)).stdout).into_owned()
}

/// Elements with class `class` under `g`s of that class, by element name.
fn in_groups<'a>(
    doc: &'a roxmltree::Document,
    class: &str,
    name: &str,
) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some(class))
        .flat_map(|g| {
            g.children()
                .filter(|c| c.has_tag_name(name))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn panels(doc: &roxmltree::Document) -> usize {
    doc.descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("panel"))
        .count()
}

#[test]
fn pca_pictures_show_the_corpus_cloud_and_the_labelled_prompt() {
    let dir = TempDir::new("map-plot-pca");
    let png = dir.join("plot.png");
    let out = succeed(
        &dir,
        &["--prompt", PROMPT, "--layer", "1", "--out", s(&png)],
    );
    assert!(out.contains("from the map's corpus cloud"), "{out}");

    // The fit stored the cloud in the map file: every state, at most 1000 points in [-1, 1].
    let maps: Vec<_> = std::fs::read_dir(dir.join("cache/latent-choir/maps"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    assert_eq!(maps.len(), 1);
    let map = file::load(&maps[0]).expect("the fitted map loads");
    for state in 0..map.n_states() {
        let cloud = map.cloud(state).expect("a cloud per state");
        assert!(!cloud.is_empty() && cloud.len() <= 1000);
        assert!(cloud.iter().flatten().all(|v| v.abs() <= 1.0));
    }
    let cloud_points = map.cloud(1).unwrap().len();

    // The PNG decodes, is in colour and has something drawn inside the plot area.
    let decoder = png::Decoder::new(std::io::Cursor::new(std::fs::read(&png).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).expect("pixels");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let (w, h) = (info.width as usize, info.height as usize);
    assert!(w >= 600 && h >= 600, "{w}×{h}");
    let colours: HashSet<&[u8]> = pixels.chunks(3).collect();
    assert!(colours.len() > 100, "only {} colours", colours.len());
    let inked = (h / 8..h * 7 / 8)
        .flat_map(|y| (w / 8..w * 7 / 8).map(move |x| (x, y)))
        .filter(|&(x, y)| pixels[(y * w + x) * 3] < 200)
        .count();
    assert!(inked > 2000, "only {inked} drawn pixels in the plot area");

    // The SVG: one panel, the map's cloud as the corpus, a path, and a label per token.
    let svg = dir.join("plot.svg");
    succeed(
        &dir,
        &["--prompt", PROMPT, "--layer", "1", "--out", s(&svg)],
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(panels(&doc), 1);
    assert_eq!(in_groups(&doc, "corpus", "circle").len(), cloud_points);
    let tokens = in_groups(&doc, "tokens", "circle");
    let labels: Vec<String> = in_groups(&doc, "labels", "text")
        .iter()
        .map(|t| t.text().unwrap_or_default().to_owned())
        .collect();
    assert!(tokens.len() >= 4, "{labels:?}");
    assert_eq!(labels.len(), tokens.len());
    let joined = labels.concat();
    for word in ["The", "old", "choir", "sang"] {
        assert!(joined.contains(word), "{word} not in {labels:?}");
    }
    let path = in_groups(&doc, "trajectory", "polyline");
    assert_eq!(path.len(), 1);
    let vertices = path[0]
        .attribute("points")
        .unwrap()
        .split_whitespace()
        .count();
    assert_eq!(vertices, tokens.len());
    assert!(text.contains("PC1 (") && text.contains("% of variance"));

    // --layer all: one panel per hidden state (the fixture has 2 blocks: 3 states).
    let all = dir.join("all.svg");
    succeed(
        &dir,
        &["--prompt", PROMPT, "--layer", "all", "--out", s(&all)],
    );
    let text = std::fs::read_to_string(&all).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    assert_eq!(panels(&doc), 3);
    for title in [
        "state 0 (embedding output)",
        "state 1 (block 1)",
        "state 2 (final norm)",
    ] {
        assert!(text.contains(title), "{title}");
    }
    assert_eq!(in_groups(&doc, "labels", "text").len(), 3 * tokens.len());

    // --lines runs the corpus instead of reading the cloud.
    let lines = dir.join("lines.svg");
    let out = succeed(
        &dir,
        &["--prompt", PROMPT, "--lines", "10", "--out", s(&lines)],
    );
    assert!(out.contains("of 10 lines"), "{out}");
}

#[test]
fn tsne_and_umap_are_the_same_for_a_seed_and_differ_for_another() {
    let dir = TempDir::new("map-plot-embed");
    for embedding in ["tsne", "umap"] {
        let draw = |seed: &str, name: &str| {
            let out = dir.join(name);
            let args = [
                "--prompt",
                PROMPT,
                "--layer",
                "1",
                "--lines",
                "25",
                "--embedding",
                embedding,
                "--seed",
                seed,
                "--out",
                s(&out),
            ];
            succeed(&dir, &args);
            std::fs::read(&out).unwrap()
        };
        let first = draw("7", &format!("{embedding}-a.svg"));
        let again = draw("7", &format!("{embedding}-b.svg"));
        let other = draw("8", &format!("{embedding}-c.svg"));
        assert!(
            first == again,
            "{embedding}: the same seed drew another picture"
        );
        assert!(
            first != other,
            "{embedding}: another seed drew the same picture"
        );
        let text = String::from_utf8(first).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
        assert!(in_groups(&doc, "corpus", "circle").len() > 100);
        assert!(text.contains(if embedding == "tsne" {
            "t-SNE 1"
        } else {
            "UMAP 1"
        }));
        // And the PNG of the same picture too.
        let png = |name: &str, seed: &str| {
            let out = dir.join(name);
            let args = [
                "--prompt",
                PROMPT,
                "--layer",
                "1",
                "--lines",
                "25",
                "--embedding",
                embedding,
                "--seed",
                seed,
                "--out",
                s(&out),
            ];
            succeed(&dir, &args);
            std::fs::read(&out).unwrap()
        };
        assert!(png(&format!("{embedding}-a.png"), "3") == png(&format!("{embedding}-b.png"), "3"));
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = TempDir::new("map-plot-errors");
    let fail = |args: &[&str]| cli::fail(&mut plot(&dir, args));
    let png = dir.join("x.png");
    let err = fail(&["--out", s(&dir.join("x.jpg"))]);
    assert!(err.contains(".png or .svg"), "{err}");
    let err = fail(&["--out", s(&dir.join("x"))]);
    assert!(err.contains(".png or .svg"), "{err}");
    let err = fail(&["--prompt", "  ", "--out", s(&png)]);
    assert!(err.contains("prompt is empty"), "{err}");
    let err = fail(&["--embedding", "isomap", "--out", s(&png)]);
    assert!(err.contains("pca, tsne or umap"), "{err}");
    let err = fail(&["--layer", "middle", "--out", s(&png)]);
    assert!(err.contains("`all`"), "{err}");
    let err = fail(&["--layer", "3", "--out", s(&png)]);
    assert!(
        err.contains("out of range") && err.contains("0..=2"),
        "{err}"
    );
    let err = fail(&["--out", s(&dir.join("missing/folder/x.png"))]);
    assert!(err.contains("cannot write"), "{err}");
    let err = fail(&["--lines", "0", "--out", s(&png)]);
    assert!(err.contains("--lines"), "{err}");
    assert!(!png.exists(), "nothing is left behind");
    assert_eq!(dir.files(), Vec::<String>::new());
}
