//! CRC-16 of DATA packets: reflected, polynomial 0x8408, no final XOR, chained
//! from packet to packet (the CRC-16/KERMIT register carried on).
//!
//! Slicing-by-16 tables built at compile time: the CRC runs on every byte of
//! every file, so it must not be the bottleneck of a transfer.

const POLY: u16 = 0x8408;

const fn build_tables() -> [[u16; 256]; 16] {
    let mut t = [[0u16; 256]; 16];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u16; 256]; 16] = build_tables();

/// CRC of `data` starting from `init` (the previous packet's CRC, 0 for packet 1).
///
/// ```
/// use dashcam_protocol::codec::crc16;
/// // PROTOCOL-NOTES.md: packet 1 is bytes 0..=255 four times, packet 2 is 100 x 0xAA.
/// let packet1: Vec<u8> = (0..4).flat_map(|_| 0..=255u8).collect();
/// assert_eq!(crc16(0, &packet1), 0x0033);
/// assert_eq!(crc16(0x0033, &[0xAA; 100]), 0x27CA);
/// assert_eq!(crc16(0, b"123456789"), 0x2189); // CRC-16/KERMIT check value
/// ```
#[allow(
    unsafe_code,
    reason = "CLMUL intrinsics: no safe crate folds CRC-16/KERMIT; the CPU feature is checked first"
)]
pub fn crc16(init: u16, data: &[u8]) -> u16 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= clmul::MIN_LEN && std::arch::is_x86_feature_detected!("pclmulqdq") {
        // SAFETY: the CPU supports PCLMULQDQ (checked just above); SSE2 is baseline on x86_64.
        return unsafe { clmul::crc16(init, data) };
    }
    crc16_table(init, data)
}

/// The table-driven CRC (slicing-by-16), on every CPU.
pub fn crc16_table(init: u16, data: &[u8]) -> u16 {
    let t = &TABLES;
    let mut crc = init;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        let c: &[u8; 16] = c.try_into().expect("16-byte chunk");
        let lo = crc ^ u16::from_le_bytes([c[0], c[1]]);
        crc = t[15][(lo & 0xFF) as usize]
            ^ t[14][(lo >> 8) as usize]
            ^ t[13][c[2] as usize]
            ^ t[12][c[3] as usize]
            ^ t[11][c[4] as usize]
            ^ t[10][c[5] as usize]
            ^ t[9][c[6] as usize]
            ^ t[8][c[7] as usize]
            ^ t[7][c[8] as usize]
            ^ t[6][c[9] as usize]
            ^ t[5][c[10] as usize]
            ^ t[4][c[11] as usize]
            ^ t[3][c[12] as usize]
            ^ t[2][c[13] as usize]
            ^ t[1][c[14] as usize]
            ^ t[0][c[15] as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ b as u16) & 0xFF) as usize];
    }
    crc
}

/// Carry-less multiplication folding (Intel's "Fast CRC Computation for Generic
/// Polynomials Using PCLMULQDQ"), for the CRC-16 that runs over every byte:
/// the data is folded 64 bytes at a time into 16 bytes with the same remainder
/// modulo the polynomial, and the table finishes those 16 bytes and the tail.
#[cfg(target_arch = "x86_64")]
#[allow(
    unsafe_code,
    reason = "SSE2/PCLMULQDQ intrinsics (unaligned loads, carry-less products)"
)]
mod clmul {
    use std::arch::x86_64::*;

    pub const MIN_LEN: usize = 64;

    /// x^n mod P for P = x^16 + x^12 + x^5 + 1 (0x1021, the normal form of 0x8408),
    /// laid out bit-reflected in 64 bits (degree d at bit 63 - d) for PCLMULQDQ.
    const fn xpow_mod_reflected(n: u32) -> i64 {
        let mut r: u32 = 1; // x^0
        let mut i = 0;
        while i < n {
            r <<= 1;
            if r & 0x1_0000 != 0 {
                r ^= 0x1_1021;
            }
            i += 1;
        }
        let mut out: u64 = 0;
        let mut d = 0;
        while d < 16 {
            if r & (1 << d) != 0 {
                out |= 1 << (63 - d);
            }
            d += 1;
        }
        out as i64
    }

    // Folding a 16-byte lane forward by D bits: low half times x^(D+64-1),
    // high half times x^(D-1) (the -1 undoes the product's one-bit shift).
    const FOLD512_LO: i64 = xpow_mod_reflected(512 + 64 - 1);
    const FOLD512_HI: i64 = xpow_mod_reflected(512 - 1);
    const FOLD128_LO: i64 = xpow_mod_reflected(128 + 64 - 1);
    const FOLD128_HI: i64 = xpow_mod_reflected(128 - 1);

    #[inline]
    #[target_feature(enable = "pclmulqdq")]
    fn fold(x: __m128i, next: __m128i, keys: __m128i) -> __m128i {
        let lo = _mm_clmulepi64_si128(x, keys, 0x00);
        let hi = _mm_clmulepi64_si128(x, keys, 0x11);
        _mm_xor_si128(_mm_xor_si128(lo, hi), next)
    }

    #[inline]
    fn load(block: &[u8]) -> __m128i {
        let bytes: &[u8; 16] = block[..16].try_into().expect("16 bytes");
        // SAFETY: reads exactly the 16 bytes of `bytes`; unaligned loads are allowed.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }

    /// # Safety
    /// The CPU must support PCLMULQDQ.
    #[target_feature(enable = "pclmulqdq")]
    pub unsafe fn crc16(init: u16, data: &[u8]) -> u16 {
        debug_assert!(data.len() >= MIN_LEN);
        let mut x = [
            load(&data[0..]),
            load(&data[16..]),
            load(&data[32..]),
            load(&data[48..]),
        ];
        // The initial register is the same as XORing it into the first two bytes.
        x[0] = _mm_xor_si128(x[0], _mm_cvtsi32_si128(init as i32));
        let mut rest = &data[64..];
        let k512 = _mm_set_epi64x(FOLD512_HI, FOLD512_LO);
        while rest.len() >= 64 {
            for (i, lane) in x.iter_mut().enumerate() {
                *lane = fold(*lane, load(&rest[16 * i..]), k512);
            }
            rest = &rest[64..];
        }
        let k128 = _mm_set_epi64x(FOLD128_HI, FOLD128_LO);
        let mut acc = fold(x[0], x[1], k128);
        acc = fold(acc, x[2], k128);
        acc = fold(acc, x[3], k128);
        while rest.len() >= 16 {
            acc = fold(acc, load(rest), k128);
            rest = &rest[16..];
        }
        let mut folded = [0u8; 16];
        _mm_storeu_si128(folded.as_mut_ptr().cast(), acc);
        super::crc16_table(super::crc16_table(0, &folded), rest)
    }
}

/// The vendor document's `crc16_generic`, bit by bit. Kept as the reference the
/// fast version is tested against.
pub fn crc16_bitwise(init: u16, data: &[u8]) -> u16 {
    let mut crc = init;
    for &b in data {
        crc ^= b as u16;
        for _ in 0..8 {
            let carry = crc & 1;
            crc >>= 1;
            if carry != 0 {
                crc ^= POLY;
            }
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet1() -> Vec<u8> {
        (0..4).flat_map(|_| 0..=255u8).collect()
    }

    #[test]
    fn kermit_check_value() {
        assert_eq!(crc16(0, b"123456789"), 0x2189);
        assert_eq!(crc16_bitwise(0, b"123456789"), 0x2189);
    }

    #[test]
    fn notes_vectors_chained() {
        let p1 = packet1();
        assert_eq!(p1.len(), 1024);
        assert_eq!(crc16(0, &p1), 0x0033);
        assert_eq!(crc16(0x0033, &[0xAA; 100]), 0x27CA);
        // Chaining equals the CRC of the whole file so far.
        let mut whole = p1.clone();
        whole.extend_from_slice(&[0xAA; 100]);
        assert_eq!(crc16(0, &whole), 0x27CA);
    }

    #[test]
    fn fast_matches_reference_on_every_length_and_init() {
        let data: Vec<u8> = (0..1100u32)
            .map(|i| (i * 7 + 13 + (i >> 8)) as u8)
            .collect();
        for len in 0..data.len() {
            for init in [0u16, 0x0033, 0xFFFF, 0x1234] {
                let want = crc16_bitwise(init, &data[..len]);
                assert_eq!(crc16(init, &data[..len]), want, "len {len} init {init:#x}");
                assert_eq!(crc16_table(init, &data[..len]), want, "table, len {len}");
            }
        }
    }
}
