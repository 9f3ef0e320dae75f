//! Plausible weight statistics without a model: decaying spectra, near-Gaussian moments, γ
//! around 1, all varied per tensor by a fixed seed, for tests of anything composed from stats.

use crate::rng::SplitMix64;
use crate::weights::{
    Histogram, KeyStats, LayerStats, MatrixStats, ModelInfo, Moments, NormRole, NormStats, Role,
    SvdMethod, WeightStats,
};

/// Leading singular values kept per matrix, as a top-k analysis would.
const RANKS: usize = 32;

/// A Llama-like model (SmolLM2's proportions): q/k/v/o, gate/up/down, two norms per block.
pub(crate) fn synthetic_stats(layers: usize, hidden: usize) -> WeightStats {
    build(layers, hidden, false, 0x5eed)
}

/// A GPT-2-like model: no gate, learned positions, `c_attn` split into q/k/v.
pub(crate) fn gpt2_like_stats(layers: usize, hidden: usize) -> WeightStats {
    build(layers, hidden, true, 0x6e72)
}

fn build(layers: usize, hidden: usize, gpt2: bool, seed: u64) -> WeightStats {
    let mut rng = SplitMix64(seed ^ ((layers as u64) << 16) ^ hidden as u64);
    let vocab = hidden * 8;
    let kv = (hidden / 3).max(1);
    let ffn = hidden * 8 / 3;
    let mut matrices = Vec::new();
    let embedding = if gpt2 {
        "wte.weight"
    } else {
        "model.embed_tokens.weight"
    };
    matrices.push(matrix(
        &mut rng,
        embedding.into(),
        Role::Embedding,
        None,
        [vocab, hidden],
    ));
    if gpt2 {
        matrices.push(matrix(
            &mut rng,
            "wpe.weight".into(),
            Role::Position,
            None,
            [256, hidden],
        ));
    }
    let mut norms = Vec::new();
    let mut layer_stats = Vec::new();
    for l in 0..layers {
        let roles: Vec<(Role, String, [usize; 2])> = if gpt2 {
            vec![
                (
                    Role::Q,
                    format!("h.{l}.attn.c_attn.weight[q]"),
                    [hidden, hidden],
                ),
                (
                    Role::K,
                    format!("h.{l}.attn.c_attn.weight[k]"),
                    [hidden, hidden],
                ),
                (
                    Role::V,
                    format!("h.{l}.attn.c_attn.weight[v]"),
                    [hidden, hidden],
                ),
                (
                    Role::O,
                    format!("h.{l}.attn.c_proj.weight"),
                    [hidden, hidden],
                ),
                (
                    Role::Up,
                    format!("h.{l}.mlp.c_fc.weight"),
                    [hidden * 4, hidden],
                ),
                (
                    Role::Down,
                    format!("h.{l}.mlp.c_proj.weight"),
                    [hidden, hidden * 4],
                ),
            ]
        } else {
            let p = format!("model.layers.{l}");
            vec![
                (
                    Role::Q,
                    format!("{p}.self_attn.q_proj.weight"),
                    [hidden, hidden],
                ),
                (
                    Role::K,
                    format!("{p}.self_attn.k_proj.weight"),
                    [kv, hidden],
                ),
                (
                    Role::V,
                    format!("{p}.self_attn.v_proj.weight"),
                    [kv, hidden],
                ),
                (
                    Role::O,
                    format!("{p}.self_attn.o_proj.weight"),
                    [hidden, hidden],
                ),
                (
                    Role::Gate,
                    format!("{p}.mlp.gate_proj.weight"),
                    [ffn, hidden],
                ),
                (Role::Up, format!("{p}.mlp.up_proj.weight"), [ffn, hidden]),
                (
                    Role::Down,
                    format!("{p}.mlp.down_proj.weight"),
                    [hidden, ffn],
                ),
            ]
        };
        let mut attention = 0.0;
        let mut mlp = 0.0;
        let mut svd_delta = Vec::new();
        for (role, name, shape) in roles {
            let m = matrix(&mut rng, name, role, Some(l), shape);
            if Role::ATTENTION.contains(&role) {
                attention += m.frobenius * m.frobenius;
            } else {
                mlp += m.frobenius * m.frobenius;
            }
            if l > 0 {
                svd_delta.push((role, 0.02 + 0.3 * rng.next_f64()));
            }
            matrices.push(m);
        }
        let (attn_name, mlp_name) = if gpt2 {
            (format!("h.{l}.ln_1.weight"), format!("h.{l}.ln_2.weight"))
        } else {
            (
                format!("model.layers.{l}.input_layernorm.weight"),
                format!("model.layers.{l}.post_attention_layernorm.weight"),
            )
        };
        norms.push(norm(
            &mut rng,
            attn_name,
            NormRole::Attention,
            Some(l),
            hidden,
        ));
        norms.push(norm(&mut rng, mlp_name, NormRole::Mlp, Some(l), hidden));
        let svd_delta_mean = if svd_delta.is_empty() {
            0.0
        } else {
            svd_delta.iter().map(|(_, d)| d).sum::<f64>() / svd_delta.len() as f64
        };
        layer_stats.push(LayerStats {
            index: l,
            tension: (attention / mlp.max(1e-12)).sqrt(),
            svd_delta,
            svd_delta_mean,
        });
    }
    let final_name = if gpt2 {
        "ln_f.weight"
    } else {
        "model.norm.weight"
    };
    norms.push(norm(
        &mut rng,
        final_name.into(),
        NormRole::Final,
        None,
        hidden,
    ));
    WeightStats {
        schema: WeightStats::SCHEMA,
        model: ModelInfo {
            path: format!("/models/synthetic-{layers}x{hidden}"),
            family: if gpt2 { "gpt2" } else { "llama" }.into(),
            layers,
            hidden,
        },
        matrices,
        norms,
        layers: layer_stats,
        key: KeyStats {
            root: if gpt2 { 0 } else { 9 },
            scale: if gpt2 { "Major" } else { "Harmonic minor" }.into(),
            pc2_skewness: if gpt2 { 0.4 } else { -0.3 },
            pc3_kurtosis: if gpt2 { 0.0 } else { 0.8 },
            root_dimension: 7,
            vectors: layers * 2 + 1,
        },
    }
}

fn matrix(
    rng: &mut SplitMix64,
    name: String,
    role: Role,
    layer: Option<usize>,
    shape: [usize; 2],
) -> MatrixStats {
    let k = RANKS.min(shape[0]).min(shape[1]);
    let scale = 2.0 + 6.0 * rng.next_f64();
    let decay = 0.3 + 0.5 * rng.next_f64();
    let floor = 0.05 + 0.2 * rng.next_f64();
    let singular_values: Vec<f32> = (0..k)
        .map(|i| (scale * ((i + 1) as f64).powf(-decay) + floor) as f32)
        .collect();
    let std = 0.02 + 0.04 * rng.next_f64();
    let moments = Moments {
        mean: (rng.next_f64() - 0.5) * 0.002,
        std,
        skewness: (rng.next_f64() - 0.5) * 0.4,
        kurtosis: 0.2 + 4.0 * rng.next_f64(),
        min: -6.0 * std,
        max: 6.0 * std,
    };
    let counts = (0..32)
        .map(|b| {
            let x = (f64::from(b) - 15.5) / 5.0;
            (1000.0 * (-0.5 * x * x).exp() * (0.8 + 0.4 * rng.next_f64())) as u64
        })
        .collect();
    let row_base = std * (shape[1] as f64).sqrt();
    let phase = rng.next_f64() * 6.0;
    let row_norms = (0..shape[0])
        .map(|r| {
            let wave = (r as f64 * 0.37 + phase).sin() * 0.15;
            (row_base * (1.0 + wave + 0.3 * (rng.next_f64() - 0.5))) as f32
        })
        .collect();
    let frobenius = std * ((shape[0] * shape[1]) as f64).sqrt();
    MatrixStats {
        name,
        role,
        layer,
        shape,
        dtype: "BF16".into(),
        singular_values,
        svd: SvdMethod::TopK { k, iterations: 4 },
        frobenius,
        moments,
        histogram: Histogram {
            min: moments.min,
            max: moments.max,
            counts,
        },
        row_norms,
    }
}

fn norm(
    rng: &mut SplitMix64,
    name: String,
    role: NormRole,
    layer: Option<usize>,
    hidden: usize,
) -> NormStats {
    let centre = 0.6 + 0.8 * rng.next_f64();
    let gamma: Vec<f32> = (0..hidden)
        .map(|i| (centre + 0.3 * (rng.next_f64() - 0.5) + 0.1 * (i as f64 * 0.21).cos()) as f32)
        .collect();
    let n = gamma.len().max(1) as f64;
    let mean = gamma.iter().map(|&g| f64::from(g)).sum::<f64>() / n;
    let var = gamma
        .iter()
        .map(|&g| (f64::from(g) - mean).powi(2))
        .sum::<f64>()
        / n;
    let min = gamma.iter().copied().fold(f32::INFINITY, f32::min);
    let max = gamma.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    NormStats {
        name,
        role,
        layer,
        moments: Moments {
            mean,
            std: var.sqrt(),
            skewness: 0.0,
            kurtosis: 0.0,
            min: f64::from(min),
            max: f64::from(max),
        },
        gamma,
    }
}
