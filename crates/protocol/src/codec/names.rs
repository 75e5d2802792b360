//! Name tables of PROTOCOL-NOTES.md: device STATUS codes, camera families,
//! trigger names per family, file types, DSM event bits.

use serde::{Deserialize, Serialize};

/// A camera family: decides the metadata layout and the name tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// DualCam / DashCam (`%videof` ... on protocol <= 5).
    #[serde(rename = "dualcam")]
    DualCam,
    /// ADAS (MDAS9).
    Adas,
    /// Driver-state monitoring camera.
    Dsm,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::DualCam => "dualcam",
            Family::Adas => "adas",
            Family::Dsm => "dsm",
        }
    }

    /// The family a path names (`mdas9`, `dsm`, `dualcam_front`, `dualcam_rear`, `dashcam`).
    pub fn from_path(path: &[u8]) -> Option<Family> {
        let lower = path.to_ascii_lowercase();
        let has = |s: &str| lower.windows(s.len()).any(|w| w == s.as_bytes());
        if has("mdas9") {
            Some(Family::Adas)
        } else if has("dualcam_front") || has("dualcam_rear") || has("dashcam") {
            Some(Family::DualCam)
        } else if has("dsm") {
            Some(Family::Dsm)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Device STATUS codes (0x0005), as the reference server names them.
pub fn status_name(code: u32) -> &'static str {
    match code {
        0 => "file transfer completed",
        1 => "reconnect limit reached: tried to reconnect 5 times and failed",
        2 => "failed to close GPRS",
        3 => "failed to close socket",
        4 => "device aborted the file download",
        5 => "invalid server response to the init packet",
        6 => "invalid server response to RESUME",
        7 => "SD card: failed to create the file",
        8 => "SD card: failed to open the file",
        9 => "SD card: failed to write the file",
        10 => "SD card: failed to flush the file",
        11 => "undefined event in the download procedure",
        12 => "failed to create the FOTA update file",
        13 => "CRC recalculation failed at the end of the download",
        14 => "failed to load the downloaded configuration file",
        15 => "bad file header",
        16 => "failed to roll the file pointer",
        17 => "failed to read the file (camera not configured, or file not available)",
        18 => "file header pointer is null",
        19 => "platform id mismatch",
        20 => "update to the target firmware not allowed",
        21 => "invalid query arguments",
        22 => "jobs requested by XIM failed",
        23 => "forbidden by the spec id firmware",
        24 => "not supported by the hardware revision",
        25 => "incompatible firmware (image layout changed)",
        26 => "wrong bootloader version",
        _ => "undocumented status",
    }
}

/// What set off the capture, by family (metadata's trigger number).
pub fn trigger_name(family: Family, trigger: u8) -> Option<&'static str> {
    const DUALCAM: [&str; 12] = [
        "server request",
        "DIN1",
        "DIN2",
        "crash",
        "towing",
        "idling",
        "geofence",
        "unplug",
        "green driving",
        "periodic",
        "DIN3",
        "DIN4",
    ];
    const ADAS: [&str; 11] = [
        "server request",
        "DIN1",
        "DIN2",
        "DIN3",
        "DIN4",
        "crash",
        "towing",
        "idling",
        "geofence",
        "unplug",
        "green driving",
    ];
    const DSM: [&str; 15] = [
        "none",
        "DIN1",
        "DIN2",
        "DIN3",
        "DIN4",
        "crash",
        "towing",
        "idling",
        "geofence",
        "unplug",
        "green driving",
        "server",
        "periodic",
        "DSM event",
        "file retransmit",
    ];
    let table: &[&str] = match family {
        Family::DualCam => &DUALCAM,
        Family::Adas => &ADAS,
        Family::Dsm => &DSM,
    };
    table.get(trigger as usize).copied()
}

/// File type names: DualCam uses the settings bits, ADAS and DSM a number.
pub fn file_type_name(family: Family, file_type: u8) -> Option<&'static str> {
    match family {
        Family::DualCam => match file_type {
            0x04 => Some("front photo"),
            0x08 => Some("rear photo"),
            0x10 => Some("front video"),
            0x20 => Some("rear video"),
            _ => None,
        },
        Family::Adas | Family::Dsm => match file_type {
            0 => Some("video"),
            1 => Some("snapshot"),
            2 => Some("current snapshot"),
            3 => Some("retransmitted snapshot"),
            _ => None,
        },
    }
}

/// DSM event bits, lowest first.
pub const DSM_EVENTS: [&str; 9] = [
    "drowsiness",
    "distraction",
    "yawning",
    "phone",
    "smoking",
    "driver absence",
    "mask",
    "seat belt",
    "G-sensor",
];

/// Names of the DSM event bits set in `bits`; unknown bits as `bit N`.
pub fn dsm_event_names(bits: u16) -> Vec<String> {
    (0..16)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| match DSM_EVENTS.get(b) {
            Some(n) => n.to_string(),
            None => format!("bit {b}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_has_a_name() {
        for code in 0..=26 {
            assert_ne!(status_name(code), "undocumented status", "{code}");
        }
        assert!(status_name(0x11).contains("not available"));
        assert_eq!(status_name(27), "undocumented status");
    }

    #[test]
    fn triggers_differ_by_family() {
        assert_eq!(trigger_name(Family::DualCam, 3), Some("crash"));
        assert_eq!(trigger_name(Family::Adas, 3), Some("DIN3"));
        assert_eq!(trigger_name(Family::Adas, 5), Some("crash"));
        assert_eq!(trigger_name(Family::Dsm, 13), Some("DSM event"));
        assert_eq!(trigger_name(Family::Dsm, 14), Some("file retransmit"));
        assert_eq!(trigger_name(Family::DualCam, 12), None);
        assert_eq!(trigger_name(Family::Adas, 11), None);
    }

    #[test]
    fn file_types_and_events() {
        assert_eq!(file_type_name(Family::DualCam, 0x20), Some("rear video"));
        assert_eq!(
            file_type_name(Family::Adas, 3),
            Some("retransmitted snapshot")
        );
        assert_eq!(file_type_name(Family::Dsm, 0), Some("video"));
        assert_eq!(
            dsm_event_names(0b1_0000_1001),
            ["drowsiness", "phone", "G-sensor"]
        );
        assert_eq!(dsm_event_names(1 << 12), ["bit 12"]);
    }

    #[test]
    fn family_from_path() {
        assert_eq!(
            Family::from_path(b"/mnt/sd/MDAS9/1.mp4"),
            Some(Family::Adas)
        );
        assert_eq!(
            Family::from_path(b"/sd/dsm/picture/2.jpg"),
            Some(Family::Dsm)
        );
        assert_eq!(
            Family::from_path(b"/sd/dualcam_rear/3.h265"),
            Some(Family::DualCam)
        );
        assert_eq!(
            Family::from_path(b"/sd/dashcam/4.h265"),
            Some(Family::DualCam)
        );
        assert_eq!(Family::from_path(b"/sd/other/5.bin"), None);
    }
}
