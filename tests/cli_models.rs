//! `latent-choir models` as a user runs it, over a models folder and a Hugging Face cache in a
//! temporary home: every candidate gets a line with family, layers, width, size and weight
//! format, and one that will not load says exactly why.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use common::cli;
use common::temp::TempDir;
use latent_choir::llm::arch::{GGUF_ARCHITECTURES, SAFETENSORS_MODEL_TYPES};

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A GGUF of architecture `arch` with the Gemma-style SentencePiece vocabulary of the tokenizer
/// fixtures, `tokenizer_model` as its tokenizer kind, and three small tensors: Q4_K matrices
/// with one Q6_K output matrix (as llama.cpp's Q4_K_M mixes them) and an F32 norm.
fn write_gguf(path: &Path, arch: &str, tokenizer_model: &str) {
    let mut reader =
        fs::File::open(fixture("tokenizer/spm-gemma.gguf")).expect("open the tokenizer fixture");
    let vocab = gguf_file::Content::read(&mut reader).expect("read the tokenizer fixture");
    let mut metadata: Vec<(String, gguf_file::Value)> = vocab
        .metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with("tokenizer.") && k != "tokenizer.ggml.model")
        .collect();
    metadata.push((
        "tokenizer.ggml.model".into(),
        gguf_file::Value::String(tokenizer_model.into()),
    ));
    metadata.push((
        "general.architecture".into(),
        gguf_file::Value::String(arch.into()),
    ));
    metadata.push((format!("{arch}.block_count"), gguf_file::Value::U32(2)));
    metadata.push((
        format!("{arch}.embedding_length"),
        gguf_file::Value::U32(256),
    ));
    let values = |n: usize| -> Tensor {
        let data: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        Tensor::from_vec(data, n, &Device::Cpu).expect("tensor")
    };
    let matrix = |rows: usize, dtype: GgmlDType| {
        let t = values(rows * 256).reshape((rows, 256)).expect("reshape");
        QTensor::quantize(&t, dtype).expect("quantize")
    };
    let tensors = [
        ("token_embd.weight", matrix(8, GgmlDType::Q4K)),
        ("blk.0.attn_q.weight", matrix(4, GgmlDType::Q4K)),
        ("output.weight", matrix(2, GgmlDType::Q6K)),
        (
            "output_norm.weight",
            QTensor::quantize(&values(256), GgmlDType::F32).expect("quantize"),
        ),
    ];
    let meta: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut file = fs::File::create(path).expect("create the GGUF");
    gguf_file::write(&mut file, &meta, &tensor_refs).expect("write the GGUF");
}

fn copy_folder(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create folder");
    for entry in fs::read_dir(from).expect("list fixture") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn models(home: &TempDir) -> String {
    let out = cli::succeed(
        Command::new(env!("CARGO_BIN_EXE_latent-choir"))
            .arg("models")
            .env("HOME", home.join("home"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("HF_HOME", home.join("hf"))
            // candle appends a backtrace to its errors when this is set: it must not reach
            // the listing.
            .env("RUST_BACKTRACE", "1"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The line naming `name` (a file or folder name in the path column).
fn line<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.contains(&format!("/{name}")))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{listing}"))
}

#[test]
fn lists_every_model_and_says_why_one_will_not_load() {
    let home = TempDir::new("models");
    let dir = home.join("data/latent-choir/models");
    fs::create_dir_all(&dir).expect("models dir");

    // Loadable GGUF: Q4_K matrices with a Q6_K output, SentencePiece vocabulary.
    write_gguf(&dir.join("good.gguf"), "llama", "llama");
    // Unknown architecture.
    write_gguf(&dir.join("mamba.gguf"), "mamba", "llama");
    // A tokenizer kind we do not build (T5's unigram).
    write_gguf(&dir.join("t5tok.gguf"), "llama", "t5");
    // The good file cut off: its tensors run past the end; and cut inside the header.
    let good = fs::read(dir.join("good.gguf")).expect("read");
    fs::write(dir.join("cut-data.gguf"), &good[..good.len() - 100]).expect("write");
    fs::write(dir.join("cut-header.gguf"), &good[..40]).expect("write");
    // A vocabulary-only GGUF.
    fs::copy(
        fixture("tokenizer/spm-llama.gguf"),
        dir.join("vocab-only.gguf"),
    )
    .expect("copy");
    // Not a model: ignored.
    fs::write(dir.join("notes.txt"), "not a model").expect("write");

    // Hugging Face folders: a good one, one without config.json, one of an unknown family,
    // one whose safetensors header is cut off.
    copy_folder(&fixture("tiny-llama"), &dir.join("tiny-llama"));
    copy_folder(&fixture("tiny-llama"), &dir.join("no-config"));
    fs::remove_file(dir.join("no-config/config.json")).expect("remove");
    copy_folder(&fixture("tiny-llama"), &dir.join("mamba-folder"));
    let config = fs::read_to_string(dir.join("mamba-folder/config.json")).expect("read");
    fs::write(
        dir.join("mamba-folder/config.json"),
        config.replace("\"model_type\": \"llama\"", "\"model_type\": \"mamba\""),
    )
    .expect("write");
    copy_folder(&fixture("tiny-llama"), &dir.join("cut-weights"));
    fs::write(
        dir.join("cut-weights/model.safetensors"),
        [200u8, 1, 0, 0, 0, 0, 0, 0, b'{'],
    )
    .expect("write");

    // The Hugging Face cache: a folder repo and a GGUF-only repo.
    let snapshot = home.join("hf/hub/models--org--tiny/snapshots/abc123");
    copy_folder(&fixture("tiny-llama"), &snapshot);
    let gguf_repo = home.join("hf/hub/models--org--quant-GGUF/snapshots/def456");
    fs::create_dir_all(&gguf_repo).expect("create");
    write_gguf(&gguf_repo.join("quant.Q4_K_M.gguf"), "llama", "llama");

    let listing = models(&home);
    assert!(listing.starts_with("family"), "{listing}");
    assert!(!listing.contains("notes.txt"), "{listing}");
    assert!(!listing.contains("candle_core"), "{listing}");
    // One header line and one line per candidate (notes.txt is no candidate).
    assert_eq!(listing.lines().count(), 1 + 12, "{listing}");

    let good = line(&listing, "good.gguf");
    assert!(good.contains("Q4_K (+Q6_K)"), "{good}");
    assert!(!good.contains("will not load"), "{good}");
    let fields: Vec<&str> = good.split_whitespace().collect();
    assert_eq!(&fields[..3], ["llama", "2", "256"], "{good}");

    let mamba = line(&listing, "mamba.gguf");
    assert!(
        mamba.contains(&format!(
            "will not load: unknown architecture mamba — supported: {}",
            GGUF_ARCHITECTURES.join(", ")
        )),
        "{mamba}"
    );
    let t5 = line(&listing, "t5tok.gguf");
    assert!(
        t5.contains("will not load: tokenizer: GGUF tokenizer model \"t5\" is not supported"),
        "{t5}"
    );
    let cut = line(&listing, "cut-data.gguf");
    assert!(
        cut.contains("will not load: truncated: the tensors need"),
        "{cut}"
    );
    let header = line(&listing, "cut-header.gguf");
    assert!(
        header.contains("will not load: truncated or corrupt GGUF header"),
        "{header}"
    );
    let vocab = line(&listing, "vocab-only.gguf");
    assert!(vocab.contains("will not load: no tensors"), "{vocab}");

    let folder = line(&listing, "tiny-llama");
    assert!(!folder.contains("will not load"), "{folder}");
    assert!(folder.contains("F32"), "{folder}");
    let fields: Vec<&str> = folder.split_whitespace().collect();
    assert_eq!(&fields[..3], ["llama", "2", "64"], "{folder}");
    assert!(
        line(&listing, "no-config").contains("will not load: missing config.json"),
        "{listing}"
    );
    assert!(
        line(&listing, "mamba-folder").contains(&format!(
            "will not load: unknown architecture mamba — supported: {}",
            SAFETENSORS_MODEL_TYPES.join(", ")
        )),
        "{listing}"
    );
    assert!(
        line(&listing, "cut-weights")
            .contains("will not load: model.safetensors: truncated or corrupt safetensors header"),
        "{listing}"
    );

    let cached = line(&listing, "abc123");
    assert!(!cached.contains("will not load"), "{cached}");
    let quant = line(&listing, "quant.Q4_K_M.gguf");
    assert!(
        quant.contains("Q4_K (+Q6_K)") && !quant.contains("will not load"),
        "{quant}"
    );
}

#[test]
fn no_models_is_an_error_that_says_where_it_looked() {
    let home = TempDir::new("models-none");
    let err = cli::fail(
        Command::new(env!("CARGO_BIN_EXE_latent-choir"))
            .arg("models")
            .env("HOME", home.join("home"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("HF_HOME", home.join("hf")),
    );
    assert!(err.contains("no models found"), "{err}");
    assert!(
        err.contains(&home.join("data").display().to_string()),
        "{err}"
    );
}
