//! `dashcam-server decode HEX...`: what a packet says, in plain words.

use std::fmt::Write as _;

use crate::codec::{
    self, frame::HEADER_LEN, parse_init, status_name, Family, FileKind, Frame, Limits, Metadata,
    INIT_LEN,
};
use crate::storage::sidecar::{from_millis, rfc3339};

/// Parses hex with any spacing, `:`/`,`/`-` separators and optional `0x` prefixes.
pub fn parse_hex(args: &[String]) -> Result<Vec<u8>, String> {
    let mut digits = String::new();
    for token in args
        .iter()
        .flat_map(|a| a.split([' ', '\t', '\n', ',', ':', '-']))
    {
        let t = token.trim();
        let t = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        digits.push_str(t);
    }
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("'{bad}' is not a hex digit"));
    }
    if digits.is_empty() {
        return Err("no bytes given".into());
    }
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "{} hex digits: bytes need an even number",
            digits.len()
        ));
    }
    Ok((0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("checked hex"))
        .collect())
}

/// A frame in either direction: a device frame, else a server command.
fn parse_any(b: &[u8]) -> Result<Option<(Frame<'_>, usize)>, codec::CodecError> {
    match codec::parse_frame(b, Limits::PATH) {
        Ok(Some(f)) => Ok(Some(f)),
        first => match codec::parse_frame(b, Limits::SERVER) {
            Ok(Some(f)) => Ok(Some(f)),
            Ok(None) if first.is_err() => Ok(None),
            Err(_) => first,
            Ok(None) => first,
        },
    }
}

/// Describes init packets, frames, or a bare 8-byte double.
/// Bytes that are not (all) a packet: what could be explained before them,
/// and why the rest cannot be.
#[derive(Debug, thiserror::Error)]
#[error("{explained}{why}")]
pub struct NotAPacket {
    /// The packets explained before the bad one.
    pub explained: String,
    pub why: String,
    /// The codec's reason, when it gave one.
    #[source]
    pub source: Option<codec::CodecError>,
}

pub fn describe(bytes: &[u8]) -> Result<String, NotAPacket> {
    let mut out = String::new();
    let mut rest = bytes;
    if rest.len() >= INIT_LEN && rest[..2] == [0, 0] && rest[2..4] != [0, 0] {
        let init = parse_init(rest)
            .map_err(|e| NotAPacket {
                explained: String::new(),
                why: e.to_string(),
                source: Some(e),
            })?
            .expect("16 bytes");
        describe_init(&init, &mut out);
        rest = &rest[INIT_LEN..];
    } else if rest.len() == 8 && !matches!(parse_any(rest), Ok(Some((_, 8)))) {
        let v = f64::from_be_bytes(rest.try_into().expect("8 bytes"));
        return Ok(format!(
            "double {} = {v}\n",
            codec::hex(rest).replace(' ', "")
        ));
    }
    // A sidecar's `raw_hex`: the metadata payload alone, without its frame
    // header (15 bytes ADAS, 26 DSM, 32 or 40 DualCam, or JSON text).
    let whole_frame = matches!(parse_any(rest), Ok(Some((_, used))) if used == rest.len());
    if out.is_empty()
        && !whole_frame
        && (matches!(rest.len(), 15 | 26 | 32 | 40) || rest.first() == Some(&b'{'))
    {
        let _ = write!(out, "METADATA payload without its frame header: ");
        let _ = describe_metadata(rest, &mut out);
        return Ok(out);
    }
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        match parse_any(rest) {
            Ok(Some((f, used))) => {
                describe_frame(&f, used, &mut out);
                rest = &rest[used..];
            }
            Ok(None) if rest.len() < HEADER_LEN => {
                return Err(NotAPacket {
                    why: format!(
                        "frame {n}: only {} byte(s), a frame header is 4 (cmd u16, len u16)",
                        rest.len()
                    ),
                    explained: out,
                    source: None,
                })
            }
            Ok(None) => {
                let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
                return Err(NotAPacket {
                    why: format!(
                        "frame {n}: {} (0x{:02X}{:02X}) says {len} payload bytes, only {} present",
                        codec::command_name(u16::from_be_bytes([rest[0], rest[1]])).unwrap_or("?"),
                        rest[0],
                        rest[1],
                        rest.len() - HEADER_LEN
                    ),
                    explained: out,
                    source: None,
                });
            }
            Err(e) => {
                return Err(NotAPacket {
                    why: format!("frame {n}: {e}"),
                    explained: out,
                    source: Some(e),
                })
            }
        }
    }
    Ok(out)
}

fn describe_init(init: &codec::InitPacket, out: &mut String) {
    let _ = writeln!(out, "INIT packet (16 bytes, device to server)");
    let _ = writeln!(out, "  protocol id: {}", init.protocol_id);
    let _ = writeln!(out, "  IMEI:        {}", init.imei);
    let _ = writeln!(out, "  settings:    0x{:08X}", init.settings);
    let kinds = init.available();
    if kinds.is_empty() {
        let _ = writeln!(out, "  DualCam files available: none");
    } else {
        let _ = writeln!(out, "  files available: {}", kind_list(&kinds));
    }
    if init.path_file() {
        let _ = writeln!(
            out,
            "  path flow:   a file is offered (bit 0x02: ADAS, DSM, protocol >= 6)"
        );
    }
    let other = init.settings & !0x3E00_0000;
    if other != 0 {
        let _ = writeln!(out, "  other bits:  0x{other:08X} (undocumented)");
    }
}

fn kind_list(kinds: &[FileKind]) -> String {
    kinds
        .iter()
        .map(|k| {
            format!(
                "{} ({} {})",
                k.identifier(),
                if k.is_video() { "video" } else { "photo" },
                if k.is_front() { "front" } else { "rear" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A device-supplied string as a person may be shown it (a terminal, a
/// page, a log): control characters (ESC, NUL, BEL, CR, LF ...) and the
/// bidirectional overrides that reorder text (U+202A-202E, U+2066-2069,
/// U+200E/F, U+061C) are written as `\u{..}`, so a camera can neither
/// drive the terminal nor forge a line. Everything else is kept.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
    };
    if !s.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn text(b: &[u8]) -> String {
    format!("\"{}\"", String::from_utf8_lossy(b).escape_debug())
}

fn describe_frame(f: &Frame<'_>, used: usize, out: &mut String) {
    let _ = write!(
        out,
        "{} (0x{:04X}, {} bytes): ",
        f.name(),
        f.command(),
        used
    );
    let _ = match *f {
        Frame::Close => writeln!(out, "close the session"),
        Frame::Start { total, field } => writeln!(
            out,
            "the file has {total} packets of 1024 bytes (identifier flow) or {total} bytes (path flow); field after it 0x{field:04X}{}",
            if field == 0 { " (blank, as devices send it)" } else { " (the file's CRC, in the pre-2021 document)" }
        ),
        Frame::Resume { offset } => writeln!(out, "send from packet {offset} (identifier flow) or byte {offset} (path flow)"),
        Frame::Sync { offset } => writeln!(out, "DATA follows from packet {offset} (identifier flow) or byte {offset} (path flow)"),
        Frame::EnhancedData { offset, payload, crc } => writeln!(
            out,
            "{} file bytes at byte {offset}, CRC 0x{crc:04X} (CRC of these bytes alone from 0: 0x{:04X})",
            payload.len(),
            codec::crc16(0, payload)
        ),
        Frame::Data { payload, crc } => writeln!(
            out,
            "{} file bytes, CRC 0x{crc:04X} (CRC of these bytes alone from 0: 0x{:04X})",
            payload.len(),
            codec::crc16(0, payload)
        ),
        Frame::Status { code } => writeln!(out, "status {code} (0x{code:08X}): {}", status_name(code)),
        Frame::FileRequest { identifier } | Frame::MetadataRequest { identifier } => {
            match FileKind::from_identifier(identifier) {
                Some(k) => writeln!(out, "{}", kind_list(&[k])),
                None if identifier.is_empty() => writeln!(out, "the file just named by PATH"),
                None => writeln!(out, "{} (a device path)", text(identifier)),
            }
        }
        Frame::RepeatInit => writeln!(out, "send the init packet again"),
        Frame::PathRequest => writeln!(out, "which file path?"),
        Frame::Path { path } => writeln!(out, "file path {}", text(path)),
        Frame::Metadata { payload } => describe_metadata(payload, out),
    };
}

fn describe_metadata(p: &[u8], out: &mut String) -> std::fmt::Result {
    // One piece (over 80 lines): one layout per family, told apart by
    // length, each field in the order the notes give it.
    // The layout is told by the length: 15 ADAS, 26 DSM, JSON text, else DualCam.
    let family = match p.len() {
        15 => Family::Adas,
        26 => Family::Dsm,
        _ => Family::DualCam,
    };
    let m = Metadata::parse(family, false, p);
    let na = || "n/a".to_string();
    let time = |ms: Option<u64>| {
        ms.and_then(from_millis)
            .map(|t| format!("{} ({} ms)", rfc3339(t), ms.unwrap_or(0)))
    };
    writeln!(
        out,
        "file metadata, {} bytes, read as {}",
        p.len(),
        m.format.name()
    )?;
    writeln!(
        out,
        "  command version: {}",
        m.command_version.map_or_else(na, |v| v.to_string())
    )?;
    let ft = m.file_type.map_or_else(na, |t| match family {
        Family::DualCam => format!("0x{t:02X} {}", kind_list(&FileKind::in_byte(t))),
        _ => format!(
            "{t} ({})",
            codec::names::file_type_name(family, t).unwrap_or("?")
        ),
    });
    writeln!(out, "  file type:       {ft}")?;
    writeln!(
        out,
        "  timestamp:       {}",
        time(m.timestamp_ms).unwrap_or_else(na)
    )?;
    let trig = m.trigger.map_or_else(na, |t| {
        format!(
            "{t} ({})",
            codec::names::trigger_name(family, t).unwrap_or("?")
        )
    });
    writeln!(out, "  trigger:         {trig}")?;
    writeln!(
        out,
        "  duration:        {}",
        m.duration_s.map_or_else(na, |v| format!("{v} s"))
    )?;
    if family == Family::DualCam {
        writeln!(
            out,
            "  frame rate:      {}",
            m.frame_rate.map_or_else(na, |v| format!("{v} fps"))
        )?;
        let tz = m.timezone_minutes.map_or_else(na, |z| {
            format!(
                "UTC{}{:02}:{:02} ({z} min)",
                if z < 0 { '-' } else { '+' },
                z.abs() / 60,
                z.abs() % 60
            )
        });
        writeln!(out, "  time zone:       {tz}")?;
    }
    let deg = |v: Option<f64>| v.map_or_else(na, |d| format!("{d:.7}"));
    writeln!(out, "  latitude:        {}", deg(m.latitude))?;
    writeln!(out, "  longitude:       {}", deg(m.longitude))?;
    if family == Family::DualCam {
        writeln!(
            out,
            "  trigger time:    {}",
            time(m.trigger_timestamp_ms).unwrap_or_else(na)
        )?;
    }
    if let Some(ev) = &m.events {
        writeln!(
            out,
            "  events:          {}",
            if ev.is_empty() {
                "none".into()
            } else {
                printable(&ev.join(", ")).into_owned()
            }
        )?;
    }
    if let Some(n) = &m.driver_name {
        writeln!(out, "  driver:          {}", printable(n))?;
    }
    if let Some(j) = &m.json {
        writeln!(out, "  json:            {}", printable(&j.to_string()))?;
    }
    if !m.extra.is_empty() {
        writeln!(out, "  extra bytes:     {}", codec::hex(&m.extra))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_are_shown_without_their_control_characters() {
        assert_eq!(printable("Jonas P."), "Jonas P.");
        assert_eq!(
            printable("a\u{1b}[2Jb\0c\u{7}d\u{202e}e\nINFO forged"),
            "a\\u{1b}[2Jb\\u{0}c\\u{7}d\\u{202e}e\\u{a}INFO forged"
        );
    }

    fn d(s: &str) -> Result<String, String> {
        describe(&parse_hex(&[s.to_string()])?).map_err(|e| e.to_string())
    }

    #[test]
    fn real_init_packet() {
        let s = d("00 00 00 05 00 01 3E E1 3C 00 19 81 44 00 04 00").unwrap();
        assert!(s.contains("protocol id: 5"), "{s}");
        assert!(s.contains("IMEI:        350612071913857"));
        assert!(s.contains("%photof (photo front)"));
        assert!(s.contains("other bits:  0x40000400 (undocumented)"));
    }

    #[test]
    fn several_frames_in_a_row() {
        let s = d("0008 0007 2570686F746F66 0001 0006 00000020 0000 0005 0004 00000011").unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert!(
            lines[0].starts_with("FILE REQ (0x0008, 11 bytes): %photof"),
            "{s}"
        );
        assert!(lines[1].contains("32 packets"));
        assert!(lines[2].contains("status 17"), "{s}");
        assert!(lines[2].contains("file not available"), "{s}");
    }

    /// A sidecar's `raw_hex` (the real photo's 32 bytes, no frame header).
    #[test]
    fn bare_metadata_as_a_sidecar_keeps_it() {
        let raw = parse_hex(&[
            "0304000001 92DD353628 00 0000 00 012C 404B57F62B6AE7D5 4039479A6B50B0F2".into(),
        ])
        .unwrap();
        let text = describe(&raw).unwrap();
        assert!(
            text.starts_with("METADATA payload without its frame header"),
            "{text}"
        );
        assert!(text.contains("2024-10-30T11:35:05.000Z"), "{text}");
        assert!(text.contains("command version: 3"), "{text}");
    }

    #[test]
    fn full_metadata_frame() {
        let payload = "01 10 0000018BCFE5687B 04 000A 19 0078 404B59A74E8E028D 403947AE147AE148 0000018BCFE56800";
        let s = d(&format!("000B 0028 {payload}")).unwrap();
        assert!(
            s.contains("timestamp:       2023-11-14T22:13:20.123Z"),
            "{s}"
        );
        assert!(s.contains("latitude:        54.7004183"));
        assert!(s.contains("longitude:       25.2800000"));
        assert!(s.contains("frame rate:      25 fps"));
        assert!(s.contains("time zone:       UTC+02:00 (120 min)"));
        assert!(s.contains("duration:        10 s"));
        assert!(s.contains("%videof (video front)"));
        assert!(s.contains("trigger:         4 (towing)"), "{s}");
    }

    #[test]
    fn server_commands_and_enhanced_data() {
        let s = d("0009 000C 0002 0000 000A 0000").unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("REPEAT INIT (0x0009, 2 bytes)"), "{s}");
        assert!(lines[1].starts_with("PATH REQ (0x000C, 6 bytes)"), "{s}");
        assert!(lines[2].contains("the file just named by PATH"), "{s}");
        let e = d("000E 0009 00000400 070809 1234").unwrap();
        assert!(e.contains("3 file bytes at byte 1024, CRC 0x1234"), "{e}");
    }

    #[test]
    fn adas_and_dsm_metadata() {
        let s = d("000B 000F 65920080 01 05 0342A8E2 0181BAD4 00").unwrap();
        assert!(s.contains("adas-binary"), "{s}");
        assert!(s.contains("trigger:         5 (crash)"), "{s}");
        assert!(s.contains("latitude:        54.7002580"), "{s}");
        let s =
            d("000B 001A 65920080 00 0D 0342A8E2 0181BAD4 0009 00000000 53414E4F4A 00").unwrap();
        assert!(s.contains("events:          drowsiness, phone"), "{s}");
        assert!(s.contains("driver:          JONAS"), "{s}");
    }

    #[test]
    fn bare_double() {
        assert_eq!(
            d("404B59A74E8E028D").unwrap(),
            "double 404B59A74E8E028D = 54.7004183\n"
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(d("00 0").unwrap_err().contains("even number"));
        assert!(d("zz").unwrap_err().contains("not a hex digit"));
        assert!(d("00 01 00 06 00 00")
            .unwrap_err()
            .contains("says 6 payload bytes, only 2 present"));
        assert!(d("00").unwrap_err().contains("frame header is 4"));
        assert!(d("0007 0000")
            .unwrap_err()
            .contains("unknown command 0x0007"));
    }
}
