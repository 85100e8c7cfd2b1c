//! xoshiro128** seeded through the Weyl/fmix32 sequence: the exact stream of src/data/rng.ts (ALGORITHMS §5).

pub struct Rng {
    s: [u32; 4],
}

impl Rng {
    pub fn new(seed: u32) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9);
            let mut z = x;
            z = (z ^ (z >> 16)).wrapping_mul(0x85eb_ca6b);
            z = (z ^ (z >> 13)).wrapping_mul(0xc2b2_ae35);
            z ^ (z >> 16)
        };
        let s = [next(), next(), next(), next()];
        Rng { s }
    }

    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// Standard normal by Box–Muller, the cos branch (src/data/rng.ts `normal`: the sin value is discarded so
    /// the stream stays the reference's).
    pub fn normal(&mut self) -> f64 {
        let mut u = self.uniform();
        while u == 0.0 {
            u = self.uniform();
        }
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// Uniform integer in [0, m).
    pub fn int(&mut self, m: usize) -> usize {
        (self.uniform() * m as f64).floor() as usize
    }

    /// Fisher–Yates, i = n−1 down to 1 (ALGORITHMS §4).
    pub fn shuffle(&mut self, a: &mut [u32]) {
        for i in (1..a.len()).rev() {
            let j = (self.uniform() * (i + 1) as f64).floor() as usize;
            a.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    // Expected values computed by running src/data/rng.ts (transpiled with the project's TypeScript).
    #[test]
    fn matches_the_typescript_stream() {
        // (seed, first u32s, first uniforms, a shuffle of 0..8, an index draw)
        type Case = (u32, [u32; 4], [f64; 3], [u32; 8], usize);
        let cases: [Case; 2] = [
            (
                0,
                [3809008728, 1133695204, 53579671, 2891528803],
                [0.032522145755498943, 0.024408060085556516, 0.6123124436552245],
                [0, 6, 1, 5, 2, 4, 3, 7],
                2,
            ),
            (
                42,
                [2837322924, 544945897, 479756282, 3500138142],
                [0.0791056456144914, 0.015209237180418, 0.8806870827450254],
                [7, 3, 0, 5, 2, 4, 6, 1],
                0,
            ),
        ];
        for (seed, u32s, uniforms, shuffled, int7) in cases {
            let mut r = Rng::new(seed);
            for want in u32s {
                assert_eq!(r.next_u32(), want, "seed {seed}");
            }
            for want in uniforms {
                assert_eq!(r.uniform(), want, "seed {seed}");
            }
            let mut a: Vec<u32> = (0..8).collect();
            r.shuffle(&mut a);
            assert_eq!(a, shuffled, "seed {seed}");
            assert_eq!(r.int(7), int7, "seed {seed}");
        }
    }

    // The normals equal the reference's to rounding, not to the bit: log and cos come from the platform's
    // libm here and from V8's own in the reference, which may differ in the last place.
    #[test]
    fn normals_match_the_typescript_stream() {
        let cases: [(u32, [f64; 3]); 2] = [
            (0, [0.48854632132701026, 2.5868475608858597, 0.9512760521188572]),
            (42, [0.6953712153418404, 2.242263762064122, 0.20491667605004257]),
        ];
        for (seed, normals) in cases {
            let mut r = Rng::new(seed);
            for want in normals {
                let got = r.normal();
                assert!((got - want).abs() <= 4.0 * f64::EPSILON * want.abs(), "seed {seed}: {got} vs {want}");
            }
        }
    }
}
