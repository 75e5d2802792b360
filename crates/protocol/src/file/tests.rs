//! Unit tests of `file`.

use super::*;

#[test]
fn dualcam_specs() {
    let s = FileSpec::dualcam(FileKind::PhotoRear);
    assert_eq!((s.extension, s.media), ("jpg", Media::Photo));
    assert_eq!(s.camera, Some(Camera::Rear));
    assert_eq!(FileSpec::dualcam(FileKind::VideoFront).extension, "h265");
}

#[test]
fn paths_say_what_the_file_is() {
    let s = FileSpec::from_path(b"/mnt/sd/mdas9/video/event 01.MP4");
    assert_eq!(s.identifier, b"/mnt/sd/mdas9/video/event 01.MP4");
    assert_eq!((s.extension, s.media), ("mp4", Media::Video));
    let pic = FileSpec::from_path(b"/sd/dsm/picture/0001");
    assert_eq!((pic.extension, pic.media), ("jpg", Media::Photo));
    assert_eq!(FileSpec::from_path(b"x.exe").extension, "bin");
    // The real DSM PATH frame ends in a NUL: the extension is still seen.
    let nul = FileSpec::from_path(b"dsm/picture/231020/231452.jpg\0");
    assert_eq!((nul.extension, nul.media), ("jpg", Media::Photo));
    assert_eq!(nul.identifier.last(), Some(&0), "kept exactly as sent");
    let front = FileSpec::from_path(b"/sd/dualcam_front/0001.h265");
    assert_eq!(front.camera, Some(Camera::Front));
}

#[test]
fn extents_in_packets_and_bytes() {
    let p = Extent::new(Unit::Packets, 29);
    assert_eq!(p.max_bytes(), 29 * 1024);
    assert!(p.fits(28 * 1024 + 723) && !p.fits(28 * 1024) && !p.fits(0));
    assert_eq!(p.keep_at_most(), 28 * 1024);
    assert_eq!(p.resume_offset(5 * 1024), 6);
    assert_eq!(
        (p.byte_of(0), p.byte_of(1), p.byte_of(2)),
        (Some(0), Some(0), Some(1024))
    );
    assert_eq!(p.byte_of(30), None);
    assert!(p.accepts(28 * 1024, 723) && !p.accepts(0, 723) && p.accepts(0, 1024));
    assert!(p.is_complete(28 * 1024 + 1) && !p.is_complete(28 * 1024));
    let b = Extent::new(Unit::Bytes, 10_500);
    assert_eq!(
        (b.max_bytes(), b.keep_at_most(), b.resume_offset(7)),
        (10_500, 10_499, 7)
    );
    assert_eq!((b.byte_of(10_499), b.byte_of(10_500)), (Some(10_499), None));
    assert_eq!(b.last_unit_from(10_500), 10_500 - 1024);
    assert_eq!(
        (p.overlap_start(5 * 1024), p.overlap_start(1024)),
        (4 * 1024, 0)
    );
    assert_eq!(
        (b.overlap_start(7000), b.overlap_start(500)),
        (7000 - 1024, 0)
    );
    assert!(b.accepts(10_000, 500) && !b.accepts(10_000, 501));
    // A hostile START of 0 never underflows.
    assert_eq!(Extent::new(Unit::Packets, 0).keep_at_most(), 0);
}
