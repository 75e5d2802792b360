//! The PROXY protocol (v1 text and v2 binary) that a load balancer such as
//! HAProxy (`send-proxy`, `send-proxy-v2`) puts before the camera's bytes, so
//! the server sees the camera's own address. Read byte-exact: nothing of the
//! init packet behind it is consumed.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const V2_SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Reads a PROXY header; returns the source address it carries (None for
/// `UNKNOWN` / `LOCAL`, e.g. a health check).
pub fn read_header(r: &mut impl Read) -> io::Result<Option<SocketAddr>> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    if &head == b"PROXY" {
        // v1: "PROXY TCP4 src dst sport dport\r\n", at most 107 bytes.
        let mut line = head.to_vec();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() >= 107 {
                return Err(bad("PROXY v1 line longer than 107 bytes"));
            }
            r.read_exact(&mut b)?;
            line.push(b[0]);
        }
        let text =
            std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| bad("PROXY v1 not ASCII"))?;
        let parts: Vec<&str> = text.split(' ').collect();
        return match parts.as_slice() {
            ["PROXY", "UNKNOWN", ..] => Ok(None),
            ["PROXY", "TCP4" | "TCP6", src, _dst, sport, _dport] => {
                let ip: IpAddr = src.parse().map_err(|_| bad("PROXY v1 source address"))?;
                let port: u16 = sport.parse().map_err(|_| bad("PROXY v1 source port"))?;
                Ok(Some(SocketAddr::new(ip, port)))
            }
            _ => Err(bad(format!("PROXY v1 line not understood: {text:?}"))),
        };
    }
    if head != V2_SIG[..5] {
        return Err(bad(
            "no PROXY protocol header (the connection did not come through the load balancer)",
        ));
    }
    let mut rest = [0u8; 11];
    r.read_exact(&mut rest)?;
    if rest[..7] != V2_SIG[5..] {
        return Err(bad("bad PROXY v2 signature"));
    }
    let ver_cmd = rest[7];
    let fam = rest[8];
    let len = u16::from_be_bytes([rest[9], rest[10]]) as usize;
    if ver_cmd >> 4 != 2 {
        return Err(bad("PROXY v2 with an unknown version"));
    }
    if len > 1024 {
        return Err(bad("PROXY v2 header too long"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    if ver_cmd & 0x0F == 0 {
        return Ok(None); // LOCAL: the balancer's own connection (a health check)
    }
    match fam >> 4 {
        1 if len >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        2 if len >= 36 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_give_the_source_and_leave_the_init_packet() {
        let init = [0u8, 0, 0, 5, 0, 1, 0x3E, 0xE1];
        let mut v1 = b"PROXY TCP4 10.1.2.3 192.168.0.1 51234 5000\r\n".to_vec();
        v1.extend_from_slice(&init);
        let mut r = &v1[..];
        assert_eq!(
            read_header(&mut r).unwrap(),
            Some("10.1.2.3:51234".parse().unwrap())
        );
        assert_eq!(r, init);
        let mut v2 = V2_SIG.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 10, 9, 8, 7, 127, 0, 0, 1, 0x1F, 0x90, 0x13, 0x88,
        ]);
        v2.extend_from_slice(&init);
        let mut r = &v2[..];
        assert_eq!(
            read_header(&mut r).unwrap(),
            Some("10.9.8.7:8080".parse().unwrap())
        );
        assert_eq!(r, init);
        let mut r = &b"PROXY UNKNOWN\r\n\0\0"[..];
        assert_eq!(read_header(&mut r).unwrap(), None);
        assert_eq!(r, [0, 0]);
        // A camera straight to the server, without the balancer: refused.
        assert!(read_header(&mut &init[..]).is_err());
        assert!(read_header(&mut &b"PROXY TCP4 x\r\n"[..]).is_err());
    }
}
