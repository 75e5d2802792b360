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
pub fn crc16(init: u16, data: &[u8]) -> u16 {
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
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 13) as u8).collect();
        for len in 0..data.len() {
            for init in [0u16, 0x0033, 0xFFFF, 0x1234] {
                assert_eq!(
                    crc16(init, &data[..len]),
                    crc16_bitwise(init, &data[..len]),
                    "len {len} init {init:#x}"
                );
            }
        }
    }
}
