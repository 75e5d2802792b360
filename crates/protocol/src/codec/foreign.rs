//! What the first bytes of a connection look like when they are not a
//! camera's init packet (`00 00`, protocol, IMEI, settings). Public camera
//! ports receive tracker AVL data (a tracker whose server setting points at
//! the camera port), TLS on the plain port, HTTP, RDP and other scanners
//! (PROTOCOL-NOTES.md, fourth edition). Each is named with what to change, so
//! a technician reading the log knows whether to touch anything.

use std::fmt;

/// A peer that is not a camera, by what its first bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Foreign {
    /// Teltonika AVL data: `00 00 00 00`, a 4-byte data length, the codec
    /// id (`08` Codec 8, `8E` Codec 8 Extended, `10` Codec 16, `0C`..`0E`
    /// GPRS commands).
    AvlData { codec: u8 },
    /// A Teltonika tracker's login: `00 0F` and its IMEI in 15 ASCII digits.
    AvlLogin { imei: u64 },
    /// A TLS record (ClientHello): a camera set to TLS, on a plain port.
    Tls,
    /// An HTTP request (a browser, a health check, a scanner).
    Http,
    /// A remote-desktop probe (TPKT `03 00`, `Cookie: mstshash=`).
    Rdp,
    /// An SSH client's banner (`SSH-`).
    Ssh,
    /// Anything else: its first two bytes.
    Other([u8; 2]),
}

/// The codec ids of Teltonika AVL packets.
const AVL_CODECS: [u8; 6] = [0x08, 0x8E, 0x10, 0x0C, 0x0D, 0x0E];

/// The smallest 15-digit IMEI (10^14) has these upper 32 bits: an AVL data
/// length below them cannot be a real IMEI's upper half.
const IMEI_MIN_HIGH: u32 = (100_000_000_000_000u64 >> 32) as u32;

const HTTP_METHODS: [&[u8]; 9] = [
    b"GET ", b"POST", b"HEAD", b"PUT ", b"DELE", b"OPTI", b"CONN", b"PATC", b"PRI ",
];

impl Foreign {
    /// A label for metrics: `avl`, `tls`, `http`, `rdp`, `ssh`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            Foreign::AvlData { .. } | Foreign::AvlLogin { .. } => "avl",
            Foreign::Tls => "tls",
            Foreign::Http => "http",
            Foreign::Rdp => "rdp",
            Foreign::Ssh => "ssh",
            Foreign::Other(_) => "other",
        }
    }

    /// The first bytes of a connection whose header is not `00 00` (at
    /// least 2 bytes: the caller has seen the header). Never `None`: what is
    /// not recognised is [`Foreign::Other`].
    pub fn sniff(first: &[u8]) -> Foreign {
        let two = [
            first.first().copied().unwrap_or(0),
            first.get(1).copied().unwrap_or(0),
        ];
        match two {
            [0x16, 0x03] => return Foreign::Tls,
            [0x03, 0x00] => return Foreign::Rdp,
            [0x00, 0x0F] => {
                // A login may arrive in pieces: the length alone says enough.
                let digits = first.get(2..17).unwrap_or(&[]);
                let imei = digits
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
                if digits.iter().all(u8::is_ascii_digit) {
                    return Foreign::AvlLogin { imei };
                }
            }
            _ => {}
        }
        if first.starts_with(b"SSH-") || (first.len() < 4 && b"SSH-".starts_with(first)) {
            return Foreign::Ssh;
        }
        let is_method = |m: &&[u8]| {
            let n = first.len().min(m.len());
            first[..n] == m[..n]
        };
        if HTTP_METHODS.iter().any(is_method) {
            return Foreign::Http;
        }
        Foreign::Other(two)
    }

    /// A 16-byte "init packet" that is tracker AVL data: protocol 0, and an
    /// IMEI whose upper half is a small data length followed by an AVL codec
    /// id (no 15-digit IMEI looks like that).
    pub fn avl_in_init(init: &[u8]) -> Option<Foreign> {
        if init.len() < 16 || init[..4] != [0, 0, 0, 0] {
            return None;
        }
        let len = u32::from_be_bytes([init[4], init[5], init[6], init[7]]);
        let codec = init[8];
        (len > 0 && len < IMEI_MIN_HIGH && AVL_CODECS.contains(&codec))
            .then_some(Foreign::AvlData { codec })
    }
}

fn codec_name(codec: u8) -> &'static str {
    match codec {
        0x08 => "Codec 8",
        0x8E => "Codec 8E",
        0x10 => "Codec 16",
        0x0C..=0x0E => "a GPRS command codec",
        _ => "an unknown codec",
    }
}

const AVL_FIX: &str = "the tracker's server setting points here; the camera port is for \
                       camera files (set the tracker's AVL server to your tracking platform)";

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Foreign::AvlData { codec } => write!(
                f,
                "tracker AVL data ({}) on the camera port: {AVL_FIX}",
                codec_name(*codec)
            ),
            Foreign::AvlLogin { imei } => write!(
                f,
                "a tracker's AVL login (IMEI {imei}) on the camera port: {AVL_FIX}"
            ),
            Foreign::Tls => write!(
                f,
                "a TLS handshake (16 03) on a port that speaks plain TCP: give the server \
                 --tls-cert/--tls-key (or use its --tls-port), or turn TLS off in the camera"
            ),
            Foreign::Http => write!(
                f,
                "an HTTP request on the camera port (a browser, a health check or a scanner): \
                 the camera port speaks the camera protocol only; the web page and /metrics \
                 are on --http-bind"
            ),
            Foreign::Rdp => write!(
                f,
                "a remote-desktop (RDP) probe on the camera port: an Internet scanner; \
                 nothing to change here (a firewall that lets only your cameras' \
                 networks in keeps them off)"
            ),
            Foreign::Ssh => write!(
                f,
                "an SSH client on the camera port: a scanner or a wrong port in an SSH \
                 command; nothing to change here"
            ),
            Foreign::Other(h) => write!(
                f,
                "first bytes {:02X} {:02X} ({:?}) instead of a camera's init packet (00 00 ...); \
                 check what connects from that address",
                h[0],
                h[1],
                String::from_utf8_lossy(h)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_public_camera_ports_receive_is_named() {
        // A Codec 8E packet's start (preamble, length 0x4A, codec, 1 record).
        let avl = [
            0, 0, 0, 0, 0, 0, 0, 0x4A, 0x8E, 0x01, 0, 0, 1, 0x8C, 0x2A, 0x4F,
        ];
        assert_eq!(
            Foreign::avl_in_init(&avl),
            Some(Foreign::AvlData { codec: 0x8E })
        );
        let mut c8 = avl;
        c8[8] = 0x08;
        assert_eq!(
            Foreign::avl_in_init(&c8).unwrap().to_string(),
            "tracker AVL data (Codec 8) on the camera port: the tracker's server setting \
             points here; the camera port is for camera files (set the tracker's AVL server \
             to your tracking platform)"
        );
        assert_eq!(
            Foreign::sniff(b"\x00\x0F356307042441013"),
            Foreign::AvlLogin {
                imei: 356307042441013
            }
        );
        assert_eq!(
            Foreign::sniff(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Foreign::Http
        );
        assert_eq!(Foreign::sniff(b"PO"), Foreign::Http);
        assert_eq!(
            Foreign::sniff(b"\x03\x00\x00\x2F\x2A\xE0\x00\x00\x00\x00\x00Cookie: mstshash=a"),
            Foreign::Rdp
        );
        assert_eq!(
            Foreign::sniff(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Foreign::Tls
        );
        assert_eq!(Foreign::sniff(b"SSH-2.0-Go\r\n"), Foreign::Ssh);
        assert_eq!(Foreign::sniff(&[0x17, 0x42]), Foreign::Other([0x17, 0x42]));
        for f in [
            Foreign::AvlData { codec: 0x10 },
            Foreign::Http,
            Foreign::Rdp,
            Foreign::Tls,
            Foreign::Ssh,
            Foreign::Other(*b"ab"),
        ] {
            assert!(!f.to_string().contains("not a camera: not a camera"));
        }
    }

    /// Real cameras' inits are never taken for AVL: protocol 5 and 6 with
    /// 15-digit IMEIs, and protocol 0 with a 15-digit IMEI.
    #[test]
    fn a_camera_init_is_not_avl() {
        let real = crate::codec::init::tests::REAL_INIT;
        assert_eq!(Foreign::avl_in_init(&real), None);
        let mut p0 = real;
        p0[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(Foreign::avl_in_init(&p0), None);
        // The smallest 15-digit IMEI with an AVL codec byte where byte 8 is.
        let mut low = [0u8; 16];
        low[4..12].copy_from_slice(&100_000_000_000_000u64.to_be_bytes());
        low[8] = 0x08;
        assert_eq!(Foreign::avl_in_init(&low), None);
    }
}
