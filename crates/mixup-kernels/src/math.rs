//! Branch-free `exp`, `sigmoid` and `tanh` for `f32` that the compiler vectorises (plain
//! arithmetic and bit casts, no library calls), for the elementwise loops of the kernels.
//! Relative error of [`exp`] below 4e-7 (about 3 ulp) over the clamped range (tested against `f32::exp`).

/// Runs `f` compiled for the best instruction set the CPU has (AVX-512 or AVX2 with FMA on
/// x86-64, detected once at run time; as it is elsewhere), so the element loops inlined into it
/// use the wide vectors: this crate is built for the baseline x86-64 (SSE2). `f`'s `call` and the
/// functions it calls must be `#[inline(always)]` for their loops to benefit (a closure may not
/// be inlined; a struct implementing [`pulp::NullaryFnOnce`] with an always-inlined `call` is).
#[inline(always)]
pub fn vectorized<F: pulp::NullaryFnOnce>(f: F) -> F::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(simd) = pulp::x86::V4::try_new() {
            return simd.vectorize(f);
        }
        if let Some(simd) = pulp::x86::V3::try_new() {
            return simd.vectorize(f);
        }
    }
    f.call()
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in a part exact in f32 and the rest (Cody-Waite range reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 * 2^23 rounds an f32 of magnitude below 2^22 to an integer.
const ROUND: f32 = 12_582_912.0;

/// `e^x`, with `x` clamped to `[-87, 88]` (so the result is a normal float).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // e^r on |r| <= ln2 / 2: Taylor to degree 6.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    p * scale
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x = 2 sigmoid(2x) - 1` (absolute error below 5e-7).
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_std() {
        let mut worst = (0f32, 0f32, 0f32);
        for k in -200_000..=200_000 {
            let x = k as f32 * 4e-4; // [-80, 80]
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst.0 = worst.0.max(rel);
            worst.1 = worst.1.max((sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs());
            worst.2 = worst.2.max((tanh(x) - x.tanh()).abs());
        }
        assert!(worst.0 < 4e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 3e-7, "sigmoid error {}", worst.1);
        assert!(worst.2 < 5e-7, "tanh error {}", worst.2);
        assert_eq!(sigmoid(-1e4), 1.0 / (1.0 + 88f32.exp()));
        assert!(tanh(1e4) == 1.0 && tanh(-1e4) == -1.0);
    }
}
