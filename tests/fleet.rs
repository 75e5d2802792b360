//! The fleet load generator: many paced cameras from a few threads, counted
//! stored only when the server took their file; refused ones are failures.

mod common;

use std::time::Duration;

use common::*;
use dashcam_server::codec::FileKind;
use dashcam_server::simulator::{run_fleet, FleetConfig};

fn fleet(addr: std::net::SocketAddr, cameras: usize) -> FleetConfig {
    FleetConfig {
        server: addr,
        first_imei: 350000000000000,
        cameras,
        rate: 200_000,
        ramp: Duration::from_millis(300),
        timeout: Duration::from_secs(20),
        kind: FileKind::VideoFront,
        threads: 2,
    }
}

#[test]
fn a_paced_fleet_is_stored_byte_exact_and_refusals_count_as_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let srv = start(&out, |_| {});
    let bytes = content(30_000, 5);
    let r = run_fleet(&fleet(srv.addr, 60), bytes.clone());
    assert!(
        r.failures.is_empty(),
        "{:?}",
        &r.failures[..r.failures.len().min(3)]
    );
    assert_eq!((r.stored, r.bytes), (60, 60 * 30_000));
    assert_eq!(r.times.len(), 60);
    // Paced: 30 KB at 200 KB/s takes at least 0.15 s per camera.
    assert!(r.times[0] >= Duration::from_millis(100), "{:?}", r.times[0]);
    for i in 0..60 {
        let f = media(&out, 350000000000000 + i);
        assert_eq!(f.len(), 1);
        assert_eq!(std::fs::read(&f[0]).unwrap(), bytes);
    }
    drop(srv);
    // A server that refuses: the fleet reports it, it does not count it stored.
    let out2 = tmp.path().join("out2");
    let srv = start(&out2, |c| c.max_connections = Some(5));
    let r = run_fleet(&fleet(srv.addr, 30), bytes);
    assert!(!r.failures.is_empty());
    assert_eq!(r.stored + r.failures.len(), 30);
    assert!(
        r.failures.iter().any(|(_, why)| why.contains("CLOSE")),
        "{:?}",
        r.failures
    );
}

/// Cameras on a private APN reach the server from one address: with the
/// default limits, 1,100 of them at once from 127.0.0.1 are all served.
#[test]
fn a_fleet_behind_one_nat_address_is_served_with_the_default_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let defaults = dashcam_server::net::server::ServerConfig::new(&out);
    let srv = start(&out, |c| {
        c.max_per_ip = defaults.max_per_ip;
        c.max_connections = defaults.max_connections;
    });
    assert!(defaults.max_per_ip >= 1000);
    let mut f = fleet(srv.addr, 1100);
    f.rate = 1_000_000;
    f.ramp = Duration::from_millis(500);
    let r = run_fleet(&f, content(3_000, 9));
    assert!(
        r.failures.is_empty(),
        "{} refused: {:?}",
        r.failures.len(),
        &r.failures[..r.failures.len().min(3)]
    );
    assert_eq!(r.stored, 1100);
}
