//! NEON kernels (aarch64), written once as a macro and instantiated twice: [`sdot`] with the
//! `dotprod` SDOT instruction (four byte products summed into each i32 lane), [`plain`] with
//! widening multiplies for CPUs without it (Cortex-A53/A57/A72, the Raspberry Pi 3 and 4). Both
//! sum 16 bytes into i32 lanes and reduce a whole group at once, so only the lane totals matter.
//! Weight quants (at most 63) fit in signed bytes, so unsigned and signed formats share one dot.
//!
//! # Safety (every `pub unsafe fn`)
//! The CPU has NEON (and `dotprod` for [`sdot`]), and `row` holds exactly `x.len()` blocks.

macro_rules! kernels {
    ($features:literal, $dot:ident) => {
        use std::arch::aarch64::*;

        use crate::activations::{Q8Block, Q8KBlock};
        use crate::blocks::{
            Q4_0_BYTES, Q4_1_BYTES, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, Q8_0_BYTES, f16_at,
            k_scales,
        };

        /// `Σ nibble·q` of a legacy block's 16 nibble bytes at `p`.
        ///
        /// # Safety
        /// `p..p + 16` is readable.
        #[target_feature(enable = $features)]
        unsafe fn nibble_dot(p: *const u8, x: &[i8; 32]) -> i32 {
            // SAFETY: the caller's, and `x` is 32 long.
            unsafe {
                let q = vld1q_u8(p);
                let low = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0f)));
                let high = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
                let acc = $dot!(vdupq_n_s32(0), low, vld1q_s8(x.as_ptr()));
                vaddvq_s32($dot!(acc, high, vld1q_s8(x.as_ptr().add(16))))
            }
        }

        /// # Safety
        /// See the module.
        #[target_feature(enable = $features)]
        pub unsafe fn q4_0(row: &[u8], x: &[Q8Block]) -> f32 {
            let mut total = 0.0f32;
            for (block, x) in row.chunks_exact(Q4_0_BYTES).zip(x) {
                // SAFETY: the block holds 16 nibble bytes after its scale.
                let dot = unsafe { nibble_dot(block.as_ptr().add(2), &x.q) };
                total += f16_at(block, 0) * (x.scale * dot as f32 - 8.0 * x.sum);
            }
            total
        }

        /// # Safety
        /// See the module.
        #[target_feature(enable = $features)]
        pub unsafe fn q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
            let mut total = 0.0f32;
            for (block, x) in row.chunks_exact(Q4_1_BYTES).zip(x) {
                // SAFETY: the block holds 16 nibble bytes after its scale and minimum.
                let dot = unsafe { nibble_dot(block.as_ptr().add(4), &x.q) };
                total += f16_at(block, 0) * x.scale * dot as f32 + f16_at(block, 2) * x.sum;
            }
            total
        }

        /// # Safety
        /// See the module.
        #[target_feature(enable = $features)]
        pub unsafe fn q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
            let mut total = 0.0f32;
            for (block, x) in row.chunks_exact(Q8_0_BYTES).zip(x) {
                // SAFETY: the block holds 32 signed bytes after its scale; `x.q` is 32 long.
                let dot = unsafe {
                    let w = block.as_ptr().add(2).cast::<i8>();
                    let acc = $dot!(vdupq_n_s32(0), vld1q_s8(w), vld1q_s8(x.q.as_ptr()));
                    vaddvq_s32($dot!(
                        acc,
                        vld1q_s8(w.add(16)),
                        vld1q_s8(x.q.as_ptr().add(16))
                    ))
                };
                total += f16_at(block, 0) * x.scale * dot as f32;
            }
            total
        }

        /// `Σ w·x` over 32 values: `w` as two 16-byte vectors, `x` at `x`.
        ///
        /// # Safety
        /// `x..x + 32` is readable.
        #[target_feature(enable = $features)]
        unsafe fn dot32(w: [uint8x16_t; 2], x: *const i8) -> i32 {
            // SAFETY: the caller's.
            unsafe {
                let acc = $dot!(vdupq_n_s32(0), vreinterpretq_s8_u8(w[0]), vld1q_s8(x));
                vaddvq_s32($dot!(acc, vreinterpretq_s8_u8(w[1]), vld1q_s8(x.add(16))))
            }
        }

        /// `Σ m_j · Σqx_j` over the eight 32-value sub-blocks.
        fn k_minimum(mins: &[u8; 8], x: &Q8KBlock) -> i32 {
            let mut total = 0;
            for (j, &m) in mins.iter().enumerate() {
                total += i32::from(m) * (i32::from(x.sums[2 * j]) + i32::from(x.sums[2 * j + 1]));
            }
            total
        }

        /// Q4_K against `P` positions at once: each super-block's scales and nibbles are
        /// unpacked once for all of them (`P = 1` is decode).
        ///
        /// # Safety
        /// See the module; every `xs[k]` holds the row's super-blocks.
        #[target_feature(enable = $features)]
        pub unsafe fn q4_k<const P: usize>(row: &[u8], xs: [&[Q8KBlock]; P]) -> [f32; P] {
            let mut total = [0.0f32; P];
            for (b, block) in row.chunks_exact(Q4_K_BYTES).enumerate() {
                let (scales, mins) = k_scales(&block[4..16]);
                let mut sum = [0i32; P];
                // SAFETY: the block holds 128 nibble bytes from 16; every `xs[k]` holds block
                // `b` (the contract), whose `q` is 256 long.
                unsafe {
                    let low = vdupq_n_u8(0x0f);
                    for c in 0..4 {
                        let p = block.as_ptr().add(16 + 32 * c);
                        let q = [vld1q_u8(p), vld1q_u8(p.add(16))];
                        let w0 = [vandq_u8(q[0], low), vandq_u8(q[1], low)];
                        let w1 = [vshrq_n_u8::<4>(q[0]), vshrq_n_u8::<4>(q[1])];
                        for k in 0..P {
                            let x = xs[k].get_unchecked(b).q.as_ptr().add(64 * c);
                            sum[k] += i32::from(scales[2 * c]) * dot32(w0, x);
                            sum[k] += i32::from(scales[2 * c + 1]) * dot32(w1, x.add(32));
                        }
                    }
                }
                let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
                for k in 0..P {
                    // SAFETY: as above.
                    let x = unsafe { xs[k].get_unchecked(b) };
                    total[k] += x.scale * (d * sum[k] as f32 - dmin * k_minimum(&mins, x) as f32);
                }
            }
            total
        }

        /// # Safety
        /// See the module.
        #[target_feature(enable = $features)]
        pub unsafe fn q5_k(row: &[u8], x: &[Q8KBlock]) -> f32 {
            let mut total = 0.0f32;
            for (block, x) in row.chunks_exact(Q5_K_BYTES).zip(x) {
                let (scales, mins) = k_scales(&block[4..16]);
                let mut sum = 0i32;
                // SAFETY: the block holds 32 high-bit bytes from 16 and 128 nibble bytes from
                // 48; `x.q` is 256 long.
                unsafe {
                    let low = vdupq_n_u8(0x0f);
                    let sixteen = vdupq_n_u8(16);
                    let qh = [
                        vld1q_u8(block.as_ptr().add(16)),
                        vld1q_u8(block.as_ptr().add(32)),
                    ];
                    for c in 0..4 {
                        let p = block.as_ptr().add(48 + 32 * c);
                        let q = [vld1q_u8(p), vld1q_u8(p.add(16))];
                        let xs = x.q.as_ptr().add(64 * c);
                        // Bit 2c of qh is the low nibbles' fifth bit, bit 2c + 1 the high ones'.
                        let bit = |k: usize, h: uint8x16_t| {
                            vandq_u8(vtstq_u8(h, vdupq_n_u8(1 << k)), sixteen)
                        };
                        let w0 = [
                            vorrq_u8(vandq_u8(q[0], low), bit(2 * c, qh[0])),
                            vorrq_u8(vandq_u8(q[1], low), bit(2 * c, qh[1])),
                        ];
                        let w1 = [
                            vorrq_u8(vshrq_n_u8::<4>(q[0]), bit(2 * c + 1, qh[0])),
                            vorrq_u8(vshrq_n_u8::<4>(q[1]), bit(2 * c + 1, qh[1])),
                        ];
                        sum += i32::from(scales[2 * c]) * dot32(w0, xs);
                        sum += i32::from(scales[2 * c + 1]) * dot32(w1, xs.add(32));
                    }
                }
                let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
                total += x.scale * (d * sum as f32 - dmin * k_minimum(&mins, x) as f32);
            }
            total
        }

        /// `Σ w·x` over 16 values.
        ///
        /// # Safety
        /// `x..x + 16` is readable.
        #[target_feature(enable = $features)]
        unsafe fn dot16(w: uint8x16_t, x: *const i8) -> i32 {
            // SAFETY: the caller's.
            unsafe { vaddvq_s32($dot!(vdupq_n_s32(0), vreinterpretq_s8_u8(w), vld1q_s8(x))) }
        }

        /// Q6_K against `P` positions at once.
        ///
        /// # Safety
        /// See the module; every `xs[k]` holds the row's super-blocks.
        #[target_feature(enable = $features)]
        pub unsafe fn q6_k<const P: usize>(row: &[u8], xs: [&[Q8KBlock]; P]) -> [f32; P] {
            let mut total = [0.0f32; P];
            for (b, block) in row.chunks_exact(Q6_K_BYTES).enumerate() {
                let scales = &block[192..208];
                let mut sum = [0i32; P];
                // SAFETY: ql is bytes 0..128, qh 128..192 of the block; every `xs[k]` holds
                // block `b` (the contract), whose `q` is 256 long.
                unsafe {
                    let low = vdupq_n_u8(0x0f);
                    let three = vdupq_n_u8(3);
                    for half in 0..2 {
                        for part in 0..2 {
                            // Values l = 16·part .. 16·part + 16 of each quarter.
                            let ql0 = vld1q_u8(block.as_ptr().add(64 * half + 16 * part));
                            let ql1 = vld1q_u8(block.as_ptr().add(64 * half + 32 + 16 * part));
                            let qh = vld1q_u8(block.as_ptr().add(128 + 32 * half + 16 * part));
                            let quarters = [
                                vorrq_u8(vandq_u8(ql0, low), vshlq_n_u8::<4>(vandq_u8(qh, three))),
                                vorrq_u8(
                                    vandq_u8(ql1, low),
                                    vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(qh), three)),
                                ),
                                vorrq_u8(
                                    vshrq_n_u8::<4>(ql0),
                                    vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(qh), three)),
                                ),
                                vorrq_u8(
                                    vshrq_n_u8::<4>(ql1),
                                    vshlq_n_u8::<4>(vshrq_n_u8::<6>(qh)),
                                ),
                            ];
                            for (r, w) in quarters.into_iter().enumerate() {
                                let at = 128 * half + 32 * r + 16 * part;
                                let g = at / 16;
                                for k in 0..P {
                                    let x = xs[k].get_unchecked(b);
                                    let dot = dot16(w, x.q.as_ptr().add(at));
                                    sum[k] += i32::from(scales[g] as i8)
                                        * (dot - 32 * i32::from(x.sums[g]));
                                }
                            }
                        }
                    }
                }
                let d = f16_at(block, 208);
                for k in 0..P {
                    // SAFETY: as above.
                    let x = unsafe { xs[k].get_unchecked(b) };
                    total[k] += d * x.scale * sum[k] as f32;
                }
            }
            total
        }
    };
}

/// With SDOT (`dotprod`): stable Rust has no SDOT intrinsic yet, so it is one instruction of
/// inline assembly, valid because every function here enables `dotprod`.
pub mod sdot {
    macro_rules! sdot {
        ($acc:expr, $a:expr, $b:expr) => {{
            let mut acc: int32x4_t = $acc;
            let (a, b): (int8x16_t, int8x16_t) = ($a, $b);
            std::arch::asm!(
                "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
                inout(vreg) acc,
                in(vreg) a,
                in(vreg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
            acc
        }};
    }
    kernels!("neon,dotprod", sdot);
}

/// Without SDOT: 8×8 → 16-bit widening multiplies (at most 128·127, exact), pairwise added
/// into the i32 lanes.
pub mod plain {
    macro_rules! widening {
        ($acc:expr, $a:expr, $b:expr) => {{
            let (a, b): (int8x16_t, int8x16_t) = ($a, $b);
            let acc = vpadalq_s16($acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
            vpadalq_s16(acc, vmull_high_s8(a, b))
        }};
    }
    kernels!("neon", widening);
}

/// Q4_1 and Q8_0 against f32 activations (the default model's decode): the weights widened
/// to floats four at a time and multiply-added, with two sum chains per block.
pub mod f32_activations {
    use std::arch::aarch64::*;

    use crate::blocks::{Q4_1_BYTES, Q8_0_BYTES, f16_at};

    /// Eight unsigned bytes as two vectors of four floats.
    #[target_feature(enable = "neon")]
    fn widen_u8(bytes: uint8x8_t) -> [float32x4_t; 2] {
        let wide = vmovl_u8(bytes);
        [
            vcvtq_f32_u32(vmovl_u16(vget_low_u16(wide))),
            vcvtq_f32_u32(vmovl_high_u16(wide)),
        ]
    }

    /// Eight signed bytes as two vectors of four floats.
    #[target_feature(enable = "neon")]
    fn widen_s8(bytes: int8x8_t) -> [float32x4_t; 2] {
        let wide = vmovl_s8(bytes);
        [
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide))),
            vcvtq_f32_s32(vmovl_high_s16(wide)),
        ]
    }

    /// `Σ w·x` of 32 weights (as eight vectors of four) against the 32 activations at `x`.
    ///
    /// # Safety
    /// `x..x + 32` is readable.
    #[target_feature(enable = "neon")]
    unsafe fn dot_32(w: [float32x4_t; 8], x: *const f32) -> float32x4_t {
        // SAFETY: the caller's.
        unsafe {
            let mut even = vmulq_f32(w[0], vld1q_f32(x));
            let mut odd = vmulq_f32(w[1], vld1q_f32(x.add(4)));
            for i in 1..4 {
                even = vfmaq_f32(even, w[2 * i], vld1q_f32(x.add(8 * i)));
                odd = vfmaq_f32(odd, w[2 * i + 1], vld1q_f32(x.add(8 * i + 4)));
            }
            vaddq_f32(even, odd)
        }
    }

    /// # Safety
    /// The CPU has NEON; `row` holds `x.len() / 32` Q4_1 blocks and `sums` one `Σx` per block.
    #[target_feature(enable = "neon")]
    pub unsafe fn q4_1_f32(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
        let mut acc = vdupq_n_f32(0.0);
        let mut minimum = 0.0_f32;
        for ((block, xs), &sum) in row
            .chunks_exact(Q4_1_BYTES)
            .zip(x.chunks_exact(32))
            .zip(sums)
        {
            // SAFETY: the block holds 16 nibble bytes after its scale and minimum; `xs` is 32.
            unsafe {
                let q = vld1q_u8(block.as_ptr().add(4));
                let low = vandq_u8(q, vdupq_n_u8(0x0f));
                let high = vshrq_n_u8::<4>(q);
                let [w0, w1] = widen_u8(vget_low_u8(low));
                let [w2, w3] = widen_u8(vget_high_u8(low));
                let [w4, w5] = widen_u8(vget_low_u8(high));
                let [w6, w7] = widen_u8(vget_high_u8(high));
                let dot = dot_32([w0, w1, w2, w3, w4, w5, w6, w7], xs.as_ptr());
                acc = vfmaq_n_f32(acc, dot, f16_at(block, 0));
            }
            minimum += f16_at(block, 2) * sum;
        }
        vaddvq_f32(acc) + minimum
    }

    /// # Safety
    /// The CPU has NEON; `row` holds `x.len() / 32` Q8_0 blocks.
    #[target_feature(enable = "neon")]
    pub unsafe fn q8_0_f32(row: &[u8], x: &[f32]) -> f32 {
        let mut acc = vdupq_n_f32(0.0);
        for (block, xs) in row.chunks_exact(Q8_0_BYTES).zip(x.chunks_exact(32)) {
            // SAFETY: the block holds 32 quant bytes after its scale; `xs` is 32.
            unsafe {
                let q = block.as_ptr().add(2).cast::<i8>();
                let (a, b) = (vld1q_s8(q), vld1q_s8(q.add(16)));
                let [w0, w1] = widen_s8(vget_low_s8(a));
                let [w2, w3] = widen_s8(vget_high_s8(a));
                let [w4, w5] = widen_s8(vget_low_s8(b));
                let [w6, w7] = widen_s8(vget_high_s8(b));
                let dot = dot_32([w0, w1, w2, w3, w4, w5, w6, w7], xs.as_ptr());
                acc = vfmaq_n_f32(acc, dot, f16_at(block, 0));
            }
        }
        vaddvq_f32(acc)
    }
}
